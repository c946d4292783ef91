"""The Rust CodeContests environment end to end: setup, the scorer with a canned model behind the
metered endpoint, invalid modules, and a module that tries to read the protected tests."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from _rust_canned import PRICE, SUM_PROGRAM, CannedBackend

from rebench_core import sandbox
from rebench_core.endpoint import ModelEndpoint
from rebench_environments.rust_codecontests import problems, scoring
from rebench_environments.rust_codecontests.env import RustCodeContests
from rebench_environments.rust_codecontests.judging import JudgeLimits

needs_rustc = pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="protection of the test split needs the harness to run as root")

EXTRACTING_MODULE = '''
import os, re
async def generate_solution(client, problem):
    r = await client.chat.completions.create(model=os.environ["REBENCH_ENDPOINT_MODEL"],
                                             messages=[{"role": "user", "content": problem["description"]}])
    return re.search(r"```rust\\n(.*?)```", r.choices[0].message.content, re.S).group(1)
'''


@pytest.fixture(scope="module")
def splits():
    return problems.build_splits()


@pytest.fixture
def run(splits):
    """A workspace and protected dir laid out as the harness does, with a canned-model endpoint."""
    base = Path(tempfile.mkdtemp(prefix="rebench-rust-test-"))
    os.chmod(base, 0o755)
    workspace, protected = base / "workspace", base / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    env = RustCodeContests()
    records = []
    env.endpoint = ModelEndpoint(CannedBackend(), price=PRICE, budget_usd=1.0, on_call=records.append).start()
    instructions = env.setup(workspace, protected, "small", "main")
    sandbox.current_identity().give(workspace)
    by_name = {r["name"]: r for split in splits.values() for r in split}

    def use_tests(*names):
        (protected / "test.jsonl").write_text("".join(json.dumps(by_name[n]) + "\n" for n in names))

    def write_module(text):
        path = workspace / "solution" / "solve_code_contests_rust.py"
        path.write_text(text)
        sandbox.current_identity().give(path)

    yield env, workspace, protected, instructions, records, use_tests, write_module
    env.endpoint.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_problem_set_is_deterministic_and_split(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": 12, "valid": 8, "test": 22}
    names = [r["name"] for split in splits.values() for r in split]
    assert len(set(names)) == 42 == len(problems.SPECS)
    assert problems.build_splits()["test"][0] == splits["test"][0]
    spec = {s.name: s for s in problems.SPECS}
    assert spec["gcd_pair"].solve("12 18\n") == "6" and spec["run_length"].solve("aaabcc\n") == "a3b1c2"
    assert spec["balanced_brackets"].solve("([]{})\n") == "YES" and spec["balanced_brackets"].solve("(]\n") == "NO"
    assert spec["count_islands"].solve("2 3\n#.#\n##.\n") == "2" and spec["stair_ways"].solve("3") == "3"
    assert spec["max_subarray"].solve("4\n-1 3 -1 2\n") == "4" and spec["knapsack"].solve("2 5\n3 4\n3 5\n") == "5"
    for record in splits["test"]:
        assert len(record["public_tests"]["input"]) == 2 and len(record["private_tests"]["input"]) == 8
        assert record["public_tests"]["input"][0].strip() in record["description"]


def test_setup_stages_the_workspace_and_keeps_tests_protected(run, splits):
    env, workspace, protected, instructions, *_ = run
    solution = workspace / "solution"
    assert {p.name for p in solution.iterdir()} >= {"solve_code_contests_rust.py", "evaluate.py", "judging.py",
                                                    "judge_worker.py", "data"}
    staged = {json.loads(line)["name"] for p in (solution / "data").iterdir() for line in p.read_text().splitlines()}
    assert len(staged) == 20 and not staged & {r["name"] for r in splits["test"]}
    assert len((protected / "test.jsonl").read_text().splitlines()) == 22
    api = dict(line.split("=", 1) for line in (workspace / "api.env").read_text().splitlines())
    assert api["OPENAI_BASE_URL"] == env.endpoint.base_url and api["OPENAI_API_KEY"] == env.endpoint.api_key
    assert api["RUSTC"] == scoring.real_rustc()
    assert "canned-1" in instructions and "22 held-out" in instructions and "$1 " in instructions
    assert env.resources("small").executables == ("rustc",)
    assert env.normalization("full").y_ref == pytest.approx(21 / 165)


@needs_rustc
def test_scoring_judges_each_answer_and_bills_the_endpoint(run, splits):
    env, workspace, protected, _, records, use_tests, write_module = run
    by_name_record = {r["name"]: r for split in splits.values() for r in split}
    use_tests("sum_of_two", "max_element")  # the canned program sums its input: right for one only
    write_module(EXTRACTING_MODULE)
    entry = env.score(workspace, protected, "small")
    assert entry.raw == 0.5 and entry.message == {"n_successes": 1, "n_problems": 2,
                                                  "standard_error": pytest.approx(0.5 / math.sqrt(2))}
    by_name = {p["name"]: p for p in entry.details["problems"]}
    assert by_name["sum_of_two"]["status"] == "accepted" and by_name["sum_of_two"]["tests_passed"] == 10
    assert by_name["max_element"]["status"] == "wrong_answer"
    assert entry.details["endpoint"]["tokens"] > 0 and [r.client for r in records] == ["scorer", "scorer"]
    # The module saw the statement and public tests only.
    seen = sorted(call["messages"][0].content for call in env.endpoint.backend.calls)
    assert seen[1].startswith("Print the sum of two integers") and seen[0].startswith("Print the largest")
    private = [x for name in ("sum_of_two", "max_element") for x in by_name_record[name]["private_tests"]["input"]]
    assert not any(x.strip() in text for x in private for text in seen)
    # The starting solution returns the reply as it is, markdown included: it does not compile.
    shutil.copy(Path(scoring.__file__).parent / "assets" / "solution" / "solve_code_contests_rust.py",
                workspace / "solution")
    use_tests("sum_of_two")
    entry = env.score(workspace, protected, "small")
    assert entry.raw == 0 and entry.details["problems"][0]["status"] == "compile_error"


def test_a_module_that_fails_to_import_is_invalid(run):
    env, workspace, protected, _, _, use_tests, write_module = run
    use_tests("sum_of_two")
    write_module("def generate_solution(client, problem:\n")
    entry = env.score(workspace, protected, "small")
    assert math.isnan(entry.raw) and not entry.valid and "SyntaxError" in entry.message["error"]
    write_module("x = 1\n")
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and "no function generate_solution" in entry.message["error"]


@as_root
@needs_rustc
def test_protected_tests_cannot_be_read_by_the_module_or_its_program(run):
    env, workspace, protected, _, _, use_tests, write_module = run
    use_tests("sum_of_two")
    target = protected / "test.jsonl"
    write_module(f"def generate_solution(client, problem):\n    return open({str(target)!r}).read()\n")
    entry = env.score(workspace, protected, "small")
    detail = entry.details["problems"][0]["detail"]  # unreadable, or absent from its namespace
    assert entry.raw == 0 and ("PermissionError" in detail or "FileNotFoundError" in detail)
    # A program that embeds the file at compile time fails to compile as the agent...
    rust = 'fn main() { print!("{}", include_str!("%s")); }' % target
    write_module(f"def generate_solution(client, problem):\n    return {rust!r}\n")
    entry = env.score(workspace, protected, "small")
    assert entry.raw == 0 and entry.details["problems"][0]["status"] == "compile_error"
    assert any(why in entry.details["problems"][0]["detail"] for why in ("Permission denied", "No such file"))


@needs_rustc
def test_screened_compilation_refuses_file_access_and_runs_the_rest(run, splits):
    _, workspace, *_ = run
    record = next(r for r in splits["test"] + splits["train"] + splits["valid"] if r["name"] == "sum_of_two")
    toolchain = scoring.Toolchain(scoring.real_rustc(), "screened")
    limits = JudgeLimits()
    refused = scoring.judge(workspace, 'fn main() { print!("{}", include_str!("/etc/shadow")); }', record,
                            toolchain, limits)
    assert refused.status == "compile_error" and "include_str" in refused.detail
    program = SUM_PROGRAM.split("```rust\n")[1].split("```")[0]
    verdict = scoring.judge(workspace, program, record, toolchain, limits)
    assert verdict.status == "accepted" and verdict.tests_passed == 10


@needs_rustc
async def test_reference_filters_candidates_on_public_tests(monkeypatch, splits):
    """The reference keeps the candidate that passes the examples (a fake client, no endpoint)."""
    import importlib.util
    from types import SimpleNamespace

    folder = Path(scoring.__file__).parent
    monkeypatch.syspath_prepend(str(folder))  # the reference imports judging.py from its own folder
    monkeypatch.setenv("RUSTC", scoring.real_rustc())
    spec = importlib.util.spec_from_file_location("ref_solution", folder / "assets/reference/solve_code_contests_rust.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    wrong = "```rust\nfn main() { println!(\"0\"); }\n```"
    replies = [[wrong, "no code here"], [wrong, SUM_PROGRAM]]
    requests = []

    async def create(**kw):
        requests.append(kw)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=c)) for c in replies.pop(0)])

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    problem = next(r for r in splits["test"] + splits["train"] + splits["valid"] if r["name"] == "sum_of_two")
    answer = await ref.generate_solution(client, scoring.problem_for_module(problem))
    assert answer == ref.extract(SUM_PROGRAM) and "read_to_string" in answer
    assert len(requests) == 2 and requests[0]["n"] == ref.N  # a second round after no candidate passed
    assert ref.extract("```\nfn main() {}\n```\n```rust\nfn main() { let x = 1; }\n```") == "fn main() { let x = 1; }\n"


@pytest.mark.slow
@needs_rustc
async def test_a_harness_run_with_the_endpoint():
    """rebench's harness runs the environment end to end: a scripted agent evaluates the starting
    solution through the endpoint (from its own shell, with api.env) and submits; a scripted model
    behind the endpoint answers every call with a bare Rust program that sums its input."""
    from rebench_core import events as ev
    from rebench_core.harness import RunConfig, run
    from rebench_core.limits import Limits
    from rebench_core.registry import load_plugins

    root = Path(tempfile.mkdtemp(prefix="rebench-rust-e2e-"))
    os.chmod(root, 0o711)
    program = SUM_PROGRAM.split("```rust\n")[1].split("```")[0]
    (root / "endpoint.json").write_text(json.dumps({"turns": [{"content": program}] * 80,
                                                    "price": {"input": 0.5, "output": 1.5}}))
    command = "cd solution && python evaluate.py data/valid.jsonl solve_code_contests_rust --limit 1"
    agent = [{"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": command}}]},
             {"content": "", "tool_calls": [{"name": "submit", "arguments": {"submission": ""}}]}]
    (root / "agent.json").write_text(json.dumps({"turns": agent}))
    config = RunConfig(environment="rust_codecontests", scaffold="modular", model=f"scripted/{root / 'agent.json'}",
                       size="small", limits=Limits(time_s=600), out_dir=root / "run", cache_dir=root / "cache",
                       endpoint_model=f"scripted/{root / 'endpoint.json'}")
    try:
        summary = await run(config, load_plugins())
        assert summary["status"] == "submitted", summary
        assert [e["raw"] for e in summary["score_log"]] == pytest.approx([1 / 22, 1 / 22])
        results = [e for e in ev.read_events(root / "run") if e["type"] == "tool_result"]
        assert '"n_problems": 1' in results[0]["output"]  # evaluate.py reached the endpoint and judged
        # the harness booked the endpoint's calls on their own ledger, apart from the agent's
        calls = [e for e in ev.read_events(root / "run") if e["type"] == "model_call" and e["purpose"] == "endpoint"]
        assert {c["client"] for c in calls} == {"agent", "scorer"} and all(c["cost_usd"] > 0 for c in calls)
        assert summary["cost_usd"] == 0  # the scripted agent model is unpriced; endpoint dollars are not its
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_codecontests_rows_become_records_and_offline_prepare_fails_clearly(tmp_path, monkeypatch):
    from rebench_environments.rust_codecontests import codecontests

    row = {"name": "1500_A. Sum", "description": "Add.", "source": 2, "difficulty": 7, "cf_rating": 800,
           "input_file": "", "output_file": "", "time_limit": {"seconds": 1, "nanos": 500_000_000},
           "memory_limit_bytes": 256 << 20, "public_tests": {"input": ["1 2\n"], "output": ["3\n"]},
           "private_tests": {"input": [f"{i} 1\n" for i in range(30)], "output": [f"{i + 1}\n" for i in range(30)]}}
    record = codecontests.to_record(row)
    assert record["time_limit_s"] == 1.5 and record["memory_limit_mb"] == 256
    assert len(record["public_tests"]["input"]) + len(record["private_tests"]["input"]) == codecontests.MAX_TESTS
    assert codecontests.is_easy(row) and codecontests.usable(row)
    assert not codecontests.is_easy(row | {"difficulty": 11, "cf_rating": 2400})
    assert not codecontests.usable(row | {"input_file": "input.txt"})
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # as if not installed
    with pytest.raises(RuntimeError, match="--size small"):
        codecontests.prepare(tmp_path / "cc")
    with pytest.raises(RuntimeError, match="not prepared"):
        RustCodeContests()._splits("full")
