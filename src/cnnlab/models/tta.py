"""Test-time augmentation: what a model's predictions are, as opposed to one forward pass.

A model trained on mirrored images (Fashion-MNIST's clothes, photos) predicts better from the average of
the logits for an image and its mirror image: +0.5 points of Fashion-MNIST test accuracy for the default
model (docs/benchmarks.md), for one more forward pass. The run records it in ModelMeta.tta, and every
place that scores or serves a model (validation, the test report, `cnnlab eval`, predict, serve, the ONNX
and TorchScript exports) goes through `predictor`, so they all give the same answer. Pictures of what the
network computes (feature maps, Grad-CAM, filters) use the plain model: one image, one forward pass.
"""

from __future__ import annotations

import torch
from torch import nn

TTA_KINDS = ("none", "flip")


class FlipAverage(nn.Module):
    """Logits averaged over each image (N, C, H, W) and its left-right mirror image."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One pass over the doubled batch: a served single image pays one forward's overhead, not two.
        # A reshape, not slices at len(x): traced exports (ONNX, TorchScript) keep the batch axis free.
        out = self.net(torch.cat([x, x.flip(3)]))
        return out.reshape(2, -1, out.shape[-1]).mean(0)


def predictor(model: nn.Module, tta: str) -> nn.Module:
    """The module whose logits are the model's predictions: the model itself, or wrapped as `tta` says."""
    if tta == "flip":
        return FlipAverage(model)
    if tta in ("", "none"):
        return model
    raise ValueError(f"unknown test-time augmentation {tta!r}; expected one of {TTA_KINDS}")
