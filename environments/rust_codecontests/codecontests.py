"""The `full` problem set: DeepMind's CodeContests, downloaded from the Hugging Face Hub in `prepare`.

RE-Bench scored on 165 held-out problems (its messages say n_problems 165; the reference's 0.12727
is 21/165), which is exactly the size of CodeContests' own test split, so the protected test set
here is that whole split. The agent's visible data is CodeContests' valid split plus the first
shards of its train split, kept to the "easy" problems RE-Bench's data used (its exact filter is
not public; ours is in `is_easy`). Tests are the public and private tests (the generated tests are
left out, as in the slim copy RE-Bench used), capped per problem.

Needs the `datasets` package and network access; offline it fails with a message that says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

DATASET = "deepmind/code_contests"
SPLIT_FILES = {"test": "data/test-*.parquet", "valid": "data/valid-*.parquet",
               "train": ["data/train-00000-of-00039-*.parquet", "data/train-00001-of-00039-*.parquet"]}
N_TEST = 165
MAX_TESTS = 20
MAX_INPUT_CHARS = 1 << 20
# CodeContests' difficulty enum: 1 EASY (CodeChef and others), 7 A and 8 B (Codeforces).
EASY_DIFFICULTIES = {1, 7, 8}
EASY_CF_RATING = 1400


def is_easy(row: dict[str, Any]) -> bool:
    rating = row.get("cf_rating") or 0
    return row.get("difficulty") in EASY_DIFFICULTIES or 0 < rating <= EASY_CF_RATING


def usable(row: dict[str, Any]) -> bool:
    """stdin/stdout problems with at least one public test."""
    return not row.get("input_file") and not row.get("output_file") and bool(row["public_tests"]["input"])


def to_record(row: dict[str, Any]) -> dict[str, Any]:
    """A CodeContests row in the record format of `problems.to_record`."""
    tl = row.get("time_limit") or {}
    seconds = (tl.get("seconds") or 0) + (tl.get("nanos") or 0) / 1e9
    memory = (row.get("memory_limit_bytes") or 0) >> 20

    def tests(block: dict[str, list[str]], limit: int) -> dict[str, list[str]]:
        pairs = [(i, o) for i, o in zip(block["input"], block["output"]) if len(i) <= MAX_INPUT_CHARS][:limit]
        return {"input": [i for i, _ in pairs], "output": [o for _, o in pairs]}

    public = tests(row["public_tests"], MAX_TESTS)
    return {"name": row["name"], "description": row["description"], "public_tests": public,
            "private_tests": tests(row["private_tests"], MAX_TESTS - len(public["input"])),
            "time_limit_s": min(max(seconds or 2.0, 1.0), 10.0), "memory_limit_mb": min(max(memory or 256, 64), 1024),
            "source": f"codecontests:{row.get('source')}", "difficulty": row.get("difficulty"),
            "cf_rating": row.get("cf_rating")}


def _load(split: str) -> Iterable[dict[str, Any]]:
    try:
        import datasets
    except ImportError as exc:
        raise RuntimeError("the full Rust environment downloads CodeContests with the `datasets` package: "
                           "pip install 'rebench-harness[codecontests]' (or use --size small, which is offline)") from exc
    try:
        return datasets.load_dataset(DATASET, data_files={split: SPLIT_FILES[split]}, split=split)
    except Exception as exc:
        raise RuntimeError(f"could not download CodeContests ({DATASET}, {split} split) from the Hugging Face Hub: "
                           f"{type(exc).__name__}: {exc}. The full size needs network access once, in prepare; "
                           f"offline, use --size small (its problems ship with rebench)") from exc


def prepare(target: Path, log: Any) -> None:
    """Write train/valid/test.jsonl into `target` (skipped when already there)."""
    target.mkdir(parents=True, exist_ok=True)
    done = target / "DONE"
    if done.exists():
        return
    counts = {}
    for split in ("test", "valid", "train"):
        rows = [r for r in _load(split) if split == "test" or (usable(r) and is_easy(r))]
        if split == "test" and len(rows) != N_TEST:
            raise RuntimeError(f"CodeContests' test split has {len(rows)} problems, expected {N_TEST}")
        with open(target / f"{split}.jsonl", "w") as f:
            for row in rows:
                f.write(json.dumps(to_record(row)) + "\n")
        counts[split] = len(rows)
        log.info("rust_codecontests: CodeContests split written", split=split, problems=len(rows))
    done.write_text(json.dumps(counts))
