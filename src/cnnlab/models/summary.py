"""The table `cnnlab summary` prints and every run saves as summary.txt: each layer's output shape, the
arithmetic behind it (shapes.py), its parameters and multiply-adds, and the totals. A layer-list model
has its rows from building; a pretrained backbone from forward hooks (pretrained.trace_layers).

    #  layer  type    output   how the shape follows           params  MACs
    1  conv1  Conv2d  6x28x28  28 → (28 − 5 + 2·2)/1 + 1 = 28     156  117.60k
"""

from __future__ import annotations

import math

from torch import nn

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
    model with summary rows (`.info`): a SpecNet or a PretrainedNet."""
    params = sum(p.numel() for p in model.parameters())
    acts = sum(math.prod(i.out_shape) for i in model.info)
    return {"params": params, "param_bytes": 4 * params, "macs": sum(i.macs for i in model.info),
            "activations": acts, "activation_bytes": 4 * acts}


def format_summary(model: nn.Module, title: str | None = None) -> str:
    """The per-layer table and the totals, as plain text (monospace)."""
    rows = [("#", "layer", "type", "output", "how the shape follows", "params", "MACs")]
    rows.append(("", "input", "", fmt_shape(model.input_shape), "", "", ""))
    for i in model.info:
        depth = i.index.count(".")  # indent the layers inside a residual block
        rows.append((i.index, "  " * depth + i.name, i.type, fmt_shape(i.out_shape), i.arithmetic,
                     f"{i.params:,}", _human(i.macs) if i.macs else "-"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    right = {0, 5, 6}
    lines = [title] if title else []
    for n, r in enumerate(rows):
        cells = [v.rjust(w) if c in right else v.ljust(w) for c, (v, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    t = totals(model)
    lines += ["",
              f"parameters:               {t['params']:>12,}  ({_kib(t['param_bytes'])} as float32)",
              f"multiply-adds per image:  {t['macs']:>12,}  ({_human(t['macs'])})",
              f"activations per image:    {t['activations']:>12,}  ({_kib(t['activation_bytes'])} "
              "as float32: " + "all layer outputs, kept for the backward pass)"]
    return "\n".join(lines)
