"""Step 1: turn the examples (a JSONL of {"prompt", "response"}, as LLM Foundry's finetuning data) into padded
token arrays."""

import argparse
import json
import os

import numpy as np
import yaml
from transformers import AutoTokenizer


def encode(tokenizer, example, max_len):
    prompt = tokenizer(example["prompt"])["input_ids"]
    response = tokenizer(example["response"])["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt + response)[:max_len]
    labels = ([-100] * len(prompt) + response)[:max_len]  # the loss is on the response only
    pad = max_len - len(ids)
    return (ids + [tokenizer.pad_token_id] * pad, labels + [-100] * pad, [1] * len(ids) + [0] * pad)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    cfg = yaml.safe_load(open(args.config))
    tokenizer = AutoTokenizer.from_pretrained(cfg["base_model"])
    with open(args.data) as f:
        examples = [json.loads(line) for line in f if line.strip()]
    rows = [encode(tokenizer, ex, cfg["max_seq_len"]) for ex in examples]
    os.makedirs(args.out, exist_ok=True)
    np.savez(os.path.join(args.out, "train.npz"),
             input_ids=np.array([r[0] for r in rows], dtype=np.int64),
             labels=np.array([r[1] for r in rows], dtype=np.int64),
             attention_mask=np.array([r[2] for r in rows], dtype=np.int64))
    print(f"tokenized {len(rows)} examples into {args.out}")


if __name__ == "__main__":
    main()
