"""`local/<folder>` models (save_pretrained folders: a finetune, rl_qa's judge) on transformers.

Such a folder comes out of torch, so torch is there to run it. The decoding loop (generation.py)
keeps the previous call's KV cache for the next prompt, and tool calls are constrained with
llguidance (constraint.py), steered by budget so that a call always finishes within max_tokens.
"""

from __future__ import annotations

import threading
from typing import Any

from rebench_core.types import ToolSpec

from .calls import ToolChoice
from .constraint import GrammarEngine
from .generation import PrefixCache, generate
from .sampling import GenerationCancelled, GenerationResult, Sampling
from .loader import TOKENIZER_LOCK, LoadedModel, load_model, load_tokenizer
from .models import LocalModelSpec


class TransformersEngine:
    def __init__(self, spec: LocalModelSpec, threads: int) -> None:
        self.spec = spec
        self.threads = threads

    def chat_ids(self, turns: list[dict[str, str]]) -> list[int]:
        tokenizer = load_tokenizer(self.spec)
        with TOKENIZER_LOCK:
            encoded = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True)
        return list(encoded["input_ids"])

    def generate(self, prompt: list[int], sampling: Sampling, tools: list[ToolSpec], choice: ToolChoice | None,
                 thinking_tokens: int, cancel: threading.Event) -> GenerationResult:
        import torch

        loaded = load_model(self.spec)
        constraint = None
        if choice is not None and choice.mode != "none":
            constraint = grammar_engine(loaded).constraint(tools, choice, max_prose_tokens=thinking_tokens)
        with loaded.lock:  # one generation at a time per model: two would only share the two cores
            if cancel.is_set():
                raise GenerationCancelled()
            threads_before = torch.get_num_threads()
            torch.set_num_threads(self.threads)  # OpenMP keeps it per thread: set in the worker, restored
            try:
                return generate(loaded.model, loaded.tokenizer, prompt, sampling,
                                stop_token_ids=loaded.stop_token_ids, constraint=constraint, cancel=cancel,
                                prefix=loaded.extra("prefix", PrefixCache))
            finally:
                torch.set_num_threads(threads_before)


def grammar_engine(loaded: LoadedModel) -> Any:
    return loaded.extra("grammar", lambda: GrammarEngine(loaded.tokenizer, loaded.model.config.vocab_size))
