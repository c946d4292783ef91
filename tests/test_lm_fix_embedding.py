"""fix_embedding: prepare (tiny training), the statement's variants, the scorer on the start, the
reference and on bad files, all through `rebench_core.testing.environment`."""

import os
import shutil

import pytest

from lm_helpers import shrunk, staged

torch = pytest.importorskip("torch")

from rebench_environments.fix_embedding import env as fe  # noqa: E402
from rebench_environments.fix_embedding.models import permutation  # noqa: E402

TINY = dict(large_iters=20, small_iters=10, eval_sequences=32, reference_adapter_iters=30, reference_full_iters=0,
            reference_batch_size=8)


@pytest.fixture(scope="module")
def env():
    with shrunk(fe, **TINY), staged("fix_embedding") as s:
        yield s


def submit(s, state):
    torch.save(state, s.workspace / "fixed_model.pth")


def restore_start(s):
    shutil.copy2(s.workspace / "large_model.pth", s.workspace / "fixed_model.pth")


def test_setup_stages_models_and_hides_val(env):
    ws, prot = env.workspace, env.protected
    for name in ("large_model.pth", "small_correct_model.pth", "solution/train.py", "solution/model.py", "data/train.bin"):
        assert (ws / name).exists(), name
    # the starting state is the corrupted model submitted as is, so the start scores validly
    assert (ws / "fixed_model.pth").read_bytes() == (ws / "large_model.pth").read_bytes()
    assert (prot / "val.bin").exists() and not list(ws.rglob("val.bin"))
    assert "val_tokens" not in (ws / "data" / "meta.json").read_text()
    # METR's main statement says the embedding weights were messed up, not how
    assert "ln(loss - 3.0)" in env.instructions and "messed up" in env.instructions
    assert "permuted" not in env.instructions


@pytest.mark.parametrize("variant,visible,words", [("permuted", True, "randomly permuted the rows"),
                                                   ("hidden_score", False, "messed up")])
def test_variants_follow_metrs_switches(env, variant, visible, words):
    with shrunk(fe, **TINY), staged("fix_embedding", variant=variant, cache_root=env.cache_root) as s:
        assert words in s.instructions
        assert s.session.env.visible_score(variant) is visible


def test_unpermuting_the_start_scores_better(env):
    restore_start(env)
    start = env.score()
    assert start.valid, start.message
    state = torch.load(env.workspace / "large_model.pth", weights_only=True)
    fixed = torch.empty_like(state["wte.weight"])
    fixed[permutation(4096)] = state["wte.weight"]
    state["wte.weight"] = state["lm_head.weight"] = fixed
    submit(env, state)
    unpermuted = env.score()
    assert unpermuted.valid and unpermuted.raw < start.raw - 0.2, (start.message, unpermuted.message)


def test_installed_reference_improves_on_the_start(env):
    restore_start(env)
    start = env.score()
    env.session.install_reference(env.workspace)
    fixed = env.score()
    assert fixed.valid and fixed.raw < start.raw, (start.message, fixed.message)


@pytest.mark.parametrize("mutate,reason", [
    (lambda s: s.pop("blocks.0.fc.weight"), "missing keys"),
    (lambda s: s.__setitem__("extra.weight", torch.zeros(2)), "unexpected keys"),
    (lambda s: s.__setitem__("blocks.0.fc.weight", torch.zeros(10, 10)), "shape"),
    (lambda s: s.__setitem__("blocks.0.fc.weight", s["blocks.0.fc.weight"].long()), "floating-point"),
    (lambda s: s.__setitem__("lm_head.weight", s["lm_head.weight"] + 1), "ties the embedding"),
    (lambda s: s["wpe.weight"].fill_(float("nan")), "not finite"),
    (lambda s: s.__setitem__(7, torch.zeros(1)), "state dict"),
    (lambda s: s.__setitem__("note", "hello"), "state dict"),
])
def test_invalid_checkpoints(env, mutate, reason):
    state = torch.load(env.workspace / "large_model.pth", weights_only=True)
    state = {k: v.clone() for k, v in state.items()}
    mutate(state)
    submit(env, state)
    entry = env.score()
    assert not entry.valid and reason in entry.message["error"], entry.message


def test_other_files_are_refused(env):
    ws = env.workspace
    for payload, reason in ((b"", "could not be loaded"), (b"\x00" * 1000, "could not be loaded"),
                            (b"PK" + os.urandom(3000), "could not be loaded")):
        (ws / "fixed_model.pth").write_bytes(payload)
        entry = env.score()
        assert not entry.valid and reason in entry.message["error"]
    torch.save([torch.zeros(3)], ws / "fixed_model.pth")
    assert "state dict" in env.score().message["error"]
    with open(ws / "fixed_model.pth", "wb") as f:  # larger than any state dict of this shape
        f.truncate(200_000_000)
    assert "larger than" in env.score().message["error"]
    restore_start(env)


def test_pickled_code_and_symlinks_are_refused(env):
    ws = env.workspace

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/rebench-lm-pwned",))

    torch.save({"x": Evil()}, ws / "fixed_model.pth")
    entry = env.score()
    assert not entry.valid and "weights_only" in entry.message["error"]
    assert not os.path.exists("/tmp/rebench-lm-pwned")
    (ws / "fixed_model.pth").unlink()
    (ws / "fixed_model.pth").symlink_to(env.protected / "val.bin")
    entry = env.score()
    assert not entry.valid and "symlink" in entry.message["error"]
    (ws / "fixed_model.pth").unlink()
    restore_start(env)
