"""Assemble every analysis of a set of runs into one report: a JSON-ready dict plus flat tables.

The console, CSV and HTML outputs all render the same ``Table`` objects, so they cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from pathlib import Path
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .allocations import DEFAULT_BUDGETS_S, HOUR, Allocation, best_allocations, time_allocations
from .estimators import BEST, Estimate, TaskScores, bootstrap_score_at_k, powers_of_two
from .humans import (HUMAN_COST_PER_ATTEMPT_USD, LINE_PERCENTILES, load_human_final_scores,
                     matching_percentile, percentile_curve, summarize_humans)
from .loaders import METR_SOURCE, split_human_outliers
from .normalize import aggregate_of
from .records import HUMAN, HUMAN_HORIZON_S, RunRecord, agent_label, format_duration
from .timeseries import mean_curve

Agent = tuple[str, str, str]


@dataclass
class ReportOptions:
    n_bootstrap: int = 1000
    seed: int | None = 0
    # Human rows above this normalised score are left out (METR's released data has three, 2.16 to
    # 7.86, which the paper's 0.64 average excludes). None keeps them.
    exclude_human_above: float | None = 2.0
    budgets_s: tuple[float, ...] = DEFAULT_BUDGETS_S
    ks: tuple[int, ...] | None = None
    confidence: float = 0.95


@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    empty: str = "Nothing to show."  # the one line shown instead of a table without rows


@dataclass(frozen=True)
class Link:
    """A table cell that links somewhere: the text in the terminal, a link in HTML, the address in CSV."""

    text: str
    href: str

    def __str__(self) -> str:
        return self.text


def viewer_url(run_dir: str) -> str:
    """The run's page in rebench-view at its default address."""
    from urllib.parse import quote

    from ..viewer import DEFAULT_PORT

    return f"http://127.0.0.1:{DEFAULT_PORT}/run{quote(str(Path(run_dir).absolute()))}"


@dataclass
class Report:
    data: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    # Kept for plotting: series that the tables summarise.
    series: dict[str, Any] = field(default_factory=dict)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _group_stats(runs: Sequence[RunRecord]) -> dict[str, Any]:
    valid = [r.final_normalized for r in runs if r.valid]
    tokens = [r.total_tokens for r in runs if r.total_tokens is not None]
    dollars = [r.cost_usd for r in runs if r.cost_usd is not None]
    other_dollars = [r.other_cost_usd or 0.0 for r in runs if not r.is_human]
    counted = [r.counted_s for r in runs if r.counted_s is not None]
    rate_runs = [r for r in runs if r.score_calls is not None and r.counted_s]
    calls_per_hour = (sum(r.score_calls for r in rate_runs) / (sum(r.counted_s for r in rate_runs) / HOUR)
                      if rate_runs else None)
    return {
        "runs": len(runs), "valid_runs": len(valid),
        "mean_score": _mean(valid), "best_score": max(valid) if valid else None,
        "tokens_per_run": _mean(tokens), "dollars_total": sum(dollars) if dollars else None,
        "dollars_per_run": _mean(dollars),
        "other_dollars_per_run": _mean(other_dollars) if any(other_dollars) else None,
        "counted_h_total": sum(counted) / HOUR if counted else None,
        "score_calls_per_hour": calls_per_hour,
    }


# "$ other/run": a metered endpoint's and a judge's dollars, kept out of the agent's "$/run".
_STAT_COLUMNS = ["runs", "valid runs", "mean score", "best score", "tokens/run", "$ total", "$/run",
                 "$ other/run", "counted h", "score calls/h"]
_STAT_KEYS = ["runs", "valid_runs", "mean_score", "best_score", "tokens_per_run", "dollars_total",
              "dollars_per_run", "other_dollars_per_run", "counted_h_total", "score_calls_per_hour"]


def _task_scores(runs: Sequence[RunRecord]) -> list[TaskScores]:
    by_env: dict[str, list[float]] = defaultdict(list)
    aggregate: dict[str, str] = {}
    for r in runs:
        score = r.analysis_score
        if score is not None:
            by_env[r.environment].append(score)
            aggregate[r.environment] = r.aggregate
    return [TaskScores(env, tuple(s), aggregate[env]) for env, s in sorted(by_env.items())]


def _who(r: RunRecord) -> str:
    """Whose runs a row summarises, so that METR's data never reads as ours."""
    if r.is_human:
        return "humans (METR, 8 h)"
    return "agents (METR)" if r.source == METR_SOURCE else "our runs"


def _sort_key(value: Any) -> tuple:
    return tuple((v is None, v if v is not None else 0) for v in value)


def build_report(records: Sequence[RunRecord], options: ReportOptions | None = None) -> Report:
    """Every section of the report for ``records`` (our runs, METR's, or both)."""
    if not records:
        raise ValueError("nothing to report: no runs were loaded")
    return _Builder(list(records), options or ReportOptions()).build()


class _Builder:
    """Builds the report section by section; each section adds to ``data``, ``tables`` and ``series``."""

    def __init__(self, records: list[RunRecord], options: ReportOptions) -> None:
        self.records = records
        self.options = options
        self.notes: list[str] = []
        self.tables: list[Table] = []
        self.series: dict[str, Any] = {}
        kept, self.excluded = split_human_outliers(records, options.exclude_human_above)
        self.agents = [r for r in kept if not r.is_human]
        self.humans = [r for r in kept if r.is_human]
        self.human_source = "the inputs"
        if not self.humans:
            # Our own runs carry no human baseline: compare against METR's, shipped with the package.
            self.human_source = "shipped METR data"
            shipped = [RunRecord(f"metr-human-{env}-{i}", "metr", env, "full", "main", HUMAN, HUMAN, HUMAN_HORIZON_S,
                                 HUMAN, s, aggregate=aggregate_of(env))
                       for env, scores in load_human_final_scores().items() for i, s in enumerate(scores)]
            self.humans, self.excluded = split_human_outliers(shipped, options.exclude_human_above)
        self.everyone = self.agents + self.humans
        self.cells: dict[tuple, list[RunRecord]] = defaultdict(list)
        for r in self.everyone:
            self.cells[r.cell].append(r)
        self.data: dict[str, Any] = {
            "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "options": {"n_bootstrap": options.n_bootstrap, "seed": options.seed,
                        "exclude_human_above": options.exclude_human_above,
                        "budgets_h": [b / HOUR for b in options.budgets_s], "confidence": options.confidence},
            "inputs": {"runs": len(records), "agent_runs": len(self.agents), "human_runs": len(self.humans),
                       "human_source": self.human_source, "sources": sorted({r.source for r in records})},
            "notes": self.notes,
        }

    def build(self) -> Report:
        self.input_notes()
        self.runs()
        self.run_tables()
        self.score_at_k()
        self.allocations()
        self.score_over_time()
        self.cost()
        self.human_comparison()  # the baselines follow our own runs
        return Report(data=_clean(self.data), tables=self.tables, series=self.series)

    def runs(self) -> None:
        """One row per run directory given: what happened in it, before any aggregate."""
        ours = sorted((r for r in self.agents if r.source != METR_SOURCE), key=lambda r: r.path or r.run_id)
        rows, data = [], []
        for r in ours:
            tree = Path(r.path) / "scaffold" / "tree.html" if r.path else None
            view = Link("view", viewer_url(r.path)) if r.path else None
            tree_link = Link("tree", tree.absolute().as_uri()) if tree is not None and tree.is_file() else None
            best = r.best_normalized
            rows.append([r.run_id, r.environment, r.size, r.scaffold, r.model, format_duration(r.time_limit_s),
                         r.status, r.why or ("the scaffold submitted" if r.status == "submitted" else ""),
                         r.model_calls, r.tool_calls, r.score_calls, best, r.final_normalized, r.counted_s,
                         r.cost_usd, view, tree_link])
            data.append({"run": r.run_id, "path": r.path, "environment": r.environment, "size": r.size,
                         "scaffold": r.scaffold, "model": r.model, "time_limit_s": r.time_limit_s,
                         "status": r.status, "why": r.why, "model_calls": r.model_calls, "tool_calls": r.tool_calls,
                         "score_calls": r.score_calls, "best_score": best, "final_score": r.final_normalized,
                         "counted_s": r.counted_s, "cost_usd": r.cost_usd,
                         "viewer_url": view.href if view else None, "aide_tree": str(tree) if tree_link else None})
        self.tables.append(Table(
            "runs", "The runs", ["run", "environment", "size", "scaffold", "model", "time limit", "status",
                                 "why it ended", "model calls", "tool calls", "score calls", "best score",
                                 "final score", "counted s", "dollars", "viewer", "AIDE tree"], rows,
            note="Scores are normalised (0 = the starting solution, 1 = the reference). The viewer links open "
                 "the run's transcript in rebench-view (start it with `rebench-view` over these runs); the AIDE "
                 "tree is the scaffold's own scaffold/tree.html.",
            empty="No run directory among the inputs (only METR's table), so there is no table of runs."))
        self.data["runs"] = data

    def _sorted_cells(self) -> list[tuple]:
        return sorted(self.cells, key=_sort_key)

    def input_notes(self) -> None:
        notes, options = self.notes, self.options
        if self.excluded:
            listed = ", ".join(f"{r.environment} {r.final_normalized:.3f}" for r in self.excluded)
            notes.append(f"Excluded {len(self.excluded)} human run(s) scoring above {options.exclude_human_above:g} "
                         f"as anomalous ({listed}); pass --exclude-human-above none to keep them.")
        elif options.exclude_human_above is None:
            notes.append("All human runs kept (no outlier rule).")
        other_sizes = sorted({r.size for r in self.agents if r.size != "full"})
        if other_sizes:
            notes.append(f"Runs at size {', '.join(other_sizes)} are normalised against that size's own starting "
                         "and reference solutions; METR's humans worked on the full tasks, so comparing the two is "
                         "indicative only.")
        unfinished = [r for r in self.agents if not r.finished]
        if unfinished:
            notes.append(f"{len(unfinished)} agent run(s) did not finish (status error or incomplete): counted in "
                         "the run tables, left out of score@k.")
        no_valid = [r for r in self.agents if r.finished and not r.valid]
        if no_valid:
            notes.append(f"{len(no_valid)} finished agent run(s) have no valid score; score@k counts them as 0 "
                         "(the starting solution).")

    def run_tables(self) -> None:
        env_rows, env_data = [], []
        by_env: dict[tuple[str, str, bool], list[RunRecord]] = defaultdict(list)
        for r in self.everyone:
            by_env[(r.environment, r.size, _who(r))].append(r)
        for (env, size, who), runs in sorted(by_env.items()):
            stats = _group_stats(runs)
            env_data.append({"environment": env, "size": size, "who": who, **stats})
            env_rows.append([env, size, who] + [stats[k] for k in _STAT_KEYS])
        self.tables.append(Table("environments", "Runs per environment",
                                 ["environment", "size", "who"] + _STAT_COLUMNS, env_rows))
        self.data["environments"] = env_data
        cell_rows, cell_data = [], []
        for cell in self._sorted_cells():
            stats = _group_stats(self.cells[cell])
            scaffold, model, size, limit = cell
            cell_data.append({"scaffold": scaffold, "model": model, "size": size, "time_limit_s": limit, **stats})
            cell_rows.append([scaffold, model, size, format_duration(limit)] + [stats[k] for k in _STAT_KEYS])
        self.tables.append(Table("cells", "Runs per scaffold, model and time limit",
                                 ["scaffold", "model", "size", "time limit"] + _STAT_COLUMNS, cell_rows))
        self.data["cells"] = cell_data

    def score_at_k(self) -> None:
        options = self.options
        rows, data = [], []
        curves: dict[tuple, list[Estimate]] = {}
        for cell in self._sorted_cells():
            tasks = _task_scores(self.cells[cell])
            if not tasks:
                continue
            ks = list(options.ks) if options.ks else powers_of_two(max(len(t.scores) for t in tasks))
            estimates = bootstrap_score_at_k(tasks, ks, n_bootstrap=options.n_bootstrap, seed=options.seed,
                                             confidence=options.confidence)
            curves[cell] = estimates
            best_tasks = [len(t.scores) for t in tasks if t.aggregate == BEST] or [len(t.scores) for t in tasks]
            scaffold, model, size, limit = cell
            data.append({"scaffold": scaffold, "model": model, "size": size, "time_limit_s": limit,
                         "tasks": len(tasks), "min_runs_per_task": min(best_tasks),
                         "estimates": [e.to_dict() for e in estimates]})
            rows.extend([agent_label(cell[:3]), format_duration(limit), e.k, e.mean, e.low, e.high, len(tasks),
                         min(best_tasks), ", ".join(e.capped)] for e in estimates)
        self.tables.append(Table(
            "score_at_k", "score@k (unbiased best-of-k, mean over environments)",
            ["agent", "time limit", "k", "score@k", "CI low", "CI high", "envs", "min runs/env", "k capped at n for"],
            rows, note=f"{options.confidence:.0%} percentile bootstrap over runs within each environment, "
                       f"{options.n_bootstrap} draws, seed {options.seed}. Where an environment has fewer than k "
                       "runs its best of all n is used (k capped at n). The scaling-law environment, scored by "
                       "its last entry, contributes its mean at every k.",
            empty="No finished run with a score: nothing to estimate score@k from."))
        self.data["score_at_k"] = data
        self.series["score_at_k"] = curves

    def allocations(self) -> None:
        options = self.options
        by_agent: dict[Agent, dict[float, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
        for r in self.everyone:
            if r.time_limit_s:
                by_agent[r.agent][r.time_limit_s].append(r)
        rows, data = [], []
        best_by_agent: dict[Agent, dict[float, Allocation]] = {}
        for agent in sorted(by_agent, key=_sort_key):
            horizons = {h: tasks for h, runs in by_agent[agent].items() if (tasks := _task_scores(runs))}
            allocs = time_allocations(horizons, options.budgets_s, n_bootstrap=options.n_bootstrap,
                                      seed=options.seed)
            best = best_allocations(allocs)
            best_by_agent[agent] = best
            data.append({"agent": agent_label(agent), "scaffold": agent[0], "model": agent[1], "size": agent[2],
                         "allocations": [a.to_dict() for a in allocs],
                         "best": {str(b / HOUR): a.to_dict() for b, a in best.items()}})
            for a in allocs:
                e = a.estimate
                rows.append([agent_label(agent), format_duration(a.budget_s), format_duration(a.horizon_s), a.k,
                             e.mean if e else None, e.low if e else None, e.high if e else None,
                             ", ".join(a.skipped_tasks), "*" if best.get(a.budget_s) is a else ""])
        self.tables.append(Table(
            "allocations", "Time allocations: budget B as k = B // T attempts of horizon T",
            ["agent", "budget", "horizon", "k", "score", "CI low", "CI high", "missing (< k runs)", "best"], rows,
            note="Environments with fewer than k runs at a horizon are left out of that allocation (listed); "
                 "* marks the best per budget among allocations covering all the agent's environments.",
            empty="No run has a time limit: nothing to allocate."))
        self.data["allocations"] = data
        self.series["best_allocations"] = best_by_agent

    def human_comparison(self) -> None:
        human_scores: dict[str, list[float]] = defaultdict(list)
        for r in self.humans:
            if r.valid:
                human_scores[r.environment].append(r.final_normalized)
        self.series["human_scores"] = dict(human_scores)
        self.series["excluded_humans"] = [(r.environment, r.final_normalized) for r in self.excluded]
        self.series["human_curve"] = None
        if not human_scores:
            return
        summary = summarize_humans(human_scores, self.series["excluded_humans"], self.options.exclude_human_above)
        curve = percentile_curve(human_scores)
        self.series["human_curve"] = curve
        lines = {p: float(curve[int(p)]) for p in LINE_PERCENTILES}
        rows, matches = [], []
        for agent, best in self.series["best_allocations"].items():
            if agent[0] == HUMAN:
                continue
            for budget, alloc in sorted(best.items()):
                pct = matching_percentile(alloc.estimate.mean, curve)
                matches.append({"agent": agent_label(agent), "budget_s": budget, "horizon_s": alloc.horizon_s,
                                "k": alloc.k, "score": alloc.estimate.mean, "human_percentile": pct})
                rows.append([agent_label(agent), format_duration(budget),
                             f"{alloc.k} x {format_duration(alloc.horizon_s)}", alloc.estimate.mean, pct])
        self.data["humans"] = {"source": self.human_source, **summary.to_dict(), "percentile_lines": lines,
                               "percentile_curve": curve.tolist(), "matches": matches}
        self.tables.append(Table("humans", "Human baseline (METR's experts, 8-hour attempts)", ["statistic", "value"], [
            ["runs used", summary.n_runs], ["environments", summary.n_tasks],
            ["mean of runs", summary.mean_of_runs], ["mean of environment means", summary.mean_of_task_means],
            ["share above 0", summary.frac_nonzero], ["share at or above reference", summary.frac_at_least_reference],
            ["excluded as anomalous", ", ".join(f"{e} {s:.3f}" for e, s in summary.excluded) or "none"],
        ] + [[f"p{p} (mean over environments)", v] for p, v in lines.items()],
            note=f"Human data: {self.human_source}."))
        self.tables.append(Table(
            "human_matches", "Against METR's humans: at budget B the agent matches the p-th percentile human",
            ["agent", "budget", "best allocation", "score", "human percentile"], rows,
            note="Percentile of the per-environment human percentiles averaged across environments "
                 "(METR's human_mean_of_percentiles).",
            empty="No agent has a best allocation at any budget to compare with the humans."))

    def score_over_time(self) -> None:
        rows, data, series = [], [], {}
        for cell in self._sorted_cells():
            limit = cell[3]
            runs = [r for r in self.cells[cell] if r.score_log and r.finished]
            if not runs or not limit:
                continue
            # The mean of step functions steps where any of them does: at the runs' entries.
            grid = np.asarray(sorted({0.0, limit} | {p.elapsed_s for r in runs for p in r.score_log
                                                     if p.valid and 0 <= p.elapsed_s <= limit}))
            mean, per_env = mean_curve(runs, grid)
            series[cell] = (grid, mean)
            data.append({"agent": agent_label(cell[:3]), "time_limit_s": limit, "runs_per_env": per_env,
                         "t_s": grid.tolist(), "score": mean.tolist()})
            for frac in (0.125, 0.25, 0.5, 1.0):
                t = limit * frac
                rows.append([agent_label(cell[:3]), format_duration(limit), format_duration(t),
                             float(mean[np.searchsorted(grid, t, side="right") - 1]), sum(per_env.values())])
        self.tables.append(Table("score_over_time", "Best-so-far normalised score against counted time",
                                 ["agent", "time limit", "at", "mean score", "runs"], rows,
                                 note="Each run's score so far holds from one score-log entry to the next (steps); "
                                      "mean over runs per environment, then over environments.",
                                 empty="No finished run has a score log (METR's released table has final scores "
                                       "only), so there is no score over time."))
        self.data["score_over_time"] = data
        self.series["score_over_time"] = series

    def cost(self) -> None:
        curves = self.series["score_at_k"]
        rows, data, series = [], [], {}
        for cell, estimates in curves.items():
            if cell[0] == HUMAN:
                continue
            dollars = [r.cost_usd for r in self.cells[cell] if r.cost_usd is not None and r.finished]
            if not dollars:
                continue
            per_run = float(np.mean(dollars))
            # Capped k would cost k runs while scoring like n: only k that every environment supplies.
            points = [(e.k * per_run, e.mean, e.k) for e in estimates if not e.capped]
            series[cell] = points
            data.append({"agent": agent_label(cell[:3]), "time_limit_s": cell[3], "dollars_per_run": per_run,
                         "points": [{"k": k, "dollars": d, "score": s} for d, s, k in points]})
            rows.extend([agent_label(cell[:3]), format_duration(cell[3]), k, d, s] for d, s, k in points)
        human_cost = [(e.k * HUMAN_COST_PER_ATTEMPT_USD, e.mean, e.k) for cell, estimates in curves.items()
                      if cell[0] == HUMAN for e in estimates if not e.capped]
        if rows:
            rows.extend(["human (METR)", "8h", k, d, s] for d, s, k in human_cost)
        self.tables.append(Table(
            "cost", "score@k against dollars (k runs at the mean token cost per run)",
            ["agent", "time limit", "k", "dollars", "score@k"], rows,
            note=f"Agent dollars are token costs only (no GPU); humans at ${HUMAN_COST_PER_ATTEMPT_USD:,.0f} "
                 "per 8-h attempt, METR's average pay (Wijk et al. 2024).",
            empty="No finished agent run records dollars (METR's released table has none), so there is no cost "
                  "against score."))
        self.data["cost"] = {"agents": data, "human_cost_per_attempt_usd": HUMAN_COST_PER_ATTEMPT_USD,
                             "human": [{"k": k, "dollars": d, "score": s} for d, s, k in human_cost]}
        self.series["cost"] = series
        self.series["human_cost"] = human_cost


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# Columns whose numbers read better in another precision than the 3 decimals of scores.
_COLUMN_FORMATS = {"tokens/run": "{:,.0f}", "counted s": "{:,.1f}", "$ total": "${:,.2f}", "$/run": "${:,.2f}", "$ other/run": "${:,.2f}",
                   "dollars": "${:,.2f}", "counted h": "{:,.2f}", "score calls/h": "{:.1f}",
                   "human percentile": "{:.1f}"}


def shown_columns(table: Table) -> list[int]:
    """The columns with at least one value: a column of dashes (METR's table has no tokens or dollars)
    only takes room on screen; CSV and JSON keep every column."""
    return [i for i, _ in enumerate(table.columns) if any(row[i] not in (None, "") for row in table.rows)]


def format_value(column: str, value: Any) -> str:
    """How a table cell reads in the terminal and the HTML report (CSV and JSON keep raw values)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, Link):
        return value.text
    if isinstance(value, bool) or isinstance(value, (int, np.integer)) and column not in _COLUMN_FORMATS:
        return str(value)
    if isinstance(value, (float, int, np.floating, np.integer)):
        return _COLUMN_FORMATS.get(column, "{:.3f}").format(value)
    return str(value)
