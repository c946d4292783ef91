"""rl_qa's `small` judge: SmolLM2-135M-Instruct taught, in `prepare`, to answer the pairwise question.

Asked as it ships, the 135M model answers "A" to every pair whatever the responses (README.md), so
asking both orders cancels to 0.5 for every model. Its final hidden state at the answer position
does carry a preference, though: a linear probe on it tells a function's real docstring from a
worse response on held-out pairs. `prepare` fits that probe and writes it into the model's output
layer, and the result is an ordinary transformers folder that the local backend serves as
`local/<folder>` to the scorer and, through the metered endpoint, to the agent's `evaluation.py`.

* Pairs: instructions from the `fresh` pool (never shown to rl_qa's agent, disjoint from the
  held-out prompts); the preferred response is the function's docstring; the other is one of
  REJECTED: the base model's or the baseline's sample, another function's docstring, the
  instruction echoed, a repeated word, the docstring's first three words, or nothing. Each pair is
  asked in both orders with the labels swapped, so the probe learns content, not position.
* Output layer: the embeddings are untied and the rows of "A" and "B" become E_A + w/2 and
  E_A - w/2 (E_A: the original "A" row; w: the probe). At the answer position the model already
  ranks "A" first, so the larger of the two new logits still beats every other token, and which of
  the two is larger is the sign of the probe. w is scaled so that the probe's typical |logit| is
  1: the sign is all that matters, and a small w leaves the rest of the reply as it was.
* Measured in JUDGE.json: the probe's accuracy on held-out instructions (overall and per kind of
  rejected response), how often the built model's greedy reply parses to the probe's verdict, and
  the build's duration.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..finetune_common import data as fdata
from . import judging

FORMAT = 1
BASE_JUDGE = "smollm2-135m"  # the catalogued local model the judge is built from
REJECTED = ("base", "baseline", "other", "echo", "repeated", "truncated", "empty")
_FILLER = ("the", "of", "return", "a", "file", "list", "value", "is")


@dataclass(frozen=True)
class JudgeSpec:
    n_instructions: int = 300      # from the fresh pool; a fifth of them are held out to measure the probe
    rejected_per_instruction: int = 2
    l2: float = 1e-2               # ridge penalty of the probe's logistic regression
    batch_size: int = 8
    seed: int = 5

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Pair:
    instruction: str
    a: str
    b: str
    a_better: bool
    kind: str  # the kind of the rejected response


def build_pairs(spec: JudgeSpec, base_model: Path, baseline_model: Path) -> tuple[list[Pair], list[Pair]]:
    """(training pairs, held-out pairs): both orders of (docstring, rejected) per instruction."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import decoding

    rng = random.Random(spec.seed)
    examples = rng.sample(fdata.pools()["fresh"], spec.n_instructions)
    instructions = [e.instruction for e in examples]
    samples = {}
    for kind, folder in (("base", base_model), ("baseline", baseline_model)):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        samples[kind] = [r[0] for r in decoding.sample_responses(model, tokenizer, instructions, base_seed=spec.seed)]
    n_test = max(1, spec.n_instructions // 5)
    train, test = [], []
    for i, example in enumerate(examples):
        rejected = {"base": samples["base"][i], "baseline": samples["baseline"][i],
                    "other": examples[(i + 1) % len(examples)].response, "echo": example.instruction,
                    "repeated": " ".join([rng.choice(_FILLER)] * rng.randint(4, 12)),
                    "truncated": " ".join(example.response.split()[:3]), "empty": ""}
        target = test if i < n_test else train
        for kind in rng.sample(REJECTED, spec.rejected_per_instruction):
            target.append(Pair(example.instruction, example.response, rejected[kind], True, kind))
            target.append(Pair(example.instruction, rejected[kind], example.response, False, kind))
    return train, test


def _prompt_ids(tokenizer, pair: Pair) -> list[int]:
    encoded = tokenizer.apply_chat_template(judging.messages(pair.instruction, pair.a, pair.b),
                                            add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(encoded["input_ids"])


def answer_states(model, tokenizer, pairs: list[Pair], batch_size: int):
    """The final (normed) hidden state at the answer position of each pair's judging prompt."""
    import torch

    states = []
    for start in range(0, len(pairs), batch_size):
        ids = [_prompt_ids(tokenizer, p) for p in pairs[start:start + batch_size]]
        width = max(map(len, ids))
        # Right padding: causal attention keeps each prompt's own positions exact.
        batch = torch.tensor([row + [0] * (width - len(row)) for row in ids])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
        with torch.inference_mode():
            hidden = model.model(input_ids=batch, attention_mask=mask).last_hidden_state
        states.append(hidden[torch.arange(len(ids)), torch.tensor([len(r) - 1 for r in ids])])
    return torch.cat(states)


def fit_probe(states, labels, l2: float):
    """Logistic regression without intercept (the lm_head has no bias), ridge-penalised."""
    import torch

    w = torch.zeros(states.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([w], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(states @ w, labels) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach()


def judge_dir(root: Path) -> Path:
    return root / "judge_model"


def build_judge(root: Path, spec: JudgeSpec, base_model: Path, baseline_model: Path, log) -> Path:
    """Write the judge folder under `root` (kept when it was built with the same spec)."""
    import torch

    from rebench_plugins.local_backend.loader import load_model, save_converted
    from rebench_plugins.local_backend.models import get_spec

    out = judge_dir(root)
    meta = {"format": FORMAT, "base_judge": BASE_JUDGE, **spec.to_dict()}
    report_path = out / "JUDGE.json"
    if report_path.exists() and json.loads(report_path.read_text()).get("meta") == meta:
        return out
    started = time.monotonic()
    loaded = load_model(get_spec(BASE_JUDGE))
    tokenizer = loaded.tokenizer
    train, test = build_pairs(spec, base_model, baseline_model)
    log(f"rl_qa: teaching local/{BASE_JUDGE} to judge ({len(train)} training pairs, {len(test)} held out)")
    with loaded.lock:
        x_train = answer_states(loaded.model, tokenizer, train, spec.batch_size)
        x_test = answer_states(loaded.model, tokenizer, test, spec.batch_size)
        model = copy.deepcopy(loaded.model)  # the shared instance stays the catalogued model
    y_train = torch.tensor([float(p.a_better) for p in train])
    w = fit_probe(x_train, y_train, spec.l2)
    w = w / (x_train @ w).abs().median()  # typical |logit difference| 1: see the module docstring

    token_a, token_b = (tokenizer.convert_tokens_to_ids(t) for t in ("A", "B"))
    embeddings = model.get_input_embeddings().weight.detach()
    head = embeddings.clone()
    head[token_a] = embeddings[token_a] + w / 2
    head[token_b] = embeddings[token_a] - w / 2
    model.config.tie_word_embeddings = False
    model.lm_head = torch.nn.Linear(head.shape[1], head.shape[0], bias=False)
    model.lm_head.weight = torch.nn.Parameter(head)

    probe_says_a = (x_test @ w) > 0
    truth = torch.tensor([p.a_better for p in test])
    first_token = (x_test @ head.T).argmax(dim=1)
    by_kind = {kind: statistics.fmean(float(probe_says_a[i] == truth[i]) for i, p in enumerate(test) if p.kind == kind)
               for kind in REJECTED if any(p.kind == kind for p in test)}
    report = {
        "meta": meta,
        "model": f"local/{BASE_JUDGE}, output layer rows A and B from a linear probe",
        "train_pairs": len(train), "heldout_pairs": len(test),
        "heldout_accuracy": round(float((probe_says_a == truth).float().mean()), 4),
        "heldout_accuracy_by_rejected_kind": {k: round(v, 4) for k, v in by_kind.items()},
        # The first generated token is the probe's letter (the verdict parse reads it).
        "first_token_is_probe_verdict": round(float((first_token == torch.where(probe_says_a, token_a, token_b))
                                                    .float().mean()), 4),
        "build_s": round(time.monotonic() - started, 1),
    }
    shutil.rmtree(out, ignore_errors=True)  # a build with another spec; JUDGE.json marks a finished one
    save_converted(model, tokenizer, out)
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    log(f"rl_qa: judge built in {report['build_s']} s, held-out accuracy {report['heldout_accuracy']}")
    return out
