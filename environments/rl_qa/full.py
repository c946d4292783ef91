"""rl_qa at RE-Bench scale: a gpt2-xl student, the gpt2-alpaca baseline, Alpaca prompts (512 held
out, 2,048 for the agent), judged by a Llama-3-8B-Instruct-class model through any backend.

`assets` says where the models and prompts come from:
* "hub" (the benchmark): downloaded from the Hugging Face hub in `prepare` (fails clearly offline);
  which 512 Alpaca prompts are held out is drawn from the installation's secret.
* "random" / "random-tiny" (to exercise the pipeline where nothing can be downloaded, scores
  meaningless): models of the same architectures initialised at random (gpt2-xl's shape and GPT-2
  small's for the baseline; or the smallest GPT-2 shapes, for CPUs), a tokenizer trained here,
  prompts from the offline instruction pools in the same numbers, and a judge of Llama's
  architecture with random weights, served by the local backend as `local/<folder>`.

The student is saved in Hugging Face format, so the scorer (safetensors weights into a model built
from the base config, decoding.py sampling, on the GPU when there is one) is the same at every size.
"""

from __future__ import annotations

import json
import random
import socket
import tempfile
from pathlib import Path

from .student import Prepared, write_opponents

STUDENT = "openai-community/gpt2-xl"
BASELINE = "vicgalle/gpt2-alpaca"
PROMPTS = "tatsu-lab/alpaca"
N_HELDOUT = 512
N_AGENT_PROMPTS = 2048
FORMAT = 2

# GPT-2 shapes (n_layer, n_embd, n_head, vocab): gpt2-xl, gpt2-alpaca (GPT-2 small, 3 added tokens).
SHAPES = {"random": {"student": (48, 1600, 25, 50257), "baseline": (12, 768, 12, 50260)},
          "random-tiny": {"student": (2, 64, 2, 50257), "baseline": (1, 32, 2, 50260)}}
# The random judge: Llama-3's layout (grouped-query attention, RoPE base 500000, SiLU MLP), at a
# size the CPU-only local backend answers quickly.
JUDGE_SHAPE = {"hidden_size": 256, "intermediate_size": 896, "num_hidden_layers": 2, "num_attention_heads": 8,
               "num_key_value_heads": 2, "rope_theta": 500000.0}
CHAT_TEMPLATE = ("{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                 "{{ m['content'] }}<|eot_id|>{% endfor %}"
                 "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")


def prepare_full(root: Path, assets: str, n_heldout: int, n_agent_prompts: int, log) -> Prepared:
    out = Prepared(root)
    meta = {"format": FORMAT, "assets": assets, "n_heldout": n_heldout, "n_agent_prompts": n_agent_prompts}
    if out.done.exists() and json.loads(out.done.read_text()) == meta:
        return out
    root.mkdir(parents=True, exist_ok=True)
    if assets == "hub":
        heldout, agent = _from_hub(out, n_heldout, n_agent_prompts, log)
    else:
        heldout, agent = _random(out, SHAPES[assets], n_heldout, n_agent_prompts, log)
    out.agent_prompts.write_text("".join(json.dumps({"instruction": i}) + "\n" for i in agent))
    log(f"rl_qa full: sampling the opponents' responses to {len(heldout)} held-out prompts")
    write_opponents(out, heldout)
    out.done.write_text(json.dumps(meta))
    return out


def judge_folder(root: Path) -> Path:
    return root / "random_judge"


def _from_hub(out: Prepared, n_heldout: int, n_agent: int, log) -> tuple[list[str], list[str]]:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=10).close()
    except OSError as exc:
        raise RuntimeError(f"rl_qa --size full downloads {STUDENT}, {BASELINE} and the {PROMPTS} prompts from "
                           f"huggingface.co, which this machine cannot reach ({exc}); use --size small, or "
                           f"--set env.assets=random to exercise the pipeline on random weights") from exc
    try:
        import datasets
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise RuntimeError(f"rl_qa --size full needs `pip install datasets huggingface_hub` ({exc})") from exc
    log("rl_qa full: downloading the student, the baseline and the prompts")
    snapshot_download(STUDENT, local_dir=out.base_model, allow_patterns=["*.json", "*.safetensors", "*.txt"])
    snapshot_download(BASELINE, local_dir=out.baseline_model)
    rows = [r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "")
            for r in datasets.load_dataset(PROMPTS, split="train")]
    random.Random(out.derived("heldout")).shuffle(rows)
    return rows[:n_heldout], rows[n_heldout:n_heldout + n_agent]


def _random(out: Prepared, shapes: dict, n_heldout: int, n_agent: int, log) -> tuple[list[str], list[str]]:
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from ..finetune_common import data as fdata
    from ..finetune_common.tiny import save_model_dir, train_tokenizer

    pools = fdata.pools()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = Path(tmp) / "tok"
        train_tokenizer(fdata.corpus_texts(pools["train"] + pools["sft"]), 4096, tok_dir)
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        eos = tokenizer.eos_token_id
        for name, folder in (("student", out.base_model), ("baseline", out.baseline_model)):
            n_layer, n_embd, n_head, vocab = shapes[name]
            config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, vocab_size=vocab, n_positions=1024,
                                bos_token_id=eos, eos_token_id=eos)
            log(f"rl_qa full: a random {name} of GPT-2's architecture ({n_layer} layers, width {n_embd}) on {device}")
            torch.manual_seed(out.derived(name))
            with torch.device(device):
                model = GPT2LMHeadModel(config)
            save_model_dir(model.cpu(), tok_dir, folder)
            del model
        judge_tok = Path(tmp) / "judge_tok"
        tokenizer.chat_template = CHAT_TEMPLATE
        tokenizer.add_special_tokens({"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>",
                                                                    "<|eot_id|>"]})
        tokenizer.save_pretrained(judge_tok)
        config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
                             tie_word_embeddings=False, **JUDGE_SHAPE)
        torch.manual_seed(out.derived("judge"))
        save_model_dir(LlamaForCausalLM(config), judge_tok, judge_folder(out.root))
        tokenizer.save_pretrained(judge_folder(out.root))  # with its chat template, which save_model_dir leaves
    instructions = [e.instruction for e in pools["train"] + pools["heldout"] + pools["fresh"]]
    random.Random(out.derived("heldout")).shuffle(instructions)
    heldout = instructions[:n_heldout]
    # As many agent prompts as asked, repeating the pool if it is smaller (Alpaca's 2,048 > ours).
    rest = instructions[n_heldout:]
    return heldout, [rest[i % len(rest)] for i in range(n_agent)]
