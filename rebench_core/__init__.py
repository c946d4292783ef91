"""rebench: run agent scaffolds on ML research-engineering environments, RE-Bench style.

What plugin authors import is exported here. The contract is in `rebench_core.hookspecs` (hooks),
`rebench_core.environment` (environments and their context), `rebench_core.scaffold` (scaffolds
and the task they get) and `rebench_core.backend` (model backends); `rebench_core.testing` has
helpers for a plugin's own tests.

Names are imported on first use (PEP 562), so `import rebench_core` costs nothing it does not
need: `rebench-list` and `--help` stay fast.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ModelAPIError": "backend", "ModelBackend": "backend", "ToolMode": "backend",
    "EndpointSpec": "endpoint",
    "EnvContext": "environment", "Environment": "environment", "Normalization": "environment",
    "Resources": "environment",
    "hookimpl": "hookspecs", "hookspec": "hookspecs",
    "Model": "model",
    "PriceRow": "prices",
    "read_agent_file": "sandbox",
    "AgentTask": "scaffold", "Scaffold": "scaffold",
    "Completion": "types", "ExecResult": "types", "Message": "types", "ScoreEntry": "types",
    "ScoreResult": "types", "ToolCall": "types", "ToolSpec": "types", "Usage": "types", "UsageSnapshot": "types",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("rebench-harness")
        except PackageNotFoundError:  # running from a checkout that is not installed
            return "0+unknown"
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rebench_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
