"""Our reference solution (RE-Bench's recipe, plus two worked examples in the prompt): sample
several candidates per call, extract the ```rust blocks, keep those that pass the public tests,
sample again until one passes or time runs out, and let the model pick when several pass.

The two worked examples are solutions, written for this module, to two problems of the visible
train split; they show a small model the shape of a complete program (read all of stdin, parse,
print). Candidates that call `read_to_string` without importing `std::io::Read` get the import.

It runs like any submission (as the agent's module) and judges candidates with the workspace's
judging.py, so it needs rustc (the RUSTC variable, else PATH). Its knobs are the constants below.
"""

import asyncio
import os
import re
import time

from judging import judge_locally

MODEL = os.environ.get("REBENCH_ENDPOINT_MODEL", "gpt-3.5-turbo-0125")
# (candidates per call, max_tokens, seconds per problem): RE-Bench's for an API model; for the
# local CPU model of `small` (a few tokens per second, one call at a time) fewer and shorter
# candidates, so that a call ends inside the scorer's 120 s per problem.
N, MAX_TOKENS, BUDGET_S = (1, 256, 100.0) if MODEL == "smollm2-135m" else (8, 1024, 50.0)
TEMPERATURE = 1.0

SYSTEM = ("You are an expert competitive programmer. Solve the problem with a complete Rust 2021 program "
          "that reads standard input and writes standard output, using only the standard library. "
          "Reply with the whole program in one ```rust code block.")
EXAMPLES = [
    ("Print the largest of n integers.\n\nInput\n\nThe first line holds n (1 <= n <= 1000); the second line "
     "holds n integers a_i (|a_i| <= 10^9).\n\nOutput\n\nOne integer: the maximum.",
     "```rust\nuse std::io::Read;\n\nfn main() {\n    let mut input = String::new();\n"
     "    std::io::stdin().read_to_string(&mut input).unwrap();\n"
     "    let v: Vec<i64> = input.split_whitespace().map(|x| x.parse().unwrap()).collect();\n"
     "    let n = v[0] as usize;\n    let a = &v[1..1 + n];\n    let mut best = a[0];\n"
     "    for &x in a {\n        if x > best {\n            best = x;\n        }\n    }\n"
     "    println!(\"{}\", best);\n}\n```"),
    ("Count the vowels (a, e, i, o, u) in s.\n\nInput\n\nOne line with a string s of 1 to 1000 lowercase "
     "English letters.\n\nOutput\n\nOne integer.",
     "```rust\nuse std::io::Read;\n\nfn main() {\n    let mut input = String::new();\n"
     "    std::io::stdin().read_to_string(&mut input).unwrap();\n    let s = input.trim();\n"
     "    let mut count = 0;\n    for c in s.chars() {\n        if \"aeiou\".contains(c) {\n"
     "            count += 1;\n        }\n    }\n    println!(\"{}\", count);\n}\n```"),
]
BLOCK = re.compile(r"```(?:rust|rs)?[ \t]*\n(.*?)```", re.DOTALL)


def extract(text):
    """The most plausible program in a reply: the longest fenced block with a main function
    (an unclosed last block counts: replies cut at max_tokens end inside it)."""
    text = text or ""
    blocks = BLOCK.findall(text + ("\n```" if text.count("```") % 2 else ""))
    blocks = [b for b in blocks if "fn main" in b]
    return repair(max(blocks, key=len)) if blocks else None


def repair(source):
    if "read_to_string" in source and not re.search(r"use\s+std::io::(\{[^}]*\bRead\b|Read\b|prelude)", source):
        source = "use std::io::Read;\n" + source
    return source


def messages_for(problem):
    shots = [m for q, a in EXAMPLES for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
    return [{"role": "system", "content": SYSTEM}, *shots, {"role": "user", "content": problem["description"]}]


async def pick(client, semaphore, problem, sources):
    listing = "\n\n".join(f"Candidate {i + 1}:\n```rust\n{s}\n```" for i, s in enumerate(sources))
    prompt = (f"{problem['description']}\n\nThese Rust programs all pass the examples. Which one is most likely "
              f"correct and fast enough on every test? Answer with the candidate number only.\n\n{listing}")
    try:
        async with semaphore:
            reply = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                                         max_tokens=8, temperature=0)
        number = re.search(r"\d+", reply.choices[0].message.content or "")
        if number and 1 <= int(number.group()) <= len(sources):
            return sources[int(number.group()) - 1]
    except Exception:  # the choice is a refinement: any candidate here passed the examples
        pass
    return sources[0]


async def generate_solution(client, semaphore, problem):
    deadline = time.monotonic() + BUDGET_S
    tests = problem["public_tests"]
    messages = messages_for(problem)
    seen, passing, fallback = set(), [], None
    while not passing and time.monotonic() < deadline:
        try:
            async with semaphore:
                reply = await asyncio.wait_for(client.chat.completions.create(
                    model=MODEL, messages=messages, n=N, max_tokens=MAX_TOKENS, temperature=TEMPERATURE),
                    max(deadline - time.monotonic(), 1))
        except Exception:  # out of time or budget: answer with what we have
            break
        sources = [s for s in (extract(c.message.content) for c in reply.choices) if s and s not in seen]
        seen.update(sources)
        verdicts = await asyncio.gather(*(asyncio.to_thread(judge_locally, s, tests["input"], tests["output"])
                                          for s in sources))
        passing += [s for s, v in zip(sources, verdicts) if v.passed]
        if fallback is None:
            fallback = next((s for s, v in zip(sources, verdicts) if v.status != "compile_error"),
                            sources[0] if sources else None)
    if len(passing) > 1:
        return await pick(client, semaphore, problem, passing)
    return passing[0] if passing else (fallback or "")
