"""Where a study's runs execute: `local` (processes of this machine, the default) or `ray` (tasks
of a Ray cluster, `pip install 'rebench-harness[ray]'`). Both take the same `RunOrder`s, start each
run through `rebench_core.study_run.execute`, report to the study board, and on SIGINT/SIGTERM stop
every run soundly (it ends `interrupted`; the next invocation resumes it) before returning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..environment import Resources
from ..runconfig import RunConfig
from ..study_board import StudyBoard
from ..study_run import Outcome
from ..study_spec import Job


@dataclass
class RunOrder:
    """One run to execute: its config (`out_dir` is the run directory on the submitting machine),
    what it needs of a machine, its study log, and the names of the environment variables holding
    the secrets it needs (a provider's API key), which a remote executor forwards."""

    job: Job
    config: RunConfig
    resources: Resources
    log: Path
    secrets: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.job.key


def report(board: StudyBoard, order: RunOrder, outcome: Outcome) -> None:
    if outcome.final:
        board.finished(order.key, order.job.cell, order.job.label, outcome.summary)
    elif outcome.state == "not started":
        board.unfinished(order.key, order.job.cell, "stopped before it started")
    elif outcome.state == "ended unfinished":
        board.unfinished(order.key, order.job.cell, f"its process ended without a summary (see {order.log}); "
                                                    f"the next invocation resumes it")
    else:
        board.unfinished(order.key, order.job.cell, "interrupted; the next invocation resumes it")
