"""rebench-view in a real browser: headless Chromium (the Debian package) driven by Playwright, over
runs made by the real harness (Modular and AIDE with the scripted model) and a run that grows while
the page is open. Screenshots of the main pages go to $REBENCH_VIEWER_SHOTS (default: a temporary
folder); docs/viewer.md shows the ones in docs/images/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [dev] extra)")
pytest.importorskip("starlette", reason="the viewer needs the [view] extra")
pytest.importorskip("rebench_example", reason="the example plugin (guess_number) is not installed")

from viewer_runs import ensure_start_archive, make_runs  # noqa: E402

TASK = {"role": "user", "content": "Find the secret number."}


@pytest.fixture(scope="module")
def runs():
    path = Path(tempfile.mkdtemp(prefix="rebench-view-test-"))
    os.chmod(path, 0o755)  # the agent user passes through to its workspace
    made = make_runs(path)
    for run in made.values():
        ensure_start_archive(run)
    live = made["live"] = path / "live"
    live.mkdir()
    (live / "config.json").write_text(json.dumps({"limits": {"time_s": 600}, "agent_workspace": str(live / "ws")}))
    append(live, {"type": "run_start", "log_version": 2, "environment": "guess_number", "size": "small",
                  "variant": "main", "scaffold": "modular", "model": "scripted/live", "direction": "min",
                  "aggregate": "best", "normalization": {"y_start": 737.0, "y_ref": 0.0},
                  "limits": {"time_s": 600, "tokens": None, "cost_usd": None}},
           {"type": "clock_start"}, {"type": "model_request", "call": 0, "purpose": "agent", "max_tokens": 100})
    yield made | {"root": path}
    shutil.rmtree(path, ignore_errors=True)


def append(run: Path, *events: dict) -> None:
    with (run / "events.jsonl").open("a") as fh:
        for e in events:
            fh.write(json.dumps({"ts": time.time(), "elapsed_s": 1.0} | e) + "\n")


@pytest.fixture(scope="module")
def url(runs):
    proc = subprocess.Popen([sys.executable, "-m", "rebench_core.cli.view", str(runs["root"]), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("http://127.0.0.1:"), proc.stderr.read()
    yield line
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    page.close()
    assert errors == []


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("REBENCH_VIEWER_SHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_runs_list(page, url, shots):
    page.goto(url)
    page.wait_for_selector("tr.run")
    rows = page.locator("tr.run")
    assert rows.count() == 4
    assert page.locator("tr.run .badge.running").count() == 1  # the live run
    assert page.locator("tr.run .badge.submitted").count() == 3
    # the study's two runs under their cell, with the planned samples and the cell's scores
    assert page.locator("tr.group").first.inner_text().startswith("study: study (")
    assert page.locator("tr.cell").inner_text() == (
        "guess_number/modular/scripted/small-120s: 2 of 2 runs, best 1.000, mean 0.500")
    page.screenshot(path=shots / "runs.png")
    page.fill("input[type=search]", "aide")
    assert rows.count() == 1 and "aide" in rows.first.inner_text()
    page.fill("input[type=search]", "")
    scores = lambda: [rows.nth(i).locator("td").nth(6).inner_text() for i in range(rows.count())]  # noqa: E731
    page.click("th[data-key=final_normalized_score]")  # best first; a run with no score yet last
    assert scores() == ["1.000", "0.000", "0.991", "–"]  # within the study's cell, then the other runs
    page.click("th[data-key=final_normalized_score]")
    assert scores() == ["0.000", "1.000", "0.991", "–"]
    rows.filter(has_text="modular").filter(has_text="submitted").first.click()
    page.wait_for_selector(".item.model")
    assert "/run/" in page.url


def test_a_model_call_and_a_tool_call(page, url, runs, shots):
    page.goto(f"{url}run{runs['modular']}")
    page.wait_for_selector(".item.model")
    call = page.locator(".item.model").filter(has_text="I will guess 700.")
    call.locator(".head").click()
    body = call.locator(".body")
    # What is new in this call's prompt: the previous reply (its bash call) and its output.
    assert "Let me look at the workspace first." in body.inner_text()
    assert "cat answer.txt; ls -la" in body.locator(".msg.assistant").first.inner_text()
    assert "answer.txt" in body.locator(".msg.tool").first.inner_text()
    assert "not repeated here" in body.inner_text()
    page.set_viewport_size({"width": 1400, "height": 1250})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / "run.png")
    body.get_by_text("show the whole prompt").click()
    page.wait_for_selector("text=the whole prompt, 4 messages:")
    assert "A secret integer" in body.inner_text()  # the task statement, from the first call
    tool = page.locator(".item.tool").filter(has_text="sleep 5")
    assert "timed out after 2.0 s" in tool.locator(".head").inner_text()
    loop = page.locator(".item.tool").filter(has_text="seq 1 60")
    loop.locator(".head").click()
    assert "line 20" in loop.inner_text() and "line 60" not in loop.inner_text()  # folded
    loop.screenshot(path=shots / "tool.png")
    loop.get_by_text("show all 61 lines").click()
    assert "line 60" in loop.inner_text()
    assert page.locator(".cards").inner_text().count("7 model · 4 tool") == 1
    assert page.locator(".chart circle").count() == 4  # initial, two agent scores, final


def test_the_aide_tree(page, url, runs, shots):
    page.goto(f"{url}run{runs['aide']}#scaffold")
    page.wait_for_selector(".node")
    assert page.locator(".node").count() == 3
    assert "3 nodes, 2 good" in page.locator(".pane:not([hidden])").inner_text()
    best = page.locator(".node.best")
    assert best.count() == 1 and "metric 7" in best.locator(".head").first.inner_text()
    best.locator(".head").first.click()
    assert "move up to 730" in best.inner_text() and "guessed 730" in best.inner_text()
    page.screenshot(path=shots / "aide.png")
    with page.context.expect_page() as opened:  # the link opens a tab of its own
        page.get_by_text("AIDE's own tree.html").click()
    tree = opened.value
    tree.wait_for_load_state()
    assert "AIDE search tree" in tree.content()
    tree.close()


def test_the_workspace_against_the_start(page, url, runs, shots):
    page.goto(f"{url}run{runs['modular']}#workspace")
    page.wait_for_selector(".filelist div[data-path]")
    row = page.locator(".filelist div[data-path='answer.txt']")
    assert "changed" in row.inner_text()
    row.click()
    page.wait_for_selector("pre.diff")
    assert page.locator("pre.diff .del").filter(has_text="-0").count() == 1
    assert page.locator("pre.diff .add").filter(has_text="+737").count() == 1
    page.screenshot(path=shots / "workspace.png")


def test_a_running_run_is_followed_without_a_reload(page, url, runs, shots):
    live = runs["live"]
    page.goto(f"{url}run{live}")
    pending = page.locator(".item.pending").filter(has_text="waiting for the model")
    pending.wait_for()
    page.evaluate("window.sameDocument = true")
    time.sleep(1.2)
    assert pending.locator(".since").inner_text().startswith("since ")  # ticks with no new event
    append(live, {"type": "model_call", "purpose": "agent", "call": 0, "input_base": None, "input": [TASK],
                  "message": {"role": "assistant", "content": "Trying 500.", "tool_calls": [
                      {"id": "c1", "name": "bash", "arguments": {"command": "echo 500 > answer.txt"}}]},
                  "usage": {"input_tokens": 12, "output_tokens": 4, "calls": 1}, "cost_usd": 0.0},
           {"type": "tool_call", "tool": "bash", "input": "echo 500 > answer.txt", "timeout_s": 60})
    page.locator(".item.model").filter(has_text="Trying 500.").wait_for(timeout=10_000)
    assert page.locator(".item.pending").filter(has_text="waiting for the model").count() == 0
    running = page.locator(".item.tool.pending").filter(has_text="echo 500")
    running.wait_for(timeout=10_000)
    sync_api.expect(running.locator(".since")).to_have_text(re.compile(r"since [\d.]+ s"))  # ticked past 1 s
    page.screenshot(path=shots / "live.png")
    append(live, {"type": "tool_result", "tool": "bash", "output": "", "exit_code": 0, "timed_out": False,
                  "duration_s": 0.01},
           {"type": "score", "trigger": "agent", "raw": 237.0, "valid": True, "normalized": 0.678,
            "message": {"score": 237}},
           {"type": "run_end", "status": "submitted", "error": None, "final_raw_score": 237.0,
            "final_normalized_score": 0.678, "time": {"wall_s": 3, "paused_s": 0, "counted_s": 2}})
    page.locator(".runhead .badge.submitted").wait_for(timeout=10_000)
    assert page.locator(".item.tool").filter(has_text="echo 500").locator(".exit-ok").count() == 1
    assert page.evaluate("window.sameDocument") is True
    assert "0.678" in page.locator(".cards").inner_text()
