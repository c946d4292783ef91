"""rebench_core.testing.FakeTask: what a scaffold's unit test relies on beyond scripted replies."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from rebench_core.context import EnvSession
from rebench_core.environment import Environment, Normalization
from rebench_core.testing import FakeTask, RepliesExhausted, environment, stage
from rebench_core.types import Message, ScoreEntry


def said(*texts: str) -> list[Message]:
    return [Message("user", t) for t in texts]


def alive(pid: int) -> bool:
    """The process runs (a zombie waiting for its reaper does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


async def test_one_function_answers_every_call_and_a_list_runs_out(tmp_path: Path):
    task = FakeTask(tmp_path / "f", lambda messages, tools, params: f"{len(messages)} {params['n']}")
    answers = [(await task.generate(said(*["hi"] * k), n=k)).text for k in (1, 2, 3)]
    assert answers == ["1 1", "2 2", "3 3"] and len(task.calls) == 3

    listed = FakeTask(tmp_path / "l", ["only"])
    assert (await listed.generate(said("hi"))).text == "only"
    with pytest.raises(RepliesExhausted, match="call 2"):
        await listed.generate(said("again"))
    assert issubclass(RepliesExhausted, AssertionError)  # what it raised before it had a name


async def test_concurrent_generate_calls_are_counted(tmp_path: Path):
    task = FakeTask(tmp_path, ["a", "b", "c", "d"])
    await task.generate(said("one"))
    assert task.max_in_flight == 1
    texts = [c.text for c in await asyncio.gather(*(task.generate(said(str(i))) for i in range(3)))]
    assert texts == ["b", "c", "d"] and task.max_in_flight == 3 and task.in_flight == 0


async def test_a_timeout_kills_everything_the_command_started(tmp_path: Path):
    task = FakeTask(tmp_path, [])
    result = await task.bash("sleep 30 & echo $! > pid; wait", timeout=0.5)
    assert result.timed_out and 0.5 <= result.duration_s < 10
    assert not alive(int((task.workspace / "pid").read_text()))
    done = await task.bash("echo hi")
    assert done.output == "hi\n" and done.exit_code == 0 and 0 < done.duration_s < 10


async def test_a_cancelled_command_is_killed(tmp_path: Path):
    task = FakeTask(tmp_path, [])
    running = asyncio.create_task(task.bash("sleep 30 & echo $! > pid; wait", timeout=60))
    pid_file = task.workspace / "pid"
    for _ in range(200):
        await asyncio.sleep(0.02)
        if pid_file.exists() and pid_file.read_text().strip():
            break
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert not alive(int(pid_file.read_text()))


async def test_score_reports_the_scorers_duration_as_the_harness_does(tmp_path: Path):
    task = FakeTask(tmp_path, [], scorer=lambda workspace: ScoreEntry(raw=3.0, message={"note": "ok"}))
    result = await task.score()
    assert (result.score, result.valid, result.message) == (3.0, True, {"note": "ok"})
    assert set(result.execution) == {"duration_s"} and result.execution["duration_s"] >= 0
    assert await task.score_log() == [result]


def test_stage_lays_out_a_workspace_as_the_harness_does(agent_dir: Path):
    with environment("guess_number", cache_root=agent_dir / "cache") as session:
        workspace, protected = stage(session, agent_dir / "run")
        assert (workspace / "answer.txt").read_text() == "0\n" and (protected / "secret.txt").exists()  # setup ran
        assert oct(protected.stat().st_mode & 0o777) == "0o700" and protected.stat().st_uid == os.geteuid()
        owner = session.ctx.agent.owner
        if owner is not None:  # root: the workspace and what setup put there are the agent user's, as in a run
            for path in (workspace, workspace / "answer.txt"):
                assert (path.stat().st_uid, path.stat().st_gid) == owner
        (workspace / "answer.txt").write_text("737\n")
        assert session.score(workspace, protected).raw == 0.0


def test_sessions_sharing_a_cache_prepare_one_at_a_time(tmp_path: Path):
    """A study's concurrent runs on one machine share the cache: a second `prepare` must not build
    over the first (it waits, then finds the assets done)."""
    spans: list[tuple[float, float]] = []
    builds: list[int] = []

    class SlowToPrepare(Environment):
        name = "slow_to_prepare"

        def prepare(self, ctx):
            started = time.monotonic()
            if not (ctx.cache_dir / "DONE").exists():
                time.sleep(0.3)
                (ctx.cache_dir / "DONE").write_text("built")
                builds.append(1)
            spans.append((started, time.monotonic()))

        def normalization(self, ctx):
            return Normalization(y_start=0.0, y_ref=1.0, source="test")

    def prepare() -> None:
        EnvSession(SlowToPrepare(), size="small", variant="main", cache_root=tmp_path).prepare()

    threads = [threading.Thread(target=prepare) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(spans) == 3
    spans.sort()
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:]))


def test_the_prepare_lock_is_never_opened_through_a_planted_link(tmp_path: Path):
    class Plain(Environment):
        name = "plain"

        def normalization(self, ctx):
            return Normalization(y_start=0.0, y_ref=1.0, source="test")

    target = tmp_path / "elsewhere"
    (tmp_path / ".plain.prepare.lock").symlink_to(target)
    with pytest.raises(OSError):
        EnvSession(Plain(), size="small", variant="main", cache_root=tmp_path).prepare()
    assert not target.exists()
