"""Run the agent's solution module on one problem (executed as the agent's user by the scorer).

Usage: python module_runner.py MODULE SEMAPHORE [--check]   (cwd: the directory holding MODULE.py)

Reads the problem as JSON on stdin, imports MODULE and calls RE-Bench's
`generate_solution(client, semaphore, problem)` (a coroutine function or a plain function) with an
`openai.AsyncOpenAI` client pointed at the run's metered endpoint (OPENAI_BASE_URL /
OPENAI_API_KEY) and an `asyncio.Semaphore(SEMAPHORE)` to hold around model calls. It prints one
line `@@RESULT@@ {"ok": true, "answer": "..."}` on its original stdout. Whatever the module prints
goes to stderr. `--check` only imports the module and checks the signature. The scorer trusts none
of this: it checks the result line itself (the module runs in this process and could forge it).
Exit codes: 0 done, 3 import failed, 4 generate_solution missing, unfit or failed.
"""

import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback

MARKER = "@@RESULT@@ "


def main():
    name, semaphore_size, check = sys.argv[1], int(sys.argv[2]), "--check" in sys.argv[3:]
    result_fd = os.dup(1)
    os.dup2(2, 1)  # the module's prints go to stderr
    sys.path.insert(0, os.getcwd())

    def emit(payload, code):
        os.write(result_fd, (MARKER + json.dumps(payload) + "\n").encode())
        os._exit(code)  # skip interpreter teardown: the module's threads must not outlive the answer

    try:
        module = importlib.import_module(name)
    except BaseException:
        emit({"ok": False, "error": "import failed", "traceback": traceback.format_exc()[-3000:]}, 3)
    solve = getattr(module, "generate_solution", None)
    if not callable(solve):
        emit({"ok": False, "error": f"{name} has no function generate_solution(client, semaphore, problem)"}, 4)
    try:
        inspect.signature(solve).bind(None, None, None)
    except (TypeError, ValueError) as exc:
        emit({"ok": False, "error": f"generate_solution must take (client, semaphore, problem), RE-Bench's "
                                    f"signature: {exc}"}, 4)
    if check:
        emit({"ok": True}, 0)
    problem = json.load(sys.stdin)
    try:
        import openai
        client = openai.AsyncOpenAI()  # base_url and key from OPENAI_BASE_URL / OPENAI_API_KEY

        async def call():
            answer = solve(client, asyncio.Semaphore(semaphore_size), problem)
            return await answer if inspect.isawaitable(answer) else answer

        answer = asyncio.run(call())
    except BaseException:
        emit({"ok": False, "error": "generate_solution raised", "traceback": traceback.format_exc()[-3000:]}, 4)
    if not isinstance(answer, str):
        emit({"ok": False, "error": f"generate_solution returned {type(answer).__name__}, not str"}, 4)
    emit({"ok": True, "answer": answer}, 0)


if __name__ == "__main__":
    main()
