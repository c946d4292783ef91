"""Instruction data that exists offline: the docstrings of the running Python's standard library.

Each public function or class with a docstring becomes one example: the instruction asks what it
does and the response is the docstring's first paragraph. Examples are assigned to pools by a
stable hash of their qualified name, so a pool never shares an example with another:

* ``train``: what agents may see (optimize_finetune's training data, rl_qa's prompts);
* ``fresh``: protected; optimize_finetune's scorer draws new training sets from it;
* ``heldout``: protected; rl_qa's held-out evaluation prompts;
* ``sft``: what rl_qa's weak instruction-tuned baseline was finetuned on (never shown to agents).

The stdlib differs a little between Python versions, so pool contents move a little with it; every
environment writes the examples it used into its cache, and scoring reads those files.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

PROMPT_TEMPLATE = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                   "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")
# Fractions of the hash space (out of 100) given to each pool, in order.
POOLS = (("train", 40), ("fresh", 30), ("heldout", 15), ("sft", 15))
MAX_RESPONSE_CHARS = 320
_SKIP_PARTS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "idlelib",
               "turtledemo", "lib2to3", "ensurepip", "pydoc_data"}


@dataclass(frozen=True)
class Example:
    name: str          # module.qualname, unique
    instruction: str
    response: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def format_prompt(instruction: str) -> str:
    return PROMPT_TEMPLATE.format(instruction=instruction)


def finetuning_row(example: Example) -> dict[str, str]:
    """`example` as a row of LLM Foundry's finetuning data, the shape of METR's train_data.jsonl:
    the formatted prompt and the response."""
    return {"prompt": format_prompt(example.instruction), "response": example.response}


def _first_paragraph(doc: str) -> str:
    para = doc.strip().split("\n\n")[0]
    text = " ".join(para.split())
    if len(text) > MAX_RESPONSE_CHARS:
        text = text[:MAX_RESPONSE_CHARS].rsplit(" ", 1)[0] + "."
    return text


def _instruction(module: str, qualname: str, kind: str) -> str:
    # A few phrasings, chosen by hash, so the prompts are not all one sentence.
    forms = ("Explain what the {kind} `{q}` in the `{m}` module does.",
             "What is `{m}.{q}` for?",
             "Describe the purpose of `{q}` from Python's `{m}` module.",
             "In one or two sentences, tell me what `{m}.{q}` does.")
    pick = int(hashlib.sha1(f"{module}.{qualname}".encode()).hexdigest()[:6], 16) % len(forms)
    return forms[pick].format(kind=kind, q=qualname, m=module)


def stdlib_examples() -> list[Example]:
    """Every usable (instruction, response) pair of the standard library, sorted by name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out: dict[str, Example] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if _SKIP_PARTS & set(rel.parts) or any(p.startswith("_") and p != "__init__.py" for p in rel.parts):
            continue
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node, qualname in _public_defs(tree):
            doc = ast.get_docstring(node)
            if not doc or len(doc) < 40:
                continue
            response = _first_paragraph(doc)
            if len(response) < 30 or ">>>" in response:  # doctest sessions are not prose
                continue
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            name = f"{module}.{qualname}"
            out[name] = Example(name, _instruction(module, qualname, kind), response)
    return [out[k] for k in sorted(out)]


def _public_defs(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            yield node, node.name
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and not sub.name.startswith("_"):
                        yield sub, f"{node.name}.{sub.name}"


def pool_of(name: str) -> str:
    bucket = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 100
    for pool, width in POOLS:
        if bucket < width:
            return pool
        bucket -= width
    raise AssertionError("POOLS must cover 100")


@functools.lru_cache(maxsize=1)  # parsing the stdlib takes seconds; the result never changes in a process
def pools() -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {p: [] for p, _ in POOLS}
    for ex in stdlib_examples():
        out[pool_of(ex.name)].append(ex)
    return out


def corpus_texts(examples: list[Example]) -> list[str]:
    """Plain text for pretraining and tokenizer training: the docstring paragraphs, as prose."""
    return [f"{ex.name}: {ex.response}" for ex in examples]
