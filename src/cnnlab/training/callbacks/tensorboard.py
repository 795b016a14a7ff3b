"""TensorBoard logging for `cnnlab train --tensorboard`: curves, first-layer filters, confusion matrix.

    tensorboard --logdir runs/<name>/tensorboard

Scalar tags: loss/train, loss/val, accuracy/val, lr. Image tags: filters/<first conv layer>,
confusion_matrix. The callback logs scalars at each validation point and images at each epoch's end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import numpy as np
import torch
from torch import nn

from ...viz.plots import confusion_figure
from ...viz.tiles import grid, mosaic
from ..validation import validation_confusion
from .base import Callback

# metrics.csv column -> TensorBoard tag; the "group/name" form puts train and val loss on one card.
SCALAR_TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "val_accuracy": "accuracy/val", "lr": "lr"}


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    for name, m in getattr(model, "module", model).named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    return None


def filter_grid(conv: nn.Conv2d, scale: int = 8) -> torch.Tensor:
    """The first layer's filters as one (3, H, W) image in [0, 1]: 0.5 is a zero weight, one tile per
    filter and input channel, each weight a `scale` x `scale` block so 3x3 kernels stay visible; white
    2-pixel gaps and border, as torchvision's make_grid draws them."""
    w = conv.weight.detach().float().cpu().numpy()  # (out, in, kh, kw)
    lim = max(float(np.abs(w).max()), 1e-12)
    tiles = (w / lim * 0.5 + 0.5).reshape(-1, *w.shape[2:])  # one grey tile per (filter, input channel)
    tiles = tiles.repeat(scale, 1).repeat(scale, 2)
    cols = min(len(tiles), w.shape[1] * max(1, 8 // w.shape[1]))
    img = np.pad(mosaic(np.nan_to_num(grid(tiles, cols), nan=1.0), gap=2, fill=1.0), 2, constant_values=1.0)
    return torch.from_numpy(img).float().expand(3, *img.shape)


class TensorBoardLogger:
    """A `SummaryWriter` that knows cnnlab's metric rows; a no-op for values that are None."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None):
        """`purge_step`: on resume, the first step after the checkpoint. Events from that step on, logged
        before the interruption, are hidden, so replayed steps are not drawn twice."""
        from torch.utils.tensorboard import SummaryWriter  # heavy (tensorboard): only with --tensorboard

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def scalars(self, step: int, row: dict) -> None:
        """One metrics.csv row: train_loss, val_loss, val_accuracy, lr (missing or None ones are skipped)."""
        for key, tag in SCALAR_TAGS.items():
            v = row.get(key)
            if v is not None and v != "" and np.isfinite(float(v)):
                self.writer.add_scalar(tag, float(v), step)
        self.writer.flush()

    def epoch(self, step: int, model: nn.Module, confusion: list[list[int]] | None,
              classes: list[str]) -> None:
        """Images at an epoch's end: the first conv layer's filters and the (validation) confusion matrix."""
        found = first_conv(model)
        if found is not None:
            name, conv = found
            self.writer.add_image(f"filters/{name}", filter_grid(conv), step)
        if confusion is not None:  # the same picture as plots/confusion_matrix.png
            self.writer.add_figure("confusion_matrix", confusion_figure(confusion, classes), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TensorBoard(Callback):
    """--tensorboard: every rank scores its shard of the validation confusion matrix; rank 0 writes."""

    def __init__(self, log_dir: Path, purge_step: int | None, is_writer: bool):
        self.logger = TensorBoardLogger(log_dir, purge_step=purge_step) if is_writer else None

    def on_validation_end(self, t, row: dict) -> None:
        if self.logger is not None:
            self.logger.scalars(t.state.global_step, row)

    def on_epoch_end(self, t, epoch: int) -> None:
        cm = validation_confusion(t)  # a collective under DDP: every rank takes part
        if self.logger is not None:
            self.logger.epoch(t.state.global_step, t.model, cm, list(t.data.classes))

    def on_fit_end(self, t) -> None:
        if self.logger is not None:
            self.logger.close()
