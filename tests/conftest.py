import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parent.parent


# Files whose tests depend on the wall clock: pipelines timed at the measurement priority (which
# takes most of the CPU from every other session while they run), and runs that must get enough
# done within a time limit. Side by side on two workers one would starve the other, so `make test`
# runs them one after another on one worker.
WALL_CLOCK_FILES = {"test_demo_e2e.py", "test_aide_e2e.py", "test_finetune_env.py", "test_finetune_full.py"}


def pytest_collection_modifyitems(config, items):
    # `make test` deals work units to two workers in collection order: the files holding end-to-end
    # (slow) runs go first, so that the short files fill in at the end and both workers finish together.
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order inside a file is kept


if importlib.util.find_spec("xdist") is not None:
    def pytest_xdist_make_scheduler(config, log):
        """A work unit is a test file (its module fixtures prepare an environment once), except
        that WALL_CLOCK_FILES are one unit together."""
        from xdist.scheduler import LoadScopeScheduling

        class ByFile(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                file = nodeid.split("::", 1)[0]
                return "wall-clock" if Path(file).name in WALL_CLOCK_FILES else file

        return ByFile(config, log)


@pytest.fixture(scope="session")
def registry():
    import core_test_plugin

    from rebench_core.registry import load_plugins

    return load_plugins(extra_plugins=[("core-tests", core_test_plugin)])


@pytest.fixture
def script(tmp_path):
    """Write a scripted-model file and return its `--model` spec."""

    def make(turns, price=None):
        path = tmp_path / f"script-{len(list(tmp_path.glob('script-*')))}.json"
        path.write_text(json.dumps({"turns": turns, **({"price": price} if price else {})}))
        return f"scripted/{path}"

    return make


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="user isolation needs the harness to run as root")


@pytest.fixture
def agent_dir():
    """A directory the agent user can reach (pytest's tmp_path sits under a 0700 directory)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="rebench-test-"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)
