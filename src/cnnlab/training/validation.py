"""A validation point: the mean training loss since the last one, and the loss and accuracy on the held-out
split, as one metrics.csv row. Under DDP each rank scores its shard and the sums are reduced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F

from ..models import predictor
from ..models.evaluate import confusion_matrix, infer
from .distributed import reduce_sum, shard
from .runtime import autocast

if TYPE_CHECKING:
    from .trainer import Trainer


def validation_row(t: Trainer, epoch: float) -> dict:
    """Score the model now; append the row to the state and start a new training-loss average."""
    state, d = t.state, t.dist
    loss_mean = reduce_sum([state.loss_sum / max(state.loss_count, 1)], d.world, d.device)[0] / d.world
    vloss = vacc = None
    y_val = t.data.y_val
    if len(y_val):
        xs, ys = shard(t.data.x_val, d.rank, d.world), shard(y_val, d.rank, d.world)
        part = [0.0, 0.0]
        if len(ys):
            with autocast(d.device, t.amp):
                logits = infer(predictor(t.model, t.meta.tta), xs)
            part = [F.cross_entropy(logits, ys, reduction="sum").item(),
                    (logits.argmax(1) == ys).sum().item()]
        total, correct = reduce_sum(part, d.world, d.device)
        vloss, vacc = total / len(y_val), correct / len(y_val)
    row = {"step": state.global_step, "epoch": round(epoch, 4), "train_loss": round(loss_mean, 6),
           "val_loss": None if vloss is None else round(vloss, 6),
           "val_accuracy": None if vacc is None else round(vacc, 6),
           "lr": t.lr, "seconds": round(t.seconds(), 3)}
    state.rows.append(row)
    state.loss_sum, state.loss_count = 0.0, 0
    return row


def validation_confusion(t: Trainer) -> list[list[int]] | None:
    """The validation confusion matrix (rows = true class), each rank counting its shard."""
    d, k = t.dist, len(t.data.classes)
    if not len(t.data.y_val):
        return None
    xs, ys = shard(t.data.x_val, d.rank, d.world), shard(t.data.y_val, d.rank, d.world)
    counts = [0] * (k * k)
    if len(ys):
        logits = infer(predictor(t.model, t.meta.tta), xs)
        counts = confusion_matrix(logits.argmax(1), ys, k).reshape(-1).tolist()
    counts = reduce_sum(counts, d.world, d.device)
    return [[int(c) for c in counts[i * k:(i + 1) * k]] for i in range(k)]
