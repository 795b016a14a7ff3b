"""The output layer's maths in NumPy: softmax, its log, and cross-entropy with its gradient δ = y − t."""

from __future__ import annotations

import numpy as np

from .layers import Array


def softmax(z: Array, axis: int = -1) -> Array:
    """P(y=j|x) = exp(z_j)/Σ_k exp(z_k) (seed 001 eq. 3)."""
    # softmax(z - c) = softmax(z) for any c; subtracting the max keeps exp from overflowing
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(z: Array, axis: int = -1) -> Array:
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def cross_entropy(logits: Array, target: Array, label_smoothing: float = 0.0) -> tuple[float, Array]:
    """Mean cross-entropy of (N, K) logits and (N,) class indices, and its gradient wrt the logits."""
    n, k = logits.shape
    # target distribution t: one-hot, or with smoothing (1 - ε)·onehot + ε/K (torch's label_smoothing)
    t = np.full((n, k), label_smoothing / k, dtype=logits.dtype)
    t[np.arange(n), target] += 1 - label_smoothing
    loss = -(t * log_softmax(logits)).sum() / n  # L = -(1/N) Σ_n Σ_k t_nk log y_nk
    # δ = y - t (seed 001's backprop start), divided by N because the loss is a mean over the batch
    return float(loss), (softmax(logits) - t) / n
