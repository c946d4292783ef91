"""File operations the harness performs on the agent's behalf, made safe against the agent.

The agent controls every name inside its workspace and its scratch directories, and it runs while
the harness works there. So the harness, which runs as root, never follows a name the agent could
have changed: it opens directories with O_NOFOLLOW and works relative to their descriptors, creates
files with O_EXCL, reads back only through the descriptor it created, and changes ownership and
modes through descriptors or with AT_SYMLINK_NOFOLLOW. What the agent's commands read and write
goes through `IoDir`, a directory only the harness can change.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Opening an agent's file to change its owner must not block (a named pipe) or follow a link.
O_INODE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)

Owner = tuple[int, int]


def _chown_entry(name: str, dir_fd: int, owner: Owner) -> None:
    """Chown one entry of an open directory without following it. A regular file is chowned through
    a descriptor (so a name swapped for a hard link after a check cannot redirect the change), and a
    file with other hard links is left alone: its other names may be outside the tree."""
    try:
        fd = os.open(name, O_INODE, dir_fd=dir_fd)
    except OSError:  # a symbolic link (ELOOP), a socket (ENXIO), or gone: change the entry itself
        try:
            os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            return
        os.fchown(fd, *owner)
    finally:
        os.close(fd)


def chown_tree(path: Path, owner: Owner, private: bool = False) -> None:
    """Make `path` and everything under it belong to `owner`, never following a symbolic link and
    safe against the tree changing meanwhile (descriptor-based walk). With `private`, the top
    directory loses group and other access, so no other agent user can enter it."""
    parent, name = os.path.split(os.path.abspath(path))
    pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            top = os.open(name, O_DIR, dir_fd=pfd)
        except OSError:  # not a directory (or a link to one): just the entry
            _chown_entry(name, pfd, owner)
            return
        try:
            os.fchown(top, *owner)
            if private:
                os.fchmod(top, stat.S_IMODE(os.fstat(top).st_mode) & ~0o077)
        finally:
            os.close(top)
    finally:
        os.close(pfd)
    for _root, dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
        for entry in dirs + files:
            _chown_entry(entry, dir_fd, owner)


def make_private(path: Path) -> None:
    """Take away other users' access to an installed file or directory (reference solutions that
    ship inside a package): the agent user can no longer read it; the harness still can."""
    path = Path(path)
    if not path.exists() or path.is_symlink():
        return
    os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & ~0o077)
    if not path.is_dir():
        return
    for _root, dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
        for entry in dirs + files:
            st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(entry, stat.S_IMODE(st.st_mode) & ~0o077, dir_fd=dir_fd)


def hand_back(path: Path) -> None:
    """Take a directory the agent owned back at the end of a run: the top becomes the harness's and
    closed to others, so a later run whose agent gets the same user cannot read or change it."""
    try:
        fd = os.open(path, O_DIR)
    except OSError:
        return
    try:
        os.fchown(fd, os.geteuid(), os.getegid())
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def foreign_directory_problem(path: Path, untrusted: Callable[[int], bool]) -> str | None:
    """Why the harness, running as root, must not keep its log in `path`, or None: the directory
    belongs to an untrusted user (an agent), or a directory above it does, or one above it is
    writable by every user without the sticky bit, so another user could swap the run directory
    for one holding links to files of their choosing."""
    if os.geteuid() != 0:
        return None
    path = Path(os.path.abspath(path))
    if path.is_symlink():
        return f"{path} is a symbolic link; give the run directory's real path"
    for candidate in [path, *path.parents]:
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            continue
        if untrusted(st.st_uid):
            return (f"{candidate} belongs to an agent user (uid {st.st_uid}), which could plant links where the "
                    f"harness writes its log; choose an --out that no agent user owns")
        if st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX:
            return (f"{candidate} is writable by every user, so the run directory {path} under it could be "
                    f"replaced; choose an --out under a directory other users cannot change")
    return None


def read_agent_file(path: str | Path, workspace: Path, max_bytes: int = 10_000_000) -> bytes:
    """Read a file the agent wrote, refusing any symlink on the way (so a link to the protected
    directory cannot make a privileged scorer read secrets). Raises ValueError with the reason."""
    rel = Path(path)
    if rel.is_absolute():
        rel = rel.relative_to(workspace)
    if ".." in rel.parts or not rel.parts:
        raise ValueError(f"{path}: not a path of a file inside the workspace ('..' is not allowed)")
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in rel.parts[:-1]:
            try:
                nfd = os.open(part, O_DIR, dir_fd=fd)
            except OSError as exc:
                raise ValueError(f"{rel}: {part} is not a plain directory ({exc.strerror})") from None
            os.close(fd)
            fd = nfd
        try:
            ffd = os.open(rel.parts[-1], O_INODE, dir_fd=fd)
        except FileNotFoundError:
            raise ValueError(f"{rel} does not exist in the workspace") from None
        except OSError as exc:
            raise ValueError(f"{rel} is not a plain file ({exc.strerror}); symlinks are not accepted") from None
        if not stat.S_ISREG(os.fstat(ffd).st_mode):  # a directory, a named pipe, a device
            os.close(ffd)
            raise ValueError(f"{rel} is not a regular file")
        with os.fdopen(ffd, "rb") as f:
            return f.read(max_bytes)
    finally:
        os.close(fd)


def write_agent_file(rel: str | Path, workspace: Path, data: bytes) -> Path:
    """Write a new file into the agent's workspace for it (a scaffold saving a long tool output):
    each directory on the way is opened without following links (missing ones are made), a link or
    file planted at the name is replaced, never written through, and under root the new file and
    directories belong to the workspace's owner. Raises ValueError when a directory on the way is
    not a plain directory."""
    rel = Path(rel)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"{rel}: not a relative path inside the workspace")
    fd = os.open(workspace, O_DIR)
    st = os.fstat(fd)
    owner = (st.st_uid, st.st_gid) if os.geteuid() == 0 else None
    try:
        for part in rel.parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                made = True
            except FileExistsError:
                made = False
            try:
                next_fd = os.open(part, O_DIR, dir_fd=fd)
            except OSError as exc:
                raise ValueError(f"{rel}: {part} is not a plain directory ({exc.strerror})") from None
            os.close(fd)
            fd = next_fd
            if made and owner is not None:
                os.fchown(fd, *owner)
        name = rel.parts[-1]
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(name, dir_fd=fd)  # a planted link goes, its target stays as it was
        try:
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                          dir_fd=fd)
        except OSError as exc:
            raise ValueError(f"{rel}: cannot create it ({exc.strerror})") from None
        with os.fdopen(out, "wb") as f:
            f.write(data)
            if owner is not None:
                os.fchown(f.fileno(), *owner)
        return Path(workspace) / rel
    finally:
        os.close(fd)


def save_copy(directory: Path, sub: str, name: str, source_fd: int, owner: Owner | None) -> Path | None:
    """Copy what `source_fd` holds into `directory/sub/name` (an agent-controlled directory),
    creating the file anew (a different name if `name` is taken) and never following a link the
    agent planted; None when `sub` is not a plain directory."""
    top = os.open(directory, O_DIR)
    try:
        try:
            os.mkdir(sub, 0o755, dir_fd=top)
            created = True
        except FileExistsError:
            created = False
        try:
            sub_fd = os.open(sub, O_DIR, dir_fd=top)
        except OSError:
            return None
    finally:
        os.close(top)
    try:
        if created and owner is not None:
            os.fchown(sub_fd, *owner)
        stem, dot, suffix = name.rpartition(".")
        for attempt in range(100):
            candidate = name if attempt == 0 else f"{stem}-{attempt}{dot}{suffix}"
            try:
                out = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                              dir_fd=sub_fd)
            except FileExistsError:
                continue
            try:
                size, offset = os.fstat(source_fd).st_size, 0
                while offset < size:
                    sent = os.sendfile(out, source_fd, offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent
                if owner is not None:
                    os.fchown(out, *owner)
            finally:
                os.close(out)
            return Path(directory) / sub / candidate
        return None
    finally:
        os.close(sub_fd)


class IoDir:
    """A directory only the harness can change, through which agent commands get their command
    text and their output files: the harness creates each file here (O_EXCL, under a name the agent
    cannot guess, since it cannot list the directory), hands it to the agent user, and reads it back
    only through the descriptor it created. The agent can open these files, but never replace one."""

    def __init__(self, parent: Path, owner: Owner | None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="io-", dir=parent))
        os.chmod(self.path, 0o711)
        self.fd = os.open(self.path, O_DIR)
        self.owner = owner

    def create(self, name: str, data: bytes = b"") -> int:
        """A new file `name`, the agent's to write; returns the harness's descriptor (read/write)."""
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        if data:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        if self.owner is not None:
            os.fchown(fd, *self.owner)
        return fd

    def fifo(self, name: str) -> int:
        """A new named pipe; the harness holds it open for reading and writing (so neither side's
        open blocks and it never reports end-of-file)."""
        os.mkfifo(name, 0o600, dir_fd=self.fd)
        if self.owner is not None:
            os.chown(name, *self.owner, dir_fd=self.fd, follow_symlinks=False)
        return os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=self.fd)

    def remove(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            shutil.rmtree(self.path, ignore_errors=True)


def read_output(fd: int, limit: int) -> tuple[str, str | None, int]:
    """What an output file holds: all of it (and None) when at most `limit` bytes, else its first
    and last `limit // 2` bytes; and its size."""
    size = os.fstat(fd).st_size
    if size <= limit:
        return os.pread(fd, size, 0).decode("utf-8", errors="replace"), None, size
    half = limit // 2
    return (os.pread(fd, half, 0).decode("utf-8", errors="replace"),
            os.pread(fd, half, size - half).decode("utf-8", errors="replace"), size)
