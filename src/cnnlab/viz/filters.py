"""A conv layer's filters as a picture: every weight, red positive, blue negative."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from torch import nn

from ..models import LayerInfo
from .figures import new_figure
from .tiles import label_tiles, mosaic


def filter_tiles(conv: nn.Conv2d, first: bool) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """What `filter_figure` draws: tiles (out, rows, kh, kw), a name per row, and for big layers the
    input channel each filter's tile was taken from (its strongest slice, by L2 norm), else None."""
    w = conv.weight.detach().float().cpu().numpy()  # (out, in/groups, kh, kw)
    out, cin = w.shape[:2]
    if not first and out * cin > 256:
        pick = np.sqrt((w ** 2).sum((2, 3))).argmax(1)
        return w[np.arange(out), pick][:, None], [], pick
    names = ["R", "G", "B"] if first and cin == 3 else [f"in {c}" for c in range(cin)]
    return w, names if cin > 1 else [], None


def filter_figure(info: LayerInfo, conv: nn.Conv2d, first: bool) -> Figure:
    """Every filter of a conv layer. First layer: one tile per input channel (plus colour for RGB);
    deeper layers: the full filter x input-channel matrix when small, else each filter's strongest slice."""
    tiles, row_names, pick = filter_tiles(conv, first)
    out, rows, kh, kw = tiles.shape
    rgb = first and conv.in_channels == 3
    ncols = min(out, 16 if rows > 1 else max(6, math.ceil(math.sqrt(2 * out))))
    bands = math.ceil(out / ncols)
    lim = float(np.abs(tiles).max()) or 1.0
    tile = 0.5 if rows * out > 32 else 0.9
    heights = [rows, 1] * bands if rgb else [rows] * bands
    fig = new_figure(2.2 + tile * ncols, 1.3 + tile * 1.25 * sum(heights))
    axes = fig.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    im = None
    for b in range(bands):
        sel = range(b * ncols, min(out, (b + 1) * ncols))
        band = np.full((rows, ncols, kh, kw), np.nan)
        band[:, :len(sel)] = tiles[list(sel)].transpose(1, 0, 2, 3)
        labels = ([f"#{o}" + (f"←{pick[o]}" if pick is not None else "") for o in sel]
                  + [""] * (ncols - len(sel)))
        ax = axes[b * (1 + rgb), 0]
        im = ax.imshow(mosaic(band), cmap=cmap, vmin=-lim, vmax=lim)
        ax.set_gid("filters")
        label_tiles(ax, band, labels, row_names)
        if rgb:  # the filter as a colour patch: the colour pattern that excites it most
            f = tiles[list(sel)].transpose(0, 2, 3, 1)
            lo, hi = f.min((1, 2, 3), keepdims=True), f.max((1, 2, 3), keepdims=True)
            col = np.ones((1, ncols, kh, kw, 3))
            col[0, :len(sel)] = (f - lo) / np.maximum(hi - lo, 1e-12)
            ax2 = axes[b * 2 + 1, 0]
            ax2.imshow(mosaic(col, fill=1.0))
            label_tiles(ax2, col, [""] * ncols, ["RGB"])
    w = conv.weight
    what = ("tile = the filter's weights for each input channel" if first else
            "tile = each filter's strongest input-channel slice (#filter←channel)" if pick is not None else
            "rows = input channels, columns = filters")
    fig.suptitle(f"{info.name} ({info.type} {info.args})\n{out} filters of "
                 f"{w.shape[1]}x{kh}x{kw} weights — {what}", fontsize=10)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.04, pad=0.02, label="weight (red +, blue −)")
    return fig
