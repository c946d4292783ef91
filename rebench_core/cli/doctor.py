"""rebench-doctor: check that this machine can isolate agents, and optionally fix what it can.

Under root, agent commands run as an unprivileged user that must be able to run the harness's
Python; a 0700 home directory above it (pyenv under /root, say) blocks that. With bubblewrap they
also run in their own namespaces (docs/security.md); without it, isolation rests on file permissions.

`--clean` undoes what killed runs left: processes of agent users that no live harness holds, their
scratch directories (a staged workspace goes back to its run directory), their files in /tmp,
/var/tmp and /dev/shm. `--fix` lets other users pass through (o+x, not list) the directories in the
way of Python, makes every environment's private files unreadable to agent users, and cleans.

Each model backend is imported, and asked what its models lack (an SDK extra, weights): each gap is
one line with the command that fills it (a missing optional backend is reported, not a failure).
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from pathlib import Path

from ..registry import PluginError, Registry
from ..sandbox import USER_PREFIX, agent_python_problem, first_closed_parent, lock_user, make_private, \
    namespace_problem, reap_user
from .common import add_version, registry_or_exit


def model_problems(registry: Registry) -> list[str]:
    """What keeps each installed backend (and each model it claims by name) from running here."""
    problems = []
    for name, registered in sorted(registry.backends.items()):
        try:
            backend = registered.load()
        except PluginError as exc:
            problems.append(str(exc))
            continue
        for model in registered.claims:
            if not any(ch in model for ch in "*?["):  # a glob claims a family, not a model to check
                problems += [f"{name}/{model}: {p}" for p in backend.problems(model)]
    return problems


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="rebench-doctor", description=__doc__)
    p.add_argument("--fix", action="store_true", help="chmod o+x the directories that block the agent user, make "
                                                      "environments' private files private, and --clean")
    p.add_argument("--clean", action="store_true", help="reap what killed runs left (processes, scratch directories)")
    add_version(p)
    args = p.parse_args(argv)
    registry = registry_or_exit()
    root = os.geteuid() == 0
    if args.fix and root:
        fix_python_path()
        protect_private_files(registry)
    if (args.fix or args.clean) and root:
        clean()
    problem = agent_python_problem()
    if problem is not None:
        print(f"problem: {problem} (rebench-doctor --fix does it)", file=sys.stderr)
        raise SystemExit(1)
    ns = namespace_problem()
    if root:
        mode = "a dedicated unprivileged agent user"
    else:
        mode = "the harness's own user" + ("" if ns is None else " (not root: the protected directory is readable "
                                                                 "by the agent)")
    where = "in their own namespaces (bubblewrap)" if ns is None else "without namespaces"
    print(f"ok: agent commands will run as {mode}, {where}")
    if ns is not None:
        print(f"warning: {ns}: agent commands will see the machine's /tmp, /dev/shm and processes, and only file "
              f"permissions keep them from caches and checkouts; install bubblewrap (apt-get install bubblewrap)",
              file=sys.stderr)
    # Backends are optional extras: what one lacks is reported, and is no failure of the machine.
    for line in model_problems(registry):
        print(f"missing: {line}", file=sys.stderr)


def fix_python_path() -> None:
    python = Path(os.path.realpath(sys.executable))
    while (closed := first_closed_parent(python)) is not None:
        os.chmod(closed, os.stat(closed).st_mode | 0o001)
        print(f"fixed: {closed} now lets other users pass through (o+x), so the agent user can run {python}")


def protect_private_files(registry: Registry) -> None:
    """Every registered environment's private files, not only the one a run uses, become 0700/0600."""
    for name in sorted(registry.environments):
        try:
            paths = registry.environment(name).load()().private_paths()
        except Exception as exc:  # a broken plugin must not stop the rest
            print(f"warning: environment {name!r} could not be loaded to protect its files: {exc}", file=sys.stderr)
            continue
        for path in paths:
            make_private(Path(path))


def clean() -> None:
    for entry in sorted(pwd.getpwall(), key=lambda e: e.pw_name):
        if not entry.pw_name.startswith(USER_PREFIX):
            continue
        locks = lock_user(entry.pw_name)
        if locks is None:
            continue  # a live harness holds it
        try:
            for line in reap_user(entry):
                print(f"cleaned: {line}")
        finally:
            for fd in locks:
                os.close(fd)


if __name__ == "__main__":
    main()
