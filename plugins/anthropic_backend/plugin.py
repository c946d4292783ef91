"""Registers the `anthropic` backend lazily: nothing here imports the SDK."""

from rebench_core import hookimpl


@hookimpl
def rebench_register_model_backends(register):
    register("anthropic", "rebench_plugins.anthropic_backend.backend:AnthropicBackend", claims=("claude-*",),
             requires="rebench-harness[anthropic]")
