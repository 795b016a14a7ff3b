"""Convolution and pooling in NumPy, forward and backward: the notes' S(i,j) = ΣΣ I(m,n)K(i−m,j−n), and
the im2col form every conv and pool layer here is built on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .layers import Array, Layer, uniform_init

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
        weight = uniform_init(rng, (out_channels, in_channels, kh, kw), fan_in, dtype)
        bias_ = {"bias": uniform_init(rng, (out_channels,), fan_in, dtype)} if bias else {}
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
