"""A plugin used only by the core tests: a scaffold that runs a fixed list of commands, and an
environment whose scorer crashes, registered through `load_plugins(extra_plugins=...)`."""

from __future__ import annotations

from pathlib import Path

from rebench_core import EnvContext, Environment, Normalization, Scaffold, ScoreEntry, hookimpl


class Commands(Scaffold):
    """Runs `commands` with bash (and `python` snippets), writes each output to the state dir, submits."""

    name = "commands"

    class Settings(Scaffold.Settings):
        commands: list[str] = []
        python: list[str] = []
        timeout: float = 10.0
        score_each: bool = False
        generate_first: bool = False
        raise_error: str | None = None
        submit: bool = True

    async def run(self, task) -> None:
        if self.settings.generate_first:
            await task.generate([{"role": "user", "content": task.instructions}], max_tokens=64)
        for i, command in enumerate(self.settings.commands):
            result = await task.bash(command, timeout=self.settings.timeout)
            (task.state_dir / f"bash-{i}.json").write_text(__import__("json").dumps(result.to_dict()))
            if self.settings.score_each:
                await task.score()
        for i, code in enumerate(self.settings.python):
            result = await task.python(code, timeout=self.settings.timeout)
            (task.state_dir / f"python-{i}.json").write_text(__import__("json").dumps(result.to_dict()))
        if self.settings.raise_error:
            raise RuntimeError(self.settings.raise_error)
        if self.settings.submit:
            await task.submit("done")


class CrashingScorer(Environment):
    name = "crashing_scorer"
    sizes = ("small",)

    def setup(self, ctx: EnvContext, workspace: Path, protected_dir: Path) -> str:
        (workspace / "crash").write_text("no")
        return "Write yes to crash."

    def score(self, ctx: EnvContext, workspace: Path, protected_dir: Path) -> ScoreEntry:
        if (workspace / "crash").read_text().strip() == "yes":
            raise ZeroDivisionError("the scorer divided by zero")
        return ScoreEntry(raw=1.0)

    def normalization(self, ctx: EnvContext) -> Normalization:
        return Normalization(1.0, 0.0)


@hookimpl
def rebench_register_scaffolds(register):
    register("commands", Commands)


@hookimpl
def rebench_register_environments(register):
    register("crashing_scorer", CrashingScorer)
