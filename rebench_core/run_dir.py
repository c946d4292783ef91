"""The run directory on disk: its layout, its permissions, config.json, and the workspace's place.

The run directory is root-only where the harness runs as root: the agent may pass through it
(0711) to its workspace and read nothing else; config.json, events.jsonl, harness.log and
summary.json are 0600. When the agent user cannot reach the run directory at all (a 0700 home
above it), the workspace lives in a staging directory of the agent identity's, which puts it back
into the run directory when the identity is released (or, if the harness is killed, its keeper does).
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

from . import events as ev
from .sandbox import AgentIdentity, agent_can_reach, move_tree

WORKSPACE_START = "workspace_start.tar.gz"
SNAPSHOT_MAX_FILE_BYTES = 1 << 20


class RunDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.workspace = path / "workspace"
        self.state_dir = path / "scaffold"

    @property
    def events(self) -> Path:
        return self.path / ev.EVENTS_FILE

    def create(self, overwrite: bool, resuming: bool) -> None:
        """Make (or empty, with `overwrite`) the run directory and the scaffold's state directory."""
        self.path.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in (ev.CONFIG_FILE, ev.EVENTS_FILE, ev.SUMMARY_FILE, WORKSPACE_START, "harness.log"):
                (self.path / name).unlink(missing_ok=True)
            for name in ("workspace", "scaffold"):
                shutil.rmtree(self.path / name, ignore_errors=True)
        os.chmod(self.path, 0o711)  # the agent may pass through to its workspace, and no further
        self.state_dir.mkdir(mode=0o700, exist_ok=resuming)

    def place_workspace(self, identity: AgentIdentity, resuming: bool) -> Path:
        """Where the agent's workspace lives during the run (see the module docstring)."""
        if identity.as_other_user and not agent_can_reach(self.path):
            staging = identity.scratch_dir("rebench-staging-", restore_to=self.path / "workspace")
            os.chmod(staging, 0o711)
            if resuming and (problem := move_tree(self.path / "workspace", staging / "workspace")) is not None:
                raise RuntimeError(f"cannot stage the workspace to resume: {problem}")
            self.workspace = staging / "workspace"
        self.workspace.mkdir(exist_ok=resuming)
        return self.workspace

    def write_config(self, data: dict[str, Any]) -> None:
        """config.json, replaced whole (never half-written), root-only."""
        tmp = self.path / f".{ev.CONFIG_FILE}.tmp"
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(ev.dumps(data) + "\n")
        os.replace(tmp, self.path / ev.CONFIG_FILE)

    def snapshot_workspace(self) -> None:
        """The starting workspace's regular files up to 1 MiB, for the viewer's diff against the
        end. Written before the agent's first command, so it holds only what setup staged."""
        path = self.path / WORKSPACE_START
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w:gz") as tar:
            for root, dirs, files in os.walk(self.workspace):
                dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
                for name in sorted(files):
                    full = Path(root, name)
                    info = full.lstat()
                    if full.is_symlink() or not full.is_file() or info.st_size > SNAPSHOT_MAX_FILE_BYTES:
                        continue
                    tar.add(full, arcname=str(full.relative_to(self.workspace)), recursive=False)
