"""Optimisers for the NumPy engine, with torch.optim's update rules step for step.

Each takes the `(param, grad)` pairs of `Layer.parameters()` and updates the params in place, so the
arrays a network holds are the ones that change. tests/test_numpy_engine.py runs them side by side
with torch.optim and compares every parameter after several steps.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Array = np.ndarray


class Optimizer:
    """Holds (param, grad) pairs; `step()` updates params in place, `zero_grad()` clears the grads."""

    def __init__(self, params: Iterable[tuple[Array, Array]], lr: float) -> None:
        self.params = list(params)
        self.lr = lr
        self.step_count = 0

    def zero_grad(self) -> None:
        for _, g in self.params:
            g[...] = 0

    def step(self) -> None:
        self.step_count += 1
        for i, (p, g) in enumerate(self.params):
            self._update(i, p, g)

    def _update(self, i: int, p: Array, g: Array) -> None:
        raise NotImplementedError

    # Per-parameter state (momentum buffers, Adam's moments) by slot name; saved in checkpoints so a
    # resumed NumPy run continues with the same moments, as torch.optim's state_dict does.
    slots: tuple[str, ...] = ()

    def state_dict(self) -> dict:
        return {"step_count": self.step_count,
                **{name: [None if a is None else a.copy() for a in getattr(self, name)]
                   for name in self.slots}}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        for name in self.slots:
            setattr(self, name, [None if a is None else np.array(a, dtype=p.dtype)
                                 for a, (p, _) in zip(state[name], self.params)])


class SGD(Optimizer):
    """Gradient descent, θ ← θ - lr·g, with torch's momentum buffer b ← μ·b + (1 - dampening)·g."""

    slots = ("buffers",)

    def __init__(self, params: Iterable[tuple[Array, Array]], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, lr)
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.buffers: list[Array | None] = [None] * len(self.params)

    def _update(self, i: int, p: Array, g: Array) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p  # L2 penalty (λ/2)·‖θ‖² adds λ·θ to the gradient
        if self.momentum:
            b = self.buffers[i]
            if b is None:  # torch starts the buffer at the first gradient, not at zero
                b = self.buffers[i] = g.copy()
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        p -= self.lr * g


class Adam(Optimizer):
    """Adam: m ← β₁m + (1-β₁)g, v ← β₂v + (1-β₂)g², θ ← θ - lr·m̂/(√v̂ + ε) with bias-corrected m̂, v̂."""

    decoupled = False  # AdamW flips this: weight decay shrinks θ directly instead of joining g
    slots = ("m", "v")

    def __init__(self, params: Iterable[tuple[Array, Array]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.m = [np.zeros_like(p) for p, _ in self.params]  # first moment: running mean of g
        self.v = [np.zeros_like(p) for p, _ in self.params]  # second moment: running mean of g²

    def _update(self, i: int, p: Array, g: Array) -> None:
        (b1, b2), t = self.betas, self.step_count
        if self.weight_decay and self.decoupled:
            p *= 1 - self.lr * self.weight_decay  # AdamW: θ ← θ - lr·λ·θ, outside the adaptive scaling
        elif self.weight_decay:
            g = g + self.weight_decay * p  # Adam: L2 penalty folded into the gradient
        m, v = self.m[i], self.v[i]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        # m and v start at 0, so early on they are too small by (1 - βᵗ): divide that out
        m_hat_scale = self.lr / (1 - b1 ** t)
        denom = np.sqrt(v) / np.sqrt(1 - b2 ** t) + self.eps  # torch adds ε after the correction
        p -= m_hat_scale * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter); torch's default weight_decay is 0.01."""

    decoupled = True

    def __init__(self, params: Iterable[tuple[Array, Array]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
