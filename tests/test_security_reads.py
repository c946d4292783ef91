"""What the agent can read: no protected material from any other place it lives, no harness process,
nothing another run left.

With namespaces the material is absent from the agent's file system; with permissions alone
(`permissions` mode, no bubblewrap) the harness makes it unreadable to other users, and what it
cannot protect that way (other users' command lines in /proc) is the fallback's stated limit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from security_fixtures import box, mode, needs_root  # noqa: F401  (fixtures)

from rebench_core.sandbox import AgentIdentity, Sandbox, view

pytestmark = needs_root


async def _sh(sandbox: Sandbox, command: str) -> str:
    return (await sandbox.bash(command, 20)).output


async def test_no_harness_process_is_visible(box, mode):
    """Issue 14: `--set model.api_key=...` was readable from /proc/PID/cmdline."""
    if mode != "namespaces":
        pytest.skip("without a PID namespace, /proc shows every process (docs/security.md)")
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--set",
                              "model.api_key=sk-decoy-4242"])
    try:
        seen = await _sh(box, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; echo; ls /proc | grep -c '^[0-9]'; "
                              f"ls -d /proc/{os.getpid()} /proc/{decoy.pid} 2>&1")
    finally:
        decoy.kill()
        decoy.wait()
    assert "sk-decoy-4242" not in seen and "pytest" not in seen
    count = int([line for line in seen.splitlines() if line.isdigit()][0])
    assert count < 12  # bubblewrap's init, the shell, this command
    assert "bwrap" in seen and "rebench-shell" in seen


async def test_git_objects_and_other_checkouts_are_out_of_reach(box, mode, agent_dir, monkeypatch):
    """The editable install's .git holds every committed reference solution (and sibling worktrees
    hold full copies). Without namespaces the harness closes them to other users; this test uses a
    checkout of its own so as not to change the real one's permissions."""
    checkout = agent_dir / "checkout"
    (checkout / ".git" / "objects").mkdir(parents=True)
    (checkout / ".git" / "objects" / "blob").write_text("reference-solution-blob")
    sibling = agent_dir / "sibling"
    (sibling / "environments" / "x").mkdir(parents=True)
    (sibling / "environments" / "x" / "reference.py").write_text("ANSWER = 'sibling-copy'")
    private = checkout / "environments" / "x" / "reference.py"
    private.parent.mkdir(parents=True)
    private.write_text("ANSWER = 'installed'")
    for path in (checkout, sibling, agent_dir):
        os.chmod(path, 0o755)
    real = view.checkouts.__wrapped__() if mode == "namespaces" else ()
    fake = view.Checkout(checkout, checkout / ".git", (sibling,))
    monkeypatch.setattr(view, "checkouts", lambda: (fake, *real))
    box.identity.protect([private])
    box.identity.confine(hidden=[private], writable=[box.workspace, box.tmp])
    targets = [checkout / ".git" / "objects" / "blob", sibling / "environments" / "x" / "reference.py", private]
    if mode == "namespaces":  # the real checkouts too (hiding changes nothing on disk)
        targets += [c.git_dir / "HEAD" for c in real]
    out = await _sh(box, "; ".join(f"cat {t}" for t in targets))
    assert "reference-solution-blob" not in out and "sibling-copy" not in out and "installed" not in out
    assert "ref: refs" not in out


@pytest.mark.parametrize("variable", ["REBENCH_CACHE", "PIP_CACHE_DIR", "XDG_CACHE_HOME", "REBENCH_HIDE"])
async def test_caches_are_out_of_reach_wherever_they_live(agent_dir, mode, monkeypatch, variable):
    """Caches (calibration, built wheels) under a directory the agent can otherwise see (/var)."""
    where = Path(tempfile.mkdtemp(prefix="rebench-test-cache-", dir="/var/lib"))
    try:
        os.chmod(where, 0o755)
        (where / "calibration.json").write_text('{"y_ref": 0.123456}')
        os.chmod(where / "calibration.json", 0o644)
        monkeypatch.setenv(variable, str(where))
        identity = AgentIdentity.acquire()
        try:
            workspace = agent_dir / "ws"
            workspace.mkdir()
            identity.give(workspace)
            identity.protect([])
            sandbox = Sandbox(identity, workspace, agent_dir / "tmp")
            out = await _sh(sandbox, f"cat {where}/calibration.json; ls {where}")
            await sandbox.close()
        finally:
            identity.release()
        assert "0.123456" not in out
    finally:
        shutil.rmtree(where)


async def test_home_directories_are_out_of_reach(box, mode):
    if mode != "namespaces":
        pytest.skip("without namespaces, home directories are protected by their own permissions")
    out = await _sh(box, "ls -a /root /home 2>&1; cat /root/.bashrc /root/.ssh/* 2>&1")
    assert "/home': No such file" in out and "/root/.bashrc: No such file" in out and "PS1" not in out


async def test_each_run_starts_with_nothing_another_run_left(agent_dir, mode):
    """Issue 14: the second run of the same agent user read what the first left in /tmp, /dev/shm,
    a System V segment and its workspace."""
    first = AgentIdentity.acquire()
    user = first.isolation.user
    ws1 = agent_dir / "ws1"
    ws1.mkdir()
    first.give(ws1)
    one = Sandbox(first, ws1, agent_dir / "tmp1")
    made = await _sh(one, "for d in /tmp /var/tmp /dev/shm; do echo left-by-run-1 > $d/leftover-$$ && echo ok; done; "
                          "echo left-by-run-1 > solution.txt; ipcmk -M 4096 >/dev/null && echo shm")
    assert made.count("ok") >= 2 and "shm" in made
    await one.close()
    first.release()
    second = AgentIdentity.acquire(user=user)
    try:
        assert second.isolation.user == user
        ws2 = agent_dir / "ws2"
        ws2.mkdir()
        second.give(ws2)
        two = Sandbox(second, ws2, agent_dir / "tmp2")
        seen = await _sh(two, f"cat /tmp/leftover-* /var/tmp/leftover-* /dev/shm/leftover-* {ws1}/solution.txt 2>&1; "
                              "ipcs -m | awk -v me=$(id -un) '$3 == me && $5 == 4096' | wc -l")
        await two.close()
    finally:
        second.release()
    assert "left-by-run-1" not in seen
    assert seen.strip().splitlines()[-1] == "0"  # no segment of 4096 bytes left for this user


def test_a_scorer_naming_a_protected_file_does_not_expose_it(agent_dir, mode):
    """Paths on a scoring command's line become visible in its namespace, but only those the agent
    user could read anyway: a file inside a root-only directory stays out of reach."""
    from rebench_core.sandbox import run_as_agent

    closed = agent_dir / "closed"
    closed.mkdir(mode=0o700)
    (closed / "heldout.jsonl").write_text("held-out-line")
    os.chmod(closed / "heldout.jsonl", 0o644)
    staged = agent_dir / "staged.txt"
    staged.write_text("staged-input")
    os.chmod(staged, 0o644)
    identity = AgentIdentity.acquire()
    try:
        secret = run_as_agent(["cat", str(closed / "heldout.jsonl")], cwd=agent_dir, timeout=20, identity=identity)
        given = run_as_agent(["cat", str(staged)], cwd=agent_dir, timeout=20, identity=identity)
    finally:
        identity.release()
    assert "held-out-line" not in secret.stdout and secret.returncode != 0
    assert given.stdout == "staged-input"
