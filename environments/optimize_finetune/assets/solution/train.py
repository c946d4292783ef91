"""Step 2: finetune the base model on the tokenized examples, checkpointing as it goes."""

import argparse
import glob
import math
import os

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from transformers import AutoModelForCausalLM


def lr_at(step, total, cfg):
    warmup, alpha_f = cfg["scheduler"]["warmup_steps"], cfg["scheduler"]["alpha_f"]
    base = cfg["optimizer"]["lr"]
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (alpha_f + (1 - alpha_f) * 0.5 * (1 + math.cos(math.pi * progress)))


def device_of(cfg):
    wanted = cfg.get("device", "auto")
    return torch.device("cuda" if wanted == "auto" and torch.cuda.is_available() else
                        "cpu" if wanted == "auto" else wanted)


def token_loss_sum(model, batch, cfg):
    """Summed next-token cross-entropy over the labelled tokens of `batch`, and their count."""
    device = next(model.parameters()).device
    input_ids, labels, mask = (t.to(device) for t in batch)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg["precision"] == "amp_bf16"):
        logits = model(input_ids=input_ids, attention_mask=mask).logits
    logits = logits.float()
    shift_logits, shift_labels = logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
    loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
    return loss, (shift_labels != -100).sum()


def save_checkpoint(path, model, optimizer, step, generator):
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "sampler_rng": generator.get_state()}, path)
    # Read it back to make sure the checkpoint is loadable before training goes on.
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--ckpt-dir", required=True)
    args = parser.parse_args()
    cfg = yaml.safe_load(open(args.config))
    torch.manual_seed(cfg["seed"])

    arrays = np.load(os.path.join(args.tokens, "train.npz"))
    dataset = TensorDataset(*(torch.from_numpy(arrays[k]) for k in ("input_ids", "labels", "attention_mask")))
    generator = torch.Generator().manual_seed(cfg["seed"])
    loader = DataLoader(dataset, batch_size=cfg["global_train_batch_size"],
                        sampler=RandomSampler(dataset, generator=generator) if cfg["train_loader"]["shuffle"]
                        else SequentialSampler(dataset),
                        num_workers=cfg["train_loader"]["num_workers"], multiprocessing_context="spawn")

    model = AutoModelForCausalLM.from_pretrained(cfg["base_model"], dtype=torch.float32, attn_implementation="eager")
    model.to(device_of(cfg))
    model.train()
    opt_cfg = cfg["optimizer"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt_cfg["lr"], betas=tuple(opt_cfg["betas"]),
                                  eps=opt_cfg["eps"], weight_decay=opt_cfg["weight_decay"])
    total_steps = len(loader) * cfg["max_duration_epochs"]
    micro = cfg["device_train_microbatch_size"]
    os.makedirs(args.ckpt_dir, exist_ok=True)

    step = 0
    for epoch in range(cfg["max_duration_epochs"]):
        for batch in loader:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, cfg)
            n_tokens = (batch[1][:, 1:] != -100).sum()
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for start in range(0, batch[0].shape[0], micro):
                loss_sum, _ = token_loss_sum(model, [t[start:start + micro] for t in batch], cfg)
                (loss_sum / n_tokens).backward()
                total += loss_sum.item()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip_norm"])
            optimizer.step()
            step += 1
            print(f"epoch {epoch} step {step}/{total_steps} loss {total / n_tokens.item():.4f}", flush=True)
            if step % cfg["save_interval_steps"] == 0:
                save_checkpoint(os.path.join(args.ckpt_dir, f"ep{epoch}-ba{step}.pt"), model, optimizer, step,
                                generator)

    if cfg.get("eval_after_training"):
        model.eval()
        eval_loader = DataLoader(dataset, batch_size=micro, num_workers=cfg["eval_loader"]["num_workers"],
                                 multiprocessing_context="spawn")
        loss_total, count = 0.0, 0
        with torch.no_grad():
            for batch in eval_loader:
                loss_sum, n = token_loss_sum(model, batch, cfg)
                loss_total, count = loss_total + loss_sum.item(), count + n.item()
        print(f"eval loss {loss_total / count:.4f}", flush=True)

    for old in glob.glob(os.path.join(args.ckpt_dir, "ep*-ba*.pt")):
        os.remove(old)
    save_checkpoint(os.path.join(args.ckpt_dir, "latest.pt"), model, optimizer, step, generator)


if __name__ == "__main__":
    main()
