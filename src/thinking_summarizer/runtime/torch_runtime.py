"""Where and how models run: device and dtype from config ("auto" picks GPU and bf16 when present),
and peak-memory readings for reports and benchmarks."""

from __future__ import annotations

import importlib.util
import resource
import sys

import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on a GPU that has it, float32 elsewhere (fp32 is fastest on CPU)."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def resolve_attention(name: str, device: torch.device) -> str:
    """`auto`: FlashAttention 2 on a GPU where flash-attn is installed (the `gpu` extra), else PyTorch's SDPA."""
    if name == "auto":
        flash = device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None
        return "flash_attention_2" if flash else "sdpa"
    return name


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated since the last reset, or this process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
