"""`cnnlab train --engine numpy`: the textbook NumPy engine does the training steps.

The trainer keeps everything else (data order, schedule, metrics, checkpoints, run directory): the
NumPy network computes forward, backward and the update; its weights are copied into the torch
model only at validation and checkpoint points, where the torch model evaluates and is saved in
the same safetensors format. The learning rate comes from the trainer's schedule each step.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import TrainConfig


class NumpyStepper:
    """Owns the NumPy copy of the model and its optimiser; one `step()` per batch."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, seed: int):
        from . import numpy_optim
        from .numpy_engine import from_torch

        self.net = from_torch(model, dtype=np.float32, rng=np.random.default_rng(seed))
        self.net.train()
        params = self.net.parameters()
        if cfg.optimizer == "sgd":
            self.opt = numpy_optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adam":
            self.opt = numpy_optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.opt = numpy_optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.label_smoothing = cfg.label_smoothing

    def step(self, xb: torch.Tensor, yb: torch.Tensor, lr: float) -> float:
        """Forward, cross-entropy, backward (δ = softmax − onehot), update; returns the batch loss."""
        from .numpy_engine import cross_entropy

        logits = self.net(xb.numpy())
        loss, dlogits = cross_entropy(logits, yb.numpy(), label_smoothing=self.label_smoothing)
        self.opt.zero_grad()
        self.net.backward(dlogits)
        self.opt.lr = lr
        self.opt.step()
        return float(loss)

    def sync_to(self, model: torch.nn.Module) -> None:
        """Copy the NumPy weights (and BatchNorm statistics) into the torch model."""
        model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
                               self.net.state_dict().items()})

    def load_from(self, model: torch.nn.Module, optimizer_state: dict | None = None) -> None:
        """After a resume: start from the torch model's (checkpointed) weights and the optimiser's moments."""
        self.net.load_state_dict(model.state_dict())
        if optimizer_state:
            self.opt.load_state_dict({k: v if k == "step_count" else [None if t is None else t.numpy() for t in v]
                                      for k, v in optimizer_state.items()})

    def optimizer_state(self) -> dict:
        """The optimiser's state as torch tensors (checkpoints load with weights_only=True)."""
        return {k: v if k == "step_count" else [None if a is None else torch.from_numpy(a) for a in v]
                for k, v in self.opt.state_dict().items()}
