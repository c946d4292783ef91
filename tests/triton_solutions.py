"""Solution source shared by the triton_cumsum tests (CPU and GPU): the task's definition, exactly."""

EXACT = """
import torch

def _exact(x):
    odd = ((x > 0).cumsum(0) % 2).bool()
    out = torch.zeros_like(x)
    out[1:] = torch.where(odd[:-1], x[1:], 0).cumsum(0).to(torch.int32)
    return out
"""
