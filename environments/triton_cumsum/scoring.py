"""From a session's record to a measurement: what counts as the candidate's time, and the checks
the scorer's own clock makes on what the runner processes reported.

- GPU (`full`): the candidate's time is the median CUDA-event time of its calls (what RE-Bench
  measured: ln of the kernel's milliseconds). The runner that reports it also runs the solution,
  so the scorer checks it against its own clock: a call's event time cannot exceed the scorer's
  time until "done"; the candidate's overhead until "done" (that time minus the event time: the
  input's generation, the device-wide wait, the messages) and its read-back time may each exceed
  the baseline's, measured in the same score, only by `overhead_factor` and `overhead_slack_ms`.
  Work left running on other streams shows in the time between the call's end event and the
  device-wide wait.
- CPU (`small`): the time is the CPU time the kernel charged to the candidate's processes during
  the call's window (input generation included; nothing the solution can patch, and far steadier
  under load than a wall clock), and what counts is its ratio to the starting solution's CPU time
  in the same score: the median over pairs of ln(candidate / baseline), so machine load cancels.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from .protocol import Session
from .spec import SizeSpec


@dataclass
class Measurement:
    """A valid session's numbers (all times in ms)."""

    candidate_ms: float          # GPU: median event time; CPU: median CPU time over the windows
    baseline_ms: float           # the same for the baseline (our starting solution)
    ln_ratio: float              # median over pairs of ln(candidate / baseline)
    noise_ln: float              # standard error of the statistic the score uses (ln units)
    details: dict[str, Any] = field(default_factory=dict)


class Rejected(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


def _se_of_median(values: list[float]) -> float:
    """Standard error of a median, from the median absolute deviation (normal approximation)."""
    if len(values) < 2:
        return math.nan
    mad = statistics.median(abs(v - statistics.median(values)) for v in values)
    return 1.2533 * 1.4826 * mad / math.sqrt(len(values))


def measure(session: Session, spec: SizeSpec, details: dict[str, Any] | None = None) -> Measurement:
    """The session's measurement, or Rejected(kind, reason). `details` receives the per-call
    numbers either way (a rejected entry keeps them for whoever reviews it)."""
    details = {} if details is None else details
    if session.failure:
        raise Rejected(*session.failure)
    if session.tampered:
        raise Rejected("tampered", f"the solution replaced functions the scorer uses: {', '.join(session.tampered)}")
    cand, base = session.of("candidate"), session.of("baseline")
    if not cand or len(cand) != len(base):
        raise Rejected("no_result", f"the session recorded {len(cand)} candidate and {len(base)} baseline calls")
    r3 = lambda xs: [round(x, 4) for x in xs]  # noqa: E731
    details |= {
        "candidate_window_ms": r3(c.window_ms for c in cand), "baseline_window_ms": r3(c.window_ms for c in base),
        "candidate_done_ms": r3(c.done_ms for c in cand), "baseline_done_ms": r3(c.done_ms for c in base),
        "candidate_hops_ms": [c.hops_ms for c in cand], "baseline_hops_ms": [c.hops_ms for c in base],
        "candidate_own_ms": r3(c.own_ms for c in cand), "baseline_own_ms": r3(c.own_ms for c in base),
        "candidate_cpu_ms": r3(c.cpu_ms for c in cand), "baseline_cpu_ms": r3(c.cpu_ms for c in base),
        "candidate_gen_ms": r3(c.gen_ms for c in cand), "baseline_gen_ms": r3(c.gen_ms for c in base)}
    for c in cand:
        if c.own_ms > c.done_ms + 0.02:
            raise Rejected("implausible_timing", f"timed call {c.pair + 1}: the runner reported {c.own_ms:.4f} ms, more "
                                                 f"than the scorer's clock saw around the whole call ({c.done_ms:.4f} ms)")
    if spec.cuda:
        return _gpu(cand, base, spec, details)
    if any(c.cpu_ms <= 0 for c in cand + base):
        raise Rejected("implausible_timing", "a timed call used no CPU time at all")
    ratios = [math.log(c.cpu_ms / b.cpu_ms) for c, b in zip(cand, base)]
    details["ln_ratios"] = r3(ratios)
    return Measurement(statistics.median(c.cpu_ms for c in cand), statistics.median(b.cpu_ms for b in base),
                       statistics.median(ratios), _se_of_median(ratios), details)


def _gpu(cand: list, base: list, spec: SizeSpec, details: dict[str, Any]) -> Measurement:
    over_c = [c.done_ms - c.own_ms for c in cand]
    over_b = [b.done_ms - b.own_ms for b in base]
    details.update(candidate_overhead_ms=[round(x, 4) for x in over_c],
                   baseline_overhead_ms=[round(x, 4) for x in over_b],
                   candidate_after_ms=[round(c.after_ms, 4) for c in cand],
                   baseline_after_ms=[round(b.after_ms, 4) for b in base])

    def allowed(baseline: float) -> float:
        return spec.overhead_factor * baseline + spec.overhead_slack_ms

    if statistics.median(over_c) > allowed(statistics.median(over_b)):
        raise Rejected("implausible_timing",
                       f"the scorer's clock saw a median of {statistics.median(over_c):.4f} ms per call beyond the times "
                       f"the runner reported, where the starting solution's calls in the same score needed "
                       f"{statistics.median(over_b):.4f} ms (at most {allowed(statistics.median(over_b)):.4f} ms is "
                       f"accepted): the reported times leave out work the calls did")
    check_c, check_b = statistics.median(c.check_ms for c in cand), statistics.median(b.check_ms for b in base)
    if check_c > allowed(check_b):
        raise Rejected("deferred", f"reading back sampled output elements took a median of {check_c:.4f} ms after the "
                                   f"calls (the starting solution: {check_b:.4f} ms): the output was not complete "
                                   f"when the calls ended")
    after_c, after_b = statistics.median(c.after_ms for c in cand), statistics.median(b.after_ms for b in base)
    if after_c > allowed(after_b):
        raise Rejected("deferred", f"the device was still busy a median of {after_c:.4f} ms after the calls' end "
                                   f"(the starting solution: {after_b:.4f} ms): work left running on other streams "
                                   f"counts as part of the call")
    own_c = [c.own_ms for c in cand]
    ratios = [math.log(c.own_ms / b.own_ms) for c, b in zip(cand, base)]
    return Measurement(statistics.median(own_c), statistics.median(b.own_ms for b in base), statistics.median(ratios),
                       _se_of_median([math.log(t) for t in own_c]), details)
