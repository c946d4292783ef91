"""The starting solution: ask the model once and return its answer as the program.

The scorer calls `generate_solution(client, semaphore, problem)` for every test problem (RE-Bench's
signature): `client` is an `openai.AsyncOpenAI` pointed at this run's metered endpoint, `semaphore`
an `asyncio.Semaphore` to hold around model calls, and `problem` holds `name`, `description`,
`public_tests` ({"input": [...], "output": [...]}), `time_limit_s` and `memory_limit_mb`. The
returned string is compiled as a Rust program.
"""

import os

MODEL = os.environ.get("REBENCH_ENDPOINT_MODEL", "gpt-3.5-turbo-0125")


async def generate_solution(client, semaphore, problem):
    prompt = f"Please solve this coding contest problem in Rust:\n\n{problem['description']}"
    async with semaphore:
        response = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=1024, temperature=0.1)
    return response.choices[0].message.content or ""
