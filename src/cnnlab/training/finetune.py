"""Fine-tuning a pretrained backbone (`--pretrained`), fastai's `fine_tune` recipe in two phases.

1. The new head trains alone while the backbone is frozen (`HeadFirst`). A frozen backbone turns each image
   into the same features every epoch, so they are computed once per image (eval mode, in batches) and
   the head trains on the cached (N, F) features for --head-epochs epochs: seconds, where passing the
   images through the backbone every epoch would take minutes on a CPU.
2. Then the whole network trains: the Trainer's ordinary epochs, with the backbone's layer groups at lower
   learning rates (recipe.parameter_groups), one-cycle, and photo augmentation.

BatchNorm keeps its ImageNet statistics in both (models.PretrainedNet.train).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..models.evaluate import infer
from .callbacks import Callback
from .distributed import broadcast_module
from .runtime import autocast

if TYPE_CHECKING:
    from .trainer import Trainer

HEAD_LR = 3e-3  # AdamW on the head's features, cosine-annealed to 0 over the head epochs


@torch.inference_mode()
def backbone_features(t: Trainer, x: torch.Tensor) -> torch.Tensor:
    """(N, F) pooled features of normalised images (N, C, H, W): the frozen body, once per image."""
    if not len(x):
        return x.new_empty(0, t.model.features)
    # The whole model in eval mode, then back: `infer` on the body alone would hand it back in train mode,
    # BatchNorm included, which PretrainedNet.train keeps out of it.
    was = t.model.training
    t.model.eval()
    try:
        with autocast(t.dist.device, t.amp):
            return infer(t.model.body, x, batch_size=64).float()
    finally:
        t.model.train(was)


class HeadFirst(Callback):
    """Phase 1 at the start of a new run: the head on cached features. A validation row (step 0) records
    where it got, in metrics.csv and TensorBoard; it is not a candidate for best.safetensors (BestWeights)."""

    def __init__(self, epochs: int, class_weights: torch.Tensor | None):
        self.epochs, self.class_weights = epochs, class_weights

    def on_fit_start(self, t: Trainer) -> None:
        if self.epochs == 0 or t.state.global_step > 0 or t.state.rows:
            return  # skipped, or resumed after it (a checkpoint comes only after steps of phase 2)
        start = time.perf_counter()
        f, fv = backbone_features(t, t.data.x), backbone_features(t, t.data.x_val)
        feature_s = time.perf_counter() - start
        loss = train_head(t, f, t.data.y, self.epochs, self.class_weights)
        broadcast_module(t.model.head, t.dist.world)  # every rank computed the same; rank 0's, to be sure
        row = head_row(t, loss, fv)
        t.state.rows.append(row)
        t.state.loss_sum, t.state.loss_count = 0.0, 0
        if t.dist.is_writer:
            val = "" if row["val_accuracy"] is None else f"  val_acc {100 * row['val_accuracy']:.2f}%"
            print(f"head: {self.epochs} epochs on cached features of {len(f)} images ({feature_s:.1f}s for "
                  f"the features)  train_loss {loss:.4f}{val}  {row['seconds']:.1f}s", flush=True)
        t.call("on_validation_end", row)


def train_head(t: Trainer, f: torch.Tensor, y: torch.Tensor, epochs: int,
               weight: torch.Tensor | None) -> float:
    """Mini-batch AdamW on the head over cached features; the mean loss of the last epoch."""
    cfg, head = t.cfg, t.model.head
    head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=HEAD_LR, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n, b = len(f), cfg.batch_size
    per_epoch = math.ceil(n / b)
    total, last = epochs * per_epoch, 0.0
    weight = None if weight is None else weight.to(f.device)
    for e in range(epochs):
        order = torch.randperm(n, generator=gen).to(f.device)
        losses = []
        for s in range(per_epoch):
            idx = order[s * b:(s + 1) * b]
            for group in opt.param_groups:
                group["lr"] = HEAD_LR * (1 + math.cos(math.pi * (e * per_epoch + s) / total)) / 2
            loss = F.cross_entropy(head(f[idx]), y[idx], weight=weight, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        last = float(torch.stack(losses).mean())
    return last


def head_row(t: Trainer, train_loss: float, fv: torch.Tensor) -> dict:
    """The metrics.csv row of phase 1: validation loss and accuracy of the head on the cached features."""
    vloss = vacc = None
    if len(fv):
        logits = infer(t.model.head, fv)
        vloss = float(F.cross_entropy(logits, t.data.y_val))
        vacc = float((logits.argmax(1) == t.data.y_val).float().mean())
    return {"step": 0, "epoch": 0.0, "train_loss": round(train_loss, 6),
            "val_loss": None if vloss is None else round(vloss, 6),
            "val_accuracy": None if vacc is None else round(vacc, 6), "lr": HEAD_LR,
            "seconds": round(t.seconds(), 3)}
