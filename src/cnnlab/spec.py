"""Models from a layer list: PyTorch's own layer names, with in_channels / in_features inferred.

A spec is a dict (from YAML, JSON or Python):

    input: 1x28x28            # optional; the data's shape is used when absent
    layers:
      - Conv2d: {out_channels: 16, kernel_size: 3}
      - ReLU
      - MaxPool2d: 2          # a scalar is the first argument after the inferred one
      - Flatten
      - Linear                # the last Linear may omit its size: it becomes the class count

`build_model` walks the list once, computing each layer's output shape by the formula that
PyTorch documents (so the arithmetic can be shown and a collapse explained), then checks it
against a real forward pass on the "meta" device (no memory, no FLOPs).
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError

Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) after Flatten


class Residual(nn.Module):
    """`body(x) + proj(x)`; `proj` is a 1x1 Conv2d only when the body changes the shape."""

    def __init__(self, body: nn.Sequential, proj: nn.Conv2d | None = None):
        super().__init__()
        self.body = body
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (self.proj(x) if self.proj is not None else x)


# Layer vocabulary: spec name -> (torch class, short name used for module names, inferred argument).
LAYERS: dict[str, tuple[type[nn.Module], str, str | None]] = {
    "Conv2d": (nn.Conv2d, "conv", "in_channels"),
    "MaxPool2d": (nn.MaxPool2d, "maxpool", None),
    "AvgPool2d": (nn.AvgPool2d, "avgpool", None),
    "LPPool2d": (nn.LPPool2d, "lppool", None),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, "gap", None),
    "AdaptiveMaxPool2d": (nn.AdaptiveMaxPool2d, "gmp", None),
    "BatchNorm2d": (nn.BatchNorm2d, "bn", "num_features"),
    "BatchNorm1d": (nn.BatchNorm1d, "bn", "num_features"),
    "Dropout": (nn.Dropout, "dropout", None),
    "Dropout2d": (nn.Dropout2d, "dropout", None),
    "ReLU": (nn.ReLU, "relu", None),
    "LeakyReLU": (nn.LeakyReLU, "lrelu", None),
    "Tanh": (nn.Tanh, "tanh", None),
    "Sigmoid": (nn.Sigmoid, "sigmoid", None),
    "GELU": (nn.GELU, "gelu", None),
    "SiLU": (nn.SiLU, "silu", None),
    "Flatten": (nn.Flatten, "flatten", None),
    "Linear": (nn.Linear, "fc", "in_features"),
    "Residual": (Residual, "res", None),
}
SPATIAL = ("Conv2d", "MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
           "BatchNorm2d", "Dropout2d", "Residual")


@dataclass
class LayerInfo:
    """One row of the summary: what a layer does to the shape, and what it costs."""

    index: str  # "3", or "5.2" inside a residual block
    name: str  # module name, e.g. "conv1"
    type: str  # spec name, e.g. "Conv2d"
    args: str  # the arguments as PyTorch prints them
    in_shape: Shape
    out_shape: Shape
    arithmetic: str  # how out_shape follows from in_shape
    params: int
    macs: int  # multiply-adds per image


class SpecNet(nn.Sequential):
    """An `nn.Sequential` built from a spec; remembers the spec and the shapes it was built for."""

    spec: dict
    input_shape: Shape
    num_classes: int
    info: list[LayerInfo]


def parse_shape(text: Any, what: str = "input") -> Shape:
    """'1x28x28' / [1, 28, 28] -> (1, 28, 28)."""
    try:
        if isinstance(text, str):
            parts = tuple(int(p) for p in text.lower().replace("×", "x").split("x"))
        else:
            parts = tuple(int(p) for p in text)
        if len(parts) != 3 or min(parts) < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"{what} {text!r} is not a shape: write it as CxHxW, e.g. 1x28x28") from None
    return parts


def load_spec(path: str | Path) -> dict:
    """Read a YAML or JSON spec file; errors name the file and the line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"model spec {path} does not exist: give a model name (see `cnnlab models`) "
                        "or the path of a .yaml/.json spec")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        spec = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else (
            f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else "")
        raise UserError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}{line}: "
                        f"{getattr(e, 'problem', None) or e.msg if hasattr(e, 'msg') else e}; "
                        "fix the syntax (see examples/models/)") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list) or not spec["layers"]:
        raise UserError(f"{path}: a spec needs a 'layers:' list (and optionally 'input: CxHxW'); "
                        "see examples/models/ for the format")
    spec.setdefault("name", path.stem)
    return spec


def _parse_entry(entry: Any, where: str) -> tuple[str, Any]:
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, dict) and len(entry) == 1:
        return next(iter(entry.items()))
    raise UserError(f"{where}: {entry!r} is not a layer: write a name (`- ReLU`) or a one-key mapping "
                    "(`- Conv2d: {out_channels: 16, kernel_size: 3}`)")


def _known(name: str, where: str) -> None:
    if name not in LAYERS:
        close = [k for k in LAYERS if k.lower() == name.lower()]
        hint = f"did you mean {close[0]}?" if close else f"known layers: {', '.join(LAYERS)}"
        raise UserError(f"{where}: unknown layer {name!r}; {hint}")


def _bind(name: str, args: Any, inferred: dict, where: str) -> dict:
    """Turn the spec's arguments (None, scalar, list or mapping) into keyword arguments for torch."""
    cls, _, infer = LAYERS[name]
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name not in ("self", "device", "dtype") and p.kind is p.POSITIONAL_OR_KEYWORD]
    free = [p.name for p in params if p.name != infer]
    if args is None:
        kwargs = {}
    elif isinstance(args, dict):
        kwargs = dict(args)
    elif isinstance(args, list):
        if len(args) > len(free):
            raise UserError(f"{where} ({name}): {len(args)} arguments given, it takes at most {len(free)} "
                            f"({', '.join(free)})")
        kwargs = dict(zip(free, args))
    else:
        kwargs = {free[0]: args} if free else {}
        if not free:
            raise UserError(f"{where} ({name}) takes no arguments; write it as `- {name}`")
    for key in kwargs:
        if key not in free:
            raise UserError(f"{where} ({name}): unknown argument {key!r}; {name} takes {', '.join(free)}"
                            + (f" ({infer} is inferred from the incoming shape)" if key == infer else ""))
    kwargs.update(inferred)
    return kwargs


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def _fmt(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


def _window(n: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> tuple[int, str]:
    """Output length of a sliding window (conv or pool) and the arithmetic, as PyTorch documents it."""
    num = n + 2 * p - d * (k - 1) - 1
    out = (math.ceil(num / s) if ceil else num // s) + 1
    eff = f"{k}" if d == 1 else f"{d}·({k}−1)+1"
    exact = num % s == 0
    left, right = ("⌈", "⌉") if ceil else ("⌊", "⌋")
    expr = (f"({n} − {eff} + 2·{p})/{s} + 1" if exact else f"{left}({n} − {eff} + 2·{p})/{s}{right} + 1")
    return out, f"{n} → {expr} = {out}"


def _conv_like(name: str, mod: nn.Module, shape: Shape, where: str) -> tuple[Shape, str]:
    if len(shape) != 3:
        raise UserError(f"{where} ({name}) needs a CxHxW input but gets the flat {_fmt(shape)} "
                        "(after Flatten): move it before Flatten")
    c, h, w = shape
    if isinstance(mod, nn.Conv2d):
        out_c = mod.out_channels
        k, s, d = mod.kernel_size, mod.stride, mod.dilation
        if mod.padding == "same":
            return (out_c, h, w), f"padding 'same': {h}x{w} kept"
        p = (0, 0) if mod.padding == "valid" else mod.padding
        ceil = False
    elif isinstance(mod, nn.LPPool2d):
        out_c = c
        k, s = _pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size)
        p, d, ceil = (0, 0), (1, 1), mod.ceil_mode
    else:  # MaxPool2d / AvgPool2d
        out_c = c
        k, s, p = _pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size), _pair(mod.padding)
        d = _pair(getattr(mod, "dilation", 1))
        ceil = mod.ceil_mode
        for kk, pp in zip(k, p):
            if pp > kk // 2:
                raise UserError(f"{where} ({name}): padding {pp} is more than half the kernel {kk}; "
                                f"PyTorch allows at most {kk // 2}")
    oh, ah = _window(h, k[0], s[0], p[0], d[0], ceil)
    ow, aw = _window(w, k[1], s[1], p[1], d[1], ceil)
    arith = ah if (h, k[0], s[0], p[0]) == (w, k[1], s[1], p[1]) else f"H {ah}; W {aw}"
    if oh < 1 or ow < 1:
        raise UserError(f"{where} ({name}) gets {_fmt(shape)} and its window does not fit: {arith}. "
                        f"Use a smaller kernel_size or stride, add padding, or remove a pooling layer "
                        f"before it")
    return (out_c, oh, ow), arith


def _params(mod: nn.Module) -> int:
    return sum(p.numel() for p in mod.parameters())


def _macs(mod: nn.Module, out_shape: Shape) -> int:
    """Multiply-adds per image: the work a layer does (elementwise layers counted as 0)."""
    if isinstance(mod, nn.Conv2d):
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        return k * math.prod(out_shape)
    if isinstance(mod, nn.Linear):
        return mod.in_features * mod.out_features
    return 0


def _build_layers(layers: list, shape: Shape, num_classes: int, prefix: str,
                  counts: dict[str, int], info: list[LayerInfo], top: bool) -> tuple[nn.Sequential, Shape]:
    mods: OrderedDict[str, nn.Module] = OrderedDict()
    last_linear = max((i for i, e in enumerate(layers) if _parse_entry(e, "")[0] == "Linear"
                       if isinstance(e, (str, dict))), default=-1) if top else -1
    for i, entry in enumerate(layers):
        where = f"layer {prefix}{i + 1}"
        name, args = _parse_entry(entry, where)
        _known(name, where)
        cls, short, infer = LAYERS[name]
        counts[short] = counts.get(short, 0) + 1
        mod_name = f"{short}{counts[short]}"
        in_shape = shape
        if name == "Residual":
            body_layers = args.get("layers") if isinstance(args, dict) else args
            if not isinstance(body_layers, list) or not body_layers:
                raise UserError(f"{where} (Residual) needs a list of layers: `- Residual: [ ... ]` or "
                                "`- Residual: {layers: [ ... ]}`")
            if len(shape) != 3:
                raise UserError(f"{where} (Residual) needs a CxHxW input, gets {_fmt(shape)}")
            body, out = _build_layers(body_layers, shape, num_classes, f"{prefix}{i + 1}.", counts, info,
                                      False)
            if len(out) != 3:
                raise UserError(f"{where} (Residual): its body must keep a CxHxW shape (no Flatten/Linear)")
            proj = None
            if out != shape:
                stride = shape[1] // out[1]
                if shape[1] != out[1] * stride or shape[2] // stride != out[2]:
                    raise UserError(f"{where} (Residual): the body turns {_fmt(shape)} into {_fmt(out)}, "
                                    "which a strided 1x1 projection cannot match; keep H and W or halve them")
                proj = nn.Conv2d(shape[0], out[0], 1, stride=stride, bias=False)
            mod = Residual(body, proj)
            arith = "x + body(x)" if proj is None else f"proj(x) + body(x), proj = 1x1 conv stride {stride}"
            shape = out
            macs = _macs(proj, out) if proj is not None else 0
            info.append(LayerInfo(f"{prefix}{i + 1}", mod_name, name, "", in_shape, shape, arith,
                                  _params(proj) if proj is not None else 0, macs))
            mods[mod_name] = mod
            continue
        inferred: dict = {}
        if infer == "in_channels" or (infer == "num_features" and name == "BatchNorm2d"):
            if len(shape) != 3:
                raise UserError(f"{where} ({name}) needs a CxHxW input but gets the flat {_fmt(shape)} "
                                "(after Flatten): move it before Flatten")
            inferred[infer] = shape[0]
        elif infer in ("in_features", "num_features"):
            if len(shape) != 1:
                raise UserError(f"{where} ({name}) needs a flat input but gets {_fmt(shape)}: add `- Flatten` "
                                f"before it (it would give {math.prod(shape)} features)")
            inferred[infer] = shape[0]
        if name == "Linear" and i == last_linear:
            a = args if args is not None else {}
            given = a.get("out_features") if isinstance(a, dict) else (a[0] if isinstance(a, list) else a)
            if given is None:
                args = {**(a if isinstance(a, dict) else {}), "out_features": num_classes}
            elif given != num_classes:
                raise UserError(f"{where} (Linear) is the last layer and has {given} outputs, but the data "
                                f"has {num_classes} classes: write `- Linear` with no size to use the class count")
        kwargs = _bind(name, args, inferred, where)
        try:
            mod = cls(**kwargs)
        except (TypeError, ValueError, RuntimeError) as e:
            raise UserError(f"{where} ({name}): bad arguments {kwargs}: {e}") from None
        if name in ("Conv2d", "MaxPool2d", "AvgPool2d", "LPPool2d"):
            shape, arith = _conv_like(name, mod, shape, where)
        elif name in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
            oh, ow = _pair(mod.output_size)
            shape, arith = (shape[0], oh or shape[1], ow or shape[2]), f"→ {oh}x{ow} whatever the input"
        elif name == "Flatten":
            shape, arith = (math.prod(shape),), f"{'·'.join(map(str, shape))} = {math.prod(shape)}"
        elif name == "Linear":
            shape, arith = (mod.out_features,), f"{mod.in_features} → {mod.out_features}"
        else:
            arith = "same shape"
        # Check the formula against PyTorch itself (meta tensors cost no memory or time).
        try:
            real = tuple(copy.deepcopy(mod).to("meta")(torch.empty(2, *in_shape, device="meta")).shape[1:])
        except RuntimeError as e:
            raise UserError(f"{where} ({name}) cannot take {_fmt(in_shape)}: {str(e).splitlines()[0]}") from None
        assert real == shape, f"shape formula disagrees with PyTorch for {name}: {shape} vs {real}"
        info.append(LayerInfo(f"{prefix}{i + 1}", mod_name, name, mod.extra_repr(), in_shape, shape, arith,
                              _params(mod), _macs(mod, shape)))
        mods[mod_name] = mod
    return nn.Sequential(mods), shape


def build_model(spec: dict, input_shape: Shape | None = None, num_classes: int = 10) -> SpecNet:
    """Build the network a spec describes for inputs of `input_shape` (C, H, W)."""
    if input_shape is None:
        if spec.get("input") is None:
            raise UserError(f"spec {spec.get('name', '')!r} has no 'input: CxHxW'; give --input CxHxW")
        input_shape = parse_shape(spec["input"])
    input_shape = tuple(int(s) for s in input_shape)
    info: list[LayerInfo] = []
    seq, out = _build_layers(spec["layers"], input_shape, num_classes, "", {}, info, True)
    if out != (num_classes,):
        raise UserError(f"spec {spec.get('name', '')!r} ends with shape {_fmt(out)}, but a classifier must "
                        f"end with {num_classes} outputs: end the layers with `- Flatten` and `- Linear`")
    net = SpecNet(OrderedDict(seq.named_children()))
    net.spec = {"name": spec.get("name", "custom"), "layers": spec["layers"]}
    net.input_shape = input_shape
    net.num_classes = num_classes
    net.info = info
    return net
