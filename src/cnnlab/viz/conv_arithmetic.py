"""One convolution by hand: one output value of a conv layer recomputed from the saved weights.

The patch of the layer's real input under the kernel (padding included), multiplied element by element
by the filter's weights, summed, plus the bias, is exactly the activation PyTorch computed at that
position: `conv_arithmetic` checks it and `arithmetic_figure` draws it, number by number.

"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from ..errors import UserError
from ..models import LayerInfo, fmt_shape, layers_of
from ..models.layers import CONV
from .figures import axis_off, new_figure, show_image

# --- the computation -------------------------------------------------------------------------------------

@dataclass
class ConvArithmetic:
    """One output pixel of a conv layer recomputed by hand: Σ patch ⊙ kernel + bias."""

    layer: str
    out_channel: int
    out_pos: tuple[int, int]  # (row, col) in the output map
    in_origin: tuple[int, int]  # (row, col) of the patch's top-left in the unpadded input (< 0 in padding)
    patch: np.ndarray  # (C_in, kh, kw) normalised input values under the kernel (padding included)
    kernel: np.ndarray  # (C_in, kh, kw) the filter's weights
    products: np.ndarray  # patch * kernel, elementwise
    total: float  # Σ products
    bias: float
    value: float  # total + bias
    actual: float  # the same pixel from PyTorch's own layer


def _padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) as PyTorch pads; 'same' puts the odd pixel at the end."""
    if conv.padding == "valid":
        return 0, 0, 0, 0
    if conv.padding == "same":
        th, tw = (d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size))
        return tw // 2, tw - tw // 2, th // 2, th - th // 2
    ph, pw = conv.padding
    return pw, pw, ph, ph


def _first_conv(model: nn.Module) -> tuple[LayerInfo, nn.Conv2d]:
    convs = layers_of(model, CONV)
    if not convs:
        raise UserError(f"model {model.spec.get('name')!r} has no Conv2d layer to compute by hand")
    return convs[0]


@torch.no_grad()
def _first_conv_io(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the first conv layer really receives and returns for one input x (C, H, W): both (C, H, W)."""
    _, conv = _first_conv(model)
    # The first conv may follow other layers (e.g. a BatchNorm): feed it what it really receives.
    got: list[torch.Tensor] = []
    hook = conv.register_forward_hook(lambda _m, inp, out: got.extend([inp[0][0], out[0]]))
    try:
        model.eval()(x[None])
    finally:
        hook.remove()
    return got[0], got[1]


@torch.no_grad()
def conv_arithmetic(model: nn.Module, x: torch.Tensor, out_channel: int | None = None,
                    pos: tuple[int, int] | None = None) -> ConvArithmetic:
    """Recompute one output pixel of the first conv layer from its weights (default: its strongest
    response)."""
    info, conv = _first_conv(model)
    inp, out = _first_conv_io(model, x)
    inp = inp.double()
    if out_channel is None or pos is None:
        out_channel, *pos = np.unravel_index(int(out.argmax()), tuple(out.shape))
        out_channel, pos = int(out_channel), (int(pos[0]), int(pos[1]))
    o, (i, j) = out_channel, pos
    # o's group and its inputs
    g, cin = o // (conv.out_channels // conv.groups), conv.in_channels // conv.groups
    left, right, top, bottom = _padding(conv)
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    padded = F.pad(inp[None], (left, right, top, bottom), mode=mode)[0]
    (sh, sw), (dh, dw), (kh, kw) = conv.stride, conv.dilation, conv.kernel_size
    r0, c0 = i * sh, j * sw
    patch = padded[g * cin:(g + 1) * cin, r0:r0 + dh * (kh - 1) + 1:dh, c0:c0 + dw * (kw - 1) + 1:dw].numpy()
    kernel = conv.weight[o].double().cpu().numpy()
    products = patch * kernel
    bias = float(conv.bias[o]) if conv.bias is not None else 0.0
    total = float(products.sum())
    actual = float(out[o, i, j])
    # The whole point of the picture: the hand computation IS the layer. A mismatch is a bug, not user error
    # (raised explicitly: a bare assert would vanish under python -O).
    if not math.isclose(total + bias, actual, rel_tol=1e-5, abs_tol=1e-5):
        raise AssertionError(f"{info.name}[{o}, {i}, {j}]: hand-computed {total + bias} != PyTorch {actual}")
    return ConvArithmetic(info.name, o, (i, j), (r0 - top, c0 - left), patch, kernel, products, total, bias,
                          total + bias, actual)


# --- the picture -----------------------------------------------------------------------------------------

def _numbers(ax, a: np.ndarray, cmap: str, title: str, lim: float) -> None:
    """A small matrix as coloured cells with its values written in (dark text on light cells)."""
    ax.imshow(a, cmap=cmap, vmin=-lim, vmax=lim)
    if a.shape[0] <= 7 and a.shape[1] <= 7:
        size = 8 if a.shape[1] <= 5 else 6
        cm = matplotlib.colormaps[cmap]
        for (r, c), v in np.ndenumerate(a):
            red, green, blue, _ = cm((v + lim) / (2 * lim))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=size,
                    color="black" if light else "white")
    ax.set_title(title, fontsize=9)
    axis_off(ax)


def arithmetic_figure(model: nn.Module, x: torch.Tensor, pixels: np.ndarray, caption: str) -> Figure:
    """Seed 000's 'CNNActivation' picture from the real weights: patch ⊙ kernel, summed, plus bias."""
    a = conv_arithmetic(model, x)
    info, conv = _first_conv(model)
    cin, kh, kw = a.kernel.shape
    fig = new_figure(13, 3.2 * (cin + 1))
    gs = fig.add_gridspec(cin + 1, 4, width_ratios=[1, 1, 1, 1.1])
    ax = fig.add_subplot(gs[0, 0])
    show_image(ax, pixels)
    (r0, c0), (dh, dw) = a.in_origin, conv.dilation
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), dw * (kw - 1) + 1, dh * (kh - 1) + 1, fill=False, ec="red",
                           lw=2))
    ax.set_title(f"{caption}\nred box: the {kh}x{kw} patch under the kernel", fontsize=8)
    fmap = _first_conv_io(model, x)[1][a.out_channel].cpu().numpy()  # the whole output map of that filter
    ax = fig.add_subplot(gs[0, 1])
    im = ax.imshow(fmap, cmap="viridis")
    ax.plot(a.out_pos[1], a.out_pos[0], "s", mfc="none", mec="red", ms=9, mew=2)
    ax.set_title(f"{info.name} output channel {a.out_channel} ({fmt_shape(fmap.shape)})\n"
                 f"red square: pixel ({a.out_pos[0]}, {a.out_pos[1]})", fontsize=8)
    axis_off(ax)
    fig.colorbar(im, ax=ax, fraction=0.046)
    note = fig.add_subplot(gs[0, 2:])
    note.axis("off")
    note.text(0, 0.5, f"A conv layer slides each filter over the input. At every position it multiplies\n"
                      f"the {cin}x{kh}x{kw} patch under the filter by the filter's weights, element by\n"
                      f"element, adds the products up and adds the filter's bias. That single number is\n"
                      f"one pixel of the output map. Shown: the strongest response of {info.name}\n"
                      f"(filter {a.out_channel}, pixel {a.out_pos}), recomputed from the saved weights.",
              fontsize=9, va="center")
    lim_p = float(np.abs(a.patch).max()) or 1.0
    lim_k = float(np.abs(a.kernel).max()) or 1.0
    lim_x = float(np.abs(a.products).max()) or 1.0
    for c in range(cin):
        ch = f" (input channel {c})" if cin > 1 else ""
        _numbers(fig.add_subplot(gs[c + 1, 0]), a.patch[c], "gray", f"input patch, normalised{ch}", lim_p)
        _numbers(fig.add_subplot(gs[c + 1, 1]), a.kernel[c], "RdBu_r",
                 f"⊙ kernel: filter {a.out_channel}{ch}", lim_k)
        _numbers(fig.add_subplot(gs[c + 1, 2]), a.products[c], "PuOr_r",
                 f"= products (sum {a.products[c].sum():+.4f})", lim_x)
    txt = fig.add_subplot(gs[1:, 3])
    txt.axis("off")
    txt.text(0.02, 0.5, f"Σ products  = {a.total:+.5f}\n+ bias      = {a.bias:+.5f}\n"
                        f"= {a.value:+.5f}\n\nPyTorch "
                        f"{info.name}[{a.out_channel}, {a.out_pos[0]}, {a.out_pos[1]}]"
                        f"\n            = {a.actual:+.5f}\n✓ equal (checked to 1e-5)",
             family="monospace", fontsize=11, va="center")
    fig.suptitle(f"One output pixel of {info.name} ({info.type} {info.args}) computed by hand: "
                 f"S(i,j) = Σ I(i+m, j+n)·K(m,n) + b", fontsize=11)
    fig.tight_layout()
    return fig
