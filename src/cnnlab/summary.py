"""`cnnlab summary`: a table of every layer's output shape, the arithmetic behind it, params and MACs."""

from __future__ import annotations

import math

from .spec import SpecNet


def _fmt_shape(shape) -> str:
    return "x".join(str(s) for s in shape)


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def totals(model: SpecNet) -> dict:
    """Parameters, multiply-adds per image and activation memory per image (float32, forward pass)."""
    params = sum(p.numel() for p in model.parameters())
    macs = sum(i.macs for i in model.info)
    acts = sum(math.prod(i.out_shape) for i in model.info)
    return {"params": params, "macs": macs, "activations": acts, "activation_bytes": 4 * acts}


def format_summary(model: SpecNet, title: str | None = None) -> str:
    rows = [("#", "layer", "type", "output", "how the shape follows", "params", "MACs")]
    rows.append(("", "input", "", _fmt_shape(model.input_shape), "", "", ""))
    for i in model.info:
        depth = i.index.count(".")
        rows.append((i.index, "  " * depth + i.name, i.type, _fmt_shape(i.out_shape), i.arithmetic,
                     f"{i.params:,}", _human(i.macs) if i.macs else "-"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    right = {0, 5, 6}
    lines = []
    if title:
        lines.append(title)
    for n, r in enumerate(rows):
        lines.append("  ".join(v.rjust(w) if c in right else v.ljust(w) for c, (v, w) in enumerate(zip(r, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    t = totals(model)
    lines.append("")
    lines.append(f"parameters: {t['params']:,}   multiply-adds per image: {t['macs']:,} ({_human(t['macs'])})   "
                 f"activations per image: {t['activations']:,} values ({t['activation_bytes'] / 1024:.1f} KiB)")
    return "\n".join(lines)
