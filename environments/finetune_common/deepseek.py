"""The deepseek-coder-1.3b-base architecture with random weights, for runs that cannot download it.

optimize_finetune's `full` size finetunes deepseek-ai/deepseek-coder-1.3b-base. Machines without
the network (the GPU machines this project is lent, CI) run the same pipeline on a model of the
same architecture initialised at random, at the real shapes or scaled down (`overrides`), with a
byte-level BPE tokenizer trained locally. Only the learned values differ from the real model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# config.json of deepseek-ai/deepseek-coder-1.3b-base (a Llama): 1.35 B parameters, untied LM head.
DEEPSEEK_CODER_1_3B: dict[str, Any] = {
    "vocab_size": 32256, "hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 24,
    "num_attention_heads": 16, "num_key_value_heads": 16, "max_position_embeddings": 16384,
    "rope_theta": 100000.0, "rope_scaling": {"type": "linear", "factor": 4.0}, "rms_norm_eps": 1e-6,
    "hidden_act": "silu", "initializer_range": 0.02, "tie_word_embeddings": False,
    "bos_token_id": 32013, "eos_token_id": 32014,
}


def random_model_dir(out: Path, texts: list[str], *, seed: int = 17, tokenizer_vocab: int = 2048,
                     device: str = "cpu", **overrides: Any) -> int:
    """A Hugging Face folder (bf16 safetensors, as the real checkpoint) holding the architecture with
    random weights and a tokenizer trained on `texts`; returns the number of parameters."""
    import tempfile

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from .tiny import save_model_dir, train_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = Path(tmp) / "tok"
        train_tokenizer(texts, tokenizer_vocab, tok_dir)
        eos = AutoTokenizer.from_pretrained(tok_dir).eos_token_id
        settings = {**DEEPSEEK_CODER_1_3B, "pad_token_id": eos, **overrides}
        assert tokenizer_vocab <= settings["vocab_size"]
        torch.manual_seed(seed)
        with torch.device(device):
            model = LlamaForCausalLM(LlamaConfig(**settings))
        model = model.to(torch.bfloat16)
        n_params = sum(p.numel() for p in model.parameters())
        save_model_dir(model.cpu(), tok_dir, out)
    return n_params
