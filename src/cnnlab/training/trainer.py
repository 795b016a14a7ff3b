"""The training loop, and nothing else: batches in a seeded order, one step each, and the hooks.

What happens around the steps (validation rows, best weights, checkpoints, early stopping, the
divergence check, metrics.csv, TensorBoard, the progress bar) lives in `callbacks/`, each a small class
with no-op hooks (Lightning's callbacks, without its 1,800-line trainer). The loop only decides *when*:
validation points (twice per epoch by default), checkpoints (every --checkpoint-every steps, each
epoch's end, and on Ctrl-C), and epoch ends.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models import ModelMeta
from .augment import augment_batch
from .callbacks import Callback
from .distributed import agree
from .options import TrainConfig
from .recipe import lr_at
from .state import TrainState
from .steppers import Stepper
from .stopping import Interrupted, StopFlag
from .validation import validation_row


@dataclass
class TrainData:
    """The tensors a run trains and validates on: normalised, on the device, the whole set in memory."""

    x: torch.Tensor  # (N, C, H, W) float32
    y: torch.Tensor  # (N,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    classes: list[str]
    augment: str  # "none", "flip" or "photo"
    class_weights: torch.Tensor | None = None  # (K,) loss weight per class (--class-weights auto)
    test_samples: int = 0  # what the final test scores (a time budget keeps time for it)


@dataclass
class Dist:
    """This process's place: rank and world size under torchrun (0 and 1 alone), and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_writer(self) -> bool:  # only rank 0 writes the run directory
        return self.rank == 0


class Trainer:
    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, meta: ModelMeta, stepper: Stepper,
                 data: TrainData, state: TrainState, dist: Dist, out: Path, stop: StopFlag,
                 callbacks: list[Callback], amp: torch.dtype | None, started_at: float | None = None):
        self.cfg, self.model, self.meta, self.stepper, self.data = cfg, model, meta, stepper, data
        self.state, self.dist, self.out, self.stop, self.callbacks, self.amp = \
            state, dist, out, stop, callbacks, amp
        self.started_at = time.monotonic() if started_at is None else started_at  # this session's start
        B = cfg.batch_size
        # no last batch of 1 (BN)
        self.steps_per_epoch = len(data.x) // B + (1 if len(data.x) % B >= 2 else 0)
        # The schedule's length: --epochs whole epochs, or what a time budget fits (callbacks/time_budget.py
        # sets it, and may change it while training: the learning rate is a function of it, recipe.lr_at).
        self.total_steps = self.steps_per_epoch * (cfg.epochs or 1)
        # each ~5 % of an epoch
        self.eval_every = cfg.eval_every or max(10, math.ceil(self.steps_per_epoch / 2))
        self.saved_step: int | None = None  # global step of the newest checkpoint on disk
        self.last_step_seconds = 0.0
        self.t0 = time.perf_counter()  # start of the training time not yet added to state.train_seconds

    def call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return lr_at(self.cfg, self.state.global_step, self.total_steps)

    def seconds(self) -> float:
        """Training time so far, this session's included."""
        return self.state.train_seconds + time.perf_counter() - self.t0

    @property
    def epochs(self) -> int:
        """The epochs the schedule spans; a time budget may end the last one early."""
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def fit(self) -> None:
        state = self.state
        self.t0 = time.perf_counter()
        self.model.train()
        self.call("on_fit_start")
        try:
            while state.global_step < self.total_steps:
                # Checked before the epoch, so a run resumed from the checkpoint at an epoch's end stops too.
                if any(cb.should_stop(self) for cb in self.callbacks):
                    break
                self.call("on_epoch_start", state.epoch)
                self._epoch(state.epoch)
        finally:
            self.call("on_fit_end")
        state.train_seconds += time.perf_counter() - self.t0

    def _epoch(self, epoch: int) -> None:
        state, cfg, spe = self.state, self.cfg, self.steps_per_epoch
        order = torch.randperm(len(self.data.x),
                               generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        loss_acc = torch.zeros((), device=self.dist.device)  # summed on the device: no sync per step on a GPU
        n_acc = 0
        for s in range(state.step_in_epoch, spe):
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size].to(self.dist.device)
            xb, yb = self.data.x[idx], self.data.y[idx]  # the global batch, the same on every rank
            if self.data.augment != "none":  # drawn from the step: the same on every rank and after a resume
                gen = torch.Generator().manual_seed(cfg.seed * 7_919 + state.global_step)
                xb = augment_batch(self.data.augment, xb, gen, self.meta.mean, self.meta.std)
            started = time.perf_counter()
            loss = self.stepper.step(xb, yb, self.lr)
            self.last_step_seconds = time.perf_counter() - started  # the step alone (CPU ops are synchronous)
            loss_acc += loss.detach()
            n_acc += 1
            state.global_step += 1
            state.step_in_epoch = s + 1
            self.call("on_step_end")  # the progress bar; a time budget may resize the schedule here
            last = s + 1 == spe or state.global_step >= self.total_steps  # a budget may end an epoch early
            # counted within the epoch: twice per epoch means two points, however long the epoch is
            at_eval = (s + 1) % self.eval_every == 0 or last
            at_ckpt = bool(cfg.checkpoint_every) and state.global_step % cfg.checkpoint_every == 0
            stopping = False
            if self._sync_point(at_eval or at_ckpt):
                value = loss_acc.item()  # on the CPU this costs nothing: there is no asynchronous queue
                # All ranks must agree, or one would leave while the others wait in an all-reduce.
                stopping, bad = agree([self.stop.signal is not None, not math.isfinite(value)],
                                      self.dist.world, self.dist.device)
                self.call("on_loss", value, bad)
                state.loss_sum += value
                state.loss_count += n_acc
                loss_acc.zero_()
                n_acc = 0
            if at_eval or at_ckpt or last or stopping:
                self.stepper.publish()
            if at_eval:
                self.call("on_validation_start")
                row = validation_row(self, epoch + (s + 1) / spe)
                self.call("on_validation_end", row)
            if last:
                state.epoch, state.step_in_epoch = epoch + 1, 0
                self.call("on_epoch_end", epoch)
            if at_ckpt or last or stopping:
                state.train_seconds += time.perf_counter() - self.t0
                self.t0 = time.perf_counter()
                self.call("on_checkpoint")
            if stopping:
                raise Interrupted(f"stopped at step {state.global_step} (epoch {epoch + 1}); the state is "
                                  f"saved: resume with `cnnlab train --resume {self.out}`", self.out)
            if last:
                break

    def _sync_point(self, needed: bool) -> bool:
        """Whether to read the loss off the device now: at every step on the CPU (free, and the NaN check
        sees every step) and under DDP (the ranks must agree on stopping), else only where it is needed."""
        return self.dist.device.type == "cpu" or self.dist.world > 1 or needed or self.stop.signal is not None
