from rebench_core import ScoreEntry
from rebench_core.testing import FakeTask, run_scaffold

from rebench_example.scaffold import Bisect


def test_bisect_finds_the_secret_through_the_harness():
    summary = run_scaffold(Bisect, turns=[{"content": "500"}], env="guess_number")
    assert summary["status"] == "submitted" and summary["final_raw_score"] == 0.0


def test_bisect_uses_the_score_feedback(tmp_path):
    def scorer(workspace):
        return ScoreEntry(raw=abs(int((workspace / "answer.txt").read_text()) - 737))

    task = FakeTask(tmp_path, replies=["12"], scorer=scorer).play(Bisect())
    assert task.submitted and [r.score for r in task.scores] == [725, 0]
