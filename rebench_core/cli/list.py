"""rebench-list: what is installed — environments, scaffolds, models, plugins."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from ..registry import PluginError, Registry
from .common import add_version, load_errors_note, registry_or_exit

KINDS = ("environments", "scaffolds", "models", "plugins")


def rows(registry: Registry, kind: str) -> list[dict[str, Any]]:
    if kind == "plugins":
        return [{"plugin": p.name, "distribution": p.distribution, "version": p.version,
                 "registered": ", ".join(p.registered + ([f"{p.price_rows} price rows"] if p.price_rows else [])),
                 "error": p.error or ""} for p in registry.plugins.values()]
    if kind == "models":
        today = dt.date.today()
        out = []
        for name, reg in sorted(registry.backends.items()):
            priced = sorted({r.model for r in registry.prices.rows if r.provider == name and r.in_force(today)})
            out.append({"provider": name, "plugin": reg.plugin, "claims": " ".join(reg.claims),
                        "priced models (today)": ", ".join(priced)})
        return out
    table = registry.environments if kind == "environments" else registry.scaffolds
    out = []
    for name, reg in sorted(table.items()):
        row: dict[str, Any] = {"name": name, "plugin": reg.plugin}
        try:
            obj = reg.load()
        except PluginError as exc:
            row["error"] = str(exc)
            out.append(row)
            continue
        if kind == "environments":
            info = obj().info()
            row.update(variants=",".join(info.variants), sizes=",".join(info.sizes),
                       score=f"{info.direction} ({info.aggregate}{'' if info.score_visible else ', hidden'})",
                       summary=info.summary)
        else:
            row["summary"] = getattr(obj, "summary", "")
        out.append(row)
    return out


# What a person sees of each kind (--json has every field); the first column is shown whole.
SHOWN = {"environments": ("name", "sizes", "variants", "score", "summary"), "scaffolds": ("name", "summary"),
         "models": ("provider", "claims", "priced models (today)"),
         "plugins": ("plugin", "version", "registered", "error")}


def fit(widths: list[int], total: int, gap: int = 2) -> list[int]:
    """Column widths that fit `total` characters: the first column whole, the others shrunk, widest
    first, until the row fits (each keeps at least 3 characters, for "ab…")."""
    widths = list(widths)
    while sum(widths) + gap * (len(widths) - 1) > total:
        widest = max(range(1, len(widths)), key=lambda i: widths[i], default=None)
        if widest is None or widths[widest] <= 3:
            break
        widths[widest] -= 1
    return widths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="rebench-list", description=__doc__)
    p.add_argument("kind", nargs="?", choices=KINDS, help="what to list (default: everything)")
    p.add_argument("--json", action="store_true", help="machine-readable output, every field in full")
    add_version(p)
    args = p.parse_args(argv)
    registry = registry_or_exit()
    kinds = [args.kind] if args.kind else list(KINDS)
    data = {kind: rows(registry, kind) for kind in kinds}
    if args.json:
        print(json.dumps(data if len(kinds) > 1 else data[kinds[0]], indent=2))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for kind in kinds:
        columns = [c for c in SHOWN[kind] if any(c in r for r in data[kind])] or ["(none installed)"]
        cells = [[str(r.get(c, "") or "") for c in columns] for r in data[kind]]
        widths = fit([max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)],
                     console.width - 1)
        # One line per row at any width: cut cells end in an ellipsis.
        table = Table(title=kind, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0),
                      collapse_padding=True)
        for column, width in zip(columns, widths):
            table.add_column(column, width=width, no_wrap=True, overflow="ellipsis")
        for row in cells:
            table.add_row(*row)
        console.print(table)
    note = load_errors_note(registry)
    if note:
        console.print(note, style="yellow")


if __name__ == "__main__":
    main()
