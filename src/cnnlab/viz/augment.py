"""plots/augment.png: what the model sees in training, a few training images beside augmented copies."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .figures import new_figure, show_image


def augment_figure(originals: np.ndarray, views: list[np.ndarray], labels: list[str], kind: str) -> Figure:
    """Rows: one training image each, as stored (left) and as `len(views)` training steps draw it.

    originals (N, C, H, W) and each view (N, C, H, W), pixels in [0, 1]."""
    n, cols = len(originals), 1 + len(views)
    fig = new_figure(1.6 * cols, 1.6 * n + 0.7)
    axes = fig.subplots(n, cols, squeeze=False)
    for r in range(n):
        for c in range(cols):
            show_image(axes[r, c], originals[r] if c == 0 else views[c - 1][r])
        axes[r, 0].set_ylabel(labels[r], fontsize=8)
    axes[0, 0].set_title("stored", fontsize=9)
    for c in range(1, cols):
        axes[0, c].set_title(f"draw {c}", fontsize=9)
    fig.suptitle(f"Training images as the model sees them (augmentation: {kind})", fontsize=10)
    fig.tight_layout()
    return fig
