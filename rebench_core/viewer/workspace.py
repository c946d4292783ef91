"""The workspace as a run ended, against the workspace it started from.

The harness keeps the starting workspace's regular files (up to 1 MiB each) in
`RUN_DIR/workspace_start.tar.gz`; runs from before it have none, and then only the ending files
are listed. The workspace is the agent's: it is read without following symbolic links, only
regular files are opened, and nothing larger than `SHOWN_BYTES` is read.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import json
import os
import stat
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

START_ARCHIVE = "workspace_start.tar.gz"
SHOWN_BYTES = 1 << 20
MAX_FILES = 5000
DIFF_CONTEXT = 3


@dataclass
class FileEntry:
    path: str
    status: str  # "added", "changed", "deleted", "same", or "unknown" (no starting copy to compare with)
    size: int | None = None
    start_size: int | None = None
    binary: bool = False
    note: str = ""  # why it cannot be shown, if it cannot

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def workspace_dir(run_dir: Path) -> tuple[Path | None, str]:
    """Where the run's workspace is, and a note when it is not the finished one."""
    ending = run_dir / "workspace"
    if ending.is_dir():
        return ending, ""
    try:  # a running run that works in a staging directory (config.json's agent_workspace)
        staged = Path(json.loads((run_dir / "config.json").read_text())["agent_workspace"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, "this run directory has no workspace/"
    if staged.is_dir():
        return staged, f"the run works in {staged}; this is that workspace as it is now"
    return None, "this run directory has no workspace/"


def starting_files(run_dir: Path) -> dict[str, bytes] | None:
    """The starting workspace's files by relative path, or None when the run has no archive of them."""
    path = run_dir / START_ARCHIVE
    if not path.is_file():
        return None
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.isreg() and member.size <= SHOWN_BYTES:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        files[_clean(member.name)] = handle.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ValueError(f"{START_ARCHIVE} cannot be read: {exc}") from None
    return files


def _clean(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)


def _ending_files(root: Path) -> tuple[dict[str, os.stat_result], list[str]]:
    """Regular files under root (links not followed), and a note per thing left out."""
    found: dict[str, os.stat_result] = {}
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                if len(found) >= MAX_FILES:
                    skipped.append(f"more than {MAX_FILES} files: the rest are not listed")
                    return found, skipped
                found[rel] = st
            elif stat.S_ISLNK(st.st_mode):
                skipped.append(f"{rel} is a symbolic link to {os.readlink(full)} (not followed)")
    return found, skipped


def read_file(root: Path, rel: str) -> bytes:
    """A regular file inside root, refusing links and anything that resolves outside root."""
    full = os.path.join(root, rel)
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{rel} is a symbolic link: not followed") from None
        raise
    try:
        st = os.fstat(fd)
        real = os.path.realpath(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else os.path.realpath(full)
        if not stat.S_ISREG(st.st_mode) or not real.startswith(os.path.realpath(root) + os.sep):
            raise ValueError(f"{rel} is not a regular file inside the workspace")
        if st.st_size > SHOWN_BYTES:
            raise ValueError(f"{rel} has {st.st_size:,} bytes; only files up to {SHOWN_BYTES:,} bytes are shown")
        return os.read(fd, SHOWN_BYTES + 1)[:SHOWN_BYTES]
    finally:
        os.close(fd)


def _is_binary(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def compare(run_dir: Path) -> dict[str, Any]:
    """Every file of the ending workspace and of the starting one, each with its status."""
    root, note = workspace_dir(run_dir)
    notes = [note] if note else []
    try:
        start = starting_files(run_dir)
    except ValueError as exc:
        start, notes = None, notes + [str(exc)]
    if start is None:
        notes.append(f"this run has no {START_ARCHIVE} (harnesses before log version 2 did not keep the starting "
                     "workspace), so there is no diff against the starting solution")
    ending, skipped = _ending_files(root) if root is not None else ({}, [])
    entries = []
    for rel, st in ending.items():
        entry = FileEntry(rel, "unknown" if start is None else "added", size=st.st_size)
        if start is not None and rel in start:
            entry.start_size = len(start[rel])
            if st.st_size == len(start[rel]) and st.st_size <= SHOWN_BYTES:
                try:
                    same = hashlib.sha256(read_file(root, rel)).digest() == hashlib.sha256(start[rel]).digest()
                except (OSError, ValueError) as exc:
                    same, entry.note = False, str(exc)
                entry.status = "same" if same else "changed"
            else:
                entry.status = "changed"
        if st.st_size > SHOWN_BYTES:
            entry.note = f"{st.st_size:,} bytes: too large to show"
        entries.append(entry)
    for rel, data in (start or {}).items():
        if rel not in ending:
            entries.append(FileEntry(rel, "deleted", start_size=len(data), binary=_is_binary(data)))
    entries.sort(key=lambda e: e.path)
    return {"workspace": str(root) if root else None, "has_start": start is not None, "notes": notes + skipped,
            "files": [e.to_dict() for e in entries]}


def file_view(run_dir: Path, rel: str) -> dict[str, Any]:
    """One file: its ending text, and the unified diff against its starting version when there is one."""
    root, _ = workspace_dir(run_dir)
    start = starting_files(run_dir)
    before = None if start is None else start.get(_clean(rel))
    after: bytes | None = None
    problem = ""
    if root is not None:
        try:
            after = read_file(root, rel)
        except FileNotFoundError:
            after = None
        except (OSError, ValueError) as exc:
            problem = str(exc)
    if problem:
        return {"path": rel, "problem": problem}
    if after is None and before is None:
        return {"path": rel, "problem": f"{rel} is in neither the ending nor the starting workspace"}
    binary = any(_is_binary(d) for d in (before, after) if d is not None)
    view: dict[str, Any] = {"path": rel, "binary": binary, "has_start": start is not None}
    if binary:
        view["problem"] = "a binary file: not shown"
        return view
    view["text"] = after.decode("utf-8") if after is not None else None
    if start is not None:
        a = (before or b"").decode("utf-8").splitlines()
        b = (after or b"").decode("utf-8").splitlines()
        view["diff"] = "\n".join(difflib.unified_diff(a, b, f"start/{rel}" if before is not None else "/dev/null",
                                                      f"end/{rel}" if after is not None else "/dev/null",
                                                      n=DIFF_CONTEXT, lineterm=""))
    return view
