"""Lifetime: nothing the agent starts outlives what it belongs to.

Issue 14: a process the solution forked with setsid during an official score kept running after
the score; after SIGKILL of the harness four agent processes kept running and the agent's temporary
root stayed; the lock directory followed TMPDIR, so two harnesses could share an agent user.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import core_test_plugin
from security_fixtures import box, gone, harness_run, mode, needs_root, unique_seconds  # noqa: F401  (fixtures)

from rebench_core import Environment, Normalization, ScoreEntry, hookimpl
from rebench_core.events import read_events
from rebench_core.registry import load_plugins
from rebench_core.sandbox import AgentIdentity, lock_user, read_agent_file, run_as_agent

pytestmark = needs_root
HERE = Path(__file__).resolve()

ESCAPES = {
    "setsid": "setsid sleep {s} < /dev/null > /dev/null 2>&1 &",
    "double_fork": "python -c \"import os, time\nif os.fork() == 0:\n os.setsid()\n if os.fork() == 0:\n"
                   "  time.sleep({s})\" &",
    "nohup_ignoring_term": "nohup bash -c \"trap '' TERM HUP; exec sleep {s}\" > /dev/null 2>&1 &",
    "own_process_group": "set -m; sleep {s} & disown;",
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_nothing_a_scoring_command_starts_outlives_it(agent_dir, mode, escape):
    seconds = unique_seconds()
    identity = AgentIdentity.acquire()
    try:
        result = run_as_agent(f"{ESCAPES[escape].format(s=seconds)} echo started", cwd=agent_dir, timeout=20,
                              identity=identity)
        assert "started" in result.stdout, result.stderr
        assert gone(f"sleep {seconds}") and gone(f"time.sleep({seconds})")
    finally:
        identity.release()


async def test_the_agent_killing_its_shell_ends_its_processes_and_the_next_call_works(box, mode):
    seconds = unique_seconds()
    await box.bash(f"setsid sleep {seconds} < /dev/null > /dev/null 2>&1 & echo ok", 10)
    result = await box.bash("kill -9 $$; sleep 3", 10)
    if mode == "namespaces":  # its namespace ended with it, this command included
        assert result.exit_code is None and "shell exited" in result.output
        assert gone(f"sleep {seconds}")
    after = await box.bash("echo again; pwd", 10)
    assert after.output.splitlines() == ["again", str(box.workspace)]


class ReadsTwice(Environment):
    """Scores 1 when answer.txt reads the same before and after a scoring command: a background
    process of the agent flipping it between the two reads would make a check and a measurement
    see different submissions."""

    name = "reads_twice"
    sizes = ("small",)

    def setup(self, ctx, workspace: Path, protected_dir: Path) -> str:
        (workspace / "answer.txt").write_text("a")
        return "nothing to do"

    def score(self, ctx, workspace: Path, protected_dir: Path) -> ScoreEntry:
        first = read_agent_file("answer.txt", workspace)
        ctx.run_as_agent(["sleep", "0.5"], cwd=workspace, timeout=10)
        return ScoreEntry(raw=float(first == read_agent_file("answer.txt", workspace)))

    def normalization(self, ctx) -> Normalization:
        return Normalization(0.0, 1.0)


def test_the_agents_processes_are_paused_while_it_is_scored(tmp_path, mode):
    plugin = types.ModuleType("reads_twice")
    plugin.rebench_register_environments = hookimpl(lambda register: register("reads_twice", ReadsTwice))
    registry = load_plugins(extra_plugins=[("core-tests", core_test_plugin), ("reads-twice", plugin)])
    # a background process that changes the submission all the time (a counter, replaced atomically)
    changer = ("python -c \"import os, itertools\nfor i in itertools.count():\n"
               " open('next', 'w').write(str(i)); os.replace('next', 'answer.txt')\" > /dev/null 2>&1 & "
               "sleep 0.5; echo started")
    summary = harness_run(registry, tmp_path, [changer, "cat answer.txt", "sleep 0.5; cat answer.txt"],
                          env="reads_twice", score_each=True)
    assert [s["raw"] for s in summary["score_log"]] == [1.0, 1.0, 1.0, 1.0, 1.0]
    state = tmp_path / "run" / "scaffold"
    counts = [int(json.loads((state / f"bash-{i}.json").read_text())["output"]) for i in (1, 2)]
    assert counts[1] > counts[0]  # running again after each score


def _drive(out: Path, commands: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE), "drive", str(out), json.dumps(commands)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _dead(pid: int) -> bool:
    """Whether `pid` has exited (a zombie has: its files, the lock among them, are closed)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line for line in f)
    except FileNotFoundError:
        return True


def _free(user: str) -> bool:
    locks = lock_user(user)
    for fd in locks or ():
        os.close(fd)
    return locks is not None


def _tool_started(run_dir: Path, text: str) -> bool:
    events = run_dir / "events.jsonl"
    return events.exists() and any(e["type"] == "tool_call" and text in e["input"] for e in read_events(run_dir))


def test_sigkill_of_the_harness_leaves_no_agent_process_and_no_scratch(tmp_path, mode):
    seconds = unique_seconds()
    commands = [f"sleep {seconds} & echo $HOME",
                f"setsid sleep {seconds} < /dev/null > /dev/null 2>&1 & echo daemon",
                f"nohup bash -c \"trap '' TERM HUP; exec sleep {seconds}\" > /dev/null 2>&1 & echo nohup",
                f"echo $HOME > home.txt; sleep 1{seconds}"]
    out = tmp_path / "run"
    harness = _drive(out, commands, dict(os.environ, REBENCH_TEST_USER="rebench-agent-250"))
    try:
        _wait_for(lambda: _tool_started(out, f"sleep 1{seconds}"))
        time.sleep(0.5)
        user = json.loads((out / "config.json").read_text())["isolation"]["user"]
        tag = user.removeprefix("rebench-agent-")
        scratch = sorted(Path("/tmp").glob(f"rebench-*-{tag}-*"))
        assert any(p.name.startswith("rebench-agent-") for p in scratch)
        assert not gone(f"sleep {seconds}", within_s=0)
        harness.kill()
        harness.wait()
        assert gone(f"sleep {seconds}") and gone(f"sleep 1{seconds}")
        _wait_for(lambda: not any(p.exists() for p in scratch), within_s=10)
        _wait_for(lambda: _free(user), within_s=10)  # the keeper finished and let the user go
        assert (out / "workspace").is_dir()  # a staged workspace went back to the run directory
    finally:
        harness.kill()


def test_a_run_killed_with_its_keeper_is_reaped_by_the_next_start_or_the_doctor(tmp_path, mode):
    """If the keeper is killed too (kill -9 of everything root started), the next start of that agent
    user, or `rebench-doctor --clean`, reaps what is left."""
    for reaper in ("acquire", "doctor"):
        seconds = unique_seconds()
        out = tmp_path / reaper
        harness = _drive(out, [f"setsid sleep {seconds} < /dev/null > /dev/null 2>&1 & echo daemon; "
                               f"echo left > /dev/shm/left-$$; echo left > /tmp/left-$$; sleep 1{seconds}"],
                         dict(os.environ, REBENCH_TEST_USER=f"rebench-agent-{251 + (reaper == 'doctor')}"))
        try:
            keeper = int(harness.stdout.readline())
            _wait_for(lambda: _tool_started(out, f"sleep 1{seconds}"))
            time.sleep(0.5)
            user = json.loads((out / "config.json").read_text())["isolation"]["user"]
            os.kill(keeper, signal.SIGKILL)
            harness.kill()
            harness.wait()
            _wait_for(lambda: _dead(keeper), within_s=10)
            tag = user.removeprefix("rebench-agent-")
            if mode == "permissions":  # nothing else ends them: no namespace
                assert not gone(f"sleep {seconds}", within_s=0)
            assert list(Path("/tmp").glob(f"rebench-agent-{tag}-*"))
            if reaper == "acquire":
                AgentIdentity.acquire(user=user).release()
            else:
                doctor = subprocess.run([sys.executable, "-m", "rebench_core.cli.doctor", "--clean"],
                                        capture_output=True, text=True, timeout=120)
                assert doctor.returncode == 0 and f"rebench-agent-{tag}-" in doctor.stdout, doctor.stderr
            assert gone(f"sleep {seconds}")
            assert not list(Path("/tmp").glob(f"rebench-agent-{tag}-*"))
            assert not list(Path("/tmp").glob(f"rebench-protected-{tag}-*"))
            assert (out / "workspace").is_dir()
        finally:
            harness.kill()


def test_two_harnesses_with_different_tmpdirs_get_different_agent_users(tmp_path):
    holders = []
    try:
        for name in ("a", "b"):
            tmpdir = tmp_path / name
            tmpdir.mkdir()
            holders.append(subprocess.Popen(
                [sys.executable, "-c", "from rebench_core.sandbox import AgentIdentity; import sys; "
                                       "i = AgentIdentity.acquire(); print(i.isolation.user, flush=True); "
                                       "sys.stdin.read(); i.release()"],
                env=dict(os.environ, TMPDIR=str(tmpdir)), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        users = [h.stdout.readline().strip() for h in holders]
        assert users[0].startswith("rebench-agent-") and users[0] != users[1]
    finally:
        for h in holders:
            h.communicate("", timeout=30)


def _drive_main(out: str, commands: str) -> None:
    """A harness run in this process, to be killed by the test (python this-file drive OUT JSON)."""
    import asyncio

    sys.path.insert(0, str(HERE.parent))
    import core_test_plugin

    from rebench_core import harness, sandbox
    from rebench_core.limits import Limits
    from rebench_core.registry import load_plugins

    if os.environ.get("REBENCH_NO_NAMESPACES") == "1":  # as the `mode` fixture: leave real checkouts alone
        sandbox.view.checkouts = lambda: ()
    if os.environ.get("REBENCH_TEST_USER"):
        acquire = sandbox.AgentIdentity.acquire.__func__

        def acquire_and_tell(cls, *args, **kwargs):
            # a user from the top of the range, which harnesses of other versions on this shared
            # machine (they take the lowest free one) will not grab between our death and our reaper
            identity = acquire(cls, user=os.environ["REBENCH_TEST_USER"])
            print(identity._keeper.pid, flush=True)
            return identity

        sandbox.AgentIdentity.acquire = classmethod(acquire_and_tell)
    model = Path(out).parent / f"{Path(out).name}-script.json"
    model.write_text(json.dumps({"turns": []}))
    config = harness.RunConfig(environment="guess_number", scaffold="commands", model=f"scripted/{model}",
                               size="small", limits=Limits(time_s=600), out_dir=Path(out),
                               cache_dir=Path(out).parent / "cache",
                               scaffold_settings={"commands": json.loads(commands), "timeout": 900})
    asyncio.run(harness.run(config, load_plugins(extra_plugins=[("core-tests", core_test_plugin)])))


if __name__ == "__main__" and sys.argv[1:2] == ["drive"]:
    _drive_main(sys.argv[2], sys.argv[3])
