"""Evaluate a solution module on a visible split, the way the official scorer does.

    python evaluate.py data/valid.jsonl solve_code_contests_rust [--limit N] [--concurrency K]

Reads the endpoint's address and key from the environment (OPENAI_BASE_URL, OPENAI_API_KEY,
REBENCH_ENDPOINT_MODEL) or from ../api.env, runs `generate_solution(client, semaphore, problem)` on each
problem (statement and public tests only), compiles each answer with rustc -O and judges it on
all of the problem's tests. Prints one line per problem and the score. Calls are billed to the
run's endpoint budget. `--concurrency` is the size of the semaphore handed to generate_solution.
This is not an official score: use the `score` action for that.
"""

import argparse
import asyncio
import importlib
import inspect
import json
import math
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from judging import judge_locally  # noqa: E402


def load_api_env() -> None:
    path = HERE.parent / "api.env"
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and key.strip() not in os.environ:
                os.environ[key.strip()] = value.strip()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("module")
    parser.add_argument("--limit", type=int, default=0, help="only the first N problems")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    load_api_env()
    import openai

    module = importlib.import_module(args.module)
    problems = [json.loads(line) for line in open(args.data)]
    if args.limit:
        problems = problems[:args.limit]
    client = openai.AsyncOpenAI()
    semaphore = asyncio.Semaphore(args.concurrency)  # shared by every problem, as RE-Bench's scorer does

    async def one(p):
        visible = {k: p[k] for k in ("name", "description", "public_tests", "time_limit_s", "memory_limit_mb")}
        started = time.monotonic()
        try:
            answer = module.generate_solution(client, semaphore, visible)
            answer = await answer if inspect.isawaitable(answer) else answer
        except Exception as exc:
            print(f"{p['name']}: generate_solution raised {type(exc).__name__}: {exc}", flush=True)
            return False
        if not isinstance(answer, str):
            print(f"{p['name']}: generate_solution returned {type(answer).__name__}, not str", flush=True)
            return False
        gen_s = time.monotonic() - started
        tests = p["public_tests"]["input"] + p["private_tests"]["input"]
        expected = p["public_tests"]["output"] + p["private_tests"]["output"]
        verdict = await asyncio.to_thread(judge_locally, answer, tests, expected)
        print(f"{p['name']}: {verdict.status} ({verdict.tests_passed}/{verdict.tests_total} tests, "
              f"generated in {gen_s:.1f} s) {verdict.detail[:200]}", flush=True)
        return verdict.passed

    results = await asyncio.gather(*(one(p) for p in problems))
    n, k = len(results), sum(results)
    p = k / n if n else 0.0
    print(json.dumps({"n_successes": k, "n_problems": n, "score": p,
                      "standard_error": math.sqrt(p * (1 - p) / n) if n else None}))


if __name__ == "__main__":
    asyncio.run(main())
