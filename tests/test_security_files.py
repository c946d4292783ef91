"""Files the harness (root) touches on the agent's behalf: none of them can be pointed elsewhere.

The attacks of issue 14 and variants, run as the agent user would: planting links or directories at
the names the harness uses for tool output, long-output copies, Python snippets and the persistent
interpreter's output; links and hard links in trees the harness chowns; a workspace that cannot be
moved back; a run directory an agent user owns.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from security_fixtures import box, harness_run, mode, needs_root  # noqa: F401  (fixtures)

from rebench_core.harness import ConfigError, RunConfig, plan_run
from rebench_core.sandbox import AgentIdentity, chown_tree, make_private, read_agent_file, write_agent_file

pytestmark = needs_root

# where the harness puts this call's output, as the agent finds out
FIND_IO = 'me=$BASHPID; out=$(readlink /proc/$me/fd/1); io=$(dirname "$out")'


def _root_only(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


async def test_output_names_cannot_be_planted_read_or_replaced(box, agent_dir):
    """The issue's attack: the next output file's name, pre-created as a link to a root-only file."""
    secret = _root_only(agent_dir / "root-only.txt", "s3cret-of-root\n")
    attack = (f"{FIND_IO}; echo io=$io; ls $io; "
              f"for n in 1 2 3 4 5 6 7 8 9; do ln -s {secret} $io/out-$n; ln -s {secret} $io/$n.log; done; "
              f'mkdir "$io/out-x"; rm -f "$out"; mv "$out" $io/moved; '
              f"echo planted-$?")
    first = await box.bash(attack, 10)
    assert "Permission denied" in first.output and "planted-1" in first.output
    for _ in range(3):
        later = await box.bash("echo hello", 10)
        assert later.output == "hello\n" and "s3cret" not in later.output
    assert secret.read_text() == "s3cret-of-root\n" and os.stat(secret).st_uid == 0


async def test_the_agent_cannot_write_through_another_calls_output(box, agent_dir):
    """A background job keeps its (unlinked) output open: writing there never reaches a file."""
    target = _root_only(agent_dir / "config.json", "{}")
    await box.bash("(sleep 0.5; echo late-text) & echo started", 10)
    result = await box.bash(f"sleep 1; cat {target} 2>&1; echo done", 10)
    assert "late-text" not in result.output
    assert "Permission denied" in result.output or "No such file" in result.output
    assert target.read_text() == "{}"


@pytest.mark.parametrize("plant", ["link_to_dir", "file", "name_taken_by_dir", "name_taken_by_link"])
async def test_long_outputs_are_saved_without_following_plants(box, agent_dir, plant):
    victim_dir = agent_dir / "root-dir"
    victim_dir.mkdir(mode=0o700)
    victim = _root_only(victim_dir / "output-1.txt", "original")
    saved_dir = box.workspace / ".rebench_outputs"
    if plant == "link_to_dir":
        saved_dir.symlink_to(victim_dir)
    elif plant == "file":
        saved_dir.write_text("not a directory")
    else:
        saved_dir.mkdir()
        (saved_dir / "output-1.txt").mkdir() if plant == "name_taken_by_dir" else \
            (saved_dir / "output-1.txt").symlink_to(victim)
    result = await box.bash("seq 1 20000", 10)  # far over the 2000-character limit
    assert result.truncated and result.output.rstrip().endswith("20000")
    assert victim.read_text() == "original" and os.stat(victim).st_uid == 0
    assert sorted(os.listdir(victim_dir)) == ["output-1.txt"]
    if plant in ("link_to_dir", "file"):
        assert result.full_output_path is None and "could not be saved" in result.output
    else:
        saved = Path(result.full_output_path)
        assert saved.parent == saved_dir and saved.name != "output-1.txt" and not saved.is_symlink()
        assert saved.read_text().splitlines()[-1] == "20000"
        assert os.stat(saved).st_uid == box.identity.isolation.uid


async def test_python_snippets_and_the_interpreter_use_harness_made_files(box, agent_dir):
    secret = _root_only(agent_dir / "shadow", "root-secret")
    # the persistent interpreter learns where its output goes, and plants links at guessed names
    plant = ("import os, glob\nio = os.path.dirname(os.readlink('/proc/self/fd/1'))\nfailed = 0\n"
             "for name in ['out-1', 'snippet-1.py', 'code-1', 'py_server.py']:\n"
             f"    try: os.symlink({str(secret)!r}, os.path.join(io, name))\n"
             "    except OSError: failed += 1\n"
             "print('failed', failed)")
    assert (await box.python(plant, 10)).output.strip() == "failed 4"
    assert (await box.python("print(6 * 7)", 10)).output.strip() == "42"
    assert (await box.python("print('fresh')", 10, persistent=False)).output.strip() == "fresh"
    assert secret.read_text() == "root-secret"


async def test_forged_status_lines_only_fool_the_agent_itself(box):
    """The agent can write to its own shell's report pipe; junk is ignored, nothing breaks."""
    result = await box.bash("echo 'garbage' > /proc/$PPID/fd/1 2>/dev/null; "
                            "head -c 200000 /dev/zero | tr '\\0' x > /proc/$PPID/fd/1 2>/dev/null; echo ok", 10)
    assert result.exit_code in (0, None)
    after = await box.bash("echo still-working", 10)
    assert "still-working" in after.output


def test_chown_tree_never_follows_links_or_hard_links(agent_dir):
    identity = AgentIdentity.acquire()
    try:
        owner = (identity.isolation.uid, identity.isolation.gid)
        outside = agent_dir / "outside"
        outside.mkdir()
        root_file = _root_only(outside / "root-file", "x")
        tree = agent_dir / "tree"
        (tree / "sub").mkdir(parents=True)
        (tree / "sub" / "mine.txt").write_text("m")
        (tree / "link-to-file").symlink_to(root_file)
        (tree / "link-to-dir").symlink_to(outside)
        os.link(root_file, tree / "hard-link")
        os.mkfifo(tree / "fifo")
        chown_tree(tree, owner, private=True)
        assert os.stat(root_file).st_uid == 0 and os.stat(outside).st_uid == 0
        assert os.lstat(tree / "link-to-dir").st_uid == owner[0]
        assert os.stat(tree / "sub" / "mine.txt").st_uid == owner[0] and os.stat(tree / "fifo").st_uid == owner[0]
        assert os.stat(tree).st_mode & 0o077 == 0
    finally:
        identity.release()


def test_chown_tree_is_safe_while_the_agent_swaps_directories_for_links(agent_dir):
    """A race the agent can run while the harness hands it a tree: `sub` flips between a directory
    and a link to a root-only directory; the root-only files never become the agent's."""
    identity = AgentIdentity.acquire()
    try:
        owner = (identity.isolation.uid, identity.isolation.gid)
        target = agent_dir / "target"
        target.mkdir()
        for i in range(50):
            (target / f"f{i}").write_text("root")
        tree = agent_dir / "tree"
        (tree / "sub").mkdir(parents=True)
        for i in range(50):
            (tree / "sub" / f"f{i}").write_text("agent")
        chown_tree(tree, owner)
        swapper = subprocess.Popen(identity.command(
            ["/bin/bash", "-c", f"cd {tree}; while true; do mv sub real; ln -s {target} sub; rm sub; mv real sub; "
                                f"done"], tree, writable=(tree,)), stderr=subprocess.DEVNULL)
        seen_link = False
        try:
            for _ in range(200):
                chown_tree(tree, owner)
                seen_link = seen_link or (tree / "sub").is_symlink()
            assert swapper.poll() is None and seen_link  # the race really ran
        finally:
            swapper.kill()
            swapper.wait()
        assert all(os.stat(target / f"f{i}").st_uid == 0 for i in range(50)) and os.stat(target).st_uid == 0
    finally:
        identity.release()


def test_make_private_and_read_agent_file_do_not_follow_links(agent_dir):
    package = agent_dir / "package"
    (package / "reference").mkdir(parents=True)
    (package / "reference" / "answer.py").write_text("ANSWER = 1")
    elsewhere = agent_dir / "elsewhere.txt"
    elsewhere.write_text("public")
    os.chmod(elsewhere, 0o644)
    (package / "reference" / "link").symlink_to(elsewhere)
    make_private(package / "reference")
    assert os.stat(package / "reference" / "answer.py").st_mode & 0o077 == 0
    assert os.stat(elsewhere).st_mode & 0o077 == 0o044
    workspace = agent_dir / "ws"
    workspace.mkdir()
    os.mkfifo(workspace / "fifo")
    (workspace / "dir").mkdir()
    for name, reason in (("fifo", "not a regular file"), ("dir", "not a regular file"), ("", "not a path")):
        with pytest.raises(ValueError, match=reason):
            read_agent_file(name, workspace)


def test_a_workspace_that_cannot_simply_move_back_still_ends_the_run(registry, mode):
    """The run directory is under a 0700 directory, so the agent works in a staging copy in /tmp;
    it is on another file system (/dev/shm) and the agent left a named pipe, a socket and links in
    it. The run ends, the workspace comes back (without the special files), nothing raises."""
    base = Path("/dev/shm") / f"rebench-test-{os.getpid()}"
    base.mkdir(mode=0o700)
    try:
        commands = ["echo 737 > answer.txt; mkfifo pipe; ln -s /etc/shadow shadow-link; mkdir d; "
                    "python -c \"import socket; socket.socket(socket.AF_UNIX).bind('sock')\"; ls"]
        summary = harness_run(registry, base, commands)
        assert summary["status"] == "submitted" and summary["final_raw_score"] == 0.0
        workspace = base / "run" / "workspace"
        assert (workspace / "answer.txt").read_text() == "737\n" and (workspace / "shadow-link").is_symlink()
        assert os.stat(workspace).st_uid == 0 and os.stat(workspace).st_mode & 0o077 == 0  # handed back
        assert not list(Path("/tmp").glob(f"rebench-staging-*{summary_tag(base)}-*"))
    finally:
        subprocess.run(["rm", "-rf", str(base)])


def summary_tag(base: Path) -> str:
    user = json.loads((base / "run" / "config.json").read_text())["isolation"]["user"]
    return user.removeprefix("rebench-agent-")


def test_a_run_directory_an_agent_user_owns_is_refused(registry, agent_dir, script):
    identity = AgentIdentity.acquire()
    try:
        planted = agent_dir / "out"
        planted.mkdir()
        os.chown(planted, identity.isolation.uid, identity.isolation.gid)
        config = RunConfig(environment="guess_number", scaffold="commands", model=script([]), size="small",
                           out_dir=planted / "run")
        with pytest.raises(ConfigError, match="agent user"):
            plan_run(config, registry)
        config.out_dir = planted
        with pytest.raises(ConfigError, match="agent user"):
            plan_run(config, registry)
        assert list(planted.iterdir()) == []
    finally:
        identity.release()


@pytest.mark.parametrize("plant", ["link_to_dir", "link_at_name", "dir_at_name", "file_at_dir"])
def test_a_scaffolds_saved_output_never_goes_through_a_plant(agent_dir, plant):
    """The modular scaffold (in the harness, as root) saves long outputs into workspace/tool_outputs;
    the agent knows the names it will use."""
    from types import SimpleNamespace

    from rebench_scaffolds.modular.context import StepContext

    workspace = agent_dir / "ws"
    workspace.mkdir()
    os.chown(workspace, 12345, 12345)
    victim_dir = agent_dir / "root-dir"
    victim_dir.mkdir(mode=0o700)
    victim = _root_only(victim_dir / "tool_output_00001_00001.txt", "original")
    folder = workspace / "tool_outputs"
    if plant == "link_to_dir":
        folder.symlink_to(victim_dir)
    elif plant == "file_at_dir":
        folder.write_text("x")
    else:
        folder.mkdir()
        target = folder / "tool_output_00001_00001.txt"
        target.symlink_to(victim) if plant == "link_at_name" else target.mkdir()
    ctx = SimpleNamespace(task=SimpleNamespace(workspace=workspace), settings=SimpleNamespace(output_dir="tool_outputs"),
                          state=SimpleNamespace(step=1, saved_outputs=0))
    saved = StepContext.save_output(ctx, "agent-chosen text")
    assert victim.read_text() == "original" and sorted(os.listdir(victim_dir)) == ["tool_output_00001_00001.txt"]
    if plant == "link_at_name":
        assert Path(saved).read_text() == "agent-chosen text" and os.stat(saved).st_uid == 12345
    else:
        assert saved is None
    with pytest.raises(ValueError, match="not a relative path"):
        write_agent_file("../escape.txt", workspace, b"x")
