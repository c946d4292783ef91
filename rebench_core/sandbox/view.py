"""What agent commands can see: a mount namespace, built with bubblewrap, on an allow-list.

Agent commands run in their own mount, PID and IPC namespaces. The root of their file system is
empty except what is listed here: the system directories (read-only), the Python that runs them,
the harness's own packages, the programs on their PATH (read-only), and the places the run gives
them to write (the workspace, the run's scratch). /tmp, /var/tmp and /dev/shm are empty in-memory
file systems private to the namespace, and /proc shows only the namespace's processes. Everything else on the machine is
absent: home directories (/root included, with its caches), other checkouts, data directories,
other runs' leftovers. Where something to hide lies inside what is shown (a reference solution
shipped in a package, the checkout's git objects when it lives under /opt, a cache under /var), it
is covered: an empty tmpfs over a directory, /dev/null over a file.

`protected_copies` says where copies of protected material live beside the installed files (git
objects, sibling worktrees, caches), for hiding here and, without namespaces, for `make_private`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterable, Mapping

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/var", "/run", "/sys",
               "/nix", "/snap")
PRIVATE_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
HIDE_ENV = "REBENCH_HIDE"  # more paths to hide, separated by ':' (data kept outside the package, say)


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


def python_roots() -> list[Path]:
    """The Python installation(s) agent commands run: the venv and the interpreter it points at."""
    exe = _real(sys.executable)
    roots = {_real(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    roots.add(exe.parent.parent if exe.parent.name == "bin" else exe.parent)
    return sorted(roots)


@functools.lru_cache(maxsize=1)
def package_roots() -> tuple[Path, ...]:
    """Where the harness's own packages and the plugins' live (scorers run files from there)."""
    names = {"rebench_core", *(ep.module.split(".")[0] for ep in entry_points(group="rebench"))}
    roots: set[Path] = set()
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            roots.update(_real(p) for p in spec.submodule_search_locations)
        elif spec.origin:
            roots.add(_real(spec.origin))
    return tuple(sorted(roots))


def program_prefix(exe: str | Path) -> Path:
    """What an executable needs beside itself: its installation prefix (PREFIX for PREFIX/bin/x,
    when PREFIX has a lib directory: a toolchain, say), else only its own directory."""
    exe = _real(exe)
    prefix = exe.parent.parent
    if exe.parent.name == "bin" and prefix != Path("/") and (prefix / "lib").is_dir():
        return prefix
    return exe.parent


def is_program(value: str) -> bool:
    return value.startswith("/") and os.path.isfile(value) and os.access(value, os.X_OK)


def program_roots(env: Mapping[str, str]) -> list[Path]:
    """What the programs named in an agent command's environment need: the PATH directories, and
    the installation prefix of any executable a variable points at (RUSTC=.../bin/rustc, say)."""
    roots = {_real(e) for e in env.get("PATH", "").split(":") if e.startswith("/") and os.path.isdir(e)}
    roots.update(program_prefix(value) for value in env.values() if is_program(value))
    return sorted(roots)


@dataclass(frozen=True)
class Checkout:
    """A git checkout holding one of our packages: its root, its git directory, and its siblings
    (the other worktrees sharing the same objects, each a full copy of the project)."""

    root: Path
    git_dir: Path
    worktrees: tuple[Path, ...]


def _checkout_of(path: Path) -> Checkout | None:
    for root in [path, *path.parents]:
        dot_git = root / ".git"
        if dot_git.is_dir():
            common = dot_git
        elif dot_git.is_file():
            text = dot_git.read_text(errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None
            own = (root / text.removeprefix("gitdir:").strip()).resolve()
            pointer = own / "commondir"
            common = (own / pointer.read_text().strip()).resolve() if pointer.is_file() else own
        else:
            continue
        trees = {common.parent} if common.name == ".git" else set()
        for gitdir_file in (common / "worktrees").glob("*/gitdir"):
            with_git = Path(gitdir_file.read_text(errors="replace").strip())
            trees.add(with_git.parent)
        trees.discard(root)
        return Checkout(_real(root), _real(common), tuple(sorted(_real(t) for t in trees if t.exists())))
    return None


def _readable_checkout_of(path: Path) -> Checkout | None:
    try:
        return _checkout_of(path)
    except OSError:  # a git directory we cannot read is one the agent (no more privileged) cannot either
        return None


@functools.lru_cache(maxsize=1)
def checkouts() -> tuple[Checkout, ...]:
    found = {c for p in package_roots() if (c := _readable_checkout_of(p)) is not None}
    return tuple(sorted(found, key=lambda c: c.root))


def cache_roots() -> list[Path]:
    """The harness user's caches: rebench's (prepared assets, calibration), pip's (built wheels hold
    every shipped file), and the rest of ~/.cache."""
    from ..runconfig import default_cache_root

    roots = [default_cache_root(), Path.home() / ".cache"]
    roots += [Path(os.environ[v]) for v in ("REBENCH_CACHE", "PIP_CACHE_DIR", "XDG_CACHE_HOME") if os.environ.get(v)]
    return sorted({_real(r) for r in roots})


def protected_copies(private: Iterable[Path] = ()) -> list[Path]:
    """Other places protected material lives: the git directories of our checkouts (every committed
    reference solution is in their objects), the counterparts of `private` in sibling worktrees, the
    compiled copies of private modules, the caches, and whatever REBENCH_HIDE names."""
    copies = set(cache_roots())
    extra = [Path(p) for p in os.environ.get(HIDE_ENV, "").split(":") if p.startswith("/")]
    copies.update(_real(p) for p in extra)
    for path in private:  # a private module, once imported, has a compiled copy beside it
        path = Path(path)
        if path.suffix == ".py":
            copies.update(_real(c) for c in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"))
    for checkout in checkouts():
        copies.add(checkout.git_dir)
        for path in private:
            real = _real(path)
            if checkout.root in real.parents:
                copies.update(tree / real.relative_to(checkout.root) for tree in checkout.worktrees)
    return sorted(c for c in copies if os.path.lexists(c))


@dataclass
class View:
    """One agent command's file system, in the order it is built: `covered` (emptied, so that only
    parts of it come back), `readable`, the private scratch, `given` (what a scorer names on the
    command line), then `hidden` (emptied again inside what is shown) and `writable`."""

    covered: list[Path] = field(default_factory=list)
    readable: list[Path] = field(default_factory=list)
    given: list[Path] = field(default_factory=list)  # readable, even inside the private /tmp
    hidden: list[Path] = field(default_factory=list)
    writable: list[Path] = field(default_factory=list)


def standard_view(hidden: Iterable[Path], writable: Iterable[Path], env: Mapping[str, str],
                  given: Iterable[Path] = ()) -> View:
    """The view every agent command gets: our packages, Python and programs readable; checkouts,
    caches, protected copies and `hidden` invisible; `given` readable and `writable` writable."""
    given = list(given)
    view = View(given=[_real(g) for g in given if not is_program(str(g))])
    for checkout in checkouts():
        view.covered += [checkout.root, *checkout.worktrees]
    view.readable = [*python_roots(), *package_roots(), *program_roots(env),
                     *(program_prefix(g) for g in given if is_program(str(g)))]
    view.hidden = [*protected_copies(hidden), *(_real(h) for h in hidden)]
    view.writable = [_real(w) for w in writable]
    return view


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _ancestors(path: str) -> list[str]:
    """'/a/b/c' -> ['/a', '/a/b'] (top down, without '/' and the path itself)."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


class _Mounts:
    """bubblewrap arguments, creating each missing parent directory 0711 (bubblewrap's own are 0700,
    which an agent user could not pass through; like the run directory, these let others pass, not
    list) and knowing what exists inside at each step. Paths are real paths, as strings."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.mounts: list[tuple[str, str, str | None]] = []  # (destination, kind, host source)
        self.made: set[str] = {"/"}

    def exists(self, path: str) -> bool:
        for dest, kind, source in reversed(self.mounts):
            if path == dest:
                return True
            if _inside(path, dest):
                if kind == "bind" and source is not None:
                    return os.path.lexists(source + path[len(dest.rstrip("/")):])
                return path in self.made
        return path in self.made

    def _parents(self, dest: str) -> None:
        for parent in _ancestors(dest):
            if not self.exists(parent):
                self.args += ["--perms", "0711", "--dir", parent]
                self.made.add(parent)

    def bind(self, source: str, dest: str, writable: bool = False, device: bool = False) -> None:
        self._parents(dest)
        # --bind-try: a scoring directory another thread's command had open may be gone by the time
        # bubblewrap mounts it, and is then of no use to this command either
        flag = "--dev-bind" if device else "--bind-try" if writable else "--ro-bind"
        self.args += [flag, source, dest]
        self.mounts.append((dest, "bind", source))

    def tmpfs(self, dest: str, mode: int, size: int | None = None) -> None:
        self._parents(dest)
        self.args += ["--perms", f"{mode:04o}", *(["--size", str(size)] if size else []), "--tmpfs", dest]
        self.mounts.append((dest, "tmpfs", None))

    def symlink(self, target: str, dest: str) -> None:
        self.args += ["--symlink", target, dest]
        self.mounts.append((dest, "link", None))

    def cover(self, path: str) -> None:
        """Make `path` empty if it is visible at this point (a directory: an empty tmpfs; a file:
        /dev/null)."""
        if not self.exists(path):
            return
        if os.path.isdir(path):
            self.tmpfs(path, 0o755)
        else:
            self.bind("/dev/null", path)


def bwrap_argv(view: View, cwd: Path) -> list[str]:
    """The bubblewrap command line (up to and excluding `--`) that builds `view`."""
    m = _Mounts()
    for name in SYSTEM_DIRS:
        if os.path.islink(name):
            m.symlink(os.readlink(name), name)
        elif os.path.isdir(name):
            m.bind(name, name)
    m.bind("/dev", "/dev", device=True)
    for path in map(str, view.covered):
        m.cover(path)
    shown = list(SYSTEM_DIRS)
    for path in map(str, view.readable):
        if os.path.exists(path) and not (any(_inside(path, top) for top in shown) and m.exists(path)):
            m.bind(path, path)
            shown.append(path)
    for name in PRIVATE_SCRATCH:
        if name == "/tmp" or m.exists(name):
            # in memory: /dev/shm at the kernel's default (half of it, as the machine's), /tmp and
            # /var/tmp at a quarter each
            m.tmpfs(name, 0o1777, None if name == "/dev/shm" else _memory_bytes() // 4)
    for path in map(str, view.given):
        if os.path.exists(path):
            m.bind(path, path)
    for path in map(str, view.hidden):
        m.cover(path)
    bound: list[str] = []
    for path in sorted(set(map(str, view.writable)), key=len):
        # one mount per tree: a directory mounted inside another could be neither removed nor renamed
        if os.path.exists(path) and not any(_inside(path, top) for top in bound):
            m.bind(path, path, writable=True)
            bound.append(path)
    return ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--proc", "/proc", *m.args,
            "--chdir", str(_real(cwd))]
