"""PNG figures of a report (matplotlib, Agg backend, imported only when plotting).

Each function draws one figure from ``Report.series`` and returns the path written, or None when the
report has nothing for it (no cost data, no score logs, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .allocations import HOUR
from .humans import LINE_PERCENTILES
from .records import HUMAN, agent_label, format_duration
from .report import Report

HUMAN_COLOR = "black"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _palette(labels: list[str]) -> dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(sorted(labels))}


def palette(report: Report) -> dict[str, Any]:
    """One colour per agent of the report, the same in every figure."""
    return _palette(_agent_labels(report))


def _agent_labels(report: Report) -> list[str]:
    return sorted({agent_label(cell[:3]) for cell in report.series["score_at_k"] if cell[0] != HUMAN})


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_score_at_k(report: Report, out: Path, colors: dict[str, Any]) -> Path | None:
    """score@k against k, one panel per per-attempt time limit (METR Fig. 6)."""
    curves = report.series["score_at_k"]
    limits = sorted({cell[3] for cell in curves if cell[0] != HUMAN and cell[3]})
    if not limits:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(limits), figsize=(5.2 * len(limits), 4.4), squeeze=False, sharey=True)
    human = [est for cell, est in curves.items() if cell[0] == HUMAN]
    for ax, limit in zip(axes[0], limits):
        drawn_ks: set[int] = {1}
        for cell, estimates in sorted(curves.items(), key=lambda kv: agent_label(kv[0][:3])):
            if cell[0] == HUMAN or cell[3] != limit:
                continue
            # Like METR's curves: only k that every environment can supply without capping.
            shown = [e for e in estimates if not e.capped]
            if not shown:
                continue
            label = agent_label(cell[:3])
            ks = [e.k for e in shown]
            drawn_ks.update(ks)
            means = [e.mean for e in shown]
            if len(shown) == 1:   # a band needs two points; show the lone interval as an error bar
                ax.errorbar(ks, means, yerr=[[means[0] - shown[0].low], [shown[0].high - means[0]]], marker="o",
                            ms=3, capsize=3, color=colors[label], label=label)
            else:
                ax.plot(ks, means, marker="o", ms=3, color=colors[label], label=label)
                ax.fill_between(ks, [e.low for e in shown], [e.high for e in shown], color=colors[label], alpha=0.15)
        if human:
            ax.axhline(human[0][0].mean, color=HUMAN_COLOR, ls="--", lw=1, label="human, one 8-h attempt")
        ax.set_xscale("log", base=2)
        ticks = sorted(drawn_ks)
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.set_xlim(ticks[0] / 1.3, ticks[-1] * 1.3)
        ax.set_title(f"{format_duration(limit)} per attempt")
        ax.set_xlabel("k (attempts)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("score@k (mean normalised score)")
    axes[0][0].set_ylim(bottom=0)
    fig.suptitle("Best-of-k normalised score, 95% bootstrap intervals", fontsize=11)
    # One legend for all panels, below them, so that no curve hides behind it.
    handles: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    ncol = min(4, len(handles))
    rows = -(-len(handles) // ncol)
    height = 4.4 + 0.2 * rows
    fig.set_figheight(height)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    # Reserve about 0.2 inch per legend row (8-pt text) below the panels.
    fig.tight_layout(rect=(0, (0.2 * rows + 0.15) / height, 1, 1))
    fig.savefig(out / "score_at_k.png", dpi=110)
    plt.close(fig)
    return out / "score_at_k.png"


def plot_budget(report: Report, out: Path, colors: dict[str, Any]) -> Path | None:
    """Best allocation per total time budget, against humans (METR Fig. 2)."""
    best = report.series["best_allocations"]
    if not any(best.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    drawn = sorted((kv for kv in best.items() if kv[1]), key=lambda kv: agent_label(kv[0]))
    for i, (agent, by_budget) in enumerate(drawn):
        label = agent_label(agent)
        budgets = sorted(by_budget)
        # Nudge each agent sideways a little so that error bars at one budget do not hide each other.
        x = np.array(budgets) / HOUR * 2 ** (0.05 * (i - (len(drawn) - 1) / 2))
        y = np.array([by_budget[b].estimate.mean for b in budgets])
        err = np.array([[y[i] - by_budget[b].estimate.low, by_budget[b].estimate.high - y[i]]
                        for i, b in enumerate(budgets)]).T
        human = agent[0] == HUMAN
        ax.errorbar(x, y, yerr=err, marker="s" if human else "o", ms=4, capsize=3, lw=2 if human else 1.2,
                    color=HUMAN_COLOR if human else colors[label], label="human (best of k 8-h attempts)"
                    if human else label)
    curve = report.series["human_curve"]
    if curve is not None:
        for p in LINE_PERCENTILES:
            ax.axhline(curve[p], color="grey", ls=":", lw=0.8)
            ax.annotate(f"human p{p}", (1.0, curve[p]), xycoords=("axes fraction", "data"), fontsize=7,
                        color="grey", xytext=(2, 0), textcoords="offset points", va="center")
    ax.set_xscale("log", base=2)
    ticks = sorted({b / HOUR for by in best.values() for b in by})
    ax.set_xticks(ticks, [f"{t:g}h" for t in ticks])
    ax.set_xlabel("total time budget per environment (best allocation: k attempts x horizon)")
    ax.set_ylabel("mean normalised score")
    ax.set_ylim(bottom=0)
    ax.set_title("Score at equal total time (dotted: 8-h human percentiles, METR)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, out / "budget.png")


def plot_allocations(report: Report, out: Path, colors: dict[str, Any], budget_s: float = 8 * HOUR) -> Path | None:
    """How each agent does with one budget split into attempts of each horizon (METR Fig. 5)."""
    rows = []
    for agent in report.data["allocations"]:
        if agent["scaffold"] == HUMAN:
            continue
        for alloc in agent["allocations"]:
            if alloc["budget_s"] == budget_s and alloc["estimate"]:
                rows.append((agent["agent"], alloc))
    if not rows:
        return None
    plt = _pyplot()
    agents = sorted({a for a, _ in rows})
    horizons = sorted({alloc["horizon_s"] for _, alloc in rows})
    width = 0.8 / len(horizons)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(agents) + 2), 4.6))
    hatch_cmap = plt.get_cmap("Set2")
    for j, horizon in enumerate(horizons):
        for i, agent in enumerate(agents):
            match = [alloc for a, alloc in rows if a == agent and alloc["horizon_s"] == horizon]
            if not match:
                continue
            alloc = match[0]
            est = alloc["estimate"]
            x = i + (j - (len(horizons) - 1) / 2) * width
            ax.bar(x, est["mean"], width, color=hatch_cmap(j), edgecolor="black", lw=0.5,
                   hatch=None if alloc["complete"] else "//")
            ax.errorbar(x, est["mean"], yerr=[[est["mean"] - est["ci_low"]], [est["ci_high"] - est["mean"]]],
                        color="black", capsize=2, lw=0.8)
    from matplotlib.patches import Patch

    # Legend swatches drawn by hand: a bar's own swatch would carry its hatching, which means "partial".
    handles = [Patch(facecolor=hatch_cmap(j), edgecolor="black", lw=0.5,
                     label=f"{int(budget_s // h)} x {format_duration(h)}") for j, h in enumerate(horizons)]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", lw=0.5,
                         label="some environments lack k runs"))
    human = [a for a in report.data["allocations"] if a["scaffold"] == HUMAN]
    if human:
        h = human[0]["best"].get(str(budget_s / HOUR))
        if h:
            handles.append(ax.axhline(h["estimate"]["mean"], color=HUMAN_COLOR, ls="--", lw=1,
                                      label="human, one 8-h attempt"))
    ax.set_xticks(range(len(agents)), agents, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("mean normalised score")
    ax.set_title(f"{format_duration(budget_s)} total per environment, split into k attempts of one horizon",
                 fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(handles=handles, fontsize=8)
    return _save(fig, out / "allocations.png")


def plot_humans(report: Report, out: Path, colors: dict[str, Any]) -> Path | None:
    """Each human 8-h attempt per environment; excluded outliers drawn at the top edge with their value."""
    scores = report.series["human_scores"]
    if not scores:
        return None
    plt = _pyplot()
    envs = sorted(scores)
    excluded = report.series["excluded_humans"]
    top = 2.5
    fig, ax = plt.subplots(figsize=(8, 4.4))
    rng = np.random.default_rng(0)
    for i, env in enumerate(envs):
        values = np.asarray(scores[env])
        ax.scatter(i + rng.uniform(-0.15, 0.15, values.size), values, s=14, color="tab:blue", alpha=0.7,
                   label="kept" if i == 0 else None)
        ax.hlines(values.mean(), i - 0.3, i + 0.3, color="tab:blue", lw=2)
    for n, (env, value) in enumerate(excluded):
        if env in envs:
            i = envs.index(env)
            ax.scatter(i, top - 0.08, marker="^", color="tab:red", s=40, label="excluded" if n == 0 else None)
            ax.annotate(f"{value:.2f}", (i, top - 0.08), xytext=(6, -3), textcoords="offset points", fontsize=7,
                        color="tab:red")
    ax.axhline(1.0, color="grey", ls=":", lw=0.8)
    ax.set_ylim(-0.05, top)
    ax.set_xticks(range(len(envs)), envs, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("normalised score (bar: mean)")
    ax.set_title("Human 8-hour attempts per environment (dotted: reference solution)", fontsize=11)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, out / "humans.png")


def _line_styles(limits) -> dict[Any, str]:
    """One dash pattern per per-attempt time limit, so one agent's horizons share a colour but not a line."""
    styles = ("-", "--", ":", "-.")
    return {limit: styles[i % len(styles)] for i, limit in enumerate(sorted(limits, key=lambda v: v or 0))}


def _round_step(span_s: float) -> float:
    """A tick step of round seconds, minutes or hours giving four to eight ticks over `span_s`."""
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800)
    return next((s for s in steps if span_s / s <= 8), span_s / 4)


def plot_score_over_time(report: Report, out: Path, colors: dict[str, Any]) -> Path | None:
    fig = score_over_time_figure(report, colors)
    return None if fig is None else _save(fig, out / "score_over_time.png")


def score_over_time_figure(report: Report, colors: dict[str, Any]):
    """Score so far against counted time, one panel per time limit: steps from one score-log entry to
    the next, both axes from 0 (time starts at 0, and so does the starting solution's score)."""
    series = report.series["score_over_time"]
    if not series:
        return None
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    limits = sorted({cell[3] for cell in series})
    fig, axes = plt.subplots(1, len(limits), figsize=(5.2 * len(limits) + 1.5, 4.4), squeeze=False, sharey=True)
    top = max(1.0, max(float(np.max(mean)) for _, mean in series.values()))
    for ax, limit in zip(axes[0], limits):
        for cell, (grid, mean) in sorted(series.items(), key=lambda kv: agent_label(kv[0][:3])):
            if cell[3] != limit:
                continue
            label = agent_label(cell[:3])
            ax.step(grid, mean, where="post", color=colors.get(label), label=label)
        ax.set_xlim(0, limit)
        ax.set_ylim(0, top * 1.05)
        ax.xaxis.set_major_locator(MultipleLocator(_round_step(limit)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_duration(v)))
        ax.set_title(f"{format_duration(limit)} per attempt")
        ax.set_xlabel("counted time")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[0][0].set_ylabel("normalised score so far (mean over runs)")
    fig.suptitle("Score over time: best so far (last so far where the last entry counts), each entry held "
                 "until the next", fontsize=10)
    return fig


def plot_cost(report: Report, out: Path, colors: dict[str, Any]) -> Path | None:
    fig = cost_figure(report, colors)
    return None if fig is None else _save(fig, out / "cost.png")


def cost_figure(report: Report, colors: dict[str, Any]):
    """score@k against dollars. The dollar axis is linear near 0 and logarithmic above a cent, so a run
    that cost nothing (a local model) is drawn at $0 beside runs that cost hundreds."""
    series = report.series["cost"]
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    styles = _line_styles({cell[3] for cell in series})
    for cell, points in sorted(series.items(), key=lambda kv: (agent_label(kv[0][:3]), kv[0][3] or 0)):
        label = agent_label(cell[:3])
        ax.plot([d for d, _, _ in points], [s for _, s, _ in points], marker="o", ms=4, color=colors.get(label),
                ls=styles[cell[3]], label=f"{label}, {format_duration(cell[3])}", clip_on=False)
    human = report.series["human_cost"]
    if human:
        ax.plot([d for d, _, _ in human], [s for _, s, _ in human], marker="s", color=HUMAN_COLOR, ls="--",
                label="human (METR; best of k 8-h attempts, paid)")
    ax.set_xscale("symlog", linthresh=0.01, linscale=0.5)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "$0" if v == 0 else f"${v:,.0f}" if v >= 1
                                               else f"${v:g}"))
    ax.set_xlabel("dollars per environment (k runs; agents: tokens only)")
    ax.set_ylabel("score@k")
    ax.set_title("Score against cost", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


PLOTS: tuple[Callable[[Report, Path, dict[str, Any]], Path | None], ...] = (
    plot_score_at_k, plot_budget, plot_allocations, plot_humans, plot_score_over_time, plot_cost)


def write_plots(report: Report, out: str | Path) -> list[Path]:
    """Every figure the report has data for, as PNGs in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    colors = palette(report)
    return [p for plot in PLOTS if (p := plot(report, out, colors)) is not None]
