"""The Ray executor: each run a Ray task whose resource request is the environment's `resources`
(CPUs, GPUs, memory, and `custom` resources such as a GPU model), so Ray chooses its node. Only this
module imports `ray` (the `[ray]` extra).

Run directories come back to the study directory in one of two ways:

* shared storage (`shared_dir`: the study directory as the nodes mount it): runs write there
  directly, and a run interrupted anywhere is resumed by whichever node gets it next;
* copy-back (the default): a run is written under the node's scratch directory
  ($REBENCH_RAY_SCRATCH, default /var/tmp/rebench-ray) and, when it ends, returned through Ray's
  object store and unpacked into the study directory atomically. A run the study directory holds
  unfinished (interrupted) is sent with the task and resumed from that copy.

Faults. A task whose node or worker process dies is resubmitted by the study (not by Ray's own
retries, so that an attempt is never counted twice and the board says what happened), up to
`ATTEMPTS` times, when a live node can run it: with shared storage the new attempt resumes the run
where it stopped (its workspace, clock, scores and spending carry over); with copy-back the dead
node's copy is gone and the run starts again from the study directory's copy, or afresh. A run no
live node can take is left unfinished, and the next invocation resumes it. A run's process gets
SIGTERM when its worker dies (pdeathsig), so it ends `interrupted` rather than running on.

Secrets. The variables a run needs (a provider's API key) go as an argument of its task and into
the run's process environment only: never through `runtime_env` (Ray's runtime-env agent logs it),
never into a file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import signal
import socket
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..environment import Resources
from ..runconfig import default_cache_root
from ..study_board import StudyBoard
from ..study_run import Outcome, execute
from ..study_spec import StudyError
from . import RunOrder, report

ATTEMPTS = 3
INFEASIBLE_GRACE_S = 30.0  # how long a pending run may find no live node able to take it
CHANNEL_EVERY_S = 2.0  # how often a running task reports its figures and asks whether to stop
SCRATCH_DEFAULT = "/var/tmp/rebench-ray"
SYSTEM_ERRORS = (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.OwnerDiedError,
                 ray.exceptions.LocalRayletDiedError, ray.exceptions.ObjectLostError)


def request(res: Resources) -> dict[str, float]:
    """A run's resources in Ray's names."""
    wanted = {"CPU": float(res.cpus), "GPU": float(res.gpus), "memory": res.memory_gb * 2**30, **res.custom}
    return {k: v for k, v in wanted.items() if v}


def describe(wanted: dict[str, float]) -> str:
    return ", ".join(f"{k} {v / 2**30:g} GiB" if k == "memory" else f"{k} {v:g}" for k, v in sorted(wanted.items()))


def fits(wanted: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(k, 0.0) >= v - 1e-9 for k, v in wanted.items())


class Channel:
    """An actor on the submitting node: tasks report where they run and how far they are, and
    learn from the answer whether the study is stopping."""

    def __init__(self) -> None:
        self._updates: list[tuple[str, dict[str, Any]]] = []
        self._stopping = False

    def report(self, key: str, update: dict[str, Any]) -> None:
        self._updates.append((key, update))

    def stopping(self) -> bool:
        return self._stopping

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        updates, self._updates = self._updates, []
        return updates

    def stop(self) -> None:
        self._stopping = True


class RayExecutor:
    def __init__(self, root: Path, address: str | None = None, shared_dir: Path | None = None,
                 concurrency: int | None = None, cache_dir: Path | None = None) -> None:
        self.root = root.absolute()
        self.shared_dir = shared_dir
        self.concurrency = concurrency
        self.cache_dir = cache_dir
        self.interrupted = False
        self.address = address or os.environ.get("RAY_ADDRESS") or "a local Ray instance"
        _reachable(address or os.environ.get("RAY_ADDRESS"))
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                     **({} if address or os.environ.get("RAY_ADDRESS") else {"include_dashboard": False}))
        except Exception as exc:  # whatever Ray raises for an address it cannot use: one line
            raise StudyError(f"--ray-address {self.address}: cannot connect to Ray: {str(exc).splitlines()[0]}") from None
        self.study_id = hashlib.sha256(f"{socket.gethostname()}:{self.root}".encode()).hexdigest()[:16]

    def close(self) -> None:
        ray.shutdown()

    def check(self, orders: list[RunOrder]) -> None:
        """Refuse a study a run of which no node of the cluster could ever take."""
        nodes = _live_nodes()
        for order in orders:
            wanted = request(order.resources)
            if not any(fits(wanted, node) for node in nodes.values()):
                raise StudyError(f"no node of the Ray cluster ({self.address}, {len(nodes)} node(s)) can run "
                                 f"{order.job.env} at size {order.job.size}: it needs {describe(wanted)}")

    # -- the study ------------------------------------------------------------------------------
    def run(self, orders: list[RunOrder], board: StudyBoard) -> dict[str, Outcome]:
        dispatch = _Dispatch(self, orders, board)
        previous = {sig: signal.signal(sig, dispatch.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            dispatch.loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.interrupted = dispatch.signals > 0
        if self.shared_dir is None:
            self._forget(dispatch.landed)
        return dispatch.outcomes

    def _forget(self, landed: dict[str, list[tuple[str, str]]]) -> None:
        """Delete the nodes' scratch copies of the runs the study directory now holds."""
        forget = ray.remote(num_cpus=0, max_retries=0)(forget_runs)
        alive = _live_nodes()
        refs = [forget.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
            self.study_id, runs) for node, runs in landed.items() if node in alive]
        ray.wait(refs, num_returns=len(refs), timeout=30)

    # -- what goes out, what comes back ---------------------------------------------------------
    def payload(self, order: RunOrder) -> dict[str, Any]:
        config = order.config.to_dict()
        config["out_dir"] = None  # the node decides: shared storage or its scratch directory
        return {"key": order.key, "config": config, "log": order.log.name, "study_id": self.study_id,
                "shared_dir": str(self.shared_dir) if self.shared_dir else None,
                "cache_dir": str(self.cache_dir) if self.cache_dir else None}

    def upload(self, order: RunOrder) -> bytes | None:
        """The study directory's unfinished copy of the run, for a node to resume (copy-back only)."""
        run_dir = order.config.out_dir
        if self.shared_dir is not None or run_dir is None or not (run_dir / "events.jsonl").exists():
            return None
        return pack(run_dir)

    def land(self, order: RunOrder, result: dict[str, Any]) -> Outcome:
        outcome = Outcome(**result["outcome"])
        if self.shared_dir is None:
            if result.get("archive") is not None:
                unpack(result["archive"], order.config.out_dir)
            if result.get("log"):
                order.log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with open(order.log, "ab") as log:
                    log.write(result["log"])
                os.chmod(order.log, 0o600)
        return outcome


class _Dispatch:
    """One invocation's runs on the cluster: submitted within the concurrency cap, followed through
    the channel, resubmitted after a lost node, cancelled when no live node can take them, landed."""

    def __init__(self, executor: RayExecutor, orders: list[RunOrder], board: StudyBoard) -> None:
        self.executor, self.board = executor, board
        self.by_key = {o.key: o for o in orders}
        self.waiting = list(orders)
        self.inflight: dict[Any, str] = {}  # task ref -> run key
        self.started: dict[str, str] = {}  # run key -> the node it runs on
        self.landed: dict[str, list[tuple[str, str]]] = {}  # node -> (run, log) copied back from its scratch
        self.attempts = {o.key: 0 for o in orders}
        self.infeasible_since: dict[str, float] = {}
        self.cancelled: dict[str, str] = {}  # run key -> why the study cancelled its task
        self.outcomes: dict[str, Outcome] = {}
        self.signals = 0
        self.stopping = False
        self.channel = ray.remote(num_cpus=0)(Channel).options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)).remote()
        self.task = ray.remote(max_retries=0)(run_on_node)

    def on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1  # acted on in the loop, between Ray calls

    def loop(self) -> None:
        last_check = 0.0
        cap = self.executor.concurrency
        while self.waiting or self.inflight:
            if self.signals and not self.stopping:
                self.stop()
            if self.signals > 1:
                self.stop_at_once()
                return
            while self.waiting and (cap is None or len(self.inflight) < cap):
                self.submit(self.waiting.pop(0), "pending")
            done, _ = ray.wait(list(self.inflight), num_returns=1, timeout=0.5) if self.inflight else ([], [])
            for ref in done:
                self.collect(ref)
            self.follow()
            if time.monotonic() - last_check > CHANNEL_EVERY_S:
                last_check = time.monotonic()
                self.watch_pending()

    def submit(self, order: RunOrder, why: str) -> None:
        self.attempts[order.key] += 1
        res = order.resources
        ref = self.task.options(num_cpus=res.cpus, num_gpus=res.gpus, memory=int(res.memory_gb * 2**30) or None,
                                resources=dict(res.custom) or None).remote(
            self.executor.payload(order), _secrets(order), self.channel, self.executor.upload(order))
        self.inflight[ref] = order.key
        self.board.pending(order.key, order.job.cell, f"{why} (needs {describe(request(res))})")

    def leave(self, key: str, reason: str) -> None:
        self.board.unfinished(key, self.by_key[key].job.cell, reason)

    def collect(self, ref: Any) -> None:
        key = self.inflight.pop(ref)
        node = self.started.pop(key, None)
        order = self.by_key[key]
        try:
            result = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            self.leave(key, self.cancelled.pop(key, "cancelled"))
            return
        except SYSTEM_ERRORS as exc:
            others = _live_nodes(exclude=node)
            if self.stopping or self.attempts[key] >= ATTEMPTS or not any(
                    fits(request(order.resources), n) for n in others.values()):
                self.leave(key, f"its node was lost ({type(exc).__name__}) and no other live node can take it "
                                f"now; the next invocation resumes it")
            else:
                self.board.line(f"{key}: its node was lost ({type(exc).__name__}); rescheduled "
                                f"(attempt {self.attempts[key] + 1} of {ATTEMPTS})")
                self.submit(order, "rescheduled")
            return
        except ray.exceptions.RayTaskError as exc:
            self.leave(key, f"the task failed on its node: {str(exc.cause).splitlines()[0]}")
            return
        self.outcomes[key] = self.executor.land(order, result)
        self.landed.setdefault(result["node"], []).append((key, order.log.name))
        report(self.board, order, self.outcomes[key])

    def follow(self) -> None:
        """What the running tasks reported: where they started, their figures."""
        running = set(self.inflight.values())
        for key, update in ray.get(self.channel.drain.remote()):
            if key not in running:
                continue  # an update that came after its task's result
            if update.pop("type") == "started":
                self.started[key] = update["node"]
                self.board.started(key, self.by_key[key].job.cell, update["where"])
            else:
                self.board.progress(key, update)

    def watch_pending(self) -> None:
        """Cancel runs that have waited too long for a node that no longer exists."""
        nodes = _live_nodes()
        now = time.monotonic()
        for ref, key in list(self.inflight.items()):
            if key in self.started:
                continue
            wanted = request(self.by_key[key].resources)
            if any(fits(wanted, n) for n in nodes.values()):
                self.infeasible_since.pop(key, None)
                continue
            since = self.infeasible_since.setdefault(key, now)
            self.board.pending(key, self.by_key[key].job.cell, f"pending: no live node has {describe(wanted)}")
            if now - since > INFEASIBLE_GRACE_S and key not in self.cancelled:
                self.cancelled[key] = (f"no live node has {describe(wanted)}; the next invocation resumes it "
                                       f"once one has")
                ray.cancel(ref)  # lands as TaskCancelledError

    def stop(self) -> None:
        """Running runs end `interrupted` and come back; the others are cancelled."""
        self.stopping = True
        self.board.line("stopping: runs end `interrupted` and come back; re-invoke to resume "
                        "(signal again to stop at once)")
        self.channel.stop.remote()
        for ref, key in list(self.inflight.items()):
            if key not in self.started:
                self.cancelled[key] = "stopped before it started"
                ray.cancel(ref)
        for order in self.waiting:
            self.leave(order.key, "stopped before it started")
        self.waiting = []

    def stop_at_once(self) -> None:
        for ref, key in self.inflight.items():
            ray.cancel(ref, force=True)
            self.leave(key, "stopped at once: its run directory on its node is resumable")


def _reachable(address: str | None) -> None:
    """Refuse a HOST:PORT nothing answers on (Ray itself would retry for ever)."""
    host, sep, port = (address or "").rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise StudyError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the cluster "
                         f"with `ray start --head --port {port}` on {host}, or check the address") from None


def _live_nodes(exclude: str | None = None) -> dict[str, dict[str, float]]:
    return {n["NodeID"]: n["Resources"] for n in ray.nodes()
            if n["Alive"] and not (exclude and n["NodeID"] == exclude)}


def _secrets(order: RunOrder) -> dict[str, str]:
    return {name: os.environ[name] for name in order.secrets if name in os.environ}


def pack(run_dir: Path) -> bytes:
    """A run directory as an uncompressed tar (workspaces are mostly code and binaries)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(run_dir, arcname=".")
    return buffer.getvalue()


def unpack(archive: bytes, run_dir: Path) -> None:
    """Replace `run_dir` by the archive's content, atomically: unpacked beside it, then renamed."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.incoming-", dir=run_dir.parent))
    # Our own archive of a run directory: permissions, owners and the agent's symlinks as they were.
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(incoming, filter="fully_trusted")
    old = None
    if run_dir.exists():
        old = run_dir.with_name(f".{run_dir.name}.old-{os.getpid()}")
        run_dir.rename(old)
    incoming.rename(run_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- on the node ------------------------------------------------------------------------------
def run_on_node(payload: dict[str, Any], secrets: dict[str, str], channel: Any,
                upload: bytes | None) -> dict[str, Any]:
    """A Ray task: one run on this node, through the same path as the local executor."""
    from ..runconfig import RunConfig

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A node started in the background of a shell ignores SIGINT, and Ray cancels through it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    key = payload["key"]
    node = ray.get_runtime_context().get_node_id()
    where = f"{ray.util.get_node_ip_address()} (node {node[:8]})"
    shared = payload["shared_dir"] is not None
    base = Path(payload["shared_dir"]) if shared else scratch_root() / payload["study_id"]
    run_dir = base / key
    log = base / "logs" / payload["log"]
    log_start = log.stat().st_size if log.exists() else 0
    config = RunConfig.from_dict(payload["config"] | {
        "out_dir": str(run_dir), "cache_dir": payload["cache_dir"] or str(default_cache_root())})
    channel.report.remote(key, {"type": "started", "where": where, "node": node})
    asked = {"at": 0.0, "stop": False}

    def stop() -> bool:
        if time.monotonic() - asked["at"] > CHANNEL_EVERY_S:
            asked["at"] = time.monotonic()
            try:
                asked["stop"] = ray.get(channel.stopping.remote(), timeout=30)
            except ray.exceptions.RayError:  # the study's channel is gone: so is the study
                asked["stop"] = True
        return asked["stop"]

    def progress(figures: dict[str, Any]) -> None:
        channel.report.remote(key, {"type": "progress", **figures})

    outcome = execute(config, log, env=dict(os.environ) | secrets, on_progress=progress, stop=stop,
                      on_locked=None if upload is None else lambda: unpack(upload, run_dir))
    result: dict[str, Any] = {"outcome": outcome.to_dict(), "node": node}
    if not shared:
        result["archive"] = pack(run_dir) if run_dir.exists() else None
        with open(log, "rb") as f:
            f.seek(log_start)
            result["log"] = f.read()
    return result


def forget_runs(study_id: str, runs: list[tuple[str, str]]) -> None:
    """A Ray task: remove this node's scratch copies (run directory, log) of runs that landed in the
    study directory, and the study's scratch directory once it holds nothing else."""
    base = scratch_root() / study_id
    for key, log in runs:
        shutil.rmtree(base / key, ignore_errors=True)
        (base / "logs" / log).unlink(missing_ok=True)
    for path in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [base]:
        try:
            path.rmdir()  # only empty directories go
        except OSError:
            pass


def scratch_root() -> Path:
    root = Path(os.environ.get("REBENCH_RAY_SCRATCH") or SCRATCH_DEFAULT)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)  # the agent passes through to its workspace, and no further
    return root
