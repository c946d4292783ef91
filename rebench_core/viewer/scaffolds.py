"""A scaffold's own view of its run, from what it keeps in `scaffold/` and logs as `scaffold` events.

AIDE keeps its search tree in `scaffold/journal.json` (and renders `scaffold/tree.html`); Modular
logs a `modular_step` event per step (which option of how many it chose, the tools it called) and
keeps the options it chose between in `scaffold/history.jsonl`. Other scaffolds get their
`scaffold` events listed as they were logged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..transcript import TranscriptReader

AIDE_TREE = "tree.html"


def scaffold_view(run_dir: Path) -> dict[str, Any]:
    state = run_dir / "scaffold"
    events = [item.event for item in TranscriptReader(run_dir).read(final=True) if item.type == "scaffold"]
    if (state / "journal.json").is_file():
        return _aide(state, events)
    if any(str(e.get("kind", "")).startswith("modular_") for e in events):
        return _modular(state, events)
    return {"kind": "events", "events": events}


def _aide(state: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    from rebench_scaffolds.aide.journal import Journal

    try:
        journal = Journal.from_dict(json.loads((state / "journal.json").read_text()))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        return {"kind": "aide", "problem": f"scaffold/journal.json cannot be read: {exc}", "events": events}
    best = journal.best_node()
    return {"kind": "aide", "direction": journal.direction, "solution_file": journal.solution_file,
            "best": best.id if best else None, "restored": journal.best_restored_id,
            "nodes": [n.to_dict() for n in journal.nodes], "tree_html": (state / AIDE_TREE).is_file(),
            "events": [e for e in events if e.get("kind") != "aide_node"]}


def _modular(state: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    choices = _choices(state / "history.jsonl")
    steps: dict[int, dict[str, Any]] = {}
    other = []
    for e in events:
        kind, step = e.get("kind"), e.get("step")
        if kind == "modular_step" and isinstance(step, int):
            entry = steps.setdefault(step, {"step": step, "judging": [], "notes": []})
            entry.update(chosen=e.get("option"), options=e.get("options"), calls=e.get("calls") or [],
                         elapsed_s=e.get("elapsed_s"))
            if (e.get("options") or 0) > 1 and choices:
                entry["option_messages"] = choices.pop(0)
        elif kind == "compare_options" and isinstance(step, int):
            steps.setdefault(step, {"step": step, "judging": [], "notes": []})["judging"].append(
                {k: e.get(k) for k in ("attempt", "choice", "options", "error")})
        elif isinstance(step, int) and kind != "modular_start":
            steps.setdefault(step, {"step": step, "judging": [], "notes": []})["notes"].append(e)
        else:
            other.append(e)
    return {"kind": "modular", "steps": [steps[k] for k in sorted(steps)], "events": other}


def _choices(history: Path) -> list[list[dict[str, Any]]]:
    """The options of each step that had more than one, in order (messages only)."""
    if not history.is_file():
        return []
    out = []
    with history.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                node = json.loads(line)
            except ValueError:
                continue
            choice = (node.get("metadata") or {}).get("choice") if isinstance(node, dict) else None
            if isinstance(choice, dict) and isinstance(choice.get("options"), list):
                out.append([o.get("message", {}) for o in choice["options"] if isinstance(o, dict)])
    return out
