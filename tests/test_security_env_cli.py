"""rebench-env: a directory is scored as the agent user that owns its workspace (issue 17), and bad
directories get one clear line and leave nothing behind (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, needs_root

from rebench_core import Environment, Normalization, ScoreEntry
from rebench_core.cli import env as env_cli
from rebench_core.context import EnvSession
from rebench_core.sandbox import lock_user


class WhoScores(Environment):
    """Scores 1 when the solution ran as the owner of the workspace, 0 when not."""

    name = "who_scores"
    sizes = ("small",)

    def setup(self, ctx, workspace: Path, protected_dir: Path) -> str:
        (workspace / "solution.sh").write_text("id -u; sleep 0.3\n")
        return "nothing to do"

    def score(self, ctx, workspace: Path, protected_dir: Path) -> ScoreEntry:
        ran = ctx.run_as_agent(["/bin/bash", "solution.sh"], cwd=workspace, timeout=30)
        uid = int(ran.stdout.split()[0])
        return ScoreEntry(raw=float(uid == os.stat(workspace / "solution.sh").st_uid), details={"uid": uid})

    def normalization(self, ctx) -> Normalization:
        return Normalization(0.0, 1.0)


def session(cache_root: Path, identity) -> EnvSession:
    """What `rebench-env` gives its setup and score: the environment's session, as the harness's."""
    return EnvSession(WhoScores(), size="small", variant="main", cache_root=cache_root, agent=identity)


@needs_root
def test_setup_and_every_score_of_a_directory_use_its_agent_user(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REBENCH_CACHE", str(tmp_path / "cache"))
    where = tmp_path / "dir"
    env_cli.setup(WhoScores(), where, session)
    user = (where / env_cli.AGENT_RECORD).read_text().strip()
    assert user.startswith("rebench-agent-") and capsys.readouterr().out.strip() == "nothing to do"
    results: list[str] = []

    def score() -> None:
        env_cli.score(WhoScores(), where, session)

    # a run holds the directory's user: scoring waits for it instead of taking another user
    held = lock_user(user)
    assert held is not None
    waiting = [threading.Thread(target=score) for _ in range(3)]
    for thread in waiting:
        thread.start()
    time.sleep(0.5)
    assert all(thread.is_alive() for thread in waiting)
    for fd in held:
        os.close(fd)
    for thread in waiting:
        thread.join(60)
    results = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(results) == 3 and all('"raw": 1.0' in line for line in results), results


@needs_root
def test_a_record_naming_another_user_is_refused(tmp_path):
    where = tmp_path / "dir"
    (where / "workspace").mkdir(parents=True)
    (where / "protected").mkdir()
    (where / env_cli.AGENT_RECORD).write_text("root\n")
    with pytest.raises(SystemExit):
        env_cli.score(WhoScores(), where, session)


def _cli(*args, cache):
    return subprocess.run([sys.executable, "-m", "rebench_core.cli.env", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=dict(os.environ, REBENCH_CACHE=str(cache)))


@pytest.mark.parametrize("action", ["setup", "prepare"])
def test_a_file_or_an_unwritable_place_gets_one_line_and_leaves_nothing(tmp_path, action):
    cache = tmp_path / "cache"
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    for target, expected in ((a_file, "is a file"), (a_file / "under", "Not a directory"),
                             (Path("/proc/rebench-nowhere"), "cannot create")):
        result = _cli(action, "guess_number", "--size", "small", str(target), cache=cache)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and expected in result.stderr and str(target) in result.stderr
        assert a_file.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_setup_with_an_unusable_cache_leaves_no_directory(tmp_path):
    blocked = tmp_path / "cache-file"
    blocked.write_text("")
    result = _cli("setup", "guess_number", "--size", "small", str(tmp_path / "new" / "dir"), cache=blocked)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "cache" in result.stderr, result.stderr
    assert not (tmp_path / "new").exists()
