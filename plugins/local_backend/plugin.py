"""Registers the `local` backend lazily: nothing here imports torch or transformers."""

from rebench_core import hookimpl

from .models import MODELS


@hookimpl
def rebench_register_model_backends(register):
    register("local", "rebench_plugins.local_backend.backend:LocalBackend", claims=tuple(MODELS),
             requires="rebench-harness[local]")
