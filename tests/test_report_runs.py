"""rebench-report starts with the runs it was given; empty sections say so in a line; plots draw a
$0 run and score over time as steps from zero; bad --out and unreadable run files give one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from analysis_helpers import write_run_dir
from rebench_core.analysis.loaders import load_sources
from rebench_core.analysis.report import ReportOptions, build_report
from rebench_core.cli.report import main


def add_events(run: Path, *events: dict) -> None:
    with (run / "events.jsonl").open("a") as fh:
        for e in events:
            fh.write(json.dumps({"ts": 2.0, "elapsed_s": 2.0} | e) + "\n")


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    done = write_run_dir(root, "a-submitted", status="submitted", log=[(0.0, 0.0), (60.0, 0.7), (900.0, 0.4)],
                         final=0.7)
    add_events(done, {"type": "tool_call", "tool": "bash", "input": "ls"},
               {"type": "tool_result", "tool": "bash", "output": '"type": "tool_call" in the output, not a call'},
               {"type": "tool_call", "tool": "python", "input": "1"})
    (done / "scaffold").mkdir()
    (done / "scaffold" / "tree.html").write_text("<html>tree</html>")
    stalled = write_run_dir(root, "b-stalled", status="time_limit", log=[(0.0, 0.0)], cost_usd=0.0,
                            tokens=(0, 0))
    summary = json.loads((stalled / "summary.json").read_text())
    summary["error"] = "time limit of 1800 s reached\nmore detail"
    summary["usage"]["calls"] = 0
    (stalled / "summary.json").write_text(json.dumps(summary))
    return root


def test_the_report_starts_with_one_row_per_run(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(runs), "--out", str(out), "--bootstrap", "20"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("The runs") < printed.index("Runs per environment") < printed.index("score@k")
    rows = list(csv.DictReader((out / "csv" / "runs.csv").open()))
    by_run = {r["run"]: r for r in rows}
    a, b = by_run["a-submitted"], by_run["b-stalled"]
    assert (a["status"], a["why it ended"], a["tool calls"], a["model calls"]) == ("submitted", "the scaffold submitted",
                                                                                  "2", "3")
    assert (float(a["best score"]), float(a["final score"])) == (0.7, 0.7)
    assert a["viewer"].startswith("http://127.0.0.1:7580/run/") and a["viewer"].endswith("/a-submitted")
    assert a["AIDE tree"].startswith("file://") and a["AIDE tree"].endswith("a-submitted/scaffold/tree.html")
    assert (b["status"], b["why it ended"], b["model calls"], b["AIDE tree"]) == (
        "time_limit", "time limit of 1800 s reached", "0", "")
    html = (out / "report.html").read_text()
    assert html.index("The runs") < html.index("Human baselines and METR comparisons") < html.index(
        "Human baseline (METR&#x27;s experts")
    assert f'<a href="{a["viewer"]}">view</a>' in html and f'<a href="{a["AIDE tree"]}">tree</a>' in html
    data = json.loads((out / "report.json").read_text())
    assert [r["run"] for r in data["runs"]] == ["a-submitted", "b-stalled"]
    assert {e["who"] for e in data["environments"]} == {"our runs", "humans (METR, 8 h)"}


def test_a_section_with_nothing_to_show_says_so_in_one_line(tmp_path, capsys):
    assert main(["metr", "--bootstrap", "20", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "The runs: No run directory among the inputs (only METR's table)" in printed
    assert "Best-so-far normalised score against counted time: No finished run has a score log" in printed
    html = (tmp_path / "out" / "report.html").read_text()
    assert '<p class="empty">No run directory among the inputs' in html
    assert "<th>tokens/run</th>" not in html  # a column without a value is left out, not a column of dashes


def test_a_free_run_is_drawn_on_the_cost_plot_and_time_axes_start_at_zero(runs):
    from rebench_core.analysis.plots import cost_figure, palette, score_over_time_figure

    write_run_dir(runs, "c-free", status="submitted", log=[(0.0, 0.0), (300.0, 0.2)], cost_usd=0.0,
                  scaffold="aide", model="local/smollm2-135m")
    report = build_report(load_sources([runs]), ReportOptions(n_bootstrap=20))
    colors = palette(report)
    ax = cost_figure(report, colors).axes[0]
    free = [line for line in ax.lines if "smollm2" in line.get_label()]
    assert free and list(free[0].get_xdata()) == [0.0]
    assert ax.get_xlim()[0] == 0 and ax.get_ylim()[0] == 0 and ax.get_xscale() == "symlog"
    (panel,) = score_over_time_figure(report, colors).axes
    assert panel.get_xlim() == (0, 1800.0) and panel.get_ylim()[0] == 0
    line = next(line for line in panel.lines if "modular" in line.get_label())
    assert line.get_drawstyle() == "steps-post"
    # the modular cell: two runs, one at 0.7 from 60 s, one at 0 throughout: the mean steps at 60 s
    xs, ys = list(line.get_xdata()), list(line.get_ydata())
    assert xs[:2] == [0.0, 60.0] and ys[:2] == pytest.approx([0.0, 0.35])


def test_out_must_be_a_directory_that_can_be_written(runs, tmp_path, capsys):
    a_file = tmp_path / "report.html"
    a_file.write_text("")
    assert main([str(runs), "--out", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file; it must be a directory" in err
    assert main([str(runs), "--out", str(a_file / "sub")]) == 2
    assert "cannot be made" in capsys.readouterr().err
    assert main([str(runs), "--json", str(tmp_path)]) == 2
    assert "is a directory; give a file name" in capsys.readouterr().err
    assert not (a_file / "sub").exists()


def test_binary_garbage_names_the_file(tmp_path, capsys):
    run = write_run_dir(tmp_path, "garbage")
    (run / "summary.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff binary")
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(run / "summary.json") in err and "Traceback" not in err
    (run / "summary.json").unlink()
    (run / "events.jsonl").write_bytes(b"\xff\xfe\x00\x01" * 20)
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert str(run / "events.jsonl") in err and err.count("\n") == 1
