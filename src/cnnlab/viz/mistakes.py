"""The test images a model gets wrong, worst first, and where its errors concentrate.

Like fastai's "top losses": ranking by loss puts confident mistakes first (a wrong answer given with 99%
is more telling than a coin toss), which is where mislabelled data and systematic confusions show up.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..data import normalize
from ..files import atomic_write_text
from ..models import predictor
from ..models.evaluate import confusion_matrix, infer
from .figures import new_figure, save_figure

if TYPE_CHECKING:
    from ..run import Run, TestSet


@dataclass
class Mistakes:
    # one per misclassified test image, highest loss first: index, file, true, predicted, ...
    rows: list[dict]
    pairs: list[tuple[str, str, int]]  # (true, predicted, count), the most frequent confusions first
    per_class_accuracy: dict[str, float]  # recall: the fraction of each true class predicted right
    confusion: list[list[int]]  # rows = true class, columns = predicted
    accuracy: float
    total: int  # test images


def find_mistakes(logits: torch.Tensor, y: torch.Tensor, classes: list[str],
                  files: list[str] | None = None) -> Mistakes:
    """Misclassified samples ranked by cross-entropy loss, confused pairs and per-class accuracy."""
    logits, y = logits.float().cpu(), y.cpu()
    loss = F.cross_entropy(logits, y, reduction="none")
    prob = torch.softmax(logits, 1)
    pred = prob.argmax(1)
    wrong = torch.nonzero(pred != y).flatten()
    # Stable sort on (-loss) keeps equal losses in index order, so the ranking is reproducible.
    order = wrong[torch.sort(-loss[wrong], stable=True).indices]
    rows = [{"index": int(i), "file": files[i] if files else "", "true": classes[int(y[i])],
             "predicted": classes[int(pred[i])], "probability": float(prob[i, pred[i]]),
             "true_probability": float(prob[i, y[i]]), "loss": float(loss[i])} for i in order.tolist()]
    k = len(classes)
    cm = confusion_matrix(pred, y, k)
    support = cm.sum(1)
    per_class = {c: (float(cm[i, i] / support[i]) if support[i] else math.nan) for i, c in enumerate(classes)}
    off = [(classes[t], classes[p], int(cm[t, p])) for t in range(k) for p in range(k) if t != p and cm[t, p]]
    off.sort(key=lambda r: -r[2])
    return Mistakes(rows, off, per_class, cm.tolist(),
                    float((pred == y).float().mean()) if len(y) else math.nan, len(y))


def mistakes_for_run(run: Run, test: TestSet | None = None) -> tuple[Mistakes, TestSet]:
    """Run the best weights over the run's test split: (Mistakes, the TestSet used)."""
    test = test or run.test_set()
    logits = infer(predictor(run.model, run.meta.tta), normalize(test.x.float().div_(255), run.meta))
    return find_mistakes(logits, test.y, test.classes, test.files), test


def write_csv(m: Mistakes, path: str | Path) -> Path:
    fields = ["index", "file", "true", "predicted", "probability", "true_probability", "loss"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in m.rows:
        w.writerow({**r, "probability": f"{r['probability']:.6f}",
                    "true_probability": f"{r['true_probability']:.6f}", "loss": f"{r['loss']:.6f}"})
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def mistakes_figure(m: Mistakes, test: TestSet, title: str = "", top: int = 24) -> Figure:
    """The `top` worst mistakes as a gallery, then per-class accuracy and the most-confused pairs."""
    shown = m.rows[:top]
    ncols = 8
    nrows = max(1, math.ceil(len(shown) / ncols))
    fig = new_figure(15, 2.15 * nrows + 5.2)
    gs = fig.add_gridspec(nrows + 1, ncols, height_ratios=[1] * nrows + [2.3], hspace=0.55, wspace=0.25,
                          top=0.93, bottom=0.05)
    for n in range(nrows * ncols):
        ax = fig.add_subplot(gs[n // ncols, n % ncols])
        ax.set_xticks([])
        ax.set_yticks([])
        if n >= len(shown):
            ax.axis("off")
            continue
        r = shown[n]
        img = test.x[r["index"]].float().div(255).numpy()
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img.transpose(1, 2, 0))
        name = Path(r["file"]).name if r["file"] else f"#{r['index']}"
        ax.set_title(f"{name}  loss {r['loss']:.2f}\ntrue: {r['true']}", fontsize=8, pad=2)
        ax.set_xlabel(f"pred: {r['predicted']} {100 * r['probability']:.0f}%", fontsize=8, color="firebrick",
                      labelpad=2)
    if not shown:
        fig.axes[0].text(0.5, 0.5, "no mistakes on the test set", ha="center", va="center")
    bottom = gs[nrows, :].subgridspec(1, 2, wspace=0.55)
    ax = fig.add_subplot(bottom[0, 0])
    names = list(m.per_class_accuracy)
    acc = np.array([100 * m.per_class_accuracy[c] for c in names])
    order = np.argsort(acc)
    ax.barh([names[i] for i in order], acc[order], color="tab:blue")
    for y_, v in enumerate(acc[order]):
        inside = v > 80  # long bars: write inside, in white, so the label never runs off the axis
        ax.text(v - 1 if inside else v + 1, y_, f"{v:.1f}%", va="center", ha="right" if inside else "left",
                fontsize=8, color="white" if inside else "black")
    ax.axvline(100 * m.accuracy, color="black", ls="--", lw=1, label=f"overall {100 * m.accuracy:.1f}%")
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy on the test images of the class (%)")
    ax.set_title("Per-class accuracy (worst at the bottom)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax = fig.add_subplot(bottom[0, 1])
    pairs = m.pairs[:10][::-1]
    ax.barh([f"{t} → {p}" for t, p, _ in pairs], [n for _, _, n in pairs], color="tab:red")
    for y_, (_, _, n) in enumerate(pairs):
        ax.text(n, y_, f" {n}", va="center", fontsize=8)
    ax.set_xlabel("test images (true → predicted)")
    ax.set_title("Most-confused class pairs", fontsize=10)
    ax.margins(x=0.12)
    wrong = len(m.rows)
    fig.suptitle(f"{title + ': ' if title else ''}{wrong} of {m.total} test images misclassified "
                 f"({100 * (1 - m.accuracy):.1f}%); the {len(shown)} with the highest loss "
                 f"(red: prediction and its probability)", fontsize=12, y=0.995)
    return fig


def save_mistakes(run: Run, out_dir: str | Path | None = None, top: int = 24) -> tuple[Mistakes, list[Path]]:
    """Write mistakes.png and mistakes.csv (every misclassified test image, highest loss first)."""
    m, test = mistakes_for_run(run)
    out = Path(out_dir) if out_dir is not None else run.path / "inspect"
    out.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(m, out / "mistakes.csv")
    fig = mistakes_figure(m, test, title=f"{Path(str(run.config.get('model', ''))).stem} on {test.name}",
                          top=top)
    png = save_figure(fig, out / "mistakes.png", dpi=100, tight=True)
    return m, [png, csv_path]
