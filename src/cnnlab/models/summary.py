"""The table `cnnlab summary` prints and every run saves as summary.txt: each layer's output shape, the
arithmetic behind it (shapes.py), its parameters and multiply-adds, and the totals. A layer-list model
has its rows from building; a pretrained backbone from forward hooks (pretrained.trace_layers). `Summary`
holds the same table for notebooks, where it shows as HTML.

    #  layer  type    output   how the shape follows           params  MACs
    1  conv1  Conv2d  6x28x28  28 → (28 − 5 + 2·2)/1 + 1 = 28     156  117.60k
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from torch import nn

from ..errors import UserError
from .build import build_model, spec_classes
from .check import parse_shape
from .registry import create_model, get_entry
from .shapes import fmt_shape


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def _kib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.2f} MiB" if n_bytes >= 2**20 else f"{n_bytes / 1024:.1f} KiB"


def totals(model: nn.Module) -> dict:
    """Parameters, multiply-adds per image and activation memory per image (float32, forward pass), for a
    model with summary rows (`.info`): a nn.Module or a PretrainedNet."""
    params = sum(p.numel() for p in model.parameters())
    acts = sum(math.prod(i.out_shape) for i in model.info)
    return {"params": params, "param_bytes": 4 * params, "macs": sum(i.macs for i in model.info),
            "activations": acts, "activation_bytes": 4 * acts}


HEADER = ("#", "layer", "type", "output", "how the shape follows", "params", "MACs")
_RIGHT = {0, 5, 6}  # right-aligned columns: numbers


def summary_rows(model: nn.Module) -> list[tuple[str, ...]]:
    """The table's rows under HEADER: the input, then one per layer (indented inside a residual block)."""
    rows = [("", "input", "", fmt_shape(model.input_shape), "", "", "")]
    for i in model.info:
        depth = i.index.count(".")
        rows.append((i.index, "  " * depth + i.name, i.type, fmt_shape(i.out_shape), i.arithmetic,
                     f"{i.params:,}", _human(i.macs) if i.macs else "-"))
    return rows


def _total_lines(model: nn.Module) -> list[str]:
    t = totals(model)
    return [f"parameters:               {t['params']:>12,}  ({_kib(t['param_bytes'])} as float32)",
            f"multiply-adds per image:  {t['macs']:>12,}  ({_human(t['macs'])})",
            f"activations per image:    {t['activations']:>12,}  ({_kib(t['activation_bytes'])} "
            "as float32: " + "all layer outputs, kept for the backward pass)"]


def format_summary(model: nn.Module, title: str | None = None) -> str:
    """The per-layer table and the totals, as plain text (monospace)."""
    rows = [HEADER, *summary_rows(model)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(HEADER))]
    lines = [title] if title else []
    for n, r in enumerate(rows):
        cells = [v.rjust(w) if c in _RIGHT else v.ljust(w) for c, (v, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join([*lines, "", *_total_lines(model)])


def summary_html(model: nn.Module, title: str | None = None) -> str:
    """The same table as HTML, for notebooks (Jupyter shows an object's `_repr_html_`)."""
    def cell(tag: str, c: int, v: str) -> str:
        style = "text-align:right" if c in _RIGHT else "text-align:left"
        if v.startswith("  "):  # a layer inside a residual block: keep its indent
            style += f";padding-left:{len(v) - len(v.lstrip())}em"
        return f'<{tag} style="{style}">{html.escape(v.strip())}</{tag}>'

    head = "".join(cell("th", c, v) for c, v in enumerate(HEADER))
    body = "".join("<tr>" + "".join(cell("td", c, v) for c, v in enumerate(r)) + "</tr>"
                   for r in summary_rows(model))
    cap = f"<caption style='text-align:left'><b>{html.escape(title)}</b></caption>" if title else ""
    foot = "<br>".join(html.escape(" ".join(line.split())) for line in _total_lines(model))
    return (f'<table class="cnnlab-summary">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            f"<p style='font-family:monospace'>{foot}</p>")


@dataclass
class Summary:
    """A model's summary: prints as the text table, shows as an HTML table in a notebook."""

    model: nn.Module
    title: str | None = None

    @property
    def rows(self) -> list[dict[str, str]]:
        """One dict per row, keyed by the column names (HEADER)."""
        return [dict(zip(HEADER, r)) for r in summary_rows(self.model)]

    @property
    def totals(self) -> dict:
        return totals(self.model)

    def __str__(self) -> str:
        return format_summary(self.model, self.title)

    def __repr__(self) -> str:  # the table itself: what a REPL user asked to see
        return str(self)

    def _repr_html_(self) -> str:
        return summary_html(self.model, self.title)


def summarize(model: str, input: str | None = None, classes: int | None = None) -> Summary:
    """The layer table of a named model, a backbone or a spec file, for inputs `input` ("CxHxW"; default the
    spec's own, a backbone's 3x224x224, else 1x28x28) and `classes` outputs (default the size of its last
    Linear, a backbone's 1000, else 10)."""
    if classes is not None and classes < 1:
        raise UserError(f"--classes {classes}: must be a whole number >= 1")
    entry = get_entry(str(model))
    shape = parse_shape(input, "--input") if input else (
        parse_shape(entry.input, f"{model}: input") if entry.input else (1, 28, 28))
    if entry.backbone:  # as ImageNet trained it, unless `classes` says otherwise
        classes = classes or 1000
        net = create_model(entry.name, shape, classes)
    else:
        classes = classes or spec_classes(entry.spec) or 10
        net = build_model(entry.spec, shape, classes, label=str(model))
    return Summary(net, f"{entry.name}  (input {fmt_shape(shape)}, {classes} classes)")
