"""Issue 16's held-out attack on restricted_mlm / fix_embedding small, run as the agent: rebuild the
protected val.bin from the shipped corpus code (as the issue did in 30 s), or as the public pool
minus train.bin. Neither gives val.bin, and val is at most about half of what the second finds."""

import os

import numpy as np
import pytest

from lm_helpers import shrunk, staged

ATTACK = r'''
import json, sys
from pathlib import Path

import numpy as np

from rebench_environments.lm_common.corpus import prepare_corpus, stdlib_documents
from rebench_environments.lm_common.tokenizer import EOT_TOKEN, GPT2_VOCAB_SIZE, gpt2_encoding

ws, out, key = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
# 1. the shipped corpus code's deterministic rebuild
public = prepare_corpus("small", out / "cache", heldout="public")
(out / "public_val.bin").write_bytes(public.val_path.read_bytes())
# 2. every public document not in train.bin, in the workspace's corpus ids
meta = json.loads((ws / "data" / "meta.json").read_text())
mapping = np.full(GPT2_VOCAB_SIZE, meta["unk_id"], dtype=np.uint16)
for cid, gpt2 in enumerate(meta["gpt2_ids"]):
    if gpt2 >= 0:
        mapping[gpt2] = cid
train = np.fromfile(ws / "data" / "train.bin", dtype=np.uint16)
train_docs = {d.tobytes() for d in np.split(train, np.flatnonzero(train == meta["eot_id"]) + 1)[:-1]}
enc = gpt2_encoding()
left = [ids for _, text in stdlib_documents()
        if (ids := mapping[np.asarray(enc.encode_ordinary(text) + [EOT_TOKEN])]).tobytes() not in train_docs]
np.concatenate(left).tofile(out / "complement.bin")
# 3. the key that chose val
try:
    key.read_bytes()
    (out / "key.txt").write_text("read")
except OSError as exc:
    (out / "key.txt").write_text(type(exc).__name__)
'''


def documents(tokens: np.ndarray, eot: int = 0) -> list[bytes]:
    return [d.tobytes() for d in np.split(tokens, np.flatnonzero(tokens == eot) + 1)[:-1]]


@pytest.mark.slow
def test_the_agent_cannot_rebuild_the_held_out_split():
    from rebench_environments.fix_embedding import env as fe

    # fix_embedding stages data/meta.json (corpus ids -> GPT-2 ids); restricted_mlm shares the corpus code
    with shrunk(fe, large_iters=2, small_iters=2, eval_sequences=4), staged("fix_embedding") as s:
        out = s.workspace / "attack"
        out.mkdir()
        s.session.ctx.agent.give(out)
        (s.workspace / "attack.py").write_text(ATTACK)
        key = s.session.ctx.cache_dir / "lm_corpus" / "small-secret" / "split.key"
        proc = s.run_as_agent([__import__("sys").executable, str(s.workspace / "attack.py"), str(s.workspace), str(out),
                               str(key)], timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        val = np.fromfile(s.protected / "val.bin", dtype=np.uint16)
        public_val = np.fromfile(out / "public_val.bin", dtype=np.uint16)
        complement = np.fromfile(out / "complement.bin", dtype=np.uint16)
        # the attack rebuilt val.bin bit for bit; now it gets other documents
        assert public_val.tobytes() != val.tobytes()
        assert len(set(documents(public_val)) & set(documents(val))) < 0.2 * len(documents(val))
        # the pool minus train holds val, mixed with as many reserve documents, in another order
        val_docs, found = documents(val), set(documents(complement))
        assert complement.tobytes() != val.tobytes()
        assert sum(d in found for d in val_docs) > 0.9 * len(val_docs)  # duplicates of train documents aside
        assert len(val_docs) < 0.6 * len(found)
        if os.geteuid() == 0:  # the agent is another user: the key is unreadable, or absent from its namespace
            assert (out / "key.txt").read_text() in ("PermissionError", "FileNotFoundError")
