"""Studies on a real Ray cluster (a head and a second node on this machine): results as the local
executor's, placement by resources, secrets kept out of files, Ctrl-C, a lost node, refusal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from study_helpers import (cluster, comparable, probe_env, rebench_run, score_details,  # noqa: F401 (fixtures)
                           summaries, tree, write_study)

pytestmark = pytest.mark.slow
SCRIPTED_KEY = "sk-scripted-7f3a9c-never-on-disk"
OPENAI_KEY = "sk-openai-not-needed-by-these-runs"


@pytest.fixture(scope="module")
def keyed_env(probe_env):
    """The submitter's environment: a key the runs' provider reads, and one they do not need."""
    return dict(probe_env, SCRIPTED_PROBE_KEY=SCRIPTED_KEY, OPENAI_API_KEY=OPENAI_KEY)


@pytest.fixture
def submitter(cluster, keyed_env):
    """The environment of a study submitted to the test cluster."""
    return dict(cluster.env, SCRIPTED_PROBE_KEY=SCRIPTED_KEY, OPENAI_API_KEY=OPENAI_KEY)


@pytest.fixture(scope="module")
def local_study(tmp_path_factory, keyed_env):
    """The reference: a study of four runs (two needing the second node's resource) run locally."""
    base = tmp_path_factory.mktemp("local")
    (base / "model.json").write_text(json.dumps({"turns": [{"content": "7"}]}))
    spec = write_study(base / "study.json", f"scripted/{base / 'model.json'}", sizes=("small", "pinned"), samples=2)
    result = rebench_run(["--study", spec, "--out", base / "out", "--concurrency", "2"], keyed_env)
    assert result.returncode == 0, result.stderr
    return spec, base / "out"


@pytest.mark.parametrize("storage", ["copy-back", "shared"])
def test_a_ray_study_lands_as_the_local_one_with_placement_by_resources_and_no_secret_on_disk(
        storage, tmp_path, cluster, submitter, local_study):
    spec, local_out = local_study
    out = tmp_path / "ray"
    args = ["--study", spec, "--out", out, "--executor", "ray", "--ray-address", cluster.address, "--json"]
    if storage == "shared":  # every node of this cluster sees this machine's filesystem
        args += ["--ray-shared-dir", out]
    result = rebench_run(args, submitter)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["runs"] == 4 and "started" in result.stderr and " on 127.0.0.2" in result.stderr

    assert tree(out) == tree(local_out)  # the same files, with the same permissions
    ours, theirs = summaries(out), summaries(local_out)
    assert {k: comparable(v) for k, v in ours.items()} == {k: comparable(v) for k, v in theirs.items()}
    assert all(s["status"] == "submitted" and s["final_normalized_score"] == 1.0 for s in ours.values())
    for run in ours:  # the run that asks for probe_worker ran on the node that has it
        details = score_details(out / run)
        if "/pinned-" in run:
            assert {d["node"] for d in details} == {"worker"}
        # the key of the run's provider reached it; a key it does not need did not
        assert {d["scripted_key"] for d in details} == {score_details(local_out / run)[0]["scripted_key"]}
        assert {d["openai_key"] for d in details} == {None}
    assert not list(cluster.dir.glob("scratch-*/*/*/**/sample-*"))  # copied-back runs leave no scratch copy
    for path in [*out.rglob("*"), *local_out.rglob("*"), *cluster.ray_files()]:
        if path.is_file():
            data = path.read_bytes()
            assert SCRIPTED_KEY.encode() not in data and OPENAI_KEY.encode() not in data, path


def test_a_study_no_node_can_ever_place_is_refused_before_anything_is_written(tmp_path, cluster):
    spec = write_study(tmp_path / "study.json", "scripted/x.json", sizes=("impossible",))
    result = rebench_run(["--study", spec, "--out", tmp_path / "out", "--executor", "ray",
                          "--ray-address", cluster.address], cluster.env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no node of the Ray cluster")
    assert "no_node_has_this 1" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def _start(args, env):
    return subprocess.Popen([sys.executable, "-m", "rebench_core.cli.run", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_started(proc, count, timeout=90):
    """Read the study's stderr until `count` runs have started; the lines read."""
    lines, deadline = [], time.monotonic() + timeout
    while sum(line.startswith("started ") for line in lines) < count:
        assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
        lines.append(proc.stderr.readline())
    return lines


def test_ctrl_c_and_a_lost_node_leave_the_study_resumable_and_complete_after_resume(tmp_path, cluster):
    # Two runs that only the second node can take, each about 6 s long, copied back when they end.
    (tmp_path / "model.json").write_text(json.dumps({"turns": [{"content": "7", "delay_s": 5}]}))
    spec = write_study(tmp_path / "study.json", f"scripted/{tmp_path / 'model.json'}", sizes=("pinned",), samples=2)
    out = tmp_path / "out"
    args = ["--study", spec, "--out", out, "--executor", "ray", "--ray-address", cluster.address]

    study = _start(args, cluster.env)  # Ctrl-C mid-run: the runs end interrupted and come back
    _wait_started(study, 2)
    time.sleep(1)
    study.send_signal(signal.SIGINT)
    _, err = study.communicate(timeout=120)
    assert study.returncode == 130, err
    assert {s["status"] for s in summaries(out).values()} == {"interrupted"} and len(summaries(out)) == 2

    study = _start(args, cluster.env)  # resumed from the study directory's copies; then the node is lost
    _wait_started(study, 2)
    time.sleep(1)
    cluster.kill("worker")
    _, err = study.communicate(timeout=120)
    assert study.returncode == 1 and err.count("left unfinished") == 2, err
    assert "no other live node can take it" in err
    assert {s["status"] for s in summaries(out).values()} == {"interrupted"}  # the last sound copies

    cluster.start("worker")  # the node is back: the study finishes, each run once
    result = rebench_run(args + ["--json"], cluster.env)
    assert result.returncode == 0, result.stderr
    assert "2 runs, 0 already done, 2 to run" in result.stderr
    done = summaries(out)
    assert len(done) == 2 and all(s["status"] == "submitted" and s["resumed"] >= 1 for s in done.values())
    assert sorted(p.name for p in out.rglob("sample-*")) == ["sample-000", "sample-001"]  # no stray copies
    for run, summary in done.items():
        starts = [e for e in map(json.loads, (out / run / "events.jsonl").read_text().splitlines())
                  if e["type"] in ("run_start", "run_resume")]
        assert [e["type"] for e in starts][0] == "run_start" and len(starts) == 1 + summary["resumed"]
