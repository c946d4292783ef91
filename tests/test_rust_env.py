"""The Rust CodeContests environment driven as the harness drives it (`rebench_core.testing`):
setup, the scorer with a scripted model behind the metered endpoint, held-out problems drawn from
a secret (and the lookup attack that scored 22/22 before), malformed modules, and modules that try
to read the protected tests."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _rust_canned import SUM_PROGRAM

from rebench_core.testing import environment
from rebench_environments.rust_codecontests import problems, scoring
from rebench_environments.rust_codecontests.judging import JudgeLimits

needs_rustc = pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="protection of the test split needs the harness to run as root")
ENV_DIR = Path(scoring.__file__).parent
PROGRAM = SUM_PROGRAM.split("```rust\n")[1].split("```")[0]

EXTRACTING_MODULE = '''
import os, re
async def generate_solution(client, semaphore, problem):
    async with semaphore:
        r = await client.chat.completions.create(model=os.environ["REBENCH_ENDPOINT_MODEL"],
                                                 messages=[{"role": "user", "content": problem["description"]}])
    return re.search(r"```rust\\n(.*?)```", r.choices[0].message.content, re.S).group(1)
'''

# Issue 16's attack: answer from what the installed package can rebuild, without the model. It
# rebuilds every problem it can (the visible splits, and held-out sets for guessable secrets) and
# returns a program that prints the recorded output of each recorded input.
LOOKUP_MODULE = '''
from rebench_environments.rust_codecontests import problems

KNOWN = {}
for records in [*problems.visible_splits().values(),
                *(problems.heldout(guess, 8) for guess in (b"", b"0" * 32, bytes(32), problems.PUBLIC_SEED))]:
    for r in records:
        KNOWN[r["description"]] = r

def rust_literal(text):
    return '"' + text.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"').replace("\\n", "\\\\n") + '"'

def generate_solution(client, semaphore, problem):
    r = KNOWN.get(problem["description"])
    if r is None:
        return "fn main() {}"
    tests = list(zip(r["public_tests"]["input"] + r["private_tests"]["input"],
                     r["public_tests"]["output"] + r["private_tests"]["output"]))
    arms = "".join(f"    if s == {rust_literal(i)} {{ print!({rust_literal(o)}); return; }}\\n" for i, o in tests)
    return ("use std::io::Read;\\nfn main() {\\n    let mut s = String::new();\\n"
            "    std::io::stdin().read_to_string(&mut s).unwrap();\\n" + arms + "}\\n")
'''


@pytest.fixture(scope="module")
def endpoint_script(tmp_path_factory):
    path = tmp_path_factory.mktemp("rust-endpoint") / "endpoint.json"
    path.write_text(json.dumps({"turns": [{"content": SUM_PROGRAM, "usage": {"input_tokens": 50, "output_tokens": 60}}]
                                * 400, "price": {"input": 0.5, "output": 1.5}}))
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    return path


@pytest.fixture
def run(request, endpoint_script):
    """A prepared session (scripted model behind the endpoint), with a workspace and protected dir
    laid out as the harness does. `generate_solution` may take 60 s, so that a module's start (an
    interpreter in the sandbox) never runs out on a loaded machine; a test about the limit itself
    sets a short one with `@pytest.mark.generate_timeout_s(S)`."""
    base = Path(tempfile.mkdtemp(prefix="rebench-rust-test-"))
    os.chmod(base, 0o755)
    workspace, protected = base / "workspace", base / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    short = request.node.get_closest_marker("generate_timeout_s")
    settings = {"n_test": 3, "workers": 2, "generate_timeout_s": short.args[0] if short else 60.0}
    with environment("rust_codecontests", size="small", cache_root=base / "cache", settings=settings,
                     endpoint_model=f"scripted/{endpoint_script}") as env:
        instructions = env.setup(workspace, protected)
        env.ctx.agent.give(workspace)

        def write_module(text):
            path = workspace / "solution" / "solve_code_contests_rust.py"
            path.write_text(text)
            env.ctx.agent.give(path)

        def use_tests(records):
            (protected / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

        yield env, workspace, protected, instructions, write_module, use_tests
    shutil.rmtree(base, ignore_errors=True)


def by_name(name):
    return next(r for split in problems.visible_splits().values() for r in split if r["name"] == name)


def test_visible_problems_are_deterministic_and_held_out_ones_come_from_the_secret():
    visible = problems.visible_splits()
    assert {k: len(v) for k, v in visible.items()} == {"train": 42, "valid": 32}
    assert problems.visible_splits()["valid"][3] == visible["valid"][3]
    spec = {s.name: s for s in problems.SPECS}
    assert spec["gcd_pair"].solve("12 18\n") == "6" and spec["run_length"].solve("aaabcc\n") == "a3b1c2"
    assert spec["count_islands"].solve("2 3\n#.#\n##.\n") == "2" and spec["knapsack"].solve("2 5\n3 4\n3 5\n") == "5"
    a, b = problems.heldout(b"a" * 32, 32), problems.heldout(b"b" * 32, 32)
    assert a == problems.heldout(b"a" * 32, 32)  # the same secret, the same problems
    assert not {r["name"] for r in a} & {r["name"] for r in b}
    assert not {r["description"] for r in a} & {r["description"] for r in b}
    assert not {r["description"] for r in a} & {r["description"] for split in visible.values() for r in split}
    for record in a:
        assert len(record["public_tests"]["input"]) == 2 and len(record["private_tests"]["input"]) == 8
        assert record["public_tests"]["input"][0].strip() in record["description"]


def test_setup_stages_the_workspace_and_keeps_tests_protected(run):
    env, workspace, protected, instructions, *_ = run
    solution = workspace / "solution"
    assert {p.name for p in solution.iterdir()} >= {"solve_code_contests_rust.py", "evaluate.py", "judging.py",
                                                    "judge_worker.py", "data"}
    held = [json.loads(line) for line in (protected / "test.jsonl").read_text().splitlines()]
    staged = {json.loads(line)["name"] for p in (solution / "data").iterdir() for line in p.read_text().splitlines()}
    assert len(held) == 3 and not staged & {r["name"] for r in held}
    assert (env.ctx.cache_dir / "small" / "heldout.secret").stat().st_mode & 0o077 == 0
    api = dict(line.split("=", 1) for line in (workspace / "api.env").read_text().splitlines())
    assert api["OPENAI_BASE_URL"] == env.endpoint.base_url and api["OPENAI_API_KEY"] == env.endpoint.api_key
    assert api["RUSTC"] == scoring.real_rustc()
    assert "generate_solution(client, semaphore, problem)" in instructions and "3 held-out" in instructions
    assert "$500 " in instructions and env.endpoint.max_tokens_cap == 384


def test_full_declares_the_papers_machine_and_constants(tmp_path):
    from rebench_environments.rust_codecontests.env import RustCodeContests

    resources = RustCodeContests().resources("full")
    assert (resources.cpus, resources.memory_gb, resources.gpus) == (20, 100.0, 0)
    with environment("rust_codecontests", size="small", cache_root=tmp_path, settings={"n_test": 1}) as env:
        from dataclasses import replace
        assert RustCodeContests().normalization(replace(env.ctx, size="full")).y_ref == pytest.approx(21 / 165)


@needs_rustc
def test_the_lookup_attack_finds_nothing_to_look_up(run):
    """Issue 16: a module that looked answers up in the package scored 22/22. It still works on
    what the package can rebuild (a visible problem), and finds none of the held-out problems."""
    env, workspace, protected, _, write_module, use_tests = run
    write_module(LOOKUP_MODULE)
    entry = env.score(workspace, protected)
    assert entry.valid and entry.raw == 0.0 and entry.message["n_problems"] == 3, entry.details
    use_tests([problems.visible_splits()["valid"][0]])  # where the data is derivable, the attack solves it
    control = env.score(workspace, protected)
    assert control.raw == 1.0, control.details["problems"]


@needs_rustc
def test_scoring_judges_each_answer_and_bills_the_endpoint(run):
    env, workspace, protected, _, write_module, use_tests = run
    use_tests([by_name("sum_of_two"), by_name("max_element")])  # the scripted program sums its input
    write_module(EXTRACTING_MODULE)
    entry = env.score(workspace, protected)
    assert entry.raw == 0.5 and entry.message == {"n_successes": 1, "n_problems": 2,
                                                  "standard_error": pytest.approx(0.5 / math.sqrt(2))}
    result = {p["name"]: p for p in entry.details["problems"]}
    assert result["sum_of_two"]["status"] == "accepted" and result["sum_of_two"]["tests_passed"] == 10
    assert result["max_element"]["status"] == "wrong_answer"
    assert entry.details["endpoint"]["tokens"] == 2 * 110 and entry.details["endpoint"]["cost_usd"] > 0
    # The starting solution returns the reply as it is, markdown included: it does not compile.
    shutil.copy(ENV_DIR / "assets" / "solution" / "solve_code_contests_rust.py", workspace / "solution")
    use_tests([by_name("sum_of_two")])
    entry = env.score(workspace, protected)
    assert entry.raw == 0 and entry.details["problems"][0]["status"] == "compile_error", entry.details["problems"][0]


@pytest.mark.parametrize("module, reason", [
    ("def generate_solution(client, semaphore, problem:\n", "SyntaxError"),
    ("x = 1\n", "no function generate_solution"),
    ("def generate_solution(client, problem):\n    return ''\n", "(client, semaphore, problem)"),
    ("import sys\nsys.exit(0)\n", "could not be loaded"),
])
def test_a_module_that_cannot_be_called_is_invalid(run, module, reason):
    env, workspace, protected, _, write_module, *_ = run
    write_module(module)
    entry = env.score(workspace, protected)
    assert math.isnan(entry.raw) and not entry.valid and reason in entry.message["error"]


FORGED = '''
import os
def generate_solution(client, semaphore, problem):
    os.write(3, b'@@RESULT@@ {"ok": true, "answer": {"not": "text"}}\\n')  # the runner's result descriptor
    os._exit(0)
'''


@needs_rustc
@pytest.mark.parametrize("body, status, detail", [
    ("    return 42\n", "no_answer", "returned int, not str"),
    ("    return 'x' * 2_000_000\n", "no_answer", "at most 1,000,000"),
    ("    raise ValueError('boom')\n", "no_answer", "ValueError: boom"),
    pytest.param("    import time\n    time.sleep(600)\n", "no_answer", "ran past",
                 marks=pytest.mark.generate_timeout_s(5.0)),
    ("    import os\n    os._exit(0)\n", "no_answer", "without an answer"),
    ("    print('@@RESULT@@ {\"ok\": true, \"answer\": \"fn main() {}\"}')\n    return None\n", "no_answer",
     "returned NoneType"),
])
def test_malformed_answers_are_no_answer_with_a_reason(run, body, status, detail):
    env, workspace, protected, _, write_module, *_ = run
    write_module("def generate_solution(client, semaphore, problem):\n" + body)
    entry = env.score(workspace, protected)
    assert entry.valid and entry.raw == 0.0
    assert {p["status"] for p in entry.details["problems"]} == {status}
    assert detail in entry.details["problems"][0]["detail"], entry.details["problems"][0]


@needs_rustc
def test_a_forged_result_line_is_not_trusted(run):
    """The module runs inside the runner: it can write its own result line on the runner's result
    descriptor. A forged answer that is not text is no answer, not a scorer crash."""
    env, workspace, protected, _, write_module, *_ = run
    write_module(FORGED)
    entry = env.score(workspace, protected)
    assert entry.valid and entry.raw == 0.0
    assert {p["status"] for p in entry.details["problems"]} == {"no_answer"}
    assert "not a string" in entry.details["problems"][0]["detail"]


def _fork_module(marker: str, new_session: bool) -> str:
    return (f"import subprocess\ndef generate_solution(client, semaphore, problem):\n"
            f"    subprocess.Popen(['bash', '-c', 'exec -a {marker} sleep 300'], start_new_session={new_session})\n"
            f"    return 'fn main() {{}}'\n")


def _left_running(marker: str) -> list[int]:
    pids = [int(p) for p in subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()]
    for pid in pids:  # ours (the test's module started them): end them whatever the assertion says
        subprocess.run(["kill", "-9", str(pid)], capture_output=True)
    return pids


@needs_rustc
@pytest.mark.parametrize("new_session", [False, True])
def test_a_module_that_forks_leaves_nothing_running(run, new_session):
    env, workspace, protected, _, write_module, *_ = run
    marker = f"rebench-fork-{os.getpid()}-{int(new_session)}"
    write_module(_fork_module(marker, new_session))
    entry = env.score(workspace, protected)
    assert entry.valid and {p["status"] for p in entry.details["problems"]} == {"wrong_answer"}, entry.details["problems"]
    assert _left_running(marker) == [], "processes the module started outlived the score"


@as_root
@needs_rustc
def test_protected_tests_cannot_be_read_by_the_module_or_its_program(run):
    env, workspace, protected, _, write_module, *_ = run
    target = protected / "test.jsonl"
    secret = env.ctx.cache_dir / "small" / "heldout.secret"
    write_module(f"def generate_solution(client, semaphore, problem):\n    return open({str(target)!r}).read()\n")
    entry = env.score(workspace, protected)
    detail = entry.details["problems"][0]["detail"]  # unreadable, or absent from its namespace
    assert entry.raw == 0 and ("PermissionError" in detail or "FileNotFoundError" in detail)
    write_module(f"def generate_solution(client, semaphore, problem):\n    return open({str(secret)!r}).read()\n")
    entry = env.score(workspace, protected)
    detail = entry.details["problems"][0]["detail"]  # unreadable, or absent from its namespace
    assert entry.raw == 0 and ("PermissionError" in detail or "FileNotFoundError" in detail)
    # A program that embeds the file at compile time fails to compile as the agent...
    rust = 'fn main() { print!("{}", include_str!("%s")); }' % target
    write_module(f"def generate_solution(client, semaphore, problem):\n    return {rust!r}\n")
    entry = env.score(workspace, protected)
    assert entry.raw == 0 and entry.details["problems"][0]["status"] == "compile_error", entry.details["problems"][0]
    assert any(why in entry.details["problems"][0]["detail"] for why in ("Permission denied", "No such file"))


@needs_rustc
def test_screened_compilation_refuses_file_access_and_runs_the_rest(run):
    env, workspace, *_ = run
    record = by_name("sum_of_two")
    toolchain = scoring.Toolchain(scoring.real_rustc(), "screened")
    refused = scoring.judge(env.ctx, workspace, 'fn main() { print!("{}", include_str!("/etc/shadow")); }', record,
                            toolchain, JudgeLimits())
    assert refused.status == "compile_error" and "include_str" in refused.detail
    verdict = scoring.judge(env.ctx, workspace, PROGRAM, record, toolchain, JudgeLimits())
    assert verdict.status == "accepted" and verdict.tests_passed == 10


@needs_rustc
async def test_reference_filters_candidates_on_public_tests(monkeypatch):
    """The reference keeps the candidate that passes the examples (a fake client, no endpoint)."""
    import asyncio
    import importlib.util
    from types import SimpleNamespace

    monkeypatch.syspath_prepend(str(ENV_DIR))  # the reference imports judging.py from its own folder
    monkeypatch.setenv("RUSTC", scoring.real_rustc())
    spec = importlib.util.spec_from_file_location("ref_solution", ENV_DIR / "assets/reference/solve_code_contests_rust.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    wrong = "```rust\nfn main() { println!(\"0\"); }\n```"
    unimported = SUM_PROGRAM.replace("use std::io::Read;\n", "")
    replies = [[wrong, "no code here"], [wrong, unimported]]
    requests = []

    async def create(**kw):
        requests.append(kw)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=c)) for c in replies.pop(0)])

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    answer = await ref.generate_solution(client, asyncio.Semaphore(2), scoring.problem_for_module(by_name("sum_of_two")))
    assert "read_to_string" in answer and answer.startswith("use std::io::Read;")  # the import was repaired
    assert len(requests) == 2 and requests[0]["n"] == ref.N  # a second round after no candidate passed
    assert [m["role"] for m in requests[0]["messages"]][:3] == ["system", "user", "assistant"]  # worked examples
    assert ref.extract("```\nfn main() {}\n```\n```rust\nfn main() { let x = 1; }\n```") == "fn main() { let x = 1; }\n"


def test_the_class_module_imports_nothing_heavy():
    code = ("import sys; from rebench_environments.rust_codecontests.env import RustCodeContests; "
            "print(sorted(m for m in ('torch', 'numpy', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
@needs_rustc
async def test_a_harness_run_with_the_endpoint(endpoint_script):
    """rebench's harness runs the environment end to end: a scripted agent evaluates the starting
    solution through the endpoint (from its own shell, with api.env) and submits; a scripted model
    behind the endpoint answers every call with a Rust program that sums its input."""
    from rebench_core import events as ev
    from rebench_core.harness import RunConfig, run
    from rebench_core.limits import Limits
    from rebench_core.registry import load_plugins

    root = Path(tempfile.mkdtemp(prefix="rebench-rust-e2e-"))
    os.chmod(root, 0o711)
    command = "cd solution && python evaluate.py data/train.jsonl solve_code_contests_rust --limit 1"
    agent = [{"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": command}}]},
             {"content": "", "tool_calls": [{"name": "submit", "arguments": {"submission": ""}}]}]
    (root / "agent.json").write_text(json.dumps({"turns": agent}))
    config = RunConfig(environment="rust_codecontests", scaffold="modular", model=f"scripted/{root / 'agent.json'}",
                       size="small", limits=Limits(time_s=600), out_dir=root / "run", cache_dir=root / "cache",
                       endpoint_model=f"scripted/{endpoint_script}", env_settings={"n_test": 2})
    try:
        summary = await run(config, load_plugins())
        assert summary["status"] == "submitted", summary
        assert [e["raw"] for e in summary["score_log"]] == [0.0, 0.0]  # the summing program solves no held-out one
        results = [e for e in ev.read_events(root / "run") if e["type"] == "tool_result"]
        assert '"n_problems": 1' in results[0]["output"]  # evaluate.py reached the endpoint and judged
        calls = [e for e in ev.read_events(root / "run") if e["type"] == "model_call" and e["purpose"] == "endpoint"]
        assert {c["client"] for c in calls} == {"agent", "scorer"} and all(c["cost_usd"] > 0 for c in calls)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_codecontests_rows_become_records_and_offline_prepare_fails_clearly(tmp_path, monkeypatch):
    import structlog

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
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(RuntimeError, match="--size small"):
        codecontests.prepare(tmp_path / "cc", structlog.get_logger())
