"""Training curves (loss and accuracy against iteration, as the slides draw them) and the confusion matrix."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .figures import new_figure, save_figure


def _series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows
           if r.get(key) not in (None, "") and not math.isnan(float(r[key]))]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def curves_figure(rows: list[dict], title: str = "") -> Figure:
    """Loss and accuracy vs iteration (as the slides, 002, draw them), side by side, for notebooks."""
    fig = new_figure(11, 4)
    a, b = fig.subplots(1, 2)
    _draw_loss(a, rows, title)
    _draw_accuracy(b, rows, title)
    fig.tight_layout()
    return fig


def _draw_loss(ax, rows, title):
    ax.plot(*_series(rows, "train_loss"), label="train loss (mean since last point)")
    ax.plot(*_series(rows, "val_loss"), "o-", label="validation loss")
    ax.set_xlabel("Number of iteration")
    ax.set_ylabel("Loss (cross-entropy)")
    ax.set_title(f"{title}: Loss vs Number of iteration" if title else "Loss vs Number of iteration")
    ax.grid(alpha=0.3)
    ax.legend()


def _draw_accuracy(ax, rows, title):
    x, y = _series(rows, "val_accuracy")
    ax.plot(x, [100 * v for v in y], "o-", color="red", label="validation accuracy")
    ax.set_xlabel("Number of iteration")
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(f"{title}: Accuracy vs Number of iteration" if title else "Accuracy vs Number of iteration")
    ax.grid(alpha=0.3)
    ax.legend()


def save_curves(rows: list[dict], out_dir: str | Path, title: str = "") -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in (("loss.png", _draw_loss), ("accuracy.png", _draw_accuracy)):
        fig = new_figure(6.5, 4.2)
        draw(fig.subplots(), rows, title)
        fig.tight_layout()
        paths.append(save_figure(fig, out_dir / name))
    return paths


def confusion_figure(cm: list[list[int]], classes: list[str], title: str = "") -> Figure:
    """Counts with row-normalised colour: rows are the true class, columns the prediction."""
    m = np.asarray(cm, dtype=float)
    frac = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(classes)
    size = max(5.0, 0.55 * k + 2)
    fig = new_figure(size + 1, size)
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    acc = np.trace(m) / max(m.sum(), 1)
    ax.set_title(f"{title + ': ' if title else ''}confusion matrix (test accuracy {100 * acc:.2f}%)")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    return fig


def save_confusion(cm: list[list[int]], classes: list[str], path: str | Path, title: str = "") -> Path:
    return save_figure(confusion_figure(cm, classes, title), path)
