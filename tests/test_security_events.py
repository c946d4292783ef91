"""The event log: nothing the agent does, directly or through the harness, adds a line to it.

Issue 14's attack pointed the next tool output file at the run's events.jsonl and appended a forged
run (summary and report then showed a normalised score of 32.1). Here the agent tries that and its
variants in one real run: the output names, its long-output directory linked to the run directory,
a linked output file name, writing the log directly, and a forged run_end through its own output.
"""

from __future__ import annotations

import json
import os

from security_fixtures import harness_run, mode, needs_root  # noqa: F401  (fixtures)

from rebench_core.events import read_events, summarize

pytestmark = needs_root

FORGED = '{"ts": 1, "elapsed_s": 1, "type": "score", "trigger": "final", "raw": 0.0, "valid": true, "normalized": 32.1}'


def test_the_agent_cannot_add_to_the_event_log(registry, tmp_path, mode):
    run_dir = tmp_path / "run"
    events = run_dir / "events.jsonl"
    commands = [
        # direct writes (through the workspace's parent, and by absolute path)
        f"echo '{FORGED}' >> ../events.jsonl; echo '{FORGED}' >> {events}; echo direct=$?",
        # the harness's own output file for this call, and guessed names of the next ones
        f"me=$BASHPID; out=$(readlink /proc/$me/fd/1); io=$(dirname \"$out\"); "
        f"for n in $(seq 1 20); do ln -sf {events} $io/out-$n; ln -sf {events} $io/$n.log; done; echo plant=$?",
        # the long-output directory and file names, linked to the run directory and the log
        f"rm -rf .rebench_outputs; ln -s {run_dir} .rebench_outputs; echo link=$?",
        "seq 1 100000",
        f"rm .rebench_outputs; mkdir .rebench_outputs; ln -s {events} .rebench_outputs/output-2.txt; "
        f"ln -s {events} .rebench_outputs/output-3.txt; echo names=$?",
        f"for i in $(seq 1 30000); do echo '{FORGED}'; done",
        "echo 737 > answer.txt",
    ]
    summary = harness_run(registry, tmp_path, commands)
    logged = read_events(run_dir)
    assert all(e.get("normalized") != 32.1 for e in logged if e["type"] == "score")
    assert [e["trigger"] for e in logged if e["type"] == "score"] == ["initial", "final"]
    assert summary["final_normalized_score"] == 1.0 and summarize(logged) == json.loads(
        (run_dir / "summary.json").read_text())
    # every line is the harness's: a JSON event with the fields it writes, none copied from output
    lines = events.read_text().splitlines()
    assert all(set(json.loads(line)) >= {"ts", "elapsed_s", "type"} for line in lines)
    assert not any(line == FORGED for line in lines)
    assert os.stat(events).st_uid == 0 and os.stat(events).st_mode & 0o077 == 0
    assert not (run_dir / "output-1.txt").exists() and not (run_dir / "output-2.txt").exists()
