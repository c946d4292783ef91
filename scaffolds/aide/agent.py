"""AIDE (WecoAI's tree search over whole-file solutions), run the way METR ran it on RE-Bench.

One step: pick a parent with the search policy, ask the model for a plan and a complete file,
write the file where the environment wants it, run it in the workspace, score the workspace
officially, have the model review the output and the score, and append the node to the journal.
The run's limits (time, tokens, dollars) end the search, not a step count; the harness cancels
`run` when one is hit, so the journal is saved after every node, and the best node's files are
put back into the workspace on the way out, so the final official score is of the best solution.
"""

from __future__ import annotations

import math
import random
import re
import shlex
import shutil
import traceback
from pathlib import Path
from typing import Any, Literal

import pydantic

from rebench_core.backend import ModelAPIError
from rebench_core.scaffold import AgentTask, Scaffold

from . import html_view, prompts, review as review_mod, workspace as ws
from .journal import Journal, Node, trim_output
from .policy import SearchPolicy
from .response import extract_plan_and_code, parse_solution_file, safe_relative_path

JOURNAL_FILE = "journal.json"
TREE_FILE = "tree.html"
BEST_DIR = "best"
BEST_SOLUTION_FILE = "best_solution.py"
# When nothing else bounds the run, stop after the original's default number of steps.
DEFAULT_STEPS = 20
# Models whose context window is at most this get the small-model profile when `profile` is "auto":
# an 8k-window model cannot hold 20,000 characters of memory and 6,000 of workspace preview, and
# at 30 tokens/s an uncapped reply costs half a minute (docs/scaffolds/aide.md).
SMALL_WINDOW = 16_384


class AideAgent(Scaffold):
    name = "aide"
    summary = "AIDE tree search (draft / debug / improve whole-file solutions), RE-Bench adaptation"

    class Settings(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")

        num_drafts: int = pydantic.Field(5, ge=1, description="first drafts before debugging or improving")
        debug_prob: float = pydantic.Field(0.5, ge=0, le=1, description="chance to debug a buggy leaf")
        max_debug_depth: int = pydantic.Field(3, ge=0, description="deepest debug node still debugged (<=)")
        exec_timeout_s: float = pydantic.Field(3600, gt=0, description="per execution; also capped by time left")
        solution_file: str | None = pydantic.Field(None, description="skip the question and use this file")
        default_solution_file: str = "solution.py"
        run_command: str = pydantic.Field("python {file}", description="how a solution is run; {file} is replaced")
        direction: Literal["auto", "min", "max"] = pydantic.Field(
            "auto", description="which scores are better; auto: the environment's, else the reviewers' majority")
        score_nodes: bool = pydantic.Field(True, description="score officially after each successful execution")
        max_steps: int | None = pydantic.Field(None, ge=1, description="optional cap on nodes (limits end runs)")
        code_temperature: float = 0.5
        feedback_temperature: float = 0.5
        max_tokens: int | None = pydantic.Field(None, gt=0, description="output cap per call; backend default")
        profile: Literal["auto", "full", "small"] = pydantic.Field(
            "auto", description="small: the small-model profile (small_max_tokens per call, one code attempt, "
                                "short memory and preview, the default solution file without asking); auto: "
                                f"small when the model's context window is at most {SMALL_WINDOW:,} tokens")
        small_max_tokens: int = pydantic.Field(320, gt=0, description="output cap per call, small profile")
        code_attempts: int = pydantic.Field(3, ge=1, description="tries to get a code block out of the model")
        review_mode: Literal["tool", "text"] = pydantic.Field(
            "tool", description="tool: forced submit_review call, text fallback; text: text format only")
        memory_max_chars: int = pydantic.Field(20_000, gt=0)
        preview_max_chars: int = pydantic.Field(6_000, gt=0)
        snapshot_max_mb: float = pydantic.Field(1024, ge=0, description="cap on the best node's saved files")
        max_consecutive_errors: int = pydantic.Field(5, ge=1, description="scaffold errors in a row that end the run")
        seed: int | None = None
        resume: bool = pydantic.Field(True, description="continue from state_dir/journal.json when present")
        resume_from: str | None = pydantic.Field(
            None, description="an earlier run's scaffold/ dir (or journal.json) whose search this run continues")

        @pydantic.field_validator("solution_file")
        @classmethod
        def _relative(cls, value: str | None) -> str | None:
            if value is not None and safe_relative_path(value) is None:
                raise ValueError(f"solution_file must be a path inside the workspace, got {value!r}")
            return value

        @pydantic.field_validator("run_command")
        @classmethod
        def _has_file(cls, value: str) -> str:
            if "{file}" not in value:
                raise ValueError(f"run_command must contain {{file}}, got {value!r}")
            return value

        def for_window(self, context_window: int | None) -> AideAgent.Settings:
            """The settings a run uses with a model of this context window (`profile` resolved)."""
            small = self.profile == "small" or (self.profile == "auto" and context_window is not None
                                                and context_window <= SMALL_WINDOW)
            if not small:
                return self.model_copy(update={"profile": "full"})
            return self.model_copy(update={
                "profile": "small", "max_tokens": min(self.max_tokens or self.small_max_tokens, self.small_max_tokens),
                "code_attempts": 1, "memory_max_chars": min(self.memory_max_chars, 1_500),
                "preview_max_chars": min(self.preview_max_chars, 1_500),
                "solution_file": self.solution_file or self.default_solution_file})

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        s = self.settings
        self.policy = SearchPolicy(s.num_drafts, s.debug_prob, s.max_debug_depth)
        self._restored = False

    # -- the loop ----------------------------------------------------------------------------------
    async def run(self, task: AgentTask) -> None:
        self.settings = self.settings.for_window(task.context_window)
        task.log("aide_profile", profile=self.settings.profile, max_tokens=self.settings.max_tokens)
        self.task = task
        self.state = Path(task.state_dir)
        self.state.mkdir(parents=True, exist_ok=True)
        self.journal = self._load_or_new()
        if len(self.journal):  # resuming: start from the best solution found so far
            info = self._put_best_files()
            if info:
                task.log("aide_resume_restore", **info)
        # Seeded from the setting, else the run's seed (`--seed`); offset by the journal's length so a
        # resumed search does not replay the coin flips it already made.
        seed = self.settings.seed if self.settings.seed is not None else getattr(task, "seed", None)
        self.rng = random.Random(None if seed is None else f"{seed}:{len(self.journal)}")
        self._save()  # a journal exists from the start, even if the first model call never returns
        try:
            await self._search()
            self._restore_best()
            if not task.submitted:
                await task.submit()
        finally:
            # Cancelled by a limit, or failed: put the best solution back before the harness takes
            # the final score. Synchronous on purpose, so a second cancellation cannot cut it short.
            self._restore_best()

    async def _search(self) -> None:
        task, journal = self.task, self.journal
        if journal.solution_file is None:
            journal.solution_file, journal.starting_code = await self._choose_solution_file()
            self._save()
        max_steps = self.settings.max_steps
        if max_steps is None and not task.usage().fractions():
            max_steps = DEFAULT_STEPS
            task.log("aide_note", message=f"no time, token or cost limit and no max_steps: stopping after {max_steps} nodes")
        errors = 0
        while not task.submitted and (max_steps is None or len(journal) < max_steps):
            try:
                await self._step()
                errors = 0
            except Exception as exc:  # LimitExceeded and cancellation are BaseExceptions and pass through
                errors += 1
                task.log("aide_error", error=f"{type(exc).__name__}: {exc}", consecutive=errors,
                         traceback=traceback.format_exc(limit=5))
                if errors >= self.settings.max_consecutive_errors:
                    task.log("aide_stop", reason=f"{errors} scaffold errors in a row; last: {type(exc).__name__}: {exc}")
                    return

    async def _step(self) -> None:
        journal = self.journal
        parent = self.policy.select(journal, self.rng)
        stage, depth = journal.child_stage(parent)
        ctx = self._context()
        if parent is None:
            prompt = prompts.draft_prompt(ctx, journal.starting_code)
        elif stage == "debug":
            prompt = prompts.debug_prompt(ctx, parent)
        else:
            prompt = prompts.improve_prompt(ctx, parent)
        plan, code, reply = await self._plan_and_code(prompt)
        node = Node(code=code, plan=plan, stage=stage, parent_id=parent.id if parent else None, debug_depth=depth)
        try:
            if not code.strip():  # nothing to run or review: a buggy leaf for the debug operator
                node.exc_type = "NoCode"
                node.output = "The reply held no Python code block. Reply was:\n" + reply[:3000]
                node.analysis = "The model's reply contained no code."
                node.is_buggy, node.review_mode = True, "none"
            else:
                await self._execute(node)
                if node.exc_type is None and self.task.can_score and self.settings.score_nodes:
                    await self._score(node)
                await self._review(node)
        except Exception as exc:  # a broken node is recorded as buggy; the search goes on
            node.error = f"{type(exc).__name__}: {exc}"
            node.exc_type = node.exc_type or "ScaffoldError"
            node.is_buggy, node.metric = True, None
            node.review_mode = node.review_mode or "none"
        self._record(node)

    # -- operators -----------------------------------------------------------------------------------
    async def _plan_and_code(self, prompt: dict[str, Any]) -> tuple[str, str, str]:
        """Plan and code from the model; retried (as in AIDE) while the reply holds no code."""
        messages = prompts.to_messages(prompt)
        reply = ""
        for _ in range(self.settings.code_attempts):
            completion = await self.task.generate(messages, **self._params(self.settings.code_temperature))
            reply = completion.text or ""
            plan, code = extract_plan_and_code(reply)
            if code:
                return plan, code, reply
        return "", "", reply

    async def _execute(self, node: Node) -> None:
        task, rel = self.task, self.journal.solution_file
        assert rel is not None
        root = Path(task.workspace)
        before = ws.manifest(root)
        ws.write_file(root, rel, node.code.encode("utf-8"))
        timeout = self._exec_timeout()
        # From the workspace whatever an earlier command left as the shell's directory.
        command = f"cd {shlex.quote(str(root))} && " + self.settings.run_command.format(file=shlex.quote(rel))
        result = await task.bash(command, timeout=timeout)
        node.exec_time = result.duration_s
        node.exit_code = result.exit_code
        output = result.output.rstrip("\n")
        if result.timed_out:
            node.exc_type = "TimeoutError"
            output += f"\nTimeoutError: execution exceeded the time limit of {prompts.format_duration(timeout)}"
        else:
            if result.exit_code != 0:
                node.exc_type = _exception_name(output) or "NonZeroExit"
            output += (f"\nExecution time: {result.duration_s:.1f} s (time limit is "
                       f"{prompts.format_duration(timeout)}); exit code {result.exit_code}.")
        # Prompts show 5,100 characters; the journal keeps more, but bounded, since it is rewritten per node.
        node.output = trim_output(output, limit=20_000, keep=9_000)
        node.changed_files = sorted(set(ws.changed(before, ws.manifest(root))) | {rel})

    async def _score(self, node: Node) -> None:
        result = await self.task.score()
        node.score = result.score
        node.score_valid = result.valid
        node.score_message = dict(result.message or {})
        if result.execution:
            node.score_message.setdefault("execution", result.execution)

    async def _review(self, node: Node) -> None:
        ctx = self._context()
        review: review_mod.Review | None = None
        mode = "none"
        if self.settings.review_mode == "tool":
            try:
                completion = await self.task.generate(
                    prompts.to_messages(prompts.review_prompt(ctx, node, text_format=False)),
                    tools=[review_mod.REVIEW_TOOL], tool_choice=forced_tool_choice(review_mod.REVIEW_TOOL.name),
                    **self._params(self.settings.feedback_temperature))
                review = review_mod.from_tool_calls(completion.tool_calls) or review_mod.from_text(completion.text)
                mode = "tool"
            except ModelAPIError as exc:  # e.g. a model that rejects tools: fall back to text
                self.task.log("aide_review_fallback", error=str(exc))
        if review is None:
            completion = await self.task.generate(
                prompts.to_messages(prompts.review_prompt(ctx, node, text_format=True)),
                **self._params(self.settings.feedback_temperature))
            review = review_mod.from_text(completion.text)
            mode = "text"
        if review is None:
            mode = "none"
            review = review_mod.Review(is_bug=node.exc_type is not None, metric=None, lower_is_better=None,
                                       summary="(the reviewer gave no usable review)")
        node.review_mode = mode
        node.analysis = review.summary
        node.lower_is_better_vote = review.lower_is_better
        if node.score_valid and node.score is not None and math.isfinite(node.score):
            node.metric, node.metric_source = node.score, "score"
        elif node.score_valid is False:
            node.metric, node.metric_source = None, None
        else:  # not scored officially, or the score is hidden: the metric the output reports
            node.metric, node.metric_source = review.metric, "review" if review.metric is not None else None
        node.is_buggy = (review.is_bug or node.exc_type is not None or node.metric is None
                         or node.score_valid is False)
        if node.is_buggy:
            node.metric = None

    # -- bookkeeping ---------------------------------------------------------------------------------
    def _record(self, node: Node) -> None:
        journal = self.journal
        journal.append(node)
        best = journal.best_node()
        if best is node:
            try:
                snap = ws.take_snapshot(Path(self.task.workspace), self.state / BEST_DIR, node.id,
                                        node.changed_files, int(self.settings.snapshot_max_mb * 1e6))
                if not snap.complete:
                    self.task.log("aide_snapshot_incomplete", node=node.id, skipped=snap.skipped)
            except OSError as exc:
                node.error = f"could not save this node's files for restoring: {exc}"
        self._save()
        self.task.log("aide_node", step=node.step, id=node.id, stage=node.stage, parent=node.parent_id,
                      debug_depth=node.debug_depth, buggy=node.is_buggy, metric=node.metric,
                      metric_source=node.metric_source, score=_finite(node.score), score_valid=node.score_valid,
                      exc_type=node.exc_type, exec_time=node.exec_time, review_mode=node.review_mode,
                      best=best.id if best else None, error=node.error)

    def _save(self) -> None:
        self.journal.save(self.state / JOURNAL_FILE)
        html_view.write(self.journal, self.state / TREE_FILE)
        best = self.journal.best_node()
        if best is not None:
            (self.state / BEST_SOLUTION_FILE).write_text(best.code, encoding="utf-8")

    def _load_or_new(self) -> Journal:
        """The journal to continue: this state dir's (a resumed run), `resume_from`'s (a new run
        that picks up an earlier run's search), or a fresh one."""
        s = self.settings
        path = self.state / JOURNAL_FILE
        source: Path | None = None
        if s.resume and path.exists():
            source = self.state
        elif s.resume_from:
            source = Path(s.resume_from)
            source = source.parent if source.name == JOURNAL_FILE else source
            if not (source / JOURNAL_FILE).is_file():
                raise ValueError(f"resume_from={s.resume_from!r}: no {JOURNAL_FILE} there; give an earlier run's "
                                 f"scaffold/ directory (RUN_DIR/scaffold) or its journal.json")
            if (source / BEST_DIR).is_dir():
                shutil.rmtree(self.state / BEST_DIR, ignore_errors=True)
                shutil.copytree(source / BEST_DIR, self.state / BEST_DIR)
        journal = Journal.load(source / JOURNAL_FILE) if source else Journal()
        if source and s.solution_file and journal.solution_file != s.solution_file:
            raise ValueError(f"the saved journal in {source} writes solutions to {journal.solution_file!r} but "
                             f"solution_file is {s.solution_file!r}; drop the setting or start a fresh search")
        fixed = None if s.direction == "auto" else s.direction
        journal.fixed_direction = fixed or _task_direction(self.task) or journal.fixed_direction
        if source:
            self.task.log("aide_resume", nodes=len(journal), source=str(source))
        return journal

    def _put_best_files(self) -> dict[str, Any] | None:
        """Write the best node's files (its snapshot, and its code) into the workspace."""
        best = self.journal.best_node()
        if best is None:
            return None
        root = Path(self.task.workspace)
        snap = ws.load_snapshot(self.state / BEST_DIR)
        restored: list[str] = []
        complete = False  # without a matching snapshot (a direction vote flipped) only the code comes back
        if snap is not None and snap.node_id == best.id:
            restored = ws.restore_snapshot(root, self.state / BEST_DIR, snap)
            complete = snap.complete
        if self.journal.solution_file and self.journal.solution_file not in restored:
            ws.write_file(root, self.journal.solution_file, best.code.encode("utf-8"))
            restored.append(self.journal.solution_file)
        return {"node": best.id, "step": best.step, "metric": best.metric, "files": restored, "complete": complete}

    def _restore_best(self) -> None:
        """Before the run ends: the best node's files back into the workspace (once; never raises)."""
        if self._restored or not hasattr(self, "journal"):
            return
        self._restored = True
        try:
            info = self._put_best_files()
            if info is None:
                return
            self.journal.best_restored_id = info["node"]
            self._save()
            self.task.log("aide_restore", **info)
        except Exception as exc:  # best effort: the harness scores the workspace whatever happens
            try:
                self.task.log("aide_error", error=f"restoring the best node failed: {type(exc).__name__}: {exc}")
            except Exception:
                pass

    # -- context -------------------------------------------------------------------------------------
    async def _choose_solution_file(self) -> tuple[str, str | None]:
        task, s = self.task, self.settings
        root = Path(task.workspace)
        rel: str | None = None
        if s.solution_file:
            rel = safe_relative_path(s.solution_file)
        else:
            try:
                completion = await task.generate(
                    prompts.solution_file_prompt(task.instructions, self._preview()),
                    **self._params(s.code_temperature))
                text = (completion.text or "").replace(str(root).rstrip("/") + "/", "")
                rel = parse_solution_file(text)
            except Exception as exc:  # a failed question must not end the run: use the default
                text = f"(the question failed: {type(exc).__name__}: {exc})"
            task.log("aide_solution_file", answer=text[:500], chosen=rel or s.default_solution_file)
        rel = rel or s.default_solution_file
        existing = ws.read_file(root, rel, 200_000)
        return rel, existing.decode("utf-8", errors="replace") if existing is not None else None

    def _context(self) -> prompts.PromptContext:
        task = self.task
        return prompts.PromptContext(
            instructions=task.instructions,
            solution_file=self.journal.solution_file or self.settings.default_solution_file,
            run_command=self.settings.run_command.format(file=self.journal.solution_file),
            exec_timeout_s=self._exec_timeout(),
            budget=budget_line(task, len(self.journal), self.settings.max_steps),
            preview=self._preview(),
            memory=self.journal.summary(self.settings.memory_max_chars),
            can_score=task.can_score and self.settings.score_nodes,
            score_visible=task.score_visible,
            direction=self.journal.direction,
        )

    def _preview(self) -> str:
        return ws.preview(Path(self.task.workspace), self.settings.preview_max_chars)

    def _exec_timeout(self) -> float:
        usage = self.task.usage()
        timeout = self.settings.exec_timeout_s
        if usage.time_limit_s:
            timeout = min(timeout, usage.time_limit_s - usage.time_s)
        return max(1.0, timeout)

    def _params(self, temperature: float) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": temperature}
        if self.settings.max_tokens:
            params["max_tokens"] = self.settings.max_tokens
        return params


def forced_tool_choice(name: str) -> str:
    """The provider-neutral way to force one tool: its name (backends translate it)."""
    return name


def budget_line(task: AgentTask, nodes: int, max_steps: int | None) -> str:
    u = task.usage()
    parts = []
    if u.time_limit_s:
        parts.append(f"time {prompts.format_duration(u.time_s)} used of {prompts.format_duration(u.time_limit_s)} "
                     f"({prompts.format_duration(u.time_limit_s - u.time_s)} left)")
    else:
        parts.append(f"time {prompts.format_duration(u.time_s)} used (no limit)")
    parts.append(f"tokens {u.tokens:,} used" + (f" of {u.token_limit:,}" if u.token_limit else " (no limit)"))
    parts.append(f"cost ${u.cost_usd:.2f}" + (f" of ${u.cost_limit_usd:.2f}" if u.cost_limit_usd else " (no limit)"))
    parts.append(f"{nodes} solutions tried" + (f" of at most {max_steps}" if max_steps else ""))
    return "; ".join(parts) + "."


def _task_direction(task: AgentTask) -> str | None:
    """The environment's direction, where the AgentTask exposes one (`direction`: 'min' / 'max')."""
    value = getattr(task, "direction", None)
    return value if value in ("min", "max") else None


_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit))\b", re.MULTILINE)


def _exception_name(output: str) -> str | None:
    """The last exception class named at the start of a line (a traceback's final line)."""
    names = _EXC_LINE.findall(output)
    return names[-1].rsplit(".", 1)[-1] if names else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
