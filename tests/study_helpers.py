"""What the study tests share: the probe plugin on PYTHONPATH, a study command, a comparable summary,
and a real two-node Ray cluster on this machine."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def probe_env(tmp_path_factory):
    """An environment for processes that load plugins from entry points: the probe plugin's entry
    point in a dist-info on PYTHONPATH, so run processes and Ray workers register `probe`."""
    site = tmp_path_factory.mktemp("probe-site")
    info = site / "rebench_study_probe-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rebench-study-probe\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rebench]\nstudy_probe = study_probe\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(TESTS)]), RAY_USAGE_STATS_ENABLED="0")


def rebench_run(args, env, timeout=240, **kwargs):
    return subprocess.run([sys.executable, "-m", "rebench_core.cli.run", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=timeout, **kwargs)


def write_study(path: Path, model: str, sizes=("small",), samples=1, **extra) -> Path:
    fields = {"environments": ["probe"], "scaffolds": ["bisect"], "models": [model], "sizes": list(sizes),
              "time_limits": ["2m"], "samples": samples, **extra}
    path.write_text(json.dumps(fields))
    return path


def comparable(summary: dict) -> dict:
    """A summary without what differs between two runs of the same thing (times, timestamps)."""
    kept = {k: v for k, v in summary.items() if k not in ("time", "started_at", "ended_at")}
    kept["score_log"] = [{k: v for k, v in s.items() if k != "elapsed_s"} for s in summary["score_log"]]
    return kept


def summaries(study_dir: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(study_dir)): json.loads(p.read_text())
            for p in sorted(study_dir.rglob("summary.json"))}


def tree(root: Path) -> list[tuple[str, str]]:
    """Every path under `root` with its permission bits."""
    return sorted((str(p.relative_to(root)), oct(p.lstat().st_mode & 0o7777)) for p in root.rglob("*"))


def score_details(run_dir: Path) -> list[dict]:
    return [e["details"] for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines())
            if e["type"] == "score"]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Cluster:
    """A Ray head and a second node on this machine, each `ray start --block` in its own session
    (so a node is ended, or killed as a lost machine would be, by its own process tree), with
    distinct PROBE_NODE, scratch directories and custom resources (the second has `probe_worker`)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rb-ray-", dir="/tmp"))  # short: Ray's socket paths
        self.dir.chmod(0o711)  # the nodes' scratch directories are inside: agents pass through
        # Token authentication with a token of its own: what every process talking to it needs.
        token = self.dir / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = dict(env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
        self.port = _free_ports(1)[0]
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, subprocess.Popen] = {}
        try:
            self.start("head")
            self.start("worker")
        except BaseException:
            self.close()
            raise

    def start(self, name: str) -> None:
        if (self.dir / f"{name}.log").exists():
            with open(self.dir / f"{name}.log", "a") as log:
                log.write("\n--- restart ---\n")
        agent_http, agent_grpc, runtime_env, metrics = _free_ports(4)
        # The second node on another loopback address, so the submitter's driver attaches to the head.
        ip = "127.0.0.1" if name == "head" else "127.0.0.2"
        argv = [str(Path(sys.executable).parent / "ray"), "start", "--block", "--disable-usage-stats",
                "--node-ip-address", ip, "--temp-dir", str(self.dir / "ray"), "--num-cpus", "2",
                "--object-store-memory", str(100 * 2**20),
                "--dashboard-agent-listen-port", str(agent_http), "--dashboard-agent-grpc-port", str(agent_grpc),
                "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics)]
        if name == "head":
            argv += ["--head", "--port", str(self.port), "--include-dashboard", "false"]
        else:
            argv += ["--address", self.address, "--resources", json.dumps({"probe_worker": 2})]
        scratch = self.dir / f"scratch-{name}"
        env = dict(self.env, PROBE_NODE=name, REBENCH_RAY_SCRATCH=str(scratch))
        log_path = self.dir / f"{name}.log"
        with open(log_path, "ab") as log:
            self.nodes[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
        # `ray start` says so once its node has joined the cluster.
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log_path.read_text(errors="replace").split("--- restart ---")[-1]:
            if time.monotonic() > deadline or self.nodes[name].poll() is not None:
                raise RuntimeError(f"the test Ray node {name} did not start; see {log_path}")
            time.sleep(0.2)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """End one node: its `ray start`, raylet, workers and whatever they started."""
        import psutil

        proc = self.nodes.pop(name)
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        for p in family:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(family, timeout=30)
        proc.wait(timeout=30)

    def ray_files(self) -> list[Path]:
        """Everything Ray wrote (session logs, spilled objects): where a leaked key would be."""
        files = [p for p in (self.dir / "ray").rglob("*") if p.is_file()]
        assert any(p.name.startswith("python-core-driver") for p in files)  # the logs are there to read
        return files

    def close(self) -> None:
        for name in list(self.nodes)[::-1]:
            self.kill(name)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(probe_env):
    pytest.importorskip("ray")
    c = Cluster(probe_env)
    try:
        yield c
    finally:
        c.close()
