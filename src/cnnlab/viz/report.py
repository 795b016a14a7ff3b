"""`cnnlab report`: one self-contained report.html for a run (images inline as data URIs, CSS inline, no JS).

It opens from disk, by e-mail or from an archive with nothing else beside it. Pictures that are not
there yet are drawn first (by `plots`, `mistakes` and `inspect`), so a report is always complete.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import atomic_write_text
from ..models import filter_layers, fmt_shape, format_summary, map_layers
from .inspect import save_inspection
from .mistakes import save_mistakes
from .plots import save_confusion, save_curves

if TYPE_CHECKING:
    from ..run import Run

SECTIONS = ["Config", "Data and split", "Model summary", "Training curves", "Confusion matrix",
            "Per-class metrics", "Mistakes", "Filters", "Feature maps", "What the model looks at",
            "One convolution by hand"]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d232a; background: #f4f5f7; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #dde1e6; font-size: 20px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: #5b6570; margin: 0 0 12px; }
nav a { margin-right: 12px; font-size: 13px; color: #2460a7; text-decoration: none; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid #dde1e6; padding: 3px 9px; text-align: left; }
th { background: #eef1f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; border: 1px solid #dde1e6; padding: 10px; font-size: 12px; overflow-x: auto; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eceff2; }
figcaption { font-size: 13px; color: #5b6570; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 10px 0; }
.card { background: #eef4fb; border-radius: 6px; padding: 8px 14px; }
.card b { display: block; font-size: 20px; }
.row { display: flex; gap: 12px; flex-wrap: wrap; }
.row figure { flex: 1 1 420px; }
"""  # noqa: E501 -- the CSS goes into the page as is


def _slug(title: str) -> str:
    return title.lower().replace(" ", "-")


def _img(path: Path, caption: str = "") -> str:
    """A PNG inline as a data URI: the page needs no file beside it."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption or path.stem)}">'
            f'{cap}</figure>')


def _table(header: list[str], rows: list[list], num_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td{" class=num" if i >= num_from else ""}>{html.escape(str(v))}</td>' for i, v in enumerate(r))
        + "</tr>"
        for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * float(v):.2f}%"


def _ensure_pictures(run: Run, inspect_dir: Path) -> None:
    """Draw whatever the report shows and is missing: curves, confusion matrix, mistakes, inspection."""
    plots = run.path / "plots"
    stem = Path(str(run.config.get("model", ""))).stem
    if run.metrics and not ((plots / "loss.png").is_file() and (plots / "accuracy.png").is_file()):
        save_curves(run.metrics, plots, title=stem)
    cm = run.results.get("confusion_matrix")
    if cm and not (plots / "confusion_matrix.png").is_file():
        plots.mkdir(parents=True, exist_ok=True)
        save_confusion(cm, run.results.get("classes") or run.meta.classes, plots / "confusion_matrix.png",
                       title=stem)
    if not ((inspect_dir / "mistakes.png").is_file() and (inspect_dir / "mistakes.csv").is_file()):
        save_mistakes(run, inspect_dir)
    save_inspection(run, inspect_dir, only_missing=True)


def _data_section(run: Run) -> str:
    res, cfg = run.results, run.config
    split_path = run.path / "split.json"
    split = json.loads(split_path.read_text()) if split_path.is_file() else {}
    n_train = res.get("train_samples", len(split.get("train_indices", [])))
    n_val = len(split.get("val_indices", []))
    classes = res.get("classes") or run.meta.classes
    shape = fmt_shape(run.meta.input_shape)
    cards = "".join(f'<div class="card"><b>{html.escape(str(v))}</b>{html.escape(k)}</div>' for k, v in (
        ("training images", f"{n_train:,}"), ("validation images", f"{n_val:,}"),
        ("test images", f"{res.get('test_samples', 0):,}"), ("classes", len(classes)), ("input", shape)))
    how = (f"Validation: {100 * float(split.get('val_split', cfg.get('val_split', 0))):.0f}% of the training "
           f"set, stratified by class, seed {split.get('seed', cfg.get('seed'))}"
           + (f"; then a stratified subset of {cfg['limit']:,} for training (--limit)."
              if cfg.get("limit") else "."))
    return (f"<p>Data set <b>{html.escape(str(res.get('data', cfg.get('data'))))}</b>; "
            f"classes: {html.escape(', '.join(classes))}.</p><div class=cards>{cards}</div>"
            f"<p>{html.escape(how)}</p>")


def _mistakes_section(run: Run, d: Path) -> str:
    rows = list(csv.DictReader((d / "mistakes.csv").read_text().splitlines()))
    pairs = Counter((r["true"], r["predicted"]) for r in rows).most_common(10)
    cm = run.results.get("confusion_matrix")
    classes = run.results.get("classes") or run.meta.classes
    acc = ""
    if cm:
        acc = "<h3>Per-class accuracy</h3>" + _table(
            ["class", "correct", "test images", "accuracy"],
            [[c, cm[i][i], sum(cm[i]), _pct(cm[i][i] / max(sum(cm[i]), 1))] for i, c in enumerate(classes)])
    worst = _table(["test image", "true", "predicted", "probability", "loss"],
                   [[r["file"] or f"#{r['index']}", r["true"], r["predicted"], _pct(r["probability"]),
                     f"{float(r['loss']):.3f}"] for r in rows[:10]], num_from=3)
    return (f"<p>{len(rows):,} test images are misclassified; the gallery shows those with the highest loss "
            f"(the most confident mistakes). All of them are in <code>inspect/mistakes.csv</code>.</p>"
            + _img(d / "mistakes.png", "misclassified test images, highest loss first")
            + '<div class="row"><div><h3>Most-confused pairs</h3>'
            + _table(["true", "predicted as", "test images"], [[t, p, n] for (t, p), n in pairs], num_from=2)
            + f"</div><div>{acc}</div><div><h3>The 10 worst</h3>{worst}</div></div>")


def write_report(run: Run, out: str | Path | None = None) -> Path:
    """Write RUN_DIR/report.html (or `out`) and return its path."""
    inspect_dir = run.path / "inspect"
    _ensure_pictures(run, inspect_dir)
    model, res, cfg = run.model, run.results, run.config
    name = Path(str(cfg.get("model", ""))).stem
    body: dict[str, str] = {}
    body["Config"] = ("<p>Re-run it with <code>cnnlab train --config config.yaml</code>.</p>"
                      + _table(["option", "value"], [[k, "" if v is None else v] for k, v in cfg.items()],
                               num_from=9))
    body["Data and split"] = _data_section(run)
    title = f"{name} on {res.get('data', cfg.get('data'))}"
    body["Model summary"] = f"<pre>{html.escape(format_summary(model, title=title))}</pre>"
    plots = run.path / "plots"
    curves = [_img(plots / f, c) for f, c in (("loss.png", "training and validation loss"),
                                              ("accuracy.png", "validation accuracy"))
              if (plots / f).is_file()]
    body["Training curves"] = (f'<div class="row">{"".join(curves)}</div>' if curves
                               else "<p>No metrics yet.</p>")
    body["Confusion matrix"] = (_img(plots / "confusion_matrix.png", "rows: true class; columns: prediction")
                                if (plots / "confusion_matrix.png").is_file() else "<p>Not tested yet.</p>")
    per = res.get("per_class") or {}
    body["Per-class metrics"] = _table(
        ["class", "precision", "recall", "F1", "support"],
        [[c, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", m["support"]]
         for c, m in per.items()]
    ) if per else "<p>Not tested yet (no results.json).</p>"
    body["Mistakes"] = _mistakes_section(run, inspect_dir)
    convs = [i for i, _ in filter_layers(model)]
    body["Filters"] = ("<p>The learned weights of every conv layer (red positive, blue negative).</p>"
                       + "".join(_img(inspect_dir / f"filters_{i.name}.png", f"{i.name}: {i.args}")
                                 for i in convs if (inspect_dir / f"filters_{i.name}.png").is_file()))
    maps = [i for i, _ in map_layers(model)]
    body["Feature maps"] = ("<p>What each conv and pooling layer outputs for one image; shapes as in the "
                            "summary.</p>"
                            + "".join(_img(inspect_dir / f"feature_maps_{i.name}.png",
                                           f"{i.name} output {fmt_shape(i.out_shape)}")
                                      for i in maps
                                      if (inspect_dir / f"feature_maps_{i.name}.png").is_file()))
    body["What the model looks at"] = (
        "<p>Saliency: how much each pixel changes the class score. Grad-CAM: which regions of the last "
        "spatial conv layer support the class.</p>" + _img(inspect_dir / "attribution.png"))
    body["One convolution by hand"] = (
        "<p>One output pixel of the first conv layer recomputed from the saved weights and checked against "
        "PyTorch.</p>" + _img(inspect_dir / "conv_arithmetic.png"))
    acc = res.get("test_accuracy")
    nav = "".join(f'<a href="#{_slug(t)}">{html.escape(t)}</a>' for t in SECTIONS)
    sections = "".join(f'<section id="{_slug(t)}"><h2>{html.escape(t)}</h2>{body[t]}</section>'
                       for t in SECTIONS)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>cnnlab report: {html.escape(name)}</title>"
            f"<style>{CSS}</style></head><body><main><h1>{html.escape(name)} on "
            f"{html.escape(str(res.get('data', cfg.get('data'))))}</h1>"
            f"<p class=sub>{html.escape(str(run.path))} · test accuracy {_pct(acc)} · test loss "
            f"{res.get('test_loss', float('nan')):.4f} · {res.get('epochs', '?')} epoch(s), "
            f"{res.get('train_seconds', 0):.1f}s training · {res.get('params', 0):,} parameters</p>"
            f"<nav>{nav}</nav>{sections}</main></body></html>\n")
    out = Path(out) if out is not None else run.path / "report.html"
    atomic_write_text(out, page)
    return out
