"""Shared helpers for the LM environment tests (tests/test_lm_*.py).

The environments are driven as the harness drives them, through `rebench_core.testing.environment`;
the one shortcut is that the small corpora (public and secret split, about 30 s of tokenising) are
built once per test session and copied into each environment's cache.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

_CORPUS_CACHE: Path | None = None


def small_corpus_cache() -> Path:
    """A cache dir holding both small corpora, made once per test session."""
    global _CORPUS_CACHE
    if _CORPUS_CACHE is None:
        from rebench_environments.lm_common.corpus import prepare_corpus

        _CORPUS_CACHE = Path(tempfile.mkdtemp(prefix="rebench-lm-corpus-"))
        for heldout in ("public", "secret"):
            prepare_corpus("small", _CORPUS_CACHE, heldout=heldout)
    return _CORPUS_CACHE


def cache_root_for(name: str) -> Path:
    """A cache root whose directory for environment `name` already holds the small corpora."""
    root = Path(tempfile.mkdtemp(prefix=f"rebench-lm-{name}-"))
    shutil.copytree(small_corpus_cache() / "lm_corpus", root / name / "lm_corpus")
    return root


def agent_reachable_dir(prefix: str) -> Path:
    """A directory the sandbox's agent user can traverse (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


@contextlib.contextmanager
def shrunk(module, **changes) -> Iterator[None]:
    """Make the small spec of an environment module cheaper (fewer training steps) for a while."""
    saved = module.SPECS["small"]
    module.SPECS["small"] = replace(saved, **changes)
    try:
        yield
    finally:
        module.SPECS["small"] = saved


@dataclass
class Staged:
    session: Any  # rebench_core.context.EnvSession
    workspace: Path
    protected: Path
    instructions: str

    @property
    def cache_root(self) -> Path:
        return self.session.ctx.cache_dir.parent

    def score(self):
        from rebench_core.scoring import checked

        return checked(self.session.score(self.workspace, self.protected), self.session.env.name)

    def run_as_agent(self, argv: list[str], timeout: float = 300):
        return self.session.ctx.run_as_agent(argv, cwd=self.workspace, timeout=timeout)


@contextlib.contextmanager
def staged(name: str, size: str = "small", variant: str = "main", cache_root: Path | None = None,
           seed_cache=None) -> Iterator[Staged]:
    """An environment prepared and set up as the harness does it: a workspace the agent owns, a
    root-only protected directory. Given `cache_root` (another Staged's), it reuses what was
    prepared; otherwise the environment's cache starts with the small corpora, or with what
    `seed_cache(cache_dir)` puts there."""
    from rebench_core.testing import environment

    own_cache = cache_root is None
    if cache_root is None and seed_cache is not None:
        cache_root = Path(tempfile.mkdtemp(prefix=f"rebench-lm-{name}-"))
        seed_cache(cache_root / name)
    cache_root = cache_root or cache_root_for(name)
    run = agent_reachable_dir(f"rebench-lm-{name}-run-")
    workspace, protected = run / "workspace", run / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    try:
        with environment(name, size=size, variant=variant, cache_root=cache_root) as session:
            instructions = session.setup(workspace, protected)
            session.ctx.agent.give(workspace)  # as the harness does after setup
            yield Staged(session, workspace, protected, instructions)
    finally:
        shutil.rmtree(run, ignore_errors=True)
        if own_cache:
            shutil.rmtree(cache_root, ignore_errors=True)


def synthetic_full_corpus(cache_dir: Path, heldout: str, train_tokens: int = 16_000_000,
                          val_tokens: int = 4_000_000, seed: int = 0) -> None:
    """OpenWebText's shape without the download: uniform random GPT-2 ids, a document end every
    ~1,000 tokens, written where `prepare_corpus("full", ...)` finds a finished corpus."""
    import json

    import numpy as np

    from rebench_environments.lm_common import corpus as c

    root = c.corpus_root("full", cache_dir, heldout)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n in (("train", train_tokens), ("val", val_tokens)):
        ids = rng.integers(0, c.GPT2_VOCAB_SIZE - 1, n, dtype=np.uint16)
        ids[rng.random(n) < 0.001] = c.EOT_TOKEN
        ids.tofile(root / f"{name}.bin")
    spec = c.asdict(c.CORPORA["full"])
    if heldout == "public":
        spec.pop("reserve_per_mille")
    meta = {"format": c.FORMAT_VERSION if heldout == "public" else c.SECRET_FORMAT_VERSION, "spec": spec,
            "vocab_size": c.GPT2_VOCAB_SIZE, "eot_id": c.EOT_TOKEN, "unk_id": None,
            "gpt2_ids": list(range(c.GPT2_VOCAB_SIZE)), "train_tokens": train_tokens, "val_tokens": val_tokens,
            "synthetic": True}
    (root / "meta.json").write_text(json.dumps(meta))
