"""Who computes a training step (`--engine`): PyTorch, or the textbook NumPy engine, behind one interface.

A stepper takes a batch and the step's learning rate and updates the weights: forward, loss, backward,
optimiser. The trainer around it (data order, schedule, validation, checkpoints, the run directory) is
the same for both. `publish()` makes the torch model hold the current weights before anything reads
them (validation, checkpoints): a no-op for torch; the NumPy engine copies its arrays in.
"""

from __future__ import annotations

import gc
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from .. import textbook
from ..textbook import optim as textbook_optim
from .distributed import shard
from .options import TrainConfig
from .recipe import make_optimizer, parameter_groups
from .runtime import autocast


class Stepper(Protocol):
    checkpoint_key: str  # where a checkpoint keeps the optimiser's state

    def step(self, xb: torch.Tensor, yb: torch.Tensor, lr: float) -> torch.Tensor: ...
    def publish(self) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    def close(self) -> None: ...


class TorchStepper:
    """torch.optim on the model (wrapped in DDP under torchrun, torch.compile with --compile), autocast.

    A pretrained backbone's layer groups are parameter groups with their own `lr_scale` (recipe.py);
    `class_weights` (K,) weighs the loss per class (--class-weights auto)."""

    checkpoint_key = "optimizer"

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                 amp: torch.dtype | None, rank: int, world: int, class_weights: torch.Tensor | None = None):
        self.model, self.cfg, self.device, self.amp, self.rank, self.world = \
            model, cfg, device, amp, rank, world
        self.class_weights = None if class_weights is None else class_weights.to(device)
        self.opt = make_optimizer(cfg, parameter_groups(model))
        self.train_model = model
        if world > 1:
            self.train_model = DistributedDataParallel(model, device_ids=[device.index]
                                                       if device.type == "cuda" else None)
        # the compiled wrapper shares the model's parameters; checkpoints save the plain model
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)

    def step(self, xb: torch.Tensor, yb: torch.Tensor, lr: float) -> torch.Tensor:
        for group in self.opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        with autocast(self.device, self.amp):
            loss = batch_loss(self.train_model, xb, yb, self.rank, self.world, self.cfg.label_smoothing,
                              self.class_weights)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def publish(self) -> None:
        pass  # the optimiser updates the model's own parameters

    def state_dict(self) -> dict:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state)

    def close(self) -> None:
        """Drop the DDP wrapper now: its reducer must not outlive the process group (destroyed after
        training), or its destructor aborts the process at exit; DDP holds reference cycles, so it
        would otherwise wait for the garbage collector."""
        self.train_model = None
        gc.collect()


def batch_loss(model, xb, yb, rank: int, world: int, smoothing: float,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """This process's loss on the global batch (xb, yb).

    One process: the batch mean. Under DDP, which averages gradients over ranks, each rank sums the
    loss over its slice and scales by world/B: (1/world) Σ_r (world/B) Σ_{i in r} ∇l_i = (1/B) Σ_i ∇l_i,
    the single-process gradient exactly (up to float rounding), even when slices differ in size.
    With class weights w, PyTorch's mean is Σ_i w_yi·l_i / Σ_i w_yi, so B becomes the batch's Σ_i w_yi.
    """
    if world == 1:
        return F.cross_entropy(model(xb), yb, weight=weight, label_smoothing=smoothing)
    total = len(yb) if weight is None else float(weight[yb].sum())
    xs, ys, scale = shard(xb, rank, world), shard(yb, rank, world), world / total
    if len(ys) == 0:  # a last batch smaller than the world: join the all-reduce with weight 0
        xs, ys, scale = xb[:1], yb[:1], 0.0
    return F.cross_entropy(model(xs), ys, weight=weight, label_smoothing=smoothing, reduction="sum") * scale


class NumpyStepper:
    """The textbook engine computes forward, backward (δ = softmax − onehot) and the update in NumPy."""

    checkpoint_key = "numpy_optimizer"

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig):
        self.model = model
        self.net = textbook.from_torch(model, dtype=np.float32, rng=np.random.default_rng(cfg.seed))
        self.net.train()
        self.opt = make_optimizer(cfg, self.net.parameters(), library=textbook_optim)
        self.label_smoothing = cfg.label_smoothing

    def step(self, xb: torch.Tensor, yb: torch.Tensor, lr: float) -> torch.Tensor:
        logits = self.net(xb.numpy())
        loss, dlogits = textbook.cross_entropy(logits, yb.numpy(), label_smoothing=self.label_smoothing)
        self.opt.zero_grad()
        self.net.backward(dlogits)
        self.opt.lr = lr
        self.opt.step()
        return torch.tensor(loss)

    def publish(self) -> None:
        """Copy the NumPy weights (and BatchNorm statistics) into the torch model."""
        self.model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
                                    self.net.state_dict().items()})

    def state_dict(self) -> dict:
        """The optimiser's state as torch tensors (checkpoints load with weights_only=True)."""
        return {k: v if k == "step_count" else [None if a is None else torch.from_numpy(a) for a in v]
                for k, v in self.opt.state_dict().items()}

    def close(self) -> None:
        pass

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.opt.load_state_dict({k: v if k == "step_count"
                                      else [None if t is None else t.numpy() for t in v]
                                      for k, v in state.items()})
