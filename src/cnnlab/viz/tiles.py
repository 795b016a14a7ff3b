"""Tile mosaics: many small images (filters, feature maps) as one image, in a grid with gaps.

One image per band instead of one matplotlib axes per tile (hundreds of axes take seconds to draw). The
inspector's figures, the web page's feature maps and TensorBoard's filter grid all use `mosaic`.
"""

from __future__ import annotations

import numpy as np


def mosaic(tiles: np.ndarray, gap: int = 1, fill: float | np.ndarray = np.nan) -> np.ndarray:
    """(R, N, h, w[, 3]) tiles -> one (R·(h+gap)−gap, N·(w+gap)−gap[, 3]) image, `fill` in the gaps."""
    r, n, h, w = tiles.shape[:4]
    img = np.empty((r * (h + gap) - gap, n * (w + gap) - gap, *tiles.shape[4:]),
                   dtype=np.result_type(tiles, fill))
    img[...] = fill
    for i in range(r):
        for j in range(n):
            img[i * (h + gap): i * (h + gap) + h, j * (w + gap): j * (w + gap) + w] = tiles[i, j]
    return img


def grid(tiles: np.ndarray, cols: int) -> np.ndarray:
    """(N, h, w[, 3]) tiles -> (rows, cols, h, w[, 3]) row by row; the unused places are NaN."""
    n = len(tiles)
    rows = -(-n // cols)
    out = np.full((rows * cols, *tiles.shape[1:]), np.nan)
    out[:n] = tiles
    return out.reshape(rows, cols, *tiles.shape[1:])


def label_tiles(ax, tiles: np.ndarray, cols: list[str], rows: list[str] | None, gap: int = 1) -> None:
    r, n, h, w = tiles.shape[:4]
    ax.set_xticks([j * (w + gap) + (w - 1) / 2 for j in range(n)], cols, fontsize=7)
    ax.set_yticks([i * (h + gap) + (h - 1) / 2 for i in range(r)] if rows else [], rows or [], fontsize=7)
    ax.tick_params(length=0, labeltop=True, labelbottom=False, pad=1)
    for sp in ax.spines.values():
        sp.set_visible(False)
