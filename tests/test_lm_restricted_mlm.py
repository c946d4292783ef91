"""restricted_mlm: the op guard, the static check, and the scorer on good and bad submissions."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lm_helpers import agent_reachable_dir, env_cache, shrink

torch = pytest.importorskip("torch")

from rebench_environments.restricted_mlm import env as mlm  # noqa: E402
from rebench_environments.restricted_mlm.guard import ForbiddenOp, make_guard, static_check  # noqa: E402

ASSETS = Path(mlm.__file__).parent / "assets"
ALL_TRUE = torch.ones(2, 8, dtype=torch.bool)


@pytest.fixture(scope="module")
def staged():
    """A prepared small restricted_mlm (starting MLP trained for a few steps only) and a run dir."""
    saved = dict(mlm.SPECS)
    shrink(mlm, start_steps=3, n_eval_batches=2)
    env = mlm.RestrictedMLM()
    env.prepare("small", env_cache("restricted_mlm"))
    run = agent_reachable_dir("rebench-lm-mlm-")
    instructions = env.setup(run / "workspace", run / "protected", "small", "main")
    yield env, run, instructions
    mlm.SPECS.clear()
    mlm.SPECS.update(saved)
    shutil.rmtree(run, ignore_errors=True)


def write_model(workspace: Path, body: str) -> None:
    """Replace solution/model.py with a model whose forward is `body` (weights from the start MLP)."""
    source = (ASSETS / "solution" / "model.py").read_text()
    head, _, _ = source.partition("    def forward(self, token_indices):")
    tail = source[source.index("def build_model"):]
    forward = "    def forward(self, token_indices):\n" + textwrap.indent(textwrap.dedent(body), " " * 8) + "\n\n\n"
    (workspace / "solution" / "model.py").write_text(head + forward + tail)


def restore_start(workspace: Path) -> None:
    shutil.copy2(ASSETS / "solution" / "model.py", workspace / "solution" / "model.py")


# -- the guard and the static check, in-process ------------------------------------------------

def test_guard_allows_the_primitives():
    emb, lin = torch.nn.Embedding(10, 8), torch.nn.Linear(8, 8)
    x = torch.randint(0, 10, (2, 5))
    with make_guard():
        h = emb(x)
        h = torch.nn.functional.relu(lin(h)) * 0.5 + h - h[:, :1]
        h = torch.cat([h, h.new_zeros(2, 1, 8)], 1).as_strided((2, 5, 8), (48, 8, 1)).reshape(2, 5, 8)
        h = torch.einsum("bsd,de->bse", h, lin.weight) @ lin.weight.T
        _ = h.sum(-1), h.shape, h.unsqueeze(0).transpose(0, 1)


@pytest.mark.parametrize("op,call", [
    ("exp", lambda h: torch.exp(h)),
    ("div", lambda h: h / 2),
    ("softmax", lambda h: torch.softmax(h, -1)),
    ("gt", lambda h: h > 0),
    ("where", lambda h: torch.where(ALL_TRUE, h, h)),
    ("layer_norm", lambda h: torch.nn.functional.layer_norm(h, (8,))),
    ("mean", lambda h: h.mean()),
    ("numpy", lambda h: h.numpy()),
])
def test_guard_rejects_forbidden_ops_by_name(op, call):
    h = torch.randn(2, 8)
    with pytest.raises(ForbiddenOp, match=op):
        with make_guard():
            call(h)


def test_static_check_reads_forward_only():
    src = textwrap.dedent("""
        import torch
        class M(torch.nn.Module):
            def __init__(self):
                self.scale = 1 / 8          # outside forward: fine
            def forward(self, x):
                y = torch.exp(x) / 2
                return y.softmax(-1)
        def train(logits):
            return torch.log_softmax(logits, -1)   # not forward: fine
    """)
    found = [str(v) for v in static_check(src)]
    assert any("`exp`" in v for v in found) and any("`/`" in v for v in found) and any("softmax" in v for v in found)
    assert not any("log_softmax" in v for v in found)
    assert static_check((ASSETS / "solution" / "model.py").read_text()) == []
    assert static_check((ASSETS / "reference" / "model.py").read_text()) == []


# -- the scorer ---------------------------------------------------------------------------------

def test_setup_stages_start_and_hides_val(staged):
    env, run, instructions = staged
    ws, prot = run / "workspace", run / "protected"
    assert (ws / "solution" / "model.pt").exists() and (ws / "data" / "train.bin").exists()
    assert (prot / "val.bin").exists()
    val = (prot / "val.bin").read_bytes()
    for path in ws.rglob("*"):
        assert not path.is_symlink()
        if path.is_file():
            assert path.read_bytes() != val
    assert "ln(loss - 2.0)" in instructions and "relu" in instructions


def test_scores_the_starting_solution(staged):
    env, run, _ = staged
    entry = env.score(run / "workspace", run / "protected", "small")
    assert entry.valid, entry.message
    assert 6.0 < entry.message["loss"] < 9.5  # barely trained MLP at a 4,096-token vocabulary
    assert entry.details["masked_tokens"] > 200  # 2 batches x 8 x 128 x 15%


def test_scores_the_reference_solution(staged, tmp_path):
    env, run, _ = staged
    ws = run / "workspace"
    ref = ws / "reference_solution"
    shutil.copytree(ASSETS / "reference", ref)
    for path in (ref, *ref.iterdir()):  # the installed reference is private (0700/0600); this copy is the agent's
        os.chmod(path, 0o755)
    shutil.copy2(ASSETS / "solution" / "train.py", ref / "train.py")
    subprocess.run([sys.executable, str(ref / "train.py"), "--steps", "3", "--batch-size", "4", "--set", "dim=32",
                    "--set", "hidden=32", "--data-dir", str(ws / "data")], check=True, capture_output=True)
    entry = mlm.score_solution(ref, run / "protected", "small")
    assert entry.valid, entry.message
    assert entry.details["runner"]["guarded_calls"] > 10


HIDDEN = "h = self.embed(token_indices)\nfor layer in self.hidden:\n    h = F.relu(layer(h))\n"


@pytest.mark.parametrize("body,reason", [
    (HIDDEN + "return self.out(h)[:, :5]", "must return logits of shape (8, 128, 4096)"),
    (HIDDEN + "return self.out(h).sigmoid()", "sigmoid"),  # static check
    (HIDDEN + "h = h.clamp(0)\nreturn self.out(h)", "clamp"),  # static check
    (HIDDEN + "h = torch.nn.functional.silu(h)\nreturn self.out(h)", "silu"),
    (HIDDEN + "return self.out(h) * float('nan')", "not finite"),
    ("raise RuntimeError('boom')", "boom"),
])
def test_invalid_submissions(staged, body, reason):
    env, run, _ = staged
    write_model(run / "workspace", body)
    try:
        entry = env.score(run / "workspace", run / "protected", "small")
    finally:
        restore_start(run / "workspace")
    assert not entry.valid and reason in entry.message["error"], entry.message


def test_runtime_guard_catches_what_the_static_check_cannot(staged):
    env, run, _ = staged
    # the forbidden op hides behind getattr, so only the run-time guard sees it
    write_model(run / "workspace", HIDDEN + "h = getattr(torch, 'ta' + 'nh')(h)\nreturn self.out(h)")
    try:
        entry = env.score(run / "workspace", run / "protected", "small")
    finally:
        restore_start(run / "workspace")
    assert not entry.valid and "tanh" in entry.message["error"] and "not an allowed primitive" in entry.message["error"]


@pytest.mark.skipif(os.geteuid() != 0, reason="user isolation needs root")
def test_agent_code_cannot_read_the_protected_split(staged):
    env, run, _ = staged
    probe = f"open({str(run / 'protected' / 'val.bin')!r}, 'rb').read(1)"
    write_model(run / "workspace", f"{probe}\n" + HIDDEN + "return self.out(h)")
    try:
        entry = env.score(run / "workspace", run / "protected", "small")
    finally:
        restore_start(run / "workspace")
    # unreadable, or absent from the scoring command's namespace
    assert not entry.valid and ("Permission" in entry.message["error"] or "No such file" in entry.message["error"]), \
        entry.message
