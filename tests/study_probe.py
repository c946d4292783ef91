"""A plugin for the study tests, loaded by run processes (and Ray workers) through an entry point that
`study_helpers.probe_plugin` puts on PYTHONPATH.

`probe` is guess_number's game with a secret 7, plus what the tests observe:
* sizes ask for different resources: `small` the default, `pinned` a custom Ray resource only the
  test cluster's second node has, `impossible` a resource no node has;
* `prepare` prints progress on stdout, as environments did (a study must still read the result);
* the score's details (in events.jsonl, not in the summary) record which node scored it
  (`PROBE_NODE`, set when the node was started) and a digest of the API keys the run could read.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from rebench_core import Environment, Normalization, Resources, ScoreEntry, hookimpl
from rebench_plugins.scripted.backend import ScriptedBackend

SECRET = 7


def digest(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()[:16]


class Probe(Environment):
    name = "probe"
    sizes = ("small", "pinned", "impossible")
    score_timeout_s = 10.0

    def resources(self, size: str) -> Resources:
        custom = {"pinned": {"probe_worker": 1.0}, "impossible": {"no_node_has_this": 1.0}}.get(size, {})
        return Resources(cpus=1, memory_gb=0.25, custom=custom)

    def prepare(self, ctx) -> None:
        print(f"preparing probe at size {ctx.size}: 100%", flush=True)
        print("probe prepare: a diagnostic on stderr", file=sys.stderr, flush=True)

    def setup(self, ctx, workspace: Path, protected_dir: Path) -> str:
        (workspace / "answer.txt").write_text("0\n")
        return "A secret integer between 0 and 1000 is hidden; write it to answer.txt (score: the distance)."

    def score(self, ctx, workspace: Path, protected_dir: Path) -> ScoreEntry:
        try:
            guess = int((workspace / "answer.txt").read_text().strip())
        except ValueError:
            return ScoreEntry.invalid("answer.txt must hold one integer")
        distance = abs(guess - SECRET)
        return ScoreEntry(raw=float(distance), message={"score": distance},
                          details={"node": os.environ.get("PROBE_NODE"), "scripted_key": digest("SCRIPTED_PROBE_KEY"),
                                   "openai_key": digest("OPENAI_API_KEY")})

    def normalization(self, ctx) -> Normalization:
        return Normalization(y_start=float(SECRET), y_ref=0.0)


class KeyedScripted(ScriptedBackend):
    """The scripted model with an API key setting, as a cloud backend has: what a study must keep
    off its files."""

    provider = "keyed"

    class Settings(ScriptedBackend.Settings):
        api_key: str | None = None


@hookimpl
def rebench_register_environments(register):
    register("probe", Probe)


@hookimpl
def rebench_register_model_backends(register):
    register("keyed", KeyedScripted)
