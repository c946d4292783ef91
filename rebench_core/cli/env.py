"""rebench-env: prepare, set up or score one environment by hand, as the harness would.

`setup` records in DIR which agent user the workspace belongs to, and `score` runs the solution as
that same user (waiting while another process holds it), so a directory is always scored by its
workspace's owner, whatever runs concurrently. Both drive the environment through the harness's
own `EnvSession`: prepared, with its endpoint served, closed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ..context import EnvSession
from ..events import dumps
from ..runconfig import default_cache_root
from ..sandbox import USER_PREFIX, AgentIdentity
from ..scoring import checked
from ..settings import SettingsError, validate_settings
from .common import add_version, fail, parse_value, registry_or_exit

AGENT_RECORD = ".rebench-agent"  # in DIR: the agent user that owns DIR/workspace


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="rebench-env", description=__doc__)
    p.add_argument("action", choices=("prepare", "setup", "score"))
    p.add_argument("name", help="environment name")
    p.add_argument("dir", nargs="?", help="setup/score: the directory holding workspace/ and protected/; "
                                          "prepare: the cache root (default $REBENCH_CACHE, else ~/.cache/rebench)")
    p.add_argument("--size", default="full")
    p.add_argument("--variant", default="main")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment setting (env.KEY=VALUE or KEY=VALUE)")
    p.add_argument("--endpoint-model", help="the model behind the metered endpoint of environments that serve one")
    p.add_argument("--paper-constants", action="store_true",
                   help="at full size on other hardware than the paper's, use its normalisation constants")
    add_version(p)
    # Intermixed: `rebench-env setup NAME --size small DIR` (options before DIR) is the usual order.
    args = p.parse_intermixed_args(argv)
    registry = registry_or_exit()
    try:
        env = registry.environment(args.name).load()()
        settings = {k.removeprefix("env."): parse_value(v) for k, _, v in (s.partition("=") for s in args.set)}
        validate_settings(env.Settings, settings, f"environment {env.name!r}")
    except (LookupError, SettingsError) as exc:
        fail(str(exc))
    if args.size not in env.sizes:
        fail(f"environment {args.name!r} has no size {args.size!r}; sizes: {', '.join(env.sizes)}")
    if args.variant not in env.variants:
        fail(f"environment {args.name!r} has no variant {args.variant!r}; variants: {', '.join(env.variants)}")

    def session(cache_root: Path, identity: AgentIdentity | None) -> EnvSession:
        return EnvSession(env, size=args.size, variant=args.variant, cache_root=cache_root, registry=registry,
                          settings=settings, agent=identity, endpoint_model=args.endpoint_model,
                          paper_constants=args.paper_constants)

    if args.action == "prepare":
        with made_directory(Path(args.dir) if args.dir else default_cache_root(), "the cache directory") as cache:
            prepared = session(cache, None)
            try:
                normalization = prepared.prepare()
            finally:
                prepared.close()
        print(dumps({"cache_dir": prepared.ctx.cache_dir, "normalization": normalization}))
        return
    if not args.dir:
        fail(f"rebench-env {args.action} needs DIR (it holds DIR/workspace and DIR/protected)")
    (setup if args.action == "setup" else score)(env, Path(args.dir), session)


class made_directory:
    """Create `path` (and missing parents) for a command, failing with one line when it cannot be
    a directory; if the command then fails, remove what was created."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = Path(path), what
        self.created: Path | None = None

    def __enter__(self) -> Path:
        missing = [p for p in [self.path, *self.path.parents] if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            fail(f"{self.what} {self.path} is a file, not a directory; give a directory")
        except OSError as exc:
            fail(f"cannot create {self.what} {self.path}: {exc.strerror}; give a directory you can write")
        if not os.access(self.path, os.W_OK):
            fail(f"{self.what} {self.path} is not writable; give a directory you can write")
        self.created = missing[-1] if missing else None
        return self.path

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None and self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)


def setup(env, root: Path, session: Any) -> None:
    workspace, protected = root / "workspace", root / "protected"
    if workspace.exists() and (not workspace.is_dir() or any(workspace.iterdir())):
        fail(f"{workspace} exists and is not an empty directory; choose a new DIR")
    with made_directory(root, "DIR"), made_directory(default_cache_root(), "the cache directory") as cache:
        identity = AgentIdentity.acquire()
        try:
            workspace.mkdir(exist_ok=True)
            protected.mkdir(exist_ok=True)
            os.chmod(protected, 0o700)
            identity.protect([Path(p) for p in env.private_paths()])
            live = session(cache, identity)
            try:
                live.prepare()
                instructions = live.setup(workspace, protected)
            finally:
                live.close()
            identity.give(workspace)
            if identity.as_other_user:
                record_user(root, identity.isolation.user)
        finally:
            identity.release()
    print(instructions)


def score(env, root: Path, session: Any) -> None:
    workspace, protected = root / "workspace", root / "protected"
    if not workspace.is_dir() or not protected.is_dir():
        fail(f"{root} has no workspace/ and protected/; run `rebench-env setup {env.name} {root}` first")
    user = recorded_user(root)
    identity = AgentIdentity.acquire(user=user, wait=True)
    try:
        if identity.as_other_user and user is None:  # set up by an earlier version: take it over
            identity.give(workspace)
            record_user(root, identity.isolation.user)
        identity.protect([Path(p) for p in env.private_paths()])
        identity.confine(hidden=[protected, default_cache_root()], writable=[workspace])
        live = session(default_cache_root(), identity)
        try:
            norm = live.prepare()
            entry = checked(live.score(workspace, protected), env.name)
        finally:
            live.close()
    finally:
        identity.release()
    print(dumps({"raw": entry.raw, "valid": entry.valid, "normalized": norm.normalize(entry.raw),
                 "message": entry.message, "details": entry.details}))


def record_user(root: Path, user: str) -> None:
    fd = os.open(root / AGENT_RECORD, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(user + "\n")


def recorded_user(root: Path) -> str | None:
    """The agent user `setup` recorded for DIR (None when running without root or none recorded)."""
    if os.geteuid() != 0:
        return None
    try:
        fd = os.open(root / AGENT_RECORD, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        fail(f"{root / AGENT_RECORD} is not a plain file ({exc.strerror}); remove it to take a new agent user")
    with os.fdopen(fd) as f:
        name = f.read(100).strip()
    record = root / AGENT_RECORD
    if not re.fullmatch(rf"{re.escape(USER_PREFIX)}\d+", name):
        fail(f"{record} names {name!r}, which is not an agent user ({USER_PREFIX}N); remove the file to take a new one")
    return name


if __name__ == "__main__":
    main()
