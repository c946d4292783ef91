"""One self-contained HTML report: tables, notes and the PNG plots embedded as base64 (no server, no
external files)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from .report import Link, Report, Table, format_value, shown_columns

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.85em; max-width: 60em; }
.notes li { margin: 0.3em 0; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.scroll { max-height: 32em; overflow: auto; display: inline-block; }
.empty { color: #555; font-style: italic; }
h2.part { font-size: 1.35em; border-bottom: 2px solid #bbb; }
"""


def _cell(column: str, value: object) -> str:
    if isinstance(value, Link):
        return f'<a href="{html.escape(value.href)}">{html.escape(value.text)}</a>'
    return html.escape(format_value(column, value))


def _table(table: Table) -> str:
    title = f'<h2 id="{html.escape(table.name)}">{html.escape(table.title)}</h2>'
    if not table.rows:  # one line, not a table of dashes
        return f'{title}<p class="empty">{html.escape(table.empty)}</p>'
    keep = shown_columns(table)
    head = "".join(f"<th>{html.escape(table.columns[i])}</th>" for i in keep)
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(table.columns[i], row[i])}</td>" for i in keep) + "</tr>"
                     for row in table.rows)
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return f'{title}{note}<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'



def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def render_html(report: Report, plots: Sequence[Path] = (), title: str = "rebench report") -> str:
    meta = report.data
    inputs = meta["inputs"]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in meta["notes"])
    summary = (f"{inputs['agent_runs']} agent runs and {inputs['human_runs']} human runs "
               f"(human data: {html.escape(inputs['human_source'])}); sources: "
               f"{html.escape(', '.join(inputs['sources']))}. Generated {html.escape(meta['generated_at'])}; "
               f"bootstrap {meta['options']['n_bootstrap']} draws, seed {meta['options']['seed']}.")
    attribution = ("Human baselines and METR runs: Wijk et al. 2024, <i>RE-Bench</i>, arXiv 2411.15114; data from "
                   "METR/eval-analysis-public commit 3a947ac. Normalised score: 0 = starting solution, "
                   "1 = reference solution.")
    figures = "".join(_image(p) for p in plots) or "<p class='empty'>No figure: the runs have nothing to plot.</p>"
    ours = "\n".join(_table(t) for t in report.tables if t.name not in HUMAN_TABLES)
    humans = "\n".join(_table(t) for t in report.tables if t.name in HUMAN_TABLES)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{summary}</p>"
            f"<ul class='notes'>{notes}</ul>{ours}<h2>Figures</h2>{figures}"
            f"<h2 class='part' id='baselines'>Human baselines and METR comparisons</h2>"
            f"<p class='note'>{attribution}</p>{humans}</body></html>")


# Tables about METR's humans, shown after our own runs under their own heading.
HUMAN_TABLES = ("humans", "human_matches")


def write_html(report: Report, path: str | Path, plots: Sequence[Path] = (), title: str = "rebench report") -> Path:
    path = Path(path)
    path.write_text(render_html(report, plots, title))
    return path
