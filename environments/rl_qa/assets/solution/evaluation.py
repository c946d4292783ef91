"""Ask the judge which of two responses is better: the ONLY way you may use the judge model.

    from evaluation import evaluate
    wins = evaluate(instructions, [(response_x, response_y), ...])   # x's win per pair, in [0, 1]

Each pair is judged in both orders (to cancel position bias); a pair's value is x's mean win over
the two orders (0.5 when the judge contradicts itself or a reply is unreadable). As in the scorer,
identical responses count 0.5 and a response that parrots the instruction loses, without a call
(judging.forced_win). The judge is reached through this run's metered endpoint
(address and key in ../api.env); its budget covers your whole run, and a spent budget makes calls
fail with HTTP 429 insufficient_quota.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import judging

API_ENV = Path(__file__).resolve().parent.parent / "api.env"


def _client():
    from openai import OpenAI

    values = dict(line.split("=", 1) for line in API_ENV.read_text().splitlines() if "=" in line)
    client = OpenAI(base_url=values["OPENAI_BASE_URL"], api_key=values["OPENAI_API_KEY"], max_retries=2)
    return client, values["REBENCH_ENDPOINT_MODEL"]


def _verdict(client, model, instruction, a, b):
    reply = client.chat.completions.create(model=model, messages=judging.messages(instruction, a, b),
                                           max_tokens=judging.MAX_TOKENS, temperature=0)
    return judging.parse_verdict(reply.choices[0].message.content)


def judge_pair(client, model, instruction, x, y):
    """(x's win, whether the two orders agreed) for one pair; the scorer's rules first."""
    forced = judging.forced_win(instruction, x, y)
    if forced is not None:
        return forced, None
    return judging.combine(_verdict(client, model, instruction, x, y), _verdict(client, model, instruction, y, x))


def evaluate(instructions, pairs, max_workers=None):
    """x's win for each (instruction, (x, y)); see the module docstring."""
    if len(instructions) != len(pairs):
        raise ValueError(f"{len(instructions)} instructions but {len(pairs)} pairs")
    client, model = _client()
    workers = max_workers or int(os.environ.get("JUDGE_WORKERS", "2"))
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda args: judge_pair(client, model, args[0], *args[1]), zip(instructions, pairs)))
    return [win for win, _ in results]
