"""The local model's speed against its goals, OpenVINO GenAI against transformers, interleaved.

    python benchmarks/local_model.py [--rounds 2] [--prompt-tokens 3000] [--ov-threads 1 2] [--hf-threads 1]
                                     [--ort-model DIR]

`--ort-model` adds onnxruntime-genai (importable from this interpreter, e.g. through PYTHONPATH) on a
model its builder made from the same weights (`python -m onnxruntime_genai.models.builder -i
<the fp32 cache folder> -o DIR -p int4 -e cpu`: that conversion needs torch, which is why it is only
a comparison here). Its later step continues the same generator (its own KV cache), its best case.

Goals (issue 19; idle 2-core machine): first token of a 3,000-token prompt in at most 3 s, decode
at least 30 tokens/s, later steps of a run (the same conversation grown by a tool result) starting
in under 1.5 s. Both engines read the same GGUF and the same token ids; each round measures every
engine once, in turn, so machine load hits them alike. Columns:

  load          building the engine in this process (OpenVINO: GGUF read and compiled; transformers:
                the fp32 copy from the user cache, converted from the GGUF on first use)
  first token   a cold 3,000-token prompt (a fresh nonce up front, so no cache can help)
  decode        greedy tokens/s after that prompt, 64 tokens, end of turn ignored
  later step    first token of the same conversation plus the reply and a 150-token tool result

The shared machine is loaded: the printed load average and the ratios (transformers / OpenVINO,
same round) are what to compare; docs/benchmarks/local_model.md records runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import threading
import time
import uuid

from rebench_plugins.local_backend import models
from rebench_plugins.local_backend.sampling import Sampling

SPEC = models.MODELS["smollm2-135m"]


def cpu_flags() -> str:
    flags = set(open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split())
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16"]
    return ", ".join(f"{f}{'' if f in flags else ' (no)'}" for f in wanted)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class OpenVINO:
    def __init__(self, threads: int) -> None:
        from rebench_plugins.local_backend.openvino_engine import OpenVINOEngine

        started = time.perf_counter()
        self.engine = OpenVINOEngine(models.gguf_path(SPEC), threads)  # its own pipeline: a cold cache
        self.load_s = time.perf_counter() - started
        self.name = f"openvino-genai, {threads} thread{'s' if threads > 1 else ''}"

    def encode(self, text: str) -> list[int]:
        return self.engine.encode(text)

    def prompt(self, text: str) -> list[int]:
        return self.engine.chat_ids([{"role": "user", "content": text}])

    def run(self, ids: list[int], n: int) -> tuple[list[int], float, float]:
        r = self.engine.generate(ids, Sampling(max_tokens=n), [], None, 0, threading.Event())
        return r.token_ids, r.prefill_s, r.decode_s


class Transformers:
    def __init__(self, threads: int) -> None:
        import torch

        from rebench_plugins.local_backend.generation import PrefixCache
        from rebench_plugins.local_backend.loader import load_model

        torch.set_num_threads(threads)
        started = time.perf_counter()
        self.loaded = load_model(SPEC)
        self.load_s = time.perf_counter() - started
        self.prefix = PrefixCache()
        self.name = f"transformers fp32, {threads} thread{'s' if threads > 1 else ''}"

    def encode(self, text: str) -> list[int]:
        return self.loaded.tokenizer.encode(text, add_special_tokens=False)

    def prompt(self, text: str) -> list[int]:
        turns = [{"role": "user", "content": text}]
        return list(self.loaded.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True,
                                                              return_dict=True)["input_ids"])

    def run(self, ids: list[int], n: int) -> tuple[list[int], float, float]:
        from rebench_plugins.local_backend.generation import generate

        r = generate(self.loaded.model, self.loaded.tokenizer, ids, Sampling(max_tokens=n),
                     stop_token_ids=frozenset(), prefix=self.prefix)
        return r.token_ids, r.prefill_s, r.decode_s


class OnnxRuntime:
    def __init__(self, folder: str, threads: int) -> None:
        import onnxruntime_genai as og

        self.og = og
        started = time.perf_counter()
        config = og.Config(folder)
        config.clear_providers()
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)
        self.load_s = time.perf_counter() - started
        self.threads = threads
        self.name = "onnxruntime-genai int4"
        self.generator = None

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text)]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def prompt(self, text: str) -> list[int]:
        import json

        template = self.tokenizer.apply_chat_template(json.dumps([{"role": "user", "content": text}]),
                                                      add_generation_prompt=True)
        return self.encode(template)

    def run(self, ids: list[int], n: int) -> tuple[list[int], float, float]:
        import numpy as np

        started = time.perf_counter()
        previous = getattr(self, "_fed", [])
        if self.generator is not None and ids[:len(previous)] == previous:
            new = ids[len(previous):]  # the conversation grew: continue the same generator
        else:
            params = self.og.GeneratorParams(self.model)
            params.set_search_options(max_length=8192, do_sample=False)
            self.generator, new = self.og.Generator(self.model, params), ids
        self.generator.append_tokens(np.array(new, dtype=np.int32))
        out = []
        first = None
        for _ in range(n):
            self.generator.generate_next_token()
            out.append(int(self.generator.get_next_tokens()[0]))
            first = first if first is not None else time.perf_counter() - started
        self._fed = ids + out
        return out, first, time.perf_counter() - started - first


def measure(engine, filler: str, prompt_tokens: int) -> dict[str, float]:
    body = engine.encode(filler)[:prompt_tokens - 40]
    text = f"[{uuid.uuid4().hex}]\n" + engine_decode(engine, body) + "\nSummarise this file."
    ids = engine.prompt(text)
    reply, first, decode = engine.run(ids, 64)
    result = engine.encode("\n<tool_result name=\"bash\">\n" + filler[-2000:])[:150]
    _, later, _ = engine.run(ids + reply + result, 1)
    return {"prompt": len(ids), "first": first, "decode": (len(reply) - 1) / decode, "later": later}


def engine_decode(engine, ids: list[int]) -> str:
    if isinstance(engine, OnnxRuntime):
        return engine.decode(ids)
    if isinstance(engine, OpenVINO):
        return engine.engine.decode(ids)
    return engine.loaded.tokenizer.decode(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=3000)
    parser.add_argument("--ov-threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--hf-threads", type=int, nargs="+", default=[1])
    parser.add_argument("--ort-model", help="an onnxruntime-genai model folder, to compare with")
    args = parser.parse_args()

    filler = "\n".join(open(p).read() for p in ("rebench_core/harness.py", "rebench_core/tool_text.py"))
    started_load = loadavg()
    engines = [OpenVINO(t) for t in args.ov_threads]
    if args.ort_model:
        engines.append(OnnxRuntime(args.ort_model, max(args.ov_threads)))
    engines += [Transformers(t) for t in args.hf_threads]  # torch threads are process-wide: one setting
    rows: dict[str, list[dict[str, float]]] = {e.name: [] for e in engines}
    loads = []
    for _ in range(args.rounds):
        for engine in engines:
            loads.append(os.getloadavg()[0])
            rows[engine.name].append(measure(engine, filler, args.prompt_tokens))

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[name])

    baseline = engines[-1].name
    print(f"local model, {dt.datetime.now().isoformat(timespec='minutes')}, `{' '.join(os.sys.argv)}`")
    print(f"CPU: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, {cpu_flags()}")
    print(f"load average: {started_load} at the start, 1-minute {min(loads):.2f} to {max(loads):.2f} during, "
          f"{loadavg()} at the end; {args.rounds} rounds, medians\n")
    print("| engine | load s | first token, {} tokens | decode tok/s | later step first token | ratios vs {} "
          "(first / decode / later) |".format(rows[baseline][0]["prompt"], baseline.split(",")[0]))
    print("|---|---|---|---|---|---|")
    for engine in engines:
        n = engine.name
        ratios = (f"{med(baseline, 'first') / med(n, 'first'):.1f}x / {med(n, 'decode') / med(baseline, 'decode'):.1f}x"
                  f" / {med(baseline, 'later') / med(n, 'later'):.1f}x")
        print(f"| {n} | {engine.load_s:.1f} | {med(n, 'first'):.2f} s | {med(n, 'decode'):.1f} | "
              f"{med(n, 'later'):.2f} s | {ratios} |")
    print("\ngoals (idle machine): first token <= 3 s, decode >= 30 tok/s (aim 50), later step < 1.5 s")


if __name__ == "__main__":
    main()
