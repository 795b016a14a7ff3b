"""Figures without pyplot: matplotlib's object-oriented `Figure`, so cnnlab never touches the user's backend.

A `Figure` made directly is not registered with pyplot: writing it to a file needs no display and no
backend switch, and in a notebook it still shows inline when returned from a cell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height))


def save_figure(fig: Figure, path: str | Path, dpi: int = 110, tight: bool = False) -> Path:
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
    return Path(path)


def show_image(ax, pixels: np.ndarray) -> None:
    """(C, H, W) in [0, 1] -> grey or colour image, no ticks."""
    if pixels.shape[0] == 1:
        ax.imshow(pixels[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(pixels.transpose(1, 2, 0), 0, 1))
    axis_off(ax)


def axis_off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
