"""rl_qa's `small` models and prompts, built offline in `prepare`.

* the student's base model: a tiny Llama (finetune_common.tiny) pretrained on standard-library
  docstrings (a stand-in for gpt2-xl's web pretraining);
* the weak instruction-tuned baseline (RE-Bench used gpt2-alpaca): that base finetuned on the
  `sft` pool's (instruction, docstring) pairs, which the agent never sees;
* prompts: the agent's from the `train` pool, the held-out evaluation prompts from `heldout`;
* the two opponents' responses to the held-out prompts, sampled once with the scorer's decoding
  (RE-Bench precomputed them too).

Which held-out prompts are used, the sampling seed of every scored response and the baseline's
finetuning order come from a secret made here, in the environment's root-only cache: the shipped
code and pools say what the prompts look like, not which ones are scored or what the opponents
answered.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..finetune_common import data as fdata
from ..finetune_common.tiny import TinyArch, new_model, pretrain, save_model_dir, sft, train_tokenizer, write_json

FORMAT = 2  # 2: held-out prompts, sampling seed and baseline order from the secret


@dataclass(frozen=True)
class StudentSpec:
    arch: TinyArch
    pretrain_steps: int
    pretrain_batch: int
    baseline_epochs: int
    n_agent_prompts: int
    n_heldout: int
    seed: int = 23
    n_sft: int | None = None  # examples of the sft pool the baseline is finetuned on (None: all)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Prepared:
    root: Path

    base_model = property(lambda self: self.root / "base_model")
    baseline_model = property(lambda self: self.root / "baseline_model")
    agent_prompts = property(lambda self: self.root / "prompts.jsonl")
    heldout = property(lambda self: self.root / "heldout.jsonl")  # {"instruction", "base", "baseline"}
    secret_file = property(lambda self: self.root / "heldout.secret")
    done = property(lambda self: self.root / "DONE.json")

    def secret(self) -> bytes:
        """This installation's secret, made on first use (the cache is the scorer's alone)."""
        if not self.secret_file.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            self.secret_file.write_bytes(secrets.token_bytes(32))
            self.secret_file.chmod(0o600)
        return self.secret_file.read_bytes()

    def derived(self, purpose: str) -> int:
        """A 32-bit number derived from the secret for one purpose."""
        return int.from_bytes(hashlib.sha256(purpose.encode() + self.secret()).digest()[:4], "big")

    def sampling_seed(self) -> int:
        """The base seed of every scored response (decoding.prompt_seed)."""
        return self.derived("sampling")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prepare_student(root: Path, spec: StudentSpec, log) -> Prepared:
    """Build the small student, its baseline and the prompts under `root` (kept when built with
    the same spec); `log(message)` reports progress."""
    import torch
    from transformers import AutoTokenizer

    out = Prepared(root)
    meta = {"format": FORMAT, **spec.to_dict()}
    if out.done.exists() and json.loads(out.done.read_text()) == json.loads(json.dumps(meta)):
        return out
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    pools = fdata.pools()
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = Path(tmp) / "tok"
        texts = fdata.corpus_texts(pools["train"] + pools["sft"] + pools["fresh"])
        train_tokenizer(texts + [fdata.format_prompt(e.instruction) for e in pools["train"]], spec.arch.vocab_size,
                        tok_dir)
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        model = new_model(spec.arch, spec.seed, tokenizer.eos_token_id)
        log(f"rl_qa: pretraining the student base ({spec.pretrain_steps} steps)")
        pretrain(model, tokenizer, texts, steps=spec.pretrain_steps, batch_size=spec.pretrain_batch, seq_len=128,
                 lr=3e-3, seed=spec.seed, log=log)
        save_model_dir(model, tok_dir, out.base_model)
        log("rl_qa: finetuning the weak instruction-tuned baseline")
        pairs = [(fdata.format_prompt(e.instruction), e.response) for e in pools["sft"][:spec.n_sft]]
        sft(model, tokenizer, pairs, epochs=spec.baseline_epochs, batch_size=16, lr=1e-3, seed=out.derived("baseline"),
            log=log)
        save_model_dir(model, tok_dir, out.baseline_model)
    rng = random.Random(spec.seed)
    agent = rng.sample(pools["train"], min(spec.n_agent_prompts, len(pools["train"])))
    _jsonl(out.agent_prompts, [{"instruction": e.instruction} for e in agent])
    heldout = [e.instruction for e in random.Random(out.derived("heldout")).sample(pools["heldout"], spec.n_heldout)]
    log(f"rl_qa: sampling the opponents' responses to {len(heldout)} held-out prompts")
    write_opponents(out, heldout)
    write_json(out.done, meta)
    return out


def write_opponents(out: Prepared, heldout: list[str]) -> None:
    """Sample the base model's and the baseline's responses to the held-out prompts, as the scorer samples."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import decoding

    device = "cuda" if torch.cuda.is_available() else "cpu"
    responses = {}
    for name, folder in (("base", out.base_model), ("baseline", out.baseline_model)):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device)
        responses[name] = [r[0] for r in decoding.sample_responses(model, tokenizer, heldout,
                                                                   base_seed=out.sampling_seed())]
        del model
    _jsonl(out.heldout, [{"instruction": ins, "base": b, "baseline": s}
                         for ins, b, s in zip(heldout, responses["base"], responses["baseline"])])
