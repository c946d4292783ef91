"""rebench-doctor: check that this machine can isolate agents and run the installed models, and
optionally fix what it can.

Under root, agent commands run as an unprivileged user that must be able to run the harness's
Python; a 0700 home directory above it (pyenv under /root, say) blocks that. `--fix` lets other
users pass through (o+x, not list) the directories in the way, and says which. Each model backend
is imported, and asked what its models lack (an SDK extra, weights): each gap is one line with the
command that fills it (a missing optional backend is reported, not a failure).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..registry import PluginError, Registry
from ..sandbox import agent_python_problem, first_closed_parent
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
    p.add_argument("--fix", action="store_true", help="chmod o+x the directories that block the agent user")
    add_version(p)
    args = p.parse_args(argv)
    failed = False
    problem = agent_python_problem()
    if problem is None:
        mode = "a dedicated unprivileged agent user" if os.geteuid() == 0 else \
            "the harness's own user (not root: the protected directory is readable by the agent)"
        print(f"ok: agent commands will run as {mode}")
    elif args.fix:
        python = Path(os.path.realpath(sys.executable))
        while (closed := first_closed_parent(python)) is not None:
            os.chmod(closed, os.stat(closed).st_mode | 0o001)
            print(f"fixed: {closed} now lets other users pass through (o+x), so the agent user can run {python}")
    else:
        print(f"problem: {problem}", file=sys.stderr)
        failed = True
    # Backends are optional extras: what one lacks is reported, and is no failure of the machine.
    for line in model_problems(registry_or_exit()):
        print(f"missing: {line}", file=sys.stderr)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
