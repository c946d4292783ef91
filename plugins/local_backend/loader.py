"""Loads a local model with transformers: `local/<folder>` models, and the catalogued model for
the environments that train or probe it in torch (rl_qa's judge). The agent's catalogued model runs
on OpenVINO instead (openvino_engine.py), with no torch.

A GGUF is converted once into a safetensors cache.

transformers reads GGUF directly but dequantises every tensor to fp32 on each load (about 20 s for
SmolLM2-135M on this 2-core machine, plus about 7 s to rebuild the tokenizer from GGUF metadata).
After the first load we write the dequantised model and tokenizer with `save_pretrained` into the
user cache, and later loads read that (about 2 s). See docs/local_model.md for the figures.

Loaded models are shared by every backend of the process (best-of-k samples, several runs), and one
lock per model serialises generation: two generations at once on two cores only thrash.
"""

from __future__ import annotations

import importlib.util
import structlog
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .models import LocalModelError, LocalModelSpec, converted_dir, gguf_path

log = structlog.get_logger()

_load_lock = threading.Lock()
_extras_lock = threading.Lock()
# A fast tokenizer may reconfigure itself (truncation, padding) inside a call, which fails with
# "Already borrowed" when another thread uses it at that moment: count_tokens runs on the event
# loop while the worker thread decodes, so every use takes this lock (calls are sub-millisecond).
TOKENIZER_LOCK = threading.Lock()
_models: dict[str, LoadedModel] = {}
_tokenizers: dict[str, Any] = {}


@dataclass
class LoadedModel:
    spec: LocalModelSpec
    model: Any       # a transformers PreTrainedModel, fp32, eval mode
    tokenizer: Any   # a transformers fast tokenizer with the model's chat template
    source: str      # "gguf" (converted on this load), "cache" or "folder" (a save_pretrained folder)
    load_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    _extras: dict[str, Any] = field(default_factory=dict)

    @property
    def stop_token_ids(self) -> frozenset[int]:
        """Tokens that end the reply: the chat template's <|im_end|>, <|endoftext|>, and <|im_start|>
        (a new turn beginning means this one is over)."""
        tok = self.tokenizer
        ids = {tok.eos_token_id} | {tok.convert_tokens_to_ids(t)
                                    for t in ("<|im_end|>", "<|endoftext|>", "<|im_start|>")}
        return frozenset(i for i in ids if isinstance(i, int) and i != tok.unk_token_id)

    def extra(self, key: str, build: Any) -> Any:
        """A per-model derived object (the grammar engine's tokenizer, token masks), built once."""
        with _extras_lock:
            if key not in self._extras:
                self._extras[key] = build()
            return self._extras[key]


def require_runtime() -> None:
    """Fail early, saying what to install, when torch or transformers is missing."""
    missing = [name for name in ("torch", "transformers", "gguf") if importlib.util.find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(f"transformers models (local/<folder>) need {', '.join(missing)}; install "
                                  f"them with: pip install 'rebench-harness[local,envs]'")


def load_model(spec: LocalModelSpec, *, use_cache: bool = True) -> LoadedModel:
    """The model, loaded once per process."""
    require_runtime()
    with _load_lock:
        loaded = _models.get(spec.name)
        if loaded is None:
            loaded = _models[spec.name] = _load(spec, use_cache=use_cache)
            # one tokenizer object per model, whether count_tokens loaded it first or not
            loaded.tokenizer = _tokenizers.setdefault(spec.name, loaded.tokenizer)
        return loaded


def load_tokenizer(spec: LocalModelSpec) -> Any:
    """Only the tokenizer (for `count_tokens` before the first call): from the cache when there is
    one, else from the GGUF metadata."""
    require_runtime()
    with _load_lock:
        tok = _tokenizers.get(spec.name)
        if tok is None:
            from transformers import AutoTokenizer

            with _quiet_transformers():
                if spec.folder is not None:
                    tok = AutoTokenizer.from_pretrained(spec.folder)
                elif _is_complete(cached := converted_dir(spec, gguf := gguf_path(spec))):
                    tok = AutoTokenizer.from_pretrained(cached)
                else:
                    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            _require_chat_template(spec, tok)
            _tokenizers[spec.name] = tok
        return tok


def load_uncached(path: Path | str, *, gguf_file: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a GGUF (`gguf_file` in folder `path`) or a converted folder, with no
    process-wide sharing: for benchmarks and the conversion test."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    model.eval()
    return model, tokenizer


def save_converted(model: Any, tokenizer: Any, target: Path) -> None:
    """Write a GGUF-loaded model as plain safetensors into `target`, atomically.

    transformers refuses to save a model that still carries its GGUF `quantization_config`, although
    the weights are already ordinary fp32 tensors; dropping that marker makes it a plain model.
    The folder appears only complete (written beside it, then renamed), so a crash or a second
    process never leaves a half-written cache that a later load would trust.
    """
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with _quiet_transformers():
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        (tmp / "COMPLETE").write_text("converted by rebench from the package's GGUF\n")
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: theirs is as good as ours
            if not _is_complete(target):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load(spec: LocalModelSpec, *, use_cache: bool) -> LoadedModel:
    started = time.perf_counter()
    if spec.folder is not None:
        model, tokenizer = load_uncached(spec.folder)
        _require_chat_template(spec, tokenizer)
        return LoadedModel(spec, model, tokenizer, "folder", time.perf_counter() - started)
    gguf = gguf_path(spec)
    cached = converted_dir(spec, gguf)
    if use_cache and _is_complete(cached):
        model, tokenizer = load_uncached(cached)
        source = "cache"
    else:
        log.info("converting the local model's GGUF to fp32 safetensors (once, about 30 s on 2 cores)",
                 model=spec.name, cache=str(cached) if use_cache else None)
        model, tokenizer = load_uncached(gguf.parent, gguf_file=gguf.name)
        source = "gguf"
        if use_cache:
            try:
                save_converted(model, tokenizer, cached)
            except OSError as exc:  # a read-only home only costs speed next time
                log.warning("could not cache the converted local model", model=spec.name, cache=str(cached),
                            error=str(exc))
    return LoadedModel(spec, model, tokenizer, source, time.perf_counter() - started)


def _require_chat_template(spec: LocalModelSpec, tokenizer: Any) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise LocalModelError(f"local/{spec.name}: the tokenizer has no chat template, so the model cannot "
                              f"be sent chat messages; save a tokenizer that has one (tokenizer.chat_template)")


def _is_complete(folder: Path) -> bool:
    return (folder / "COMPLETE").is_file()


class _quiet_transformers:
    """Hide transformers' weight-loading progress bars and warnings (they flood logs and CI output).
    The GGUF dequantisation bar is plain tqdm and stays: it shows the one-time conversion progressing."""

    def __enter__(self) -> None:
        from transformers.utils import logging as hf_logging

        self._was = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()  # its warnings and notices would print over the live display

    def __exit__(self, *exc: object) -> None:
        from transformers.utils import logging as hf_logging

        if self._was:
            hf_logging.enable_progress_bar()
