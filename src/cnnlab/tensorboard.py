"""TensorBoard logging for `cnnlab train --tensorboard`: curves, first-layer filters, confusion matrix.

    tensorboard --logdir runs/<name>/tensorboard

Scalar tags: loss/train, loss/val, accuracy/val, lr. Image tags: filters/<first conv layer>,
confusion_matrix. The trainer calls `scalars` at each log point and `epoch` at each epoch's end.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Self

import numpy as np
import torch
from torch import nn

# metrics.csv column -> TensorBoard tag; the "group/name" form puts train and val loss on one card.
SCALAR_TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "val_accuracy": "accuracy/val", "lr": "lr"}


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    for name, m in getattr(model, "module", model).named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    return None


def filter_grid(conv: nn.Conv2d, scale: int = 8) -> torch.Tensor:
    """The first layer's filters as one (3, H, W) image in [0, 1]: 0.5 is a zero weight, one tile per
    filter and input channel, each weight a `scale` x `scale` block so 3x3 kernels stay visible."""
    from torchvision.utils import make_grid

    w = conv.weight.detach().float().cpu()  # (out, in, kh, kw)
    lim = w.abs().max().clamp_min(1e-12)
    tiles = (w / lim * 0.5 + 0.5).reshape(-1, 1, *w.shape[2:])  # one grey tile per (filter, input channel)
    tiles = tiles.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    return make_grid(tiles, nrow=w.shape[1] * max(1, 8 // w.shape[1]), padding=2, pad_value=1.0)


class TensorBoardLogger:
    """A `SummaryWriter` that knows cnnlab's metric rows; a no-op for values that are None."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None):
        """`purge_step`: on resume, the first step after the checkpoint. Events from that step on, logged
        before the interruption, are hidden, so replayed steps are not drawn twice."""
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def scalars(self, step: int, row: dict) -> None:
        """One metrics.csv row: train_loss, val_loss, val_accuracy, lr (missing or None ones are skipped)."""
        for key, tag in SCALAR_TAGS.items():
            v = row.get(key)
            if v is not None and v != "" and np.isfinite(float(v)):
                self.writer.add_scalar(tag, float(v), step)
        self.writer.flush()

    def epoch(self, step: int, model: nn.Module, confusion: list[list[int]] | None, classes: list[str]) -> None:
        """Images at an epoch's end: the first conv layer's filters and the (validation) confusion matrix."""
        found = first_conv(model)
        if found is not None:
            name, conv = found
            self.writer.add_image(f"filters/{name}", filter_grid(conv), step)
        if confusion is not None:
            self.writer.add_image("confusion_matrix", _confusion_image(confusion, classes), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _confusion_image(cm: list[list[int]], classes: list[str]) -> np.ndarray:
    """The same picture as plots/confusion_matrix.png, as an (H, W, 3) uint8 array."""
    from PIL import Image

    from .plots import save_confusion

    with tempfile.TemporaryDirectory() as tmp:
        path = save_confusion(cm, classes, Path(tmp) / "cm.png")
        return np.asarray(Image.open(path).convert("RGB"))
