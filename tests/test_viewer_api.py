"""The viewer's JSON API over hand-written run directories in the log-version-2 form: the runs list
(studies by cell, running runs), the transcript from a byte offset as the log grows, whole prompts,
the workspace against workspace_start.tar.gz, the scaffold views, and what it refuses."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the viewer needs the [view] extra")
from starlette.testclient import TestClient  # noqa: E402

from rebench_core.viewer.app import create_app  # noqa: E402
from rebench_core.viewer.runs import QUIET_S  # noqa: E402

TASK = {"role": "user", "content": "Find the number."}


def start_event(**extra):
    return {"ts": time.time(), "elapsed_s": 0.0, "type": "run_start", "log_version": 2, "environment": "guess_number",
            "size": "small", "variant": "main", "scaffold": "commands", "model": "scripted/x", "direction": "min",
            "aggregate": "best", "normalization": {"y_start": 737.0, "y_ref": 0.0},
            "limits": {"time_s": 60, "tokens": None, "cost_usd": None}, **extra}


def write_run(run: Path, events: list, *, config: dict | None = None, ended: bool = True,
              start_files: dict[str, bytes] | None = None, end_files: dict[str, bytes] | None = None) -> Path:
    (run / "workspace").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config or {"limits": {"time_s": 60}}))
    with (run / "events.jsonl").open("w") as fh:
        for e in events:  # events as the harness writes them: every one has ts and elapsed_s
            fh.write((e if isinstance(e, str) else json.dumps({"ts": 1.0, "elapsed_s": 0.0} | e)) + "\n")
    if ended:
        from rebench_core.events import write_summary

        write_summary(run)
    for rel, data in (end_files or {}).items():
        (run / "workspace" / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / "workspace" / rel).write_bytes(data)
    if start_files is not None:
        with tarfile.open(run / "workspace_start.tar.gz", "w:gz") as tar:
            for rel, data in start_files.items():
                info = tarfile.TarInfo(rel)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return run


def finished_events():
    return [
        start_event(),
        {"ts": 1, "elapsed_s": 0, "type": "score", "trigger": "initial", "raw": 737.0, "valid": True,
         "normalized": 0.0, "message": {}},
        {"ts": 2, "elapsed_s": 1, "type": "model_request", "call": 0, "purpose": "agent", "max_tokens": 64},
        {"ts": 3, "elapsed_s": 2, "type": "model_call", "purpose": "agent", "call": 0, "input_base": None,
         "input": [TASK], "message": {"role": "assistant", "content": "700"},
         "usage": {"input_tokens": 10, "output_tokens": 1, "calls": 1}, "cost_usd": 0.0},
        {"ts": 4, "elapsed_s": 3, "type": "model_call", "purpose": "agent", "call": 1, "input_base": 0,
         "input": [[0, 1], {"role": "assistant", "content": "700"}, {"role": "user", "content": "closer"}],
         "message": {"role": "assistant", "content": "737"}, "usage": {"input_tokens": 20, "output_tokens": 1,
                                                                        "calls": 1}, "cost_usd": 0.0},
        "{torn in the middle",
        {"ts": 5, "elapsed_s": 4, "type": "run_end", "status": "submitted", "error": None,
         "time": {"wall_s": 5, "paused_s": 0, "counted_s": 4}},
    ]


@pytest.fixture
def client(tmp_path):
    root = tmp_path / "runs"
    write_run(root / "done", finished_events(), start_files={"answer.txt": b"0\n", "gone.txt": b"bye\n"},
              end_files={"answer.txt": b"737\n", "new.py": b"print(1)\n"})
    (root / "done" / "workspace" / "secret").symlink_to("/etc/hostname")
    study = root / "study"
    study.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"samples": 2}))
    cell = study / "guess_number" / "commands" / "x" / "small-60s"
    write_run(cell / "sample-000", finished_events())
    write_run(cell / "sample-001", [start_event(), {"ts": time.time(), "elapsed_s": 1, "type": "model_request",
                                                    "call": 0, "purpose": "agent"}], ended=False)
    stale = write_run(root / "killed", [start_event()], ended=False)
    old = time.time() - QUIET_S - 60
    os.utime(stale / "events.jsonl", (old, old))
    return TestClient(create_app([root])), root


def test_the_runs_list_groups_studies_by_cell_and_shows_running_runs(client):
    http, root = client
    data = http.get("/api/runs").json()
    rows = {Path(r["path"]).name: r for r in data["runs"]}
    assert rows["done"]["status"] == "submitted" and rows["done"]["model_calls"] == 2
    assert rows["sample-001"]["status"] == "running"
    assert rows["killed"]["status"] == "stopped" and "killed" in rows["killed"]["why"]
    (study,) = data["studies"]
    assert study["samples"] == 2
    assert [c["cell"] for c in study["cells"]] == ["guess_number/commands/x/small-60s"]
    assert sorted(Path(r).name for r in study["cells"][0]["runs"]) == ["sample-000", "sample-001"]


def test_the_transcript_pages_from_a_byte_offset_and_follows_a_growing_log(client):
    http, root = client
    run = root / "study" / "guess_number" / "commands" / "x" / "small-60s" / "sample-001"
    url = f"/api/transcript{run}"
    first = http.get(url, params={"offset": 0}).json()
    assert [i["type"] for i in first["items"]] == ["run_start", "model_request"] and not first["ended"]
    assert first["status"] == "running" and first["log_version"] == 2 and first["notice"] is None
    with (run / "events.jsonl").open("a") as fh:
        fh.write(json.dumps({"ts": time.time(), "elapsed_s": 2, "type": "model_call", "purpose": "agent", "call": 0,
                             "input_base": None, "input": [TASK], "message": {"role": "assistant", "content": "1"},
                             "usage": {}}) + "\n")
        fh.write('{"type": "tool_ca')  # being written
    second = http.get(url, params={"offset": first["offset"]}).json()
    (call,) = second["items"]
    assert call["type"] == "model_call" and call["request_index"] == 1 and call["new"][0]["message"] == TASK
    assert "input" not in call["event"]  # sent once, as `new`
    assert http.get(url, params={"offset": second["offset"]}).json()["items"] == []
    assert http.get(url, params={"offset": "x"}).status_code == 400


def test_a_finished_run_shows_its_torn_line_and_whole_prompts(client):
    http, root = client
    items = http.get(f"/api/transcript{root / 'done'}").json()["items"]
    bad = [i for i in items if i["type"] == "bad_line"]
    assert len(bad) == 1 and bad[0]["text"] == "{torn in the middle"
    prompt = http.get(f"/api/prompt/1{root / 'done'}").json()
    assert prompt["messages"] == [TASK, {"role": "assistant", "content": "700"}, {"role": "user", "content": "closer"}]
    assert "no agent model call 5" in http.get(f"/api/prompt/5{root / 'done'}").json()["error"]


def test_the_workspace_against_the_start_and_what_it_will_not_read(client):
    http, root = client
    run = root / "done"
    data = http.get(f"/api/workspace{run}").json()
    status = {f["path"]: f["status"] for f in data["files"]}
    assert status == {"answer.txt": "changed", "new.py": "added", "gone.txt": "deleted"}
    assert any("secret is a symbolic link" in n for n in data["notes"])
    diff = http.get(f"/api/file{run}", params={"path": "answer.txt"}).json()["diff"]
    assert "-0" in diff.splitlines() and "+737" in diff.splitlines()
    link = http.get(f"/api/file{run}", params={"path": "secret"}).json()
    assert link["problem"] == "secret is a symbolic link: not followed" and "text" not in link
    assert http.get(f"/api/file{run}", params={"path": "../config.json"}).status_code == 400
    assert http.get("/api/workspace/etc").status_code == 404  # not a run under the roots
    assert http.get(f"/api/run{root.parent}").status_code == 404


def test_a_run_without_a_starting_archive_says_there_is_no_diff(client):
    http, root = client
    data = http.get(f"/api/workspace{root / 'killed'}").json()
    assert not data["has_start"] and any("no workspace_start.tar.gz" in n for n in data["notes"])


def test_the_page_ships_its_assets_and_forbids_inline_script(client):
    http, _ = client
    page = http.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert "/static/app.js" in page.text and "http" not in page.text.replace("http-equiv", "")
    for asset in ("app.js", "style.css", "icon.svg"):
        response = http.get(f"/static/{asset}")
        assert response.status_code == 200 and "://" not in response.text.replace("http://www.w3.org", "")


def test_another_host_name_is_refused(tmp_path):
    http = TestClient(create_app([tmp_path], allowed_hosts=["127.0.0.1"]), base_url="http://evil.example")
    assert http.get("/api/runs").status_code == 400


def test_modular_steps_come_from_its_events_and_history(tmp_path):
    events = [start_event(),
              {"type": "scaffold", "kind": "compare_options", "step": 0, "attempt": 0, "choice": 1, "options": 2},
              {"type": "scaffold", "kind": "modular_step", "step": 0, "option": 1, "options": 2, "calls": ["bash"]},
              {"type": "scaffold", "kind": "prompt_trimmed", "step": 1, "messages_dropped": 3}]
    run = write_run(tmp_path / "run", events)
    (run / "scaffold").mkdir()
    options = [{"message": {"role": "assistant", "content": f"option {i}"}} for i in range(2)]
    (run / "scaffold" / "history.jsonl").write_text(
        json.dumps({"message": {"role": "user", "content": "task"}}) + "\n"
        + json.dumps({"message": options[1]["message"], "metadata": {"choice": {"index": 1, "options": options}}}))
    data = TestClient(create_app([tmp_path])).get(f"/api/scaffold{run}").json()
    assert data["kind"] == "modular"
    step0, step1 = data["steps"]
    assert step0["chosen"] == 1 and [m["content"] for m in step0["option_messages"]] == ["option 0", "option 1"]
    assert step0["judging"] == [{"attempt": 0, "choice": 1, "options": 2, "error": None}]
    assert step1["notes"][0]["kind"] == "prompt_trimmed"


def test_the_command_line_refuses_bad_input_in_one_line(tmp_path):
    def view(*args):
        return subprocess.run([sys.executable, "-m", "rebench_core.cli.view", *args], capture_output=True,
                              text=True, timeout=60)

    missing = view(str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "not a directory" in missing.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = view(str(tmp_path), "--port", str(busy.getsockname()[1]))
    assert taken.returncode == 2 and "cannot serve on 127.0.0.1" in taken.stderr and "--port 0" in taken.stderr
    assert "Traceback" not in taken.stderr + missing.stderr
