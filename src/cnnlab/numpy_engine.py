"""The maths of the notes (seed 001) as NumPy: every layer's forward and backward side by side.

Micrograd for CNNs. Each layer is a small class: `forward(x)` caches what `backward` needs, and
`backward(grad_out)` returns the gradient wrt the input and *adds* the gradients wrt the parameters
to `.grads` (they accumulate like torch's `.grad` until `zero_grad()`). Class names, arguments,
parameter names ("weight", "bias") and shapes are PyTorch's, so `from_torch` and `state_dict` map
one to one, and tests/test_numpy_engine.py checks every value and gradient against torch autograd.
docs/maths.md walks through each formula, the code that implements it and the test that proves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.errors import UserError

Array = np.ndarray
IntPair = int | tuple[int, int]
Pad = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


def _pair(v: IntPair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length along one axis of a conv or pool: ⌊(n + 2p - d(k-1) - 1)/s⌋ + 1."""
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def true_convolution(image: Array, kernel: Array, mode: str = "full") -> Array:
    """Seed 001 eq. (1), S(i,j) = Σ_m Σ_n I(m,n) K(i-m, j-n): the textbook, flipped-kernel convolution."""
    (h, w), (kh, kw) = image.shape, kernel.shape
    out = np.zeros((h + kh - 1, w + kw - 1), dtype=np.result_type(image, kernel))
    # With a = i-m, b = j-n the sum becomes Σ_ab K(a,b)·I(i-a, j-b): each tap adds a shifted copy of I.
    for a in range(kh):
        for b in range(kw):
            out[a:a + h, b:b + w] += kernel[a, b] * image
    if mode == "full":
        return out
    if mode == "valid":  # only where the kernel lies wholly inside the image
        return out[kh - 1:h, kw - 1:w]
    raise ValueError(f"mode must be 'full' or 'valid', not {mode!r}")


# --- im2col and its adjoint: the two helpers every conv and pool is built on ---------------------------

def _pad(x: Array, pad: Pad, value: float = 0.0) -> Array:
    return np.pad(x, ((0, 0), (0, 0), pad[0], pad[1]), constant_values=value)


def _unpad(xp: Array, pad: Pad) -> Array:
    (top, bottom), (left, right) = pad
    return xp[:, :, top:xp.shape[2] - bottom, left:xp.shape[3] - right]


def _windows(xp: Array, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int] = (1, 1)) -> Array:
    """Every window a kernel sees in a padded (N, C, H, W) array, as a view (N, C, OH, OW, kh, kw)."""
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]  # extent of a dilated kernel
    v = sliding_window_view(xp, span, axis=(2, 3))  # (N, C, H-span+1, W-span+1, span_h, span_w), no copy
    return v[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]


def _col2im(dwin: Array, padded_shape: tuple[int, ...], stride: tuple[int, int],
            dilation: tuple[int, int] = (1, 1)) -> Array:
    """Adjoint of `_windows`: add each window's gradient back onto the pixels it was read from."""
    _, _, oh, ow, kh, kw = dwin.shape
    dxp = np.zeros(padded_shape, dtype=dwin.dtype)
    for i in range(kh):  # k·k iterations, each one strided slab; never a loop over pixels
        for j in range(kw):
            r, c = i * dilation[0], j * dilation[1]
            dxp[:, :, r:r + stride[0] * (oh - 1) + 1:stride[0],
                c:c + stride[1] * (ow - 1) + 1:stride[1]] += dwin[:, :, :, :, i, j]
    return dxp


def _uniform(rng: np.random.Generator | None, shape: tuple[int, ...], fan_in: int, dtype: Any) -> Array:
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


# --- convolution and pooling ---------------------------------------------------------------------------

class Conv2d(Layer):
    """Cross-correlation as torch computes it: y[n,o,i,j] = b[o] + Σ_cab W[o,c,a,b]·x[n,c,s·i+d·a,s·j+d·b]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair | str = 0, dilation: IntPair = 1, bias: bool = True, *,
                 rng: np.random.Generator | None = None, dtype: Any = np.float32) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.padding = padding
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', not {padding!r}")
        if padding == "same":
            if self.stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions (as in torch)")
            # Pad d(k-1) in total so the size is kept; torch puts the odd pixel at the bottom/right.
            totals = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation, strict=True)]
            self.pad: Pad = tuple((t // 2, t - t // 2) for t in totals)  # type: ignore[assignment]
        else:
            ph, pw = (0, 0) if padding == "valid" else _pair(padding)  # type: ignore[arg-type]
            self.pad = ((ph, ph), (pw, pw))
        kh, kw = self.kernel_size
        fan_in = in_channels * kh * kw
        weight = _uniform(rng, (out_channels, in_channels, kh, kw), fan_in, dtype)
        bias_ = {"bias": _uniform(rng, (out_channels,), fan_in, dtype)} if bias else {}
        self._set_params(weight=weight, **bias_)

    def forward(self, x: Array) -> Array:  # (N, C, H, W) -> (N, O, OH, OW)
        w = self.params["weight"].astype(x.dtype, copy=False)
        xp = _pad(x, self.pad)
        win = _windows(xp, self.kernel_size, self.stride, self.dilation)  # (N, C, OH, OW, kh, kw)
        n, _, oh, ow = win.shape[:4]
        # im2col: one row per output pixel, one column per (channel, kernel offset); then a single matmul,
        # so the whole layer is z = W·col + b (seed 001's fully connected z = Wx + b) at every position.
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, -1)  # (N·OH·OW, C·kh·kw)
        out = cols @ w.reshape(len(w), -1).T  # (N·OH·OW, O)
        if "bias" in self.params:
            out += self.params["bias"].astype(x.dtype, copy=False)
        self.cache = (xp.shape, cols)
        return np.ascontiguousarray(out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2))

    def backward(self, grad_out: Array) -> Array:  # (N, O, OH, OW) -> (N, C, H, W)
        padded_shape, cols = self.cache
        w = self.params["weight"]
        n, o, oh, ow = grad_out.shape
        g = grad_out.transpose(0, 2, 3, 1).reshape(n * oh * ow, o)  # (N·OH·OW, O), rows match cols
        # ∂L/∂W = Σ over output pixels of (gradient there) × (input window seen there)
        self.grads["weight"] += (g.T @ cols).reshape(w.shape)
        if "bias" in self.grads:
            self.grads["bias"] += g.sum(0)
        # ∂L/∂x: send each pixel's gradient back through W to its window, and col2im adds up the overlaps;
        # together this is a full convolution of grad_out with the kernel (docs/maths.md, "backprop").
        dcols = (g @ w.reshape(o, -1).astype(g.dtype, copy=False)).reshape(n, oh, ow, -1, *self.kernel_size)
        dxp = _col2im(dcols.transpose(0, 3, 1, 2, 4, 5), padded_shape, self.stride, self.dilation)
        return _unpad(dxp, self.pad)


class _Pool2d(Layer):
    """Shared arguments of the pools: stride defaults to the kernel size, as in torch."""

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride) if stride is not None else self.kernel_size
        ph, pw = _pair(padding)
        self.pad: Pad = ((ph, ph), (pw, pw))


class MaxPool2d(_Pool2d):
    """M(i,j) = max over the region R_ij of S (seed 001 eq. 4); padding counts as -∞."""

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 dilation: IntPair = 1) -> None:
        super().__init__(kernel_size, stride, padding)
        self.dilation = _pair(dilation)

    def forward(self, x: Array) -> Array:  # (N, C, H, W) -> (N, C, OH, OW)
        xp = _pad(x, self.pad, -np.inf)
        win = _windows(xp, self.kernel_size, self.stride, self.dilation)
        flat = win.reshape(*win.shape[:4], -1)  # (N, C, OH, OW, kh·kw)
        idx = flat.argmax(-1)  # which tap won: only it will receive gradient
        self.cache = (xp.shape, idx)
        return np.take_along_axis(flat, idx[..., None], -1)[..., 0]

    def backward(self, grad_out: Array) -> Array:
        padded_shape, idx = self.cache
        # ∂max/∂x_k is 1 for the winner and 0 for the rest, so the gradient is routed to the argmax.
        onehot = idx[..., None] == np.arange(self.kernel_size[0] * self.kernel_size[1])
        dwin = (grad_out[..., None] * onehot).reshape(*idx.shape, *self.kernel_size)
        return _unpad(_col2im(dwin, padded_shape, self.stride, self.dilation), self.pad)


class AvgPool2d(_Pool2d):
    """Mean of each region; zero padding is counted in the mean (torch's count_include_pad=True)."""

    def forward(self, x: Array) -> Array:
        xp = _pad(x, self.pad)
        self.cache = xp.shape
        return _windows(xp, self.kernel_size, self.stride).mean(axis=(-2, -1))

    def backward(self, grad_out: Array) -> Array:
        kh, kw = self.kernel_size
        # every pixel of a region contributed 1/(kh·kw) of its mean
        dwin = np.broadcast_to((grad_out / (kh * kw))[..., None, None], (*grad_out.shape, kh, kw))
        return _unpad(_col2im(dwin, self.cache, self.stride), self.pad)


class LPPool2d(_Pool2d):
    """Power-average pooling (seed 002's norm_type): out = (Σ_region x^p)^(1/p)."""

    def __init__(self, norm_type: float, kernel_size: IntPair, stride: IntPair | None = None) -> None:
        super().__init__(kernel_size, stride)
        self.norm_type = float(norm_type)

    def forward(self, x: Array) -> Array:
        p = self.norm_type
        win = _windows(x, self.kernel_size, self.stride)  # (N, C, OH, OW, kh, kw), a view of x
        s = (win ** p).sum(axis=(-2, -1))
        out = s ** (1 / p)
        self.cache = (x.shape, win, s, out)
        return out

    def backward(self, grad_out: Array) -> Array:
        x_shape, win, s, out = self.cache
        p = self.norm_type
        # ∂out/∂x = (1/p)·S^(1/p - 1)·p·x^(p-1) = (out/S)·x^(p-1); an all-zero region gets 0, like torch.
        ratio = np.divide(out, s, out=np.zeros_like(out), where=s != 0)
        dwin = (grad_out * ratio)[..., None, None] * win ** (p - 1)
        return _col2im(dwin, x_shape, self.stride)


class AdaptiveAvgPool2d(Layer):
    """Average pooling to a fixed output size; torch's windows are [⌊i·n/m⌋, ⌈(i+1)·n/m⌉)."""

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else output_size

    @staticmethod
    def _averaging_matrix(n_in: int, n_out: int, dtype: Any) -> Array:  # (n_out, n_in)
        a = np.zeros((n_out, n_in), dtype=dtype)
        for i in range(n_out):  # one row per output position, each averaging its window
            lo, hi = (i * n_in) // n_out, -(-(i + 1) * n_in // n_out)
            a[i, lo:hi] = 1.0 / (hi - lo)
        return a

    def forward(self, x: Array) -> Array:  # (N, C, H, W) -> (N, C, OH, OW)
        h, w = x.shape[2:]
        oh, ow = (o if o is not None else n for o, n in zip(self.output_size, (h, w), strict=True))
        # Averaging is linear and separable: out = A_h · x · A_wᵀ, one matmul per axis.
        a_h, a_w = self._averaging_matrix(h, oh, x.dtype), self._averaging_matrix(w, ow, x.dtype)
        self.cache = (a_h, a_w)
        return a_h @ x @ a_w.T

    def backward(self, grad_out: Array) -> Array:
        a_h, a_w = self.cache
        return a_h.T @ grad_out @ a_w  # the transpose of a linear map carries its gradient back


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
        weight = _uniform(rng, (out_features, in_features), in_features, dtype)
        bias_ = {"bias": _uniform(rng, (out_features,), in_features, dtype)} if bias else {}
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


# --- output: softmax and cross-entropy -----------------------------------------------------------------

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


# --- PyTorch interop -----------------------------------------------------------------------------------

# torch options the engine leaves out, with the value it requires (checked on every converted module)
_REQUIRED = {"groups": 1, "padding_mode": "zeros", "ceil_mode": False, "return_indices": False,
             "count_include_pad": True, "divisor_override": None, "affine": True,
             "track_running_stats": True}

# torch class name -> engine layer built from that module's arguments
_FROM_TORCH = {
    "Conv2d": lambda m, dt: Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                   m.dilation, m.bias is not None, dtype=dt),
    "Linear": lambda m, dt: Linear(m.in_features, m.out_features, m.bias is not None, dtype=dt),
    "MaxPool2d": lambda m, dt: MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation),
    "AvgPool2d": lambda m, dt: AvgPool2d(m.kernel_size, m.stride, m.padding),
    "LPPool2d": lambda m, dt: LPPool2d(m.norm_type, m.kernel_size, m.stride),
    "AdaptiveAvgPool2d": lambda m, dt: AdaptiveAvgPool2d(m.output_size),
    "BatchNorm2d": lambda m, dt: BatchNorm2d(m.num_features, m.eps, m.momentum, dtype=dt),
    "Dropout": lambda m, dt: Dropout(m.p),
    "Flatten": lambda m, dt: Flatten(m.start_dim, m.end_dim),
    "ReLU": lambda m, dt: ReLU(),
    "Tanh": lambda m, dt: Tanh(),
    "Sigmoid": lambda m, dt: Sigmoid(),
}


def _convert(m: Any, dtype: Any) -> Layer:
    # the nearest torch class we know, so subclasses (a Sequential that remembers its spec) convert too
    name = next((c.__name__ for c in type(m).__mro__ if c.__name__ in {*_FROM_TORCH, "Sequential"}),
                type(m).__name__)
    if name == "Sequential":  # keep the children's names: they are the state_dict keys
        layer: Layer = Sequential({k: _convert(c, dtype) for k, c in m.named_children()})
    elif hasattr(m, "body") and hasattr(m, "proj"):  # cnnlab's residual block: body(x) + (proj(x) or x)
        layer = Residual(_convert(m.body, dtype), _convert(m.proj, dtype) if m.proj is not None else None)
    elif name in _FROM_TORCH:
        for attr, needed in _REQUIRED.items():
            if getattr(m, attr, needed) != needed:
                raise UserError(f"the NumPy engine supports {name} only with {attr}={needed!r}, "
                                f"not {getattr(m, attr)!r}; change the model or train it with PyTorch")
        layer = _FROM_TORCH[name](m, dtype)
    else:
        raise UserError(f"the NumPy engine has no {name}; it knows Sequential, a residual block "
                        f"(body/proj) and {', '.join(_FROM_TORCH)}")
    layer.train(m.training)
    return layer


def from_torch(module: Any, dtype: Any = None, rng: np.random.Generator | None = None) -> Layer:
    """The engine's copy of a torch module (an nn.Sequential gives a Sequential), weights included.

    dtype: the NumPy dtype of params and buffers; default the module's own (float32 unless .double()).
    rng: the generator every Dropout draws its masks from, for reproducible training.
    """
    state = module.state_dict()
    if dtype is None:
        floats = [v for v in state.values() if v.is_floating_point()]
        dtype = floats[0].numpy().dtype if floats else np.float32
    net = _convert(module, dtype)
    net.load_state_dict(state)
    for _, layer in net.walk():
        if isinstance(layer, Dropout) and rng is not None:
            layer.rng = rng
    return net
