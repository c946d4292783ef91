"""rebench: run agent scaffolds on ML research-engineering environments, RE-Bench style.

The public API for plugin authors is what this module exports; the contract is in
`rebench_core.hookspecs` (hooks), `rebench_core.environment`, `rebench_core.scaffold` and
`rebench_core.backend`.
"""

from .backend import ModelAPIError, ModelBackend
from .environment import Environment, Normalization, Resources
from .hookspecs import hookimpl, hookspec
from .prices import PriceRow
from .scaffold import AgentTask, Scaffold
from .types import (Completion, ExecResult, Message, ModelSpend, ScoreEntry, ScoreResult, ToolCall, ToolSpec,
                    Usage, UsageSnapshot)

__all__ = [
    "AgentTask", "Completion", "Environment", "ExecResult", "Message", "ModelAPIError", "ModelBackend",
    "ModelSpend", "Normalization", "PriceRow", "Resources", "Scaffold", "ScoreEntry", "ScoreResult", "ToolCall",
    "ToolSpec", "Usage", "UsageSnapshot", "hookimpl", "hookspec",
]
