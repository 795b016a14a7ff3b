"""The maths of the notes as NumPy: every layer's forward and backward side by side (micrograd for CNNs).

Each layer is a small class: `forward(x)` caches what `backward` needs, and `backward(grad_out)` returns
the gradient wrt the input and *adds* the gradients wrt the parameters to `.grads` (they accumulate like
torch's `.grad` until `zero_grad()`). Class names, arguments, parameter names ("weight", "bias") and
shapes are PyTorch's, so `interop.from_torch` and `state_dict` map one to one, and
tests/test_numpy_engine.py checks every value and gradient against torch autograd. docs/maths.md walks
through each formula, the code that implements it and the test that proves it.

This module: the layer protocol, containers, activations, Flatten, Linear, Dropout and BatchNorm;
conv.py has convolution and pooling, losses.py softmax and cross-entropy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

Array = np.ndarray


def uniform_init(rng: np.random.Generator | None, shape: tuple[int, ...], fan_in: int, dtype: Any) -> Array:
    # torch's default init for Conv2d and Linear (kaiming_uniform with a=√5): U(-1/√fan_in, 1/√fan_in)
    bound = 1.0 / np.sqrt(fan_in)
    return (rng or np.random.default_rng()).uniform(-bound, bound, shape).astype(dtype)


# --- the layer protocol --------------------------------------------------------------------------------

class Layer:
    """A layer; `params`, `grads` and `buffers` are dicts keyed by torch's names (`weight`, `bias`...)."""

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}  # saved but not trained: BatchNorm's running statistics
        self.training = True
        self.cache: Any = None  # what forward keeps for backward

    def _set_params(self, **params: Array) -> None:
        # Gradients live in fixed arrays updated in place, so an optimiser can hold on to them.
        self.params = params
        self.grads = {k: np.zeros_like(v) for k, v in params.items()}

    def forward(self, x: Array) -> Array:
        raise NotImplementedError

    def backward(self, grad_out: Array) -> Array:
        raise NotImplementedError

    def __call__(self, x: Array) -> Array:
        return self.forward(x)

    def children(self) -> dict[str, Layer]:
        return {}

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """This layer and all below it, with torch's state_dict prefix ("", "0.", "2.body.1.", ...)."""
        yield prefix, self
        for name, child in self.children().items():
            yield from child.walk(f"{prefix}{name}.")

    def named_parameters(self) -> list[tuple[str, Array, Array]]:
        """(name, param, grad) for every parameter, in torch's order."""
        return [(p + k, v, layer.grads[k]) for p, layer in self.walk() for k, v in layer.params.items()]

    def parameters(self) -> list[tuple[Array, Array]]:
        """(param, grad) pairs for an optimiser; both are updated in place, never replaced."""
        return [(v, g) for _, v, g in self.named_parameters()]

    def zero_grad(self) -> None:
        for _, g in self.parameters():
            g[...] = 0

    def train(self, mode: bool = True) -> Layer:
        for _, layer in self.walk():
            layer.training = mode
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def state_dict(self) -> dict[str, Array]:
        """Copies of all params and buffers under the keys `torch_module.state_dict()` uses."""
        return {p + k: v.copy() for p, layer in self.walk()
                for k, v in {**layer.params, **layer.buffers}.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy in values (ndarrays or torch tensors); keys and shapes must match (torch's strict mode)."""
        own = {p + k: v for p, layer in self.walk() for k, v in {**layer.params, **layer.buffers}.items()}
        if set(own) != set(state):
            raise KeyError(f"state_dict keys differ: missing {sorted(set(own) - set(state))}, "
                           f"unexpected {sorted(set(state) - set(own))}")
        for key, target in own.items():
            value = np.asarray(state[key].detach().cpu() if hasattr(state[key], "detach") else state[key])
            if value.shape != target.shape:
                raise ValueError(f"{key}: shape {value.shape} does not match {target.shape}")
            target[...] = value


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse (the chain rule, one link at a time).

    Like torch: `Sequential(a, b)` names them "0", "1"; `Sequential({"conv1": a, "relu1": b})` keeps names.
    """

    def __init__(self, *layers: Layer | dict[str, Layer]) -> None:
        super().__init__()
        named = layers[0] if len(layers) == 1 and isinstance(layers[0], dict) else dict(enumerate(layers))
        self.named: dict[str, Layer] = {str(k): v for k, v in named.items()}  # type: ignore[union-attr]
        self.layers = list(self.named.values())

    def children(self) -> dict[str, Layer]:
        return self.named

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: Array) -> Array:
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out


class Residual(Layer):
    """y = body(x) + (proj(x) if proj else x): a skip connection, as in ResNet."""

    def __init__(self, body: Sequential, proj: Layer | None = None) -> None:
        super().__init__()
        self.body, self.proj = body, proj

    def children(self) -> dict[str, Layer]:
        return {"body": self.body} | ({"proj": self.proj} if self.proj is not None else {})

    def forward(self, x: Array) -> Array:
        return self.body.forward(x) + (self.proj.forward(x) if self.proj is not None else x)

    def backward(self, grad_out: Array) -> Array:
        # A sum passes the same gradient to both branches; where they meet again, at x, the two add up.
        skip = self.proj.backward(grad_out) if self.proj is not None else grad_out
        return self.body.backward(grad_out) + skip


# --- activations, reshaping, fully connected -----------------------------------------------------------

class ReLU(Layer):
    """f(x) = max(0, x) (seed 001 eq. 2); the gradient passes where x > 0."""

    def forward(self, x: Array) -> Array:
        self.cache = x > 0
        return np.where(self.cache, x, 0).astype(x.dtype, copy=False)

    def backward(self, grad_out: Array) -> Array:
        return grad_out * self.cache


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y²."""

    def forward(self, x: Array) -> Array:
        self.cache = np.tanh(x)
        return self.cache

    def backward(self, grad_out: Array) -> Array:
        return grad_out * (1 - self.cache ** 2)


class Sigmoid(Layer):
    """y = 1/(1 + e^-x); dy/dx = y(1 - y)."""

    def forward(self, x: Array) -> Array:
        self.cache = 1 / (1 + np.exp(-x))
        return self.cache

    def backward(self, grad_out: Array) -> Array:
        return grad_out * self.cache * (1 - self.cache)


class Flatten(Layer):
    """Merge dims start_dim..end_dim (default: all but the batch): (N, C, H, W) -> (N, C·H·W)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Array) -> Array:
        s, e = self.start_dim % x.ndim, self.end_dim % x.ndim
        self.cache = x.shape
        return x.reshape(*x.shape[:s], -1, *x.shape[e + 1:])

    def backward(self, grad_out: Array) -> Array:
        return grad_out.reshape(self.cache)


class Linear(Layer):
    """Fully connected, z = Wx + b (seed 001), on row vectors: z = x·Wᵀ + b, W of shape (out, in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 rng: np.random.Generator | None = None, dtype: Any = np.float32) -> None:
        super().__init__()
        weight = uniform_init(rng, (out_features, in_features), in_features, dtype)
        bias_ = {"bias": uniform_init(rng, (out_features,), in_features, dtype)} if bias else {}
        self._set_params(weight=weight, **bias_)

    def forward(self, x: Array) -> Array:  # (..., in) -> (..., out)
        self.cache = x
        z = x @ self.params["weight"].T.astype(x.dtype, copy=False)
        return z + self.params["bias"].astype(x.dtype, copy=False) if "bias" in self.params else z

    def backward(self, grad_out: Array) -> Array:
        x = self.cache
        g2, x2 = grad_out.reshape(-1, grad_out.shape[-1]), x.reshape(-1, x.shape[-1])  # (M, out), (M, in)
        self.grads["weight"] += g2.T @ x2  # ∂z_o/∂W_oi = x_i
        if "bias" in self.grads:
            self.grads["bias"] += g2.sum(0)
        return grad_out @ self.params["weight"].astype(grad_out.dtype, copy=False)  # ∂z_o/∂x_i = W_oi


class Dropout(Layer):
    """In training, zero each value with probability p and scale the rest by 1/(1-p); identity in eval."""

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng()

    def forward(self, x: Array) -> Array:
        if not self.training or self.p == 0:
            self.cache = None
            return x
        # the 1/(1-p) keeps the expected value unchanged, so eval needs no rescaling
        keep = self.rng.random(x.shape) >= self.p
        self.cache = keep / (1 - self.p) if self.p < 1 else np.zeros(x.shape)
        return (x * self.cache).astype(x.dtype, copy=False)

    def backward(self, grad_out: Array) -> Array:
        return grad_out if self.cache is None else (grad_out * self.cache).astype(grad_out.dtype, copy=False)


class BatchNorm2d(Layer):
    """y = γ·(x - μ)/√(σ² + ε) + β per channel; batch statistics in training, running ones in eval."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, *,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self._set_params(weight=np.ones(num_features, dtype), bias=np.zeros(num_features, dtype))
        self.buffers = {"running_mean": np.zeros(num_features, dtype),
                        "running_var": np.ones(num_features, dtype),
                        "num_batches_tracked": np.zeros((), np.int64)}

    def forward(self, x: Array) -> Array:  # (N, C, H, W)
        b = self.buffers
        if self.training:
            mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))  # biased σ² normalises, as in torch
            m = x.size // x.shape[1]  # values per channel
            b["num_batches_tracked"] += 1
            mom = self.momentum if self.momentum is not None else 1.0 / b["num_batches_tracked"]
            b["running_mean"][...] = (1 - mom) * b["running_mean"] + mom * mean
            b["running_var"][...] = (1 - mom) * b["running_var"] + mom * var * m / max(m - 1, 1)  # unbiased
        else:
            mean, var = b["running_mean"], b["running_var"]
        inv_std = (1 / np.sqrt(var + self.eps)).astype(x.dtype)[None, :, None, None]
        x_hat = (x - mean.astype(x.dtype)[None, :, None, None]) * inv_std
        self.cache = (x_hat, inv_std, self.training)
        return self.params["weight"][None, :, None, None] * x_hat + self.params["bias"][None, :, None, None]

    def backward(self, grad_out: Array) -> Array:
        x_hat, inv_std, used_batch_stats = self.cache
        axes = (0, 2, 3)
        self.grads["weight"] += (grad_out * x_hat).sum(axes)
        self.grads["bias"] += grad_out.sum(axes)
        d_xhat = grad_out * self.params["weight"][None, :, None, None]
        if not used_batch_stats:  # μ and σ² are constants in eval: just the scale
            return d_xhat * inv_std
        # In training μ and σ² depend on every x of the channel too, which adds two mean-terms:
        # dx = (1/σ)·(dx̂ - mean(dx̂) - x̂·mean(dx̂·x̂))
        return inv_std * (d_xhat - d_xhat.mean(axes, keepdims=True)
                          - x_hat * (d_xhat * x_hat).mean(axes, keepdims=True))
