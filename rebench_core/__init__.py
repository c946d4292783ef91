"""rebench: run agent scaffolds on ML research-engineering environments, RE-Bench style.

What plugin authors import is exported here. The contract is in `rebench_core.hookspecs` (hooks),
`rebench_core.environment` (environments and their context), `rebench_core.scaffold` (scaffolds
and the task they get) and `rebench_core.backend` (model backends); `rebench_core.testing` has
helpers for a plugin's own tests.
"""

from importlib.metadata import PackageNotFoundError, version

from .backend import ModelAPIError, ModelBackend, ToolMode
from .endpoint import EndpointSpec
from .environment import EnvContext, Environment, Normalization, Resources
from .hookspecs import hookimpl, hookspec
from .model import Model
from .prices import PriceRow
from .sandbox import read_agent_file
from .scaffold import AgentTask, Scaffold
from .types import (Completion, ExecResult, Message, ScoreEntry, ScoreResult, ToolCall, ToolSpec, Usage,
                    UsageSnapshot)

try:
    __version__ = version("rebench-harness")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0+unknown"

__all__ = [
    "AgentTask", "Completion", "EndpointSpec", "EnvContext", "Environment", "ExecResult", "Message",
    "Model", "ModelAPIError", "ModelBackend", "Normalization", "PriceRow", "Resources", "Scaffold", "ScoreEntry",
    "ScoreResult", "ToolCall", "ToolMode", "ToolSpec", "Usage", "UsageSnapshot", "hookimpl", "hookspec",
    "read_agent_file",
]
