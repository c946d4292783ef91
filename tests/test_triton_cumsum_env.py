"""triton_cumsum at size small (CPU), driven as the harness drives it (`rebench_core.testing`): the
official scorer, run as the agent identity, accepts the starting and reference solutions, rejects
wrong and malformed ones, and gives no score to work done outside the timed calls.

One prepared session (one calibration) serves the whole module; each score starts two Python
processes that import torch (a few seconds each on a two-core machine).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from rebench_core.context import EnvSession  # noqa: E402
from rebench_core.machine import Machine  # noqa: E402
from rebench_core.sandbox import kill_user_processes  # noqa: E402
from rebench_core.testing import environment  # noqa: E402
from rebench_environments.triton_cumsum import calibration, runner  # noqa: E402
from rebench_environments.triton_cumsum.env import TritonCumsum  # noqa: E402
from rebench_environments.triton_cumsum.spec import SIZES  # noqa: E402

from conftest import needs_root  # noqa: E402
from triton_solutions import EXACT  # noqa: E402

ENV_DIR = Path(runner.__file__).parent
SMALL = replace(SIZES["small"], n=200_000, warmup=1, pairs=5, timeout_s=90.0)



@pytest.fixture(scope="module")
def session(tmp_path_factory):
    env = TritonCumsum(specs={"small": SMALL}, calibration_repeats=1)
    with environment(env, size="small", cache_root=tmp_path_factory.mktemp("cache")) as s:
        yield s


@pytest.fixture
def task(session, agent_dir):
    """A staged workspace: (session, workspace, protected, submit); submit(code) replaces solution.py."""
    workspace, protected = agent_dir / "workspace", agent_dir / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    session.setup(workspace, protected)
    session.ctx.agent.give(workspace)

    def submit(code: str) -> None:
        (workspace / "solution.py").write_text(textwrap.dedent(code))
        session.ctx.agent.give(workspace)

    yield session, workspace, protected, submit
    kill_user_processes(session.ctx.agent.isolation.uid)  # what an attack left running


def score(task):
    session, workspace, protected, _ = task
    entry = session.score(workspace, protected)
    return entry, session.normalization().normalize(entry.raw)


def invalid_kind(entry) -> str:
    assert not entry.valid, entry.message
    return entry.message["invalid"]


# -- accepted -----------------------------------------------------------------------------------------
def test_setup_stages_start_and_scorer_but_no_reference(task):
    _, workspace, protected, _ = task
    assert sorted(p.name for p in workspace.iterdir()) == ["score.py", "solution.py"]
    staged = (workspace / "score.py").read_text()
    assert f"'n': {SMALL.n}" in staged and "'device': 'cpu'" in staged
    assert "reference_triton" not in staged and "tl.cumsum" not in staged
    assert (protected / "reference" / "reference_triton.py").is_file()


@needs_root
def test_start_normalises_near_zero_and_reference_near_one(task):
    session, workspace, _, _ = task
    start, n_start = score(task)
    assert start.valid, start.message
    assert "interpreter" in start.message["message"]  # the small scorer says CPU times mean nothing for GPUs
    assert len(start.details["candidate_cpu_ms"]) == SMALL.pairs
    assert start.details["noise"]["se_normalized"] < 1
    session.install_reference(workspace)
    ref, n_ref = score(task)
    assert ref.valid, ref.message
    # loose: a CI machine's load moves single scores; benchmarks/score_noise.py measures the spread
    assert n_start < 0.5 < n_ref, (n_start, n_ref)


@needs_root
def test_triton_reference_is_exact_under_the_interpreter(task):
    # through the agent's own scorer (the interpreter takes seconds a call at the module's n)
    session, workspace, _, submit = task
    submit((ENV_DIR / "reference" / "reference_triton.py").read_text())
    result = session.ctx.run_as_agent([sys.executable, "score.py", "--n", "20000", "--timed", "2", "--warmup", "1"],
                                      cwd=workspace, timeout=120)
    assert "valid: all 2 timed outputs match" in result.stdout, result.stdout + result.stderr


# -- wrong or malformed -------------------------------------------------------------------------------
@needs_root
def test_inclusive_count_off_by_one_is_wrong_answer(task):
    task[3]("""
        import torch

        def prefix_sum(x):
            odd = ((x > 0).cumsum(0) % 2).bool()          # counts x[i] itself: inclusive, not exclusive
            return torch.where(odd, x, 0).cumsum(0).to(torch.int32)
    """)
    entry, _ = score(task)
    assert invalid_kind(entry) == "wrong_answer"
    assert "the first at index" in entry.message["error"]  # the small size points at the first bad element


@needs_root
def test_wrong_dtype_is_rejected(task):
    task[3](EXACT + "\ndef prefix_sum(x):\n    return _exact(x).to(torch.int64)\n")
    entry, _ = score(task)
    assert invalid_kind(entry) == "bad_output" and "torch.int64" in entry.message["error"]


@needs_root
def test_output_in_the_inputs_memory_is_rejected(task):
    task[3](EXACT + "\ndef prefix_sum(x):\n    return x.copy_(_exact(x))\n")
    entry, _ = score(task)
    assert invalid_kind(entry) == "bad_output" and "shares memory with the input" in entry.message["error"]


@needs_root
def test_memoised_output_is_wrong_answer(task):
    task[3](EXACT + """
_memo = {}

def prefix_sum(x):
    if "y" not in _memo:
        _memo["y"] = _exact(x)
    return _memo["y"].clone()
""")
    entry, _ = score(task)
    assert invalid_kind(entry) == "wrong_answer"


@needs_root
def test_output_cached_in_a_file_across_calls_is_wrong_answer(task):
    task[3](EXACT + """
from pathlib import Path

CACHE = Path(__file__).with_name("cached_output.pt")

def prefix_sum(x):
    if CACHE.exists():
        return torch.load(CACHE)
    y = _exact(x)
    torch.save(y, CACHE)
    return y
""")
    entry, _ = score(task)  # the first warm-up call writes the cache; every later call serves it
    assert (task[1] / "cached_output.pt").exists()
    assert invalid_kind(entry) == "wrong_answer"


@needs_root
def test_sleeping_past_the_timeout_is_invalid(task, session):
    session.env.specs["small"] = replace(SMALL, timeout_s=8.0)
    try:
        task[3](EXACT + "\nimport time\n\ndef prefix_sum(x):\n    time.sleep(600)\n    return _exact(x)\n")
        entry, _ = score(task)
    finally:
        session.env.specs["small"] = SMALL
    assert invalid_kind(entry) == "timeout"
    assert entry.details["runner_duration_s"] < 30


# -- work moved out of the timed calls (issue 16) -----------------------------------------------------
@needs_root
def test_tensor_subclass_that_computes_on_first_read_is_rejected(task):
    task[3](EXACT + """
class Lazy(torch.Tensor):
    # holds no answer when returned; fills itself in the first time anything reads it
    @staticmethod
    def __new__(cls, x):
        t = torch.Tensor._make_subclass(cls, torch.empty_like(x))
        t.source = x.clone()
        return t

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        for a in args:
            if isinstance(a, Lazy) and getattr(a, "source", None) is not None:
                source, a.source = a.source, None
                with torch._C.DisableTorchFunction():
                    torch.Tensor.copy_(a, _exact(source))
        return super().__torch_function__(func, types, args, kwargs or {})

def prefix_sum(x):
    return Lazy(x)
""")
    entry, _ = score(task)
    assert invalid_kind(entry) == "bad_output" and "plain torch.Tensor" in entry.message["error"]


@needs_root
def test_output_completed_by_a_background_thread_is_rejected(task):
    task[3](EXACT + """
import threading, time

def prefix_sum(x):
    y = torch.empty_like(x)

    def finish():
        time.sleep(0.05)
        y.copy_(_exact(x))

    threading.Thread(target=finish).start()
    return y  # returned at once; the answer lands later
""")
    entry, _ = score(task)
    assert invalid_kind(entry) in ("deferred", "wrong_answer")


@needs_root
def test_answers_precomputed_from_inputs_named_on_the_command_line_are_impossible(task):
    # The earlier scorer wrote every timed input to a file named in the runner's arguments; a solution
    # read them at import and answered each call from a table. No input exists before its call now.
    task[3](EXACT + """
import os, sys
import numpy as np

_table = {}
for path in sys.argv[1:]:
    if os.path.isfile(path) and os.path.getsize(path) % 4 == 0:
        rows = np.fromfile(path, dtype=np.int32)
        n = int(sys.argv[sys.argv.index("--n") + 1])
        for row in rows.reshape(-1, n) if rows.size % n == 0 else []:
            x = torch.from_numpy(row.copy())
            _table[tuple(x[:16].tolist())] = _exact(x)

def prefix_sum(x):
    return _table.get(tuple(x[:16].tolist()), torch.zeros_like(x)).clone()
""")
    entry, _ = score(task)
    assert invalid_kind(entry) == "wrong_answer"


@needs_root
def test_inputs_found_through_the_garbage_collector_or_the_runners_generator_do_not_help(task):
    # The uniform-spin attack found every timed input among gc's objects (all were on the device
    # before the first timed call) and answered from a table filled in earlier calls. It also tries to
    # predict the next input from the runner's generator.
    task[3](EXACT + """
import gc

_table = {}

def _key(t):
    return tuple(t[:16].tolist()), tuple(t[-16:].tolist())

def prefix_sum(x):
    for o in gc.get_objects():
        if type(o) is torch.Tensor and o is not x and o.dtype == torch.int32 and o.shape == x.shape:
            _table.setdefault(_key(o), _exact(o))
        elif isinstance(o, torch.Generator):
            g = torch.Generator()
            g.set_state(o.get_state())
            guess = torch.randint(-10, 10, x.shape, dtype=torch.int32, generator=g)
            _table.setdefault(_key(guess), _exact(guess))
    return _table.get(_key(x), torch.zeros_like(x)).clone()
""")
    entry, _ = score(task)
    assert invalid_kind(entry) == "wrong_answer"


# -- the clock (issue 14) -----------------------------------------------------------------------------
@needs_root
def test_replacing_the_clock_is_tampering(task):
    task[3](EXACT + "\nimport time\ntime.perf_counter = lambda: 0.0\n\ndef prefix_sum(x):\n    return _exact(x)\n")
    entry, _ = score(task)
    assert invalid_kind(entry) == "tampered" and "time.perf_counter" in entry.message["error"]


@needs_root
def test_a_runner_clock_patched_where_no_check_looks_earns_nothing(task):
    # The 1,225-times attack's class: the runner's own clock, patched inside the runner's objects.
    # The scorer times with the CPU time the kernel charged to the solution's processes instead.
    task[3](EXACT + """
import gc, itertools

_ticks = itertools.count()

def prefix_sum(x):
    for o in gc.get_objects():
        if type(o).__name__ == "Caller" and hasattr(o, "perf"):
            o.perf = lambda: next(_ticks) * 1e-9   # every call "takes" a nanosecond
    return _exact(x)
""")
    entry, normalized = score(task)
    assert entry.valid, entry.message
    assert max(entry.details["candidate_own_ms"]) < 0.01  # the runner's clock was fooled...
    assert normalized < 0.5  # ...the score was not: this is the starting algorithm


@needs_root
def test_work_moved_into_another_process_is_counted(task):
    # A worker process does the work; only the CPU time of the runner's own process would make it
    # look free. The scorer counts every process of the agent user.
    task[3]("""
import os
import torch
from multiprocessing import Pipe

def _start(x):
    odd = ((x > 0).cumsum(0) % 2).bool()
    out = torch.zeros_like(x)
    out[1:] = torch.where(odd[:-1], x[1:], 0).cumsum(0).to(torch.int32)
    return out

_here, _there = Pipe()
if os.fork() == 0:
    while True:
        x = torch.frombuffer(bytearray(_there.recv_bytes()), dtype=torch.int32)
        _there.send_bytes(_start(x).numpy().tobytes())

def prefix_sum(x):
    _here.send_bytes(x.numpy().tobytes())
    return torch.frombuffer(bytearray(_here.recv_bytes()), dtype=torch.int32)
""")
    entry, normalized = score(task)
    assert entry.valid, entry.message
    assert normalized < 0.5, normalized


@needs_root
def test_a_process_burning_cpu_while_the_baseline_runs_earns_nothing(task):
    # Slowing the starting solution timed beside it would raise a small score; the solution's
    # processes are stopped during the baseline's calls (and their CPU counts during its own).
    task[3](EXACT + """
import os, time

if os.fork() == 0:
    os.setsid()
    end = time.monotonic() + 60
    while time.monotonic() < end:
        pass
    os._exit(0)

def prefix_sum(x):
    return _exact(x)
""")
    entry, normalized = score(task)
    assert entry.valid, entry.message
    assert normalized < 0.5, normalized


# -- pieces without a scoring process ---------------------------------------------------------------
def test_reference_and_digest_agree_with_the_definition_including_wraparound():
    from rebench_environments.triton_cumsum.reference.reference_cpu import prefix_sum as fast

    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    for x in (torch.randint(-10, 10, (5001,), dtype=torch.int32, generator=gen),
              torch.randint(-2**31, 2**31 - 1, (4099,), dtype=torch.int32, generator=gen),  # sums wrap
              torch.tensor([7], dtype=torch.int32), torch.tensor([-3, 5], dtype=torch.int32)):
        want = runner.definition(x)
        assert torch.equal(fast(x), want)
        digest = runner.Digest(x.numel(), "cpu")
        assert digest(fast(x)) == digest(want)
        if x.numel() > 1:
            off = want.clone()
            off[-1] += 1
            assert digest(off) != digest(want)


def test_starting_solution_is_the_definition():
    import importlib.util

    spec = importlib.util.spec_from_file_location("start", ENV_DIR / "assets" / "solution.py")
    start = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(start)
    x = torch.randint(-10, 10, (100_003,), dtype=torch.int32)
    assert torch.equal(start.prefix_sum(x), runner.definition(x))


def _session(tmp_path, gpu: str | None, paper_constants: bool = False) -> EnvSession:
    machine = Machine(cpus=16, memory_gb=128.0, cpu_model="Test CPU", gpus=(gpu,) if gpu else ())
    return EnvSession(TritonCumsum(), size="full", variant="main", cache_root=tmp_path, machine=machine,
                      paper_constants=paper_constants)


def test_full_normalisation_is_the_papers_on_its_h100_only(tmp_path):
    h100 = _session(tmp_path, "NVIDIA H100 80GB HBM3")
    assert h100.prepare() == calibration.PAPER  # nothing to measure: the paper's hardware
    assert list(h100.ctx.cache_dir.iterdir()) == []
    h200 = _session(tmp_path, "NVIDIA H200")
    with pytest.raises(RuntimeError, match="not calibrated for NVIDIA H200"):
        h200.normalization()
    forced = _session(tmp_path, "NVIDIA H200", paper_constants=True)
    norm = forced.prepare()
    assert (norm.y_start, norm.y_ref) == (calibration.PAPER.y_start, calibration.PAPER.y_ref)
    assert "--paper-constants" in norm.source and "NVIDIA H200" in norm.source


def test_full_calibration_is_cached_per_gpu_model(tmp_path):
    h200 = _session(tmp_path, "NVIDIA H200")
    path = calibration.cache_path(h200.ctx, SIZES["full"])
    assert path.name == "calibration-full-nvidia-h200-n100000000.json"
    data = {"y_start": 1.343, "y_ref": 1.343 + calibration.PAPER.y_ref - calibration.PAPER.y_start,
            "machine": "NVIDIA H200", "measured_at": "2026-12-01T00:00:00+00:00", "start_ms": 3.83}
    path.write_text(json.dumps(data))
    norm = h200.prepare()  # cached: nothing measured
    assert (norm.y_start, norm.y_ref) == (data["y_start"], data["y_ref"])
    assert "calibrated on NVIDIA H200" in norm.source and norm.details["start_ms"] == 3.83
    assert h200.normalization().normalize(math.log(3.83)) == pytest.approx(0.0, abs=1e-3)
    other = _session(tmp_path, "NVIDIA A100-SXM4-80GB")
    with pytest.raises(RuntimeError, match="not calibrated for NVIDIA A100"):
        other.normalization()
    path.write_text("{not json")
    with pytest.raises(RuntimeError, match="unreadable"):
        h200.normalization()


def test_full_prepare_without_a_gpu_refuses_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="times on a CUDA GPU, and this machine has none"):
        _session(tmp_path, None).prepare()


@needs_root
def test_small_calibration_is_cached_per_cpu_model(session):
    norm = session.normalization()
    path = calibration.cache_path(session.ctx, SMALL)
    assert path.is_file() and f"-n{SMALL.n}.json" in path.name
    assert norm.y_ref < norm.y_start and norm.details["reference_ms"] < norm.details["start_ms"]
    assert "calibrated on" in norm.source


def test_class_module_imports_neither_torch_nor_numpy():
    code = ("import sys; import rebench_environments.triton_cumsum.env as e; e.TritonCumsum(); "
            "bad = [m for m in ('torch', 'numpy', 'triton') if m in sys.modules]; print(bad or 'ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stdout + out.stderr


def test_plugin_registers_lazily_without_importing_torch():
    code = ("import sys; from rebench_core.registry import load_plugins; r = load_plugins(); "
            "reg = r.environment('triton_cumsum'); "
            "assert reg.factory == 'rebench_environments.triton_cumsum.env:TritonCumsum', reg.factory; "
            "assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("ok"), out.stderr


@needs_root
def test_staged_scorer_runs_locally_and_logs_nothing(task):
    session, workspace, protected, _ = task
    before = set(os.listdir(protected))
    result = session.ctx.run_as_agent([sys.executable, "score.py", "--timed", "2", "--warmup", "1"],
                                      cwd=workspace, timeout=90)
    assert "valid: all 2 timed outputs match" in result.stdout, result.stdout + result.stderr
    assert "not logged" in result.stdout
    assert set(os.listdir(protected)) == before
