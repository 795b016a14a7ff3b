"""The learning-rate range test's picture: loss against a log-scale learning rate, the suggestion marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .figures import new_figure, save_figure


def plot_lr_find(r, path: str | Path, title: str = "") -> Path:
    fig = new_figure(8.5, 5)
    ax = fig.subplots()
    ax.plot(r.lrs, r.losses, color="tab:blue", alpha=0.25, lw=1, label="loss of each batch")
    ax.plot(r.lrs, r.smoothed, color="tab:blue", lw=2, label="smoothed loss (centred moving average)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (cross-entropy)")
    i = r.suggestion_step
    ax.plot([r.suggestion], [r.smoothed[i]], "o", ms=11, mfc="none", mec="red", mew=2.5,
            label=f"suggestion: lr = {r.suggestion:.2g} (steepest descent)")
    ax.axvline(r.min_loss_lr, color="grey", ls=":", lw=1.2,
               label=f"minimum of the smoothed loss: {r.min_loss_lr:.2g}")
    # Show the descent and the minimum; the divergence at the end would squash them into a flat line.
    lo, hi = min(min(r.smoothed), float(np.percentile(r.losses, 2))), max(r.smoothed[: r.suggestion_step + 1])
    ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), hi + 0.4 * (hi - lo + 1e-9))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="upper left")
    ax.set_title(f"{title + ': ' if title else ''}learning-rate range test", fontsize=11)
    fig.text(0.5, 0.01, "suggestion = " + r.how + f".\nSweep {r.lrs[0]:.0e} → {r.lrs[-1]:.2g} over "
             f"{len(r.lrs)} steps; {r.stopped}.", ha="center", fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save_figure(fig, path)
