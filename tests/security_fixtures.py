"""What the security tests share: the two isolation modes under root, a sandbox in each, a real
harness run, and checks on the processes left behind."""

from __future__ import annotations

import asyncio
import json
import random
import time

import psutil
import pytest
from conftest import needs_root

from rebench_core.harness import RunConfig, run
from rebench_core.limits import Limits
from rebench_core.sandbox import AgentIdentity, Sandbox, namespace_problem, view

__all__ = ["box", "gone", "harness_run", "mode", "needs_root", "unique_seconds"]


@pytest.fixture(params=["namespaces", "permissions"])
def mode(request, monkeypatch, tmp_path):
    """`namespaces`: bubblewrap in force; `permissions`: the fallback without it (file permissions
    and kill-by-uid only), as on a machine without bubblewrap. The fallback closes the git
    directories of the real checkouts and the caches under $HOME to other users; the tests give it a
    home of their own and no checkouts, so that this machine's are left as they are."""
    if request.param == "namespaces" and namespace_problem() is not None:
        pytest.skip(f"no namespaces here: {namespace_problem()}")
    if request.param == "permissions":
        monkeypatch.setenv("REBENCH_NO_NAMESPACES", "1")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        monkeypatch.setattr(view, "checkouts", lambda: ())
    return request.param


@pytest.fixture
async def box(agent_dir, mode):
    identity = AgentIdentity.acquire()
    assert bool(identity.isolation.namespaces) == (mode == "namespaces")
    workspace = agent_dir / "ws"
    workspace.mkdir()
    identity.give(workspace)
    sandbox = Sandbox(identity, workspace, agent_dir / "tmp", output_limit_chars=2000)
    yield sandbox
    await sandbox.close()
    identity.release()


def harness_run(registry, tmp_path, commands, python=(), env="guess_number", **settings):
    """One real run through the harness (scripted model, the `commands` scaffold)."""
    model = tmp_path / "script.json"
    model.write_text(json.dumps({"turns": []}))
    config = RunConfig(environment=env, scaffold="commands", model=f"scripted/{model}", size="small",
                       limits=Limits(time_s=120), out_dir=tmp_path / "run", cache_dir=tmp_path / "cache", grace_s=2,
                       scaffold_settings={"commands": list(commands), "python": list(python), **settings})
    return asyncio.run(run(config, registry))


def unique_seconds() -> str:
    """A sleep duration no other process on this shared machine is likely to be running."""
    return f"{random.randint(300, 900)}.{random.randint(0, 10**6)}"


def gone(needle: str, within_s: float = 5.0) -> bool:
    """Whether no live process has `needle` in its command line (SIGKILL lands asynchronously)."""
    deadline = time.monotonic() + within_s
    while True:
        alive = [p for p in psutil.process_iter(["cmdline", "status"])
                 if needle in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return not alive
        time.sleep(0.1)
