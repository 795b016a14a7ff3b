"""Augmentation as batched tensor ops on the in-memory set: no per-sample Python (as airbench does)."""

from __future__ import annotations

import torch


def flip_mask(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) bool: which images of a batch to mirror; drawn on the CPU so a seed gives the same mask
    anywhere."""
    return torch.rand(n, generator=generator, device="cpu") < 0.5


def flip_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images (N, C, H, W) left-right: one batched op."""
    mask = flip_mask(x.shape[0], generator).to(x.device).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(3), x)
