"""What each conv and pooling layer outputs for one input: every channel of its feature map."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..models import LayerInfo, fmt_shape, map_layers
from .figures import new_figure, show_image
from .tiles import label_tiles, mosaic

MAX_MAPS = 64  # feature-map channels drawn per layer; more would make tiles too small to read


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor) -> list[tuple[LayerInfo, torch.Tensor]]:
    """The output of every conv/pool layer (a backbone: every stage) for one normalised input x (C, H, W):
    (summary row, (C, H, W))."""
    found: list[tuple[LayerInfo, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out, info=info:
                                     found.append((info, out[0].detach().cpu())))
             for info, m in map_layers(model)]
    was = model.training
    try:
        model.eval()
        model(x[None].to(next(model.parameters()).device))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return found


def feature_map_figure(info: LayerInfo, fmap: torch.Tensor, pixels: np.ndarray, caption: str) -> Figure:
    """One layer's output channels beside the input image, on one colour scale (a dead channel looks dead)."""
    a = fmap.float().numpy()
    c, h, w = a.shape
    shown = min(c, MAX_MAPS)
    head = f"{info.name} ({info.type} {info.args}): output {fmt_shape(a.shape)}"
    if h * w == 1:  # 1x1 maps are single numbers: a bar per channel reads better than 1-pixel tiles
        fig = new_figure(12, 3.2)
        ax0, ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 5]})
        show_image(ax0, pixels)
        ax0.set_title(caption, fontsize=8)
        ax.bar(range(c), a[:, 0, 0], color=np.where(a[:, 0, 0] >= 0, "tab:red", "tab:blue"))
        ax.set_xlabel("channel")
        ax.set_ylabel("activation")
        ax.set_title(f"{head} — {c} maps of 1x1, one value each", fontsize=10)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return fig
    ncols = min(shown, max(3, math.ceil(math.sqrt(2 * shown))))
    nrows = math.ceil(shown / ncols)
    t = 1.2 if h >= 8 else 0.8
    fig = new_figure(3.5 + t * ncols, 1.2 + max(2.4, 1.15 * t * nrows))
    gs = fig.add_gridspec(nrows, 2, width_ratios=[3.0, t * ncols])
    ax0 = fig.add_subplot(gs[:, 0])
    show_image(ax0, pixels)
    ax0.set_title(caption, fontsize=8)
    lo, hi = float(a[:shown].min()), float(a[:shown].max())
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    axes, im = [], None
    for r in range(nrows):
        sel = range(r * ncols, min(shown, (r + 1) * ncols))
        band = np.full((1, ncols, h, w), np.nan)
        band[0, :len(sel)] = a[list(sel)]
        ax = fig.add_subplot(gs[r, 1])
        im = ax.imshow(mosaic(band), cmap=cmap, vmin=lo, vmax=hi)
        ax.set_gid("feature-maps")
        label_tiles(ax, band, [f"ch {k}" for k in sel] + [""] * (ncols - len(sel)), None)
        axes.append(ax)
    more = f" (first {shown} of {c} channels)" if shown < c else ""
    fig.suptitle(f"{head}{more}\ninput {fmt_shape(info.in_shape)}; one colour scale for all channels",
                 fontsize=10)
    fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02, label="activation")
    return fig
