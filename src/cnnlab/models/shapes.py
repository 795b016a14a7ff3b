"""Shape arithmetic: what each layer does to the shape (the formula PyTorch documents, written out) and
what it costs. Building a model walks these (build.py); the summary prints them (summary.py).

MACs are multiply-adds per image of the Conv2d and Linear layers, the convention of fvcore and of
`torch.utils.flop_counter` (which counts 2 FLOPs per MAC); pooling, normalisation and activations
are elementwise and cheap beside them, so they count 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import UserError
from .layers import LAYERS, name_of

Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) after Flatten


@dataclass
class LayerInfo:
    """One row of the summary: what a layer does to the shape, and what it costs."""

    index: str  # "3", or "5.2" inside a residual block
    name: str  # module name, e.g. "conv1"; unique in the model, so it finds the module
    type: str  # spec name, e.g. "Conv2d"
    args: str  # the arguments as PyTorch prints them
    in_shape: Shape
    out_shape: Shape
    arithmetic: str  # how out_shape follows from in_shape
    params: int
    macs: int  # multiply-adds per image


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


def window(n: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> tuple[int, str]:
    """Output length of a sliding window (conv or pool) over n positions, and the arithmetic as text.

    PyTorch: out = ⌊(n + 2p − d·(k−1) − 1)/s⌋ + 1, i.e. (n − k + 2p)/s + 1 for an undilated kernel k.
    """
    span = d * (k - 1) + 1  # what a dilated kernel covers
    num = n - span + 2 * p
    out = (-(-num // s) if ceil else num // s) + 1
    note = f"  (dilation {d}: kernel {k} spans {span})" if d > 1 else ""
    if ceil and (out - 1) * s >= n + p:
        out -= 1  # PyTorch drops a last window that would start in the right padding
        note += "  (last window would start in the padding: dropped)"
    if num % s == 0:
        expr = f"({n} − {span} + 2·{p})/{s} + 1"
    else:
        left, right = ("⌈", "⌉") if ceil else ("⌊", "⌋")
        expr = f"{left}({n} − {span} + 2·{p})/{s}{right} + 1"
    return out, f"{n} → {expr} = {out}{note}"


def pair(v: Any) -> tuple[int, int]:
    return (v, v) if not isinstance(v, (tuple, list)) else (v[0], v[1])


def _window_shape(mod: nn.Module, shape: Shape, at: str) -> tuple[Shape, str]:
    """Output shape of a Conv2d or a pooling window, the arithmetic, and a teaching error if it collapses."""
    c, h, w = shape
    if isinstance(mod, nn.Conv2d):
        out_c, k, s, d, ceil = mod.out_channels, mod.kernel_size, mod.stride, mod.dilation, False
        if mod.padding == "same":
            return (out_c, h, w), f"{h} → {h}  (padding 'same', stride 1)"
        p = (0, 0) if mod.padding == "valid" else mod.padding
    else:
        out_c, k = c, pair(mod.kernel_size)
        s = pair(mod.stride or mod.kernel_size)
        p, d = pair(getattr(mod, "padding", 0)), pair(getattr(mod, "dilation", 1))
        ceil = mod.ceil_mode
        for kk, pp in zip(k, p):
            if pp > kk // 2:
                raise UserError(f"{at}: padding {pp} is more than half the kernel {kk}, which PyTorch "
                                f"refuses for pooling; use padding <= {kk // 2}")
    oh, ah = window(h, k[0], s[0], p[0], d[0], ceil)
    ow, aw = window(w, k[1], s[1], p[1], d[1], ceil)
    arith = ah if (h, k[0], s[0], p[0], d[0]) == (w, k[1], s[1], p[1], d[1]) else f"H {ah}; W {aw}"
    if oh < 1 or ow < 1:
        n, kk, pp, dd = (h, k[0], p[0], d[0]) if oh < 1 else (w, k[1], p[1], d[1])
        span = dd * (kk - 1) + 1
        if isinstance(mod, nn.Conv2d):
            fix = (f"use kernel_size <= {n + 2 * pp}" if dd == 1
                   else "use a smaller kernel_size or dilation") + \
                  f" or padding: {math.ceil((span - n) / 2)} (or shrink the image less before this layer)"
        elif n + 2 * pp >= 2:
            fix = f"use kernel_size <= {n + 2 * pp}, or remove this pooling layer (or one before it)"
        else:
            fix = f"remove this pooling layer (or one before it): the input is already {h}x{w}"
        raise UserError(f"{at} gets {fmt_shape(shape)}, too small for its {span}-wide window: {arith}; {fix}")
    return (out_c, oh, ow), arith


def output_shape(mod: nn.Module, shape: Shape, at: str) -> tuple[Shape, str]:
    """What a (non-residual) layer makes of `shape`, and the arithmetic; `at` names it in errors."""
    role = LAYERS[name].role if (name := name_of(mod)) else None
    if role in ("conv", "pool"):
        return _window_shape(mod, shape, at)
    if role == "adaptive_pool":
        oh, ow = pair(mod.output_size)
        out = (shape[0], oh or shape[1], ow or shape[2])
        return out, f"{shape[1]}x{shape[2]} → {out[1]}x{out[2]}  (adaptive: any input size)"
    if role == "flatten":
        return (math.prod(shape),), f"{'·'.join(map(str, shape))} = {math.prod(shape)}"
    if role == "linear":
        return (mod.out_features,), f"{mod.in_features} → {mod.out_features}"
    return shape, "same shape"  # normalisation, activations, dropout


def macs(mod: nn.Module, out_shape: Shape) -> int:
    """Multiply-adds per image of a Conv2d or Linear layer (0 for the elementwise ones)."""
    if isinstance(mod, nn.Conv2d):
        per_output = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        return per_output * math.prod(out_shape)
    if isinstance(mod, nn.Linear):
        return mod.in_features * mod.out_features
    return 0
