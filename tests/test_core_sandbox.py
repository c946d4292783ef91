"""The agent's tools and isolation, exercised directly."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import needs_root

from rebench_core.sandbox import AgentIdentity, Sandbox, read_agent_file, run_as_agent


@pytest.fixture
async def sandbox(agent_dir):
    identity = AgentIdentity.acquire()
    workspace = agent_dir / "ws"
    workspace.mkdir()
    identity.give(workspace)
    box = Sandbox(identity, workspace, agent_dir / "tmp", output_limit_chars=2000)
    yield box
    await box.close()
    identity.release()


async def test_bash_keeps_cwd_and_exported_variables(sandbox):
    await sandbox.bash("mkdir -p sub && cd sub && export GREETING=hello && NOT_EXPORTED=x", 10)
    result = await sandbox.bash('pwd; echo "$GREETING-$NOT_EXPORTED"', 10)
    assert result.output.splitlines() == [str(sandbox.workspace / "sub"), "hello-"]
    assert result.exit_code == 0


async def test_bash_exit_code_and_stderr_interleaved(sandbox):
    result = await sandbox.bash("echo out; echo err >&2; exit 3", 10)
    assert result.exit_code == 3 and "out" in result.output and "err" in result.output


async def test_bash_timeout_kills_the_process_group(sandbox):
    started = time.monotonic()
    seconds = _unique_seconds()
    result = await sandbox.bash(f"sleep {seconds} & sleep {seconds}; echo never", 1)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 5
    assert "never" not in result.output and "timed out" in result.output
    assert _gone(["sleep", seconds])


def _unique_seconds() -> str:
    """A sleep duration no other process on this shared machine is likely to be running."""
    return f"{random.randint(300, 900)}.{random.randint(0, 10**6)}"


def _gone(cmdline: list[str], within_s: float = 5.0) -> bool:
    """Whether no live process runs `cmdline` (SIGKILL is delivered asynchronously: allow a moment)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        alive = [p for p in psutil.process_iter(["cmdline", "status"])
                 if p.info["cmdline"] == cmdline and p.info["status"] != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.1)
    return False


async def test_background_job_does_not_hang_the_call(sandbox):
    started = time.monotonic()
    result = await sandbox.bash("sleep 1000 & echo started", 10)
    assert result.output.strip() == "started" and time.monotonic() - started < 3


async def test_long_output_is_cut_and_saved_in_the_workspace(sandbox):
    result = await sandbox.bash("seq 1 100000", 10)
    assert result.truncated and result.full_output_path
    saved = Path(result.full_output_path)
    assert saved.parent.parent == sandbox.workspace
    assert saved.read_text().splitlines()[-1] == "100000"
    assert result.output.startswith("1\n2\n") and result.output.rstrip().endswith("100000")
    assert len(result.output) < 2500


async def test_python_persistent_and_stateless(sandbox):
    await sandbox.python("x = 41", 10)
    kept = await sandbox.python("x + 1", 10)
    fresh = await sandbox.python("print(globals().get('x'))", 10, persistent=False)
    error = await sandbox.python("1/0", 10)
    assert kept.output.strip() == "42"
    assert fresh.output.strip() == "None"
    assert error.exit_code == 1 and "ZeroDivisionError" in error.output


async def test_python_timeout_restarts_the_interpreter(sandbox):
    await sandbox.python("y = 1", 10)
    slow = await sandbox.python("import time; time.sleep(30)", 1)
    after = await sandbox.python("print(globals().get('y'))", 10)
    assert slow.timed_out and "restarted" in slow.output
    assert after.output.strip() == "None"


async def test_python_subprocess_output_is_captured(sandbox):
    result = await sandbox.python("import os; os.system('echo from-a-child')", 10)
    assert "from-a-child" in result.output


async def test_close_kills_daemons_that_left_their_session(sandbox):
    seconds = _unique_seconds()
    await sandbox.bash(f"setsid sleep {seconds} < /dev/null > /dev/null 2>&1 & echo ok", 10)
    time.sleep(0.3)
    assert [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", seconds]]
    await sandbox.close()
    assert _gone(["sleep", seconds])


async def test_harness_secrets_do_not_reach_agent_commands(sandbox, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    box = Sandbox(sandbox.identity, sandbox.workspace, sandbox.tmp / "second")
    result = await (box.bash("echo key=${OPENAI_API_KEY:-unset}", 10))
    assert result.output.strip() == "key=unset"


def test_run_as_agent_timeout_and_output(tmp_path):
    identity = AgentIdentity.acquire()
    try:
        ok = run_as_agent(["/bin/sh", "-c", "cat; echo err >&2"], cwd=tmp_path, timeout=10, input=b"piped",
                          identity=identity)
        slow = run_as_agent("sleep 100", cwd=tmp_path, timeout=0.5, identity=identity)
    finally:
        identity.release()
    assert (ok.stdout, ok.stderr.strip(), ok.returncode, ok.timed_out) == ("piped", "err", 0, False)
    assert slow.timed_out and slow.returncode is None and slow.duration_s < 5


@needs_root
@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="the kernel has no autogroup scheduling")
def test_a_command_timed_at_the_measurement_priority_gets_it_for_its_session_too(agent_dir):
    """A nice value counts only inside an autogroup (one per session), and a scoring command runs
    in a session of its own: at the measurement priority its session's group is raised with it;
    otherwise the group keeps nice 0. The command cannot raise either further."""
    from rebench_core.priority import MEASUREMENT_NICE, measurement_priority

    probe = ("cat /proc/$$/autogroup; ps -o ni= -p $$; echo -20 > /proc/$$/autogroup 2>/dev/null && echo raised; "
             "renice -n -20 -p $$ >/dev/null 2>&1 && echo reniced; true")
    identity = AgentIdentity.acquire()
    try:
        with measurement_priority():
            timed = run_as_agent(probe, cwd=agent_dir, timeout=30, identity=identity)
        plain = run_as_agent(probe, cwd=agent_dir, timeout=30, identity=identity)
    finally:
        identity.release()
    group, nice = timed.stdout.split("\n")[:2]
    assert group.split()[-1] == nice.strip() == str(MEASUREMENT_NICE) and "raised" not in timed.stdout, timed
    assert "reniced" not in timed.stdout
    assert plain.stdout.split("\n")[0].split()[-1] == "0" and plain.stdout.split("\n")[1].strip() == "0", plain
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0


def test_scoring_commands_from_many_threads_each_get_their_own_directories(agent_dir):
    """A scorer judging in worker threads (rust_codecontests): one command's home and scoring
    directory come and go while others start; none may fail on another's, nor see it removed."""
    from concurrent.futures import ThreadPoolExecutor

    from rebench_core.sandbox import agent_tempdir

    identity = AgentIdentity.acquire()
    workspace = agent_dir / "ws"
    workspace.mkdir()
    identity.give(workspace)

    def one(i: int) -> tuple[int | None, str]:
        with agent_tempdir("rebench-bin-", identity=identity) as shared:
            (shared / "input").write_text(str(i))
            result = run_as_agent(["/bin/sh", "-c", f'cat {shared}/input && touch "$HOME/mine" && ls "$HOME"'],
                                  cwd=workspace, timeout=30, identity=identity)
            return result.returncode, result.stdout + result.stderr

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(48)))
    finally:
        identity.release()
    assert results == [(0, f"{i}mine\n") for i in range(48)]


def test_a_toolchain_under_tmp_is_shown_to_scoring_commands_and_its_private_parts_are_not(agent_dir):
    """/tmp is private to each command; what lives under the real /tmp and must be shown (a
    Python or a checkout cloned there, a toolchain a scorer names) is bound on top of it, and a
    protected path inside it stays covered."""
    prefix = agent_dir / "toolchain"
    (prefix / "lib").mkdir(parents=True)
    (prefix / "lib" / "reference.txt").write_text("the reference")
    tool = prefix / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho tool ran\n")
    for path in (prefix, prefix / "lib", prefix / "bin", tool, prefix / "lib" / "reference.txt"):
        os.chmod(path, 0o755)
    workspace = agent_dir / "ws"
    workspace.mkdir()
    identity = AgentIdentity.acquire()
    identity.give(workspace)
    identity.confine(hidden=[prefix / "lib" / "reference.txt"], writable=[workspace])
    try:
        result = run_as_agent(["/bin/sh", "-c", '"$TOOL"; cat "$(dirname "$TOOL")/../lib/reference.txt"'],
                              cwd=workspace, timeout=30, env={"TOOL": str(tool)}, identity=identity)
    finally:
        identity.release()
    assert result.stdout.startswith("tool ran"), result.stderr
    assert "the reference" not in result.stdout


def test_read_agent_file_refuses_symlinks_and_escapes(tmp_path):
    workspace = tmp_path / "ws"
    (workspace / "dir").mkdir(parents=True)
    (tmp_path / "secret").write_text("s3cret")
    (workspace / "dir" / "ok.txt").write_text("fine")
    (workspace / "link.txt").symlink_to(tmp_path / "secret")
    (workspace / "linkdir").symlink_to(tmp_path)
    assert read_agent_file("dir/ok.txt", workspace) == b"fine"
    for bad, reason in (("link.txt", "symlink"), ("linkdir/secret", "not a plain directory"), ("../secret", "'..'"),
                        ("missing.txt", "does not exist")):
        with pytest.raises(ValueError, match=reason):
            read_agent_file(bad, workspace)


@needs_root
def test_concurrent_runs_get_different_agent_users():
    a, b = AgentIdentity.acquire(), AgentIdentity.acquire()
    try:
        assert a.isolation.uid != b.isolation.uid and a.isolation.mode == b.isolation.mode == "user"
    finally:
        a.release()
        b.release()


@needs_root
def test_agent_user_cannot_read_root_only_files(agent_dir):
    secret = agent_dir / "protected"
    secret.mkdir(mode=0o700)
    (secret / "data").write_text("held-out")
    (agent_dir / "open").write_text("public")
    os.chmod(agent_dir / "open", 0o644)
    identity = AgentIdentity.acquire()
    try:
        readable = run_as_agent(["cat", str(agent_dir / "open")], cwd=agent_dir, timeout=10, identity=identity)
        result = run_as_agent(["cat", str(secret / "data")], cwd=agent_dir, timeout=10, identity=identity)
    finally:
        identity.release()
    assert readable.stdout == "public"
    assert result.returncode != 0 and "Permission denied" in result.stderr


@needs_root
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_without_root_bubblewrap_hides_protected_files(agent_dir):
    """The harness run by an ordinary user: isolation falls back to bubblewrap, and issue 14's attacks
    (reading the protected directory and /proc, writing the log, planting output names) fail."""
    identity = AgentIdentity.acquire()  # borrow an unprivileged user to play the ordinary user
    try:
        os.chown(agent_dir, identity.isolation.uid, identity.isolation.gid)
        probe = Path(__file__).with_name("bwrap_probe.py")
        out = subprocess.run(["runuser", "-u", identity.isolation.user, "--", sys.executable, str(probe),
                              str(agent_dir), "--api-key=sk-probe-decoy"], capture_output=True, text=True, timeout=120,
                             env={"PATH": os.environ["PATH"], "HOME": str(agent_dir)})
    finally:
        identity.release()
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert results["mode"] == "bwrap" and results["namespaces"] == ["mount", "pid", "ipc"]
    assert "No such file" in results["secret"] and "held-out" not in results["secret"]
    assert results["events_untouched"]  # the append landed in a throwaway tmpfs, not the log
    assert not results["escaped"]  # writes outside the workspace never reach the real file system
    assert results["inside"].strip() == "hi" and results["python"].strip() == "42"
    assert "sk-probe-decoy" not in results["proc"] and "bwrap_probe" not in results["proc"]
    assert "harness-only" not in results["tmp"] and "harness-only" not in results["plant"]
    assert results["after_plant"] == "clean\n" and results["mine_untouched"]


def test_scoring_commands_see_the_given_workspace_and_may_reorganise_it(agent_dir):
    """A scorer runs agent code in a subdirectory of a workspace it gave the agent: the whole
    workspace is there, and what the scorer gave can be removed and renamed (no mount points)."""
    identity = AgentIdentity.acquire()
    try:
        workspace = agent_dir / "ws"
        (workspace / "solution" / "trained_model").mkdir(parents=True)
        (workspace / "base_model").mkdir()
        identity.give(workspace)
        identity.give(workspace / "solution" / "trained_model")
        result = run_as_agent("ls ../base_model && rm -r trained_model && mkdir a && mv a b && mv ../base_model ../moved "
                              "&& echo done", cwd=workspace / "solution", timeout=30, identity=identity)
    finally:
        identity.release()
    assert result.stdout.strip() == "done", result.stderr
    assert (workspace / "moved").is_dir() and not (workspace / "solution" / "trained_model").exists()
