"""Registers the `litellm` backend lazily: nothing here imports litellm. It claims no bare names
(the openai and anthropic backends own those); use it as `litellm/PROVIDER/MODEL`."""

from rebench_core import hookimpl


@hookimpl
def rebench_register_model_backends(register):
    register("litellm", "rebench_plugins.litellm_backend.backend:LitellmBackend", requires="rebench-harness[litellm]")
