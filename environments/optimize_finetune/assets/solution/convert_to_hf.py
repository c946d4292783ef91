"""Step 3: convert the last training checkpoint into a Hugging Face model folder."""

import argparse

import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    cfg = yaml.safe_load(open(args.config))
    model = AutoModelForCausalLM.from_pretrained(cfg["base_model"], dtype=torch.float32)
    state = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    model.save_pretrained(args.out, safe_serialization=True)
    AutoTokenizer.from_pretrained(cfg["base_model"]).save_pretrained(args.out)
    print(f"saved the trained model to {args.out}")


if __name__ == "__main__":
    main()
