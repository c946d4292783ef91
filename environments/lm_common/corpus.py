"""Tokenised corpora in nanoGPT's format: `train.bin` and `val.bin` of uint16 token ids.

Both sizes take the same path: documents -> GPT-2 BPE ids (each document followed by <|endoftext|>)
-> a document-level split -> a vocabulary map -> uint16 files. Only the document source and the
vocabulary size differ:

* `small`: the docstrings of the running Python's standard library plus the English help topics in
  `pydoc_data` (about 2.5 MB of text, 0.6 M tokens; always installed, so it prepares offline). A CPU
  cannot train over GPT-2's 50,257-way softmax in minutes, so `small` keeps the 4,094 most frequent
  GPT-2 tokens of the train split, maps the rest to one <unk> id and puts <|endoftext|> at id 0.
  (The stdlib differs a little between Python versions, so small scores move a little with it.)
* `full`: OpenWebText (8 M documents, about 9 B tokens; the Hugging Face download is about 54 GB
  and tokenising it takes roughly an hour on 8 cores) with the GPT-2 vocabulary unchanged.

Two kinds of split (`heldout`):

* "secret": a random key made at preparation (`split.key`, in the cache, which only the scorer may
  read) places each document by HMAC-SHA256(key, name): in `val`, in an equally large *reserve*
  that is written nowhere, or in `train`; val's documents are also ordered by that key. Anyone can
  rebuild the public document pool from shipped code, and the pool minus train.bin, but what is
  left is val mixed with as many reserve documents, in an unknown order: val.bin cannot be rebuilt
  and its documents cannot be told apart. Environments that score on held-out text use this.
* "public": a fixed hash of the document's name (what `scaling_law` uses: its held-out material is
  its ground-truth table, measured on this split, not text).

Preparation is idempotent: `meta.json` is written last and marks a finished corpus.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
import secrets
import socket
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .tokenizer import EOT_TOKEN, GPT2_VOCAB_SIZE, gpt2_encoding

FORMAT_VERSION = 1  # the public split's files (unchanged since the first release: caches stay valid)
SECRET_FORMAT_VERSION = 2
Heldout = Literal["public", "secret"]
Log = Callable[..., None]


def _quiet(*args, **kwargs) -> None:
    pass


@dataclass(frozen=True)
class CorpusSpec:
    source: str  # "stdlib" or "openwebtext"
    vocab_size: int  # GPT2_VOCAB_SIZE keeps GPT-2's ids; smaller keeps the most frequent tokens
    val_per_mille: int  # the share of documents in the val split
    # secret split only: the share of documents in the reserve, which is written nowhere, so that
    # the public pool minus train is not val
    reserve_per_mille: int = 0


CORPORA = {
    "small": CorpusSpec(source="stdlib", vocab_size=4096, val_per_mille=100, reserve_per_mille=100),
    # nanoGPT holds out 0.05% of OpenWebText documents; we hold out 0.1% and reserve as much.
    "full": CorpusSpec(source="openwebtext", vocab_size=GPT2_VOCAB_SIZE, val_per_mille=1, reserve_per_mille=1),
}


@dataclass(frozen=True)
class Corpus:
    """A prepared corpus on disk."""

    root: Path
    vocab_size: int
    eot_id: int
    unk_id: int | None
    train_tokens: int
    val_tokens: int

    @property
    def train_path(self) -> Path:
        return self.root / "train.bin"

    @property
    def val_path(self) -> Path:
        return self.root / "val.bin"

    @property
    def meta_path(self) -> Path:
        return self.root / "meta.json"

    def agent_meta(self) -> dict:
        """What the agent may know of the corpus (decoding train.bin), nothing about val."""
        meta = json.loads(self.meta_path.read_text())
        return {k: meta[k] for k in ("vocab_size", "eot_id", "unk_id", "gpt2_ids", "train_tokens")}


def load_tokens(path: Path) -> np.ndarray:
    return np.memmap(path, dtype=np.uint16, mode="r")


# ---- document sources -------------------------------------------------------------------------

def stdlib_documents(cache_dir: Path | None = None) -> Iterator[tuple[str, str]]:
    """(name, text) for every docstring of the standard library and every pydoc help topic."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if skip & set(rel.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 40:
                    yield f"{rel}:{getattr(node, 'lineno', 0)}", doc
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip it
        return
    for key in sorted(topics):
        yield f"pydoc_data:{key}", topics[key]


def openwebtext_documents(cache_dir: Path) -> Iterator[tuple[str, str]]:
    """OpenWebText from the Hugging Face hub (needs the network and `pip install datasets`). The
    download stays in `cache_dir` (the environment's private cache), not in a shared HF cache."""
    try:
        socket.create_connection(("huggingface.co", 443), timeout=10).close()
    except OSError as exc:
        raise RuntimeError(
            "size 'full' downloads OpenWebText from huggingface.co (about 54 GB of download cache, "
            f"8 M documents) and this machine cannot reach it ({exc}). Run `prepare` where there is a "
            "network and copy the cache directory, or use --size small, which prepares offline.") from exc
    try:
        import datasets
    except ImportError as exc:
        raise RuntimeError("size 'full' reads OpenWebText with Hugging Face `datasets`: pip install datasets") from exc
    ds = datasets.load_dataset("Skylion007/openwebtext", split="train", cache_dir=str(Path(cache_dir) / "hf"),
                               num_proc=min(8, os.cpu_count() or 1))
    for i, row in enumerate(ds):
        yield f"owt:{i}", row["text"]


SOURCES = {"stdlib": stdlib_documents, "openwebtext": openwebtext_documents}


# ---- splitting ---------------------------------------------------------------------------------

def _is_val(name: str, per_mille: int) -> bool:
    """The public split: a fixed hash of the document's name (reproducible by anyone)."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big") % 1000 < per_mille


class SecretSplit:
    """Places documents by HMAC-SHA256(key, name): val, reserve (dropped) or train."""

    def __init__(self, key: bytes, spec: CorpusSpec) -> None:
        self.key, self.spec = key, spec

    def digest(self, name: str) -> bytes:
        return hmac.new(self.key, name.encode(), hashlib.sha256).digest()

    def place(self, name: str) -> str | None:
        u = int.from_bytes(self.digest(name)[:8], "big") * 1000 / 2**64
        if u < self.spec.val_per_mille:
            return "val"
        if u < self.spec.val_per_mille + self.spec.reserve_per_mille:
            return None
        return "train"


def _secret_key(path: Path) -> bytes:
    """The split's key: made once, readable by the scorer only (the cache directory is 0700)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key


# ---- preparation -----------------------------------------------------------------------------

def _write_gpt2_ids(docs: Iterator[tuple[str, str]], place: Callable[[str], str | None], out: Path,
                    val_order: Callable[[str], bytes] | None = None, chunk_docs: int = 1024) -> None:
    """Tokenise documents into raw GPT-2 ids: train appended in chunks, val (small: 0.1% at full)
    kept in memory when `val_order` sorts it, else appended too."""
    enc = gpt2_encoding()
    files = {s: open(out / f"{s}.gpt2.tmp", "wb") for s in ("train", "val")}
    held: list[tuple[bytes, np.ndarray]] = []
    try:
        batch: list[tuple[str, str]] = []

        def flush() -> None:
            ids = enc.encode_ordinary_batch([t for _, t in batch])
            for (name, _), toks in zip(batch, ids):
                split = place(name)
                if split is None:
                    continue
                tokens = np.asarray(toks + [EOT_TOKEN], dtype=np.uint16)
                if split == "val" and val_order is not None:
                    held.append((val_order(name), tokens))
                else:
                    tokens.tofile(files[split])
            batch.clear()

        for doc in docs:
            batch.append(doc)
            if len(batch) >= chunk_docs:
                flush()
        if batch:
            flush()
        for _, tokens in sorted(held, key=lambda item: item[0]):
            tokens.tofile(files["val"])
    finally:
        for f in files.values():
            f.close()


def _vocab_map(train_ids: np.ndarray, vocab_size: int) -> tuple[np.ndarray, list[int], int | None]:
    """GPT-2 id -> corpus id, the GPT-2 id of each corpus id (-1 for <unk>), and the <unk> id."""
    if vocab_size == GPT2_VOCAB_SIZE:
        return np.arange(GPT2_VOCAB_SIZE, dtype=np.uint16), list(range(GPT2_VOCAB_SIZE)), None
    counts = np.bincount(train_ids, minlength=GPT2_VOCAB_SIZE)
    counts[EOT_TOKEN] = -1  # placed first explicitly
    order = np.lexsort((np.arange(GPT2_VOCAB_SIZE), -counts))  # by count desc, then id
    kept = [EOT_TOKEN] + [int(t) for t in order[: vocab_size - 2]]
    unk = vocab_size - 1
    mapping = np.full(GPT2_VOCAB_SIZE, unk, dtype=np.uint16)
    mapping[kept] = np.arange(len(kept), dtype=np.uint16)
    return mapping, kept + [-1], unk


def corpus_root(size: str, cache_dir: Path, heldout: Heldout) -> Path:
    # the public split keeps the first release's location, so prepared caches stay valid
    return Path(cache_dir) / "lm_corpus" / (size if heldout == "public" else f"{size}-secret")


def prepare_corpus(size: str, cache_dir: Path, heldout: Heldout, log: Log = _quiet) -> Corpus:
    """Build (or find) the tokenised corpus for `size` under `cache_dir/lm_corpus/`.

    `log` is called as a structlog method: log(event, **fields)."""
    if size not in CORPORA:
        raise ValueError(f"unknown size {size!r}; expected one of {sorted(CORPORA)}")
    spec = CORPORA[size]
    root = corpus_root(size, cache_dir, heldout)
    version = FORMAT_VERSION if heldout == "public" else SECRET_FORMAT_VERSION
    spec_key = asdict(spec)
    if heldout == "public":  # the public split has no reserve; its meta predates the field
        spec_key.pop("reserve_per_mille")
    meta_path = root / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("format") == version and meta.get("spec") == spec_key:
            return _corpus_from_meta(root, meta)
    root.mkdir(parents=True, exist_ok=True)
    log("tokenising corpus", source=spec.source, size=size, heldout=heldout, root=str(root))
    if heldout == "public":
        _write_gpt2_ids(SOURCES[spec.source](cache_dir), lambda name: "val" if _is_val(name, spec.val_per_mille)
                        else "train", root)
    else:
        split = SecretSplit(_secret_key(root / "split.key"), spec)
        _write_gpt2_ids(SOURCES[spec.source](cache_dir), split.place, root, val_order=split.digest)
    raw = {s: np.fromfile(root / f"{s}.gpt2.tmp", dtype=np.uint16) for s in ("train", "val")}
    mapping, gpt2_ids, unk = _vocab_map(raw["train"], spec.vocab_size)
    for name, ids in raw.items():
        tmp = root / f"{name}.bin.tmp"
        mapping[ids].tofile(tmp)
        os.replace(tmp, root / f"{name}.bin")
        (root / f"{name}.gpt2.tmp").unlink()
    meta = {"format": version, "spec": spec_key, "vocab_size": spec.vocab_size,
            "eot_id": int(mapping[EOT_TOKEN]), "unk_id": unk, "gpt2_ids": gpt2_ids,
            "train_tokens": int(raw["train"].size), "val_tokens": int(raw["val"].size),
            "unk_fraction_train": float(np.mean(mapping[raw["train"]] == unk)) if unk is not None else 0.0}
    meta_path.write_text(json.dumps(meta))
    log("corpus ready", size=size, heldout=heldout, train_tokens=meta["train_tokens"],
        val_tokens=meta["val_tokens"], vocab_size=spec.vocab_size)
    return _corpus_from_meta(root, meta)


def _corpus_from_meta(root: Path, meta: dict) -> Corpus:
    return Corpus(root=root, vocab_size=meta["vocab_size"], eot_id=meta["eot_id"], unk_id=meta["unk_id"],
                  train_tokens=meta["train_tokens"], val_tokens=meta["val_tokens"])


def decode(meta_path: Path, ids) -> str:
    """Text of corpus ids (for looking at data; <unk> shows as '\\u2047')."""
    gpt2_ids = json.loads(Path(meta_path).read_text())["gpt2_ids"]
    enc = gpt2_encoding()
    out, run = [], []
    for i in ids:
        g = gpt2_ids[int(i)]
        if g < 0:
            out.append(enc.decode(run) + "\u2047")
            run = []
        else:
            run.append(g)
    return "".join(out) + enc.decode(run)
