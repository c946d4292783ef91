"""guess_number: the agent must find a secret integer; the score is how far off its answer is.

Tiny on purpose: it exercises every part of the environment API in a few milliseconds. The secret
lives in the protected directory, which the agent cannot read; its answer is read with
`read_agent_file`, which refuses symlinks (a link to the secret would otherwise be read by the
privileged scorer).
"""

from pathlib import Path

from rebench_core import EnvContext, Environment, Normalization, ScoreEntry, read_agent_file

SECRETS = {"small": 737, "full": 737_123}
RANGES = {"small": 1000, "full": 1_000_000}


class GuessNumber(Environment):
    name = "guess_number"
    summary = "Find a secret integer; the score is the distance from it (an example plugin)."
    variants = ("main", "hidden_score")
    sizes = ("small", "full")
    direction = "min"
    aggregate = "best"
    score_timeout_s = 10.0

    def setup(self, ctx: EnvContext, workspace: Path, protected_dir: Path) -> str:
        (workspace / "answer.txt").write_text("0\n")
        (protected_dir / "secret.txt").write_text(f"{SECRETS[ctx.size]}\n")
        return (f"A secret integer between 0 and {RANGES[ctx.size]} is hidden from you. Write your guess to "
                f"answer.txt in your workspace. The score is |guess - secret| (lower is better); use the "
                f"score tool to score your current answer, and submit when done.")

    def score(self, ctx: EnvContext, workspace: Path, protected_dir: Path) -> ScoreEntry:
        try:
            text = read_agent_file("answer.txt", workspace, max_bytes=100).decode()
        except ValueError as exc:
            return ScoreEntry.invalid(str(exc))
        try:
            guess = int(text.strip())
        except ValueError:
            return ScoreEntry.invalid(f"answer.txt must hold one integer, got {text.strip()[:40]!r}")
        secret = int((protected_dir / "secret.txt").read_text())
        distance = abs(guess - secret)
        return ScoreEntry(raw=float(distance), message={"score": distance, "guess": guess},
                          details={"secret": secret})

    def normalization(self, ctx: EnvContext) -> Normalization:
        # Start: the staged guess 0; reference: the exact answer.
        return Normalization(y_start=float(SECRETS[ctx.size]), y_ref=0.0, source="starting guess 0, exact answer")

    def install_reference(self, ctx: EnvContext, workspace: Path) -> None:
        (workspace / "answer.txt").write_text(f"{SECRETS[ctx.size]}\n")
