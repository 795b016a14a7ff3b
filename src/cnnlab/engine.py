"""The fast path's small pieces: device choice, CPU thread policy, batched augmentation."""

from __future__ import annotations

import os

import torch

from .errors import UserError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible here; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps: Apple's MPS is not available here; use --device auto or cpu")
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def choose_threads(requested: int | None = None) -> int:
    """CPU intra-op threads for training small CNNs.

    Measured on a 2-vCPU VM (docs/benchmarks.md): one thread beat two by 2-16x for small CNNs, because
    each op is too small to split and OpenMP's threads spin waiting for the other vCPU (often a
    hyper-thread sibling or a stolen core). So: 1 thread on machines with <= 2 CPUs, else half the
    usable CPUs (physical cores, roughly), capped at 8. `--threads` overrides.
    """
    if requested:
        return requested
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cpus = max(1, cpus // world)
    return 1 if cpus <= 2 else min(8, cpus // 2)


def flip_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left-right: one batched op, no per-sample Python."""
    mask = torch.rand(x.shape[0], generator=generator, device="cpu") < 0.5
    mask = mask.to(x.device).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(3), x)
