"""Registers the `openai` backend lazily: nothing here imports the SDK."""

from rebench_core import hookimpl

CLAIMS = ("gpt-*", "o1*", "o3*", "o4*", "chatgpt-*")


@hookimpl
def rebench_register_model_backends(register):
    register("openai", "rebench_plugins.openai_backend.backend:OpenAIBackend", claims=CLAIMS,
             requires="rebench-harness[openai]")
