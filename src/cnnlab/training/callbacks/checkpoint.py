"""Checkpoints for exact resume, and the best weights so far."""

from __future__ import annotations

from ...models import save_weights
from ..checkpoint import rng_state, save_checkpoint
from ..distributed import all_gather
from .base import Callback


class Checkpointer(Callback):
    """checkpoints/last.pt (everything to continue bit for bit) and last.safetensors at each checkpoint point.

    Under DDP what differs by rank (the random generators, the running loss sum) is gathered from every
    rank; rank 0 writes."""

    def on_checkpoint(self, t) -> None:
        state = t.state
        ranks = all_gather({"rng": rng_state(), "loss_sum": state.loss_sum}, t.dist.world)
        if t.dist.is_writer:
            save_checkpoint({"model": t.model.state_dict(), t.stepper.checkpoint_key: t.stepper.state_dict(),
                             "rng": ranks[0]["rng"], "ranks": ranks if t.dist.world > 1 else [],
                             "state": state.state_dict()}, t.out / "checkpoints" / "last.pt")
            save_weights(t.model, t.meta, t.out / "last.safetensors")
        t.saved_step = state.global_step


class BestWeights(Callback):
    """best.safetensors at every validation point that beats the best so far: the highest validation
    accuracy, or without a validation split the lowest training loss.

    Fine-tuning a pretrained backbone (`fine_tuning`) keeps the newest point instead, as fastai's
    `fine_tune` ends on its one-cycle schedule's annealed weights: a validation split of a few dozen
    photos moves in steps of several percent and cannot rank points a photo or two apart. On the
    grass/gravel photos (docs/photos.md) it picked the head-only warm start: 90.0 % on the 120 test
    photos, where the finished run had 95.0 %. The head-only point (step 0) is never kept."""

    def __init__(self, fine_tuning: bool = False):
        self.fine_tuning = fine_tuning

    def on_validation_end(self, t, row: dict) -> None:
        state = t.state
        if self.fine_tuning and row["step"] == 0:
            return
        if row["val_accuracy"] is not None:
            better = (self.fine_tuning or state.best_val_accuracy is None
                      or row["val_accuracy"] > state.best_val_accuracy)
            if better:
                state.best_val_accuracy, state.best_val_loss = row["val_accuracy"], row["val_loss"]
        else:
            better = (self.fine_tuning or state.best_train_loss is None
                      or row["train_loss"] < state.best_train_loss)
            if better:
                state.best_train_loss = row["train_loss"]
        if better:
            state.best_step = state.global_step
            if t.dist.is_writer:
                save_weights(t.model, t.meta, t.out / "best.safetensors")
