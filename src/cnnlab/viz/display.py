"""How cnnlab's objects look in a notebook: runs and results as HTML tables, figures as inline PNGs.

Jupyter shows an object through its `_repr_html_`; `Run`, `Results` and `Summary` use the functions here.
A `Figure` made without pyplot (all of cnnlab's) has no PNG form until IPython is told how to draw one;
`shown_inline` tells it, once, through IPython's display formatter. That changes what a returned figure
looks like, never the user's matplotlib backend.
"""

from __future__ import annotations

import html
import math
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from ..run import Run


def _ipython():
    """The running IPython shell (a Jupyter kernel, or the terminal IPython), else None."""
    if "IPython" not in sys.modules:  # never import IPython just to find out
        return None
    from IPython import get_ipython

    return get_ipython()


def shown_inline(fig: Figure) -> Figure:
    """`fig`, after making sure a notebook draws pyplot-free Figures as PNGs when a cell returns one."""
    ip = _ipython()
    if ip is not None:
        png = ip.display_formatter.formatters["image/png"]
        try:
            png.lookup_by_type(Figure)  # already there: the inline backend registered it, or we did
        except KeyError:
            from IPython.core.pylabtools import print_figure

            png.for_type(Figure, lambda f: print_figure(f, "png", bbox_inches="tight"))
    return fig


class Figures(list):
    """Several figures: a notebook cell returning one shows each of them in turn."""

    def __init__(self, figs: Iterable[Figure]):
        super().__init__(shown_inline(f) for f in figs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        for f in self:
            display(f)


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def table(rows: Iterable[tuple], header: tuple | None = None) -> str:
    """A plain HTML table; numbers right-aligned."""
    def cell(tag: str, v) -> str:
        right = isinstance(v, (int, float)) and not isinstance(v, bool)
        return f'<{tag} style="text-align:{"right" if right else "left"}">{html.escape(_fmt(v))}</{tag}>'

    head = "<tr>" + "".join(cell("th", h) for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(cell("td", v) for v in r) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


_HEADLINE = ("test_accuracy", "test_loss", "best_val_accuracy", "epochs", "steps", "train_seconds", "params",
             "model", "data", "device", "precision")


def results_html(results: dict) -> str:
    """results.json as tables: the headline figures, then precision/recall/F1 per class."""
    if not results:
        return "<p>no results yet: the run has not finished</p>"
    pct = {"test_accuracy", "best_val_accuracy", "accuracy"}
    head = [(k, f"{100 * results[k]:.2f}%" if k in pct else results[k]) for k in _HEADLINE if k in results]
    out = table(head)
    per_class = results.get("per_class") or {}
    if per_class:
        out += table([(c, m["precision"], m["recall"], m["f1"], m["support"]) for c, m in per_class.items()],
                     ("class", "precision", "recall", "F1", "test images"))
    return out


def run_html(run: Run) -> str:
    """A run as a notebook shows it: where it is, what trained on what, and how far it got or how well."""
    cfg, res = run.config, run.results
    status = ("finished" if run.finished else
              f"not finished: continue it with <code>cnnlab.train(resume={html.escape(repr(str(run.path)))})"
              "</code>")
    rows = [("run", str(run.path)), ("model", cfg.get("model")), ("data", cfg.get("data"))]
    if res:
        rows += [("test accuracy", f"{100 * res['test_accuracy']:.2f}%"), ("test loss", res["test_loss"]),
                 ("best validation accuracy", f"{100 * res['best_val_accuracy']:.2f}%"),
                 ("epochs", res["epochs"]), ("training time", f"{res['train_seconds']:.1f} s"),
                 ("parameters", f"{res['params']:,}")]
    else:
        metrics = run.metrics
        if metrics:
            last = metrics[-1]
            rows += [("last log point", f"step {last['step']}, epoch {last['epoch']}")]
    return (f"<b>cnnlab run</b> ({status}){table(rows)}"
            "<p>run.plot() · run.show_mistakes() · run.show_filters() · run.show_feature_maps(0) · "
            "run.results</p>")
