"""The shared LM substrate: tokenizer, corpus preparation, model and training loop."""

import json
import time

import numpy as np
import pytest

from lm_helpers import small_corpus_cache


def test_gpt2_tokenizer_offline_matches_reference_ids():
    from rebench_environments.lm_common.tokenizer import gpt2_encoding

    enc = gpt2_encoding()
    # GPT-2's ids for these strings (the same as tiktoken's r50k_base / HF gpt2)
    assert enc.encode("Hello world") == [15496, 995]
    assert enc.eot_token == 50256 and enc.n_vocab == 50257
    text = "The quick brown fox's naïve café — 3.14!"
    assert enc.decode(enc.encode(text)) == text


def test_tokenizer_rejects_a_wrong_rank_file(tmp_path):
    import gzip

    from rebench_environments.lm_common.tokenizer import load_ranks

    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"IQ== 0\n"))
    with pytest.raises(RuntimeError, match="not the GPT-2 BPE rank file"):
        load_ranks(bad)


def test_small_corpus_is_prepared_offline_and_idempotent():
    from rebench_environments.lm_common.corpus import decode, load_tokens, prepare_corpus

    cache = small_corpus_cache()
    corpus = prepare_corpus("small", cache, heldout="public")
    meta = json.loads(corpus.meta_path.read_text())
    train, val = load_tokens(corpus.train_path), load_tokens(corpus.val_path)
    assert train.dtype == np.uint16 and len(train) == corpus.train_tokens > 300_000
    assert 0.05 < len(val) / (len(train) + len(val)) < 0.2
    assert int(train.max()) < corpus.vocab_size == 4096 and corpus.eot_id == 0 and corpus.unk_id == 4095
    assert meta["unk_fraction_train"] < 0.1
    assert "<|endoftext|>" in decode(corpus.meta_path, val[:2000])
    mtime = corpus.train_path.stat().st_mtime_ns
    t0 = time.time()
    again = prepare_corpus("small", cache, heldout="public")
    assert again == corpus and time.time() - t0 < 1 and corpus.train_path.stat().st_mtime_ns == mtime


def test_secret_split_comes_from_a_private_key_and_holds_back_a_reserve(tmp_path):
    """The held-out split is chosen by a key made at preparation, readable by its owner only; an
    equally large reserve is written nowhere, so the public pool minus train is not val."""
    import shutil

    from rebench_environments.lm_common.corpus import load_tokens, prepare_corpus

    cache = small_corpus_cache()
    public = prepare_corpus("small", cache, heldout="public")
    secret = prepare_corpus("small", cache, heldout="secret")
    key = secret.root / "split.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600" and len(bytes.fromhex(key.read_text())) == 32
    assert secret.root != public.root
    assert load_tokens(secret.val_path).tobytes() != load_tokens(public.val_path).tobytes()
    total = public.train_tokens + public.val_tokens
    assert 0.05 < secret.val_tokens / total < 0.15 and 0.7 < secret.train_tokens / total < 0.85  # 10% held in reserve
    agent_meta = secret.agent_meta()
    assert "val_tokens" not in agent_meta and agent_meta["train_tokens"] == secret.train_tokens
    # another cache (another key) holds out other documents
    other = tmp_path / "other"
    shutil.copytree(cache / "lm_corpus" / "small-secret", other / "lm_corpus" / "small-secret")
    for name in ("meta.json", "split.key"):
        (other / "lm_corpus" / "small-secret" / name).unlink()
    rebuilt = prepare_corpus("small", other, heldout="secret")
    assert load_tokens(rebuilt.val_path).tobytes() != load_tokens(secret.val_path).tobytes()


def test_full_corpus_fails_clearly_without_network(monkeypatch, tmp_path):
    import socket

    from rebench_environments.lm_common import corpus

    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(RuntimeError, match="OpenWebText.*--size small"):
        corpus.prepare_corpus("full", tmp_path, heldout="secret")


@pytest.mark.parametrize("module,cls", [("fix_embedding.env", "FixEmbedding"), ("restricted_mlm.env", "RestrictedMLM"),
                                        ("scaling_law.env", "ScalingLaw")])
def test_environment_classes_import_without_heavy_modules(module, cls):
    """rebench-list loads every environment class: these must not pull in torch or numpy."""
    import subprocess
    import sys

    code = (f"import sys; from rebench_environments.{module} import {cls}; {cls}().info(); "
            "print([m for m in ('torch', 'numpy', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_gpt_trains_and_checks_shapes():
    import torch

    from rebench_environments.lm_common.corpus import load_tokens, prepare_corpus
    from rebench_environments.lm_common.model import GPT, GPTConfig, state_dict_shapes
    from rebench_environments.lm_common.training import TrainConfig, eval_offsets, evaluate, train

    corpus = prepare_corpus("small", small_corpus_cache(), heldout="public")
    cfg = GPTConfig(vocab_size=4096, block_size=32, n_layer=1, n_head=2, n_embd=32)
    torch.manual_seed(0)
    model = GPT(cfg)
    assert model.lm_head.weight is model.wte.weight
    assert state_dict_shapes(cfg)["wte.weight"] == (4096, 32)
    data = load_tokens(corpus.train_path)
    offsets = eval_offsets(len(data), 32, 16)
    before = evaluate(model, data, offsets, 32)
    losses = train(model, data, TrainConfig(max_iters=25, batch_size=8, block_size=32, learning_rate=1e-2,
                                            warmup_iters=5), log=None)
    assert before > 8.0 and evaluate(model, data, offsets, 32) < before - 1.0 and len(losses) == 25
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 33, dtype=torch.long))
