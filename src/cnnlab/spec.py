"""Models from a layer list: PyTorch's own layer names, with in_channels / in_features inferred.

A spec is a dict (from YAML, JSON or Python); docs/specs.md describes it in full:

    input: 1x28x28            # optional; the data's shape is used when absent
    layers:
      - Conv2d: {out_channels: 16, kernel_size: 3}   # PyTorch's keyword arguments
      - ReLU
      - MaxPool2d: 2          # a single value (a number or a pair) is the first argument
      - Residual:             # body(x) + x; a 1x1 conv matches the shapes when the body changes them
          - Conv2d: {out_channels: 16, kernel_size: 3, padding: 1}
      - Flatten
      - Linear                # the last Linear may omit its size: it becomes the class count

Building happens in two passes. The first reads the list without any shapes, so a misspelt layer,
argument or value is reported against the file. The second walks the shapes, computing each layer's
output by the formula PyTorch documents (so the arithmetic can be shown, and a collapse explained),
then checks it against PyTorch on the "meta" device (no memory, no FLOPs).
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError
from .summary import LayerInfo, Shape, fmt_shape, macs, output_shape, pair, window

__all__ = ["LAYERS", "LayerInfo", "Residual", "Shape", "SpecNet", "build_model", "load_spec", "parse_shape",
           "spec_classes"]


class Residual(nn.Module):
    """`body(x) + proj(x)`; `proj` is a 1x1 Conv2d only when the body changes the shape."""

    def __init__(self, body: nn.Sequential, proj: nn.Conv2d | None = None):
        super().__init__()
        self.body = body
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (self.proj(x) if self.proj is not None else x)


# Layer vocabulary: spec name -> (torch class, short name for module names, argument inferred from the input).
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
FLAT_IN = ("Linear", "BatchNorm1d")  # need a flat (F,) input
SPATIAL_IN = ("Conv2d", "MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "BatchNorm2d",
              "Dropout2d", "Residual")  # need a CxHxW input; activations and Dropout take either
_NOT_ARGS = {"self", "device", "dtype", "return_indices", "start_dim", "end_dim"}  # one tensor in, one out
EXAMPLE = {"Conv2d": "{out_channels: 16, kernel_size: 3}", "MaxPool2d": "2", "AvgPool2d": "2",
           "LPPool2d": "{norm_type: 2, kernel_size: 2}", "AdaptiveAvgPool2d": "1", "AdaptiveMaxPool2d": "1",
           "Linear": "84", "Dropout": "0.5", "Dropout2d": "0.1"}

# Names people bring from Keras or from Python code, and what to write instead.
_LAYER_HINTS = {"dense": "Linear (Keras' Dense is PyTorch's Linear)", "fullyconnected": "Linear", "conv": "Conv2d",
                "convolution": "Conv2d", "pool": "MaxPool2d or AvgPool2d", "batchnorm": "BatchNorm2d",
                "maxpooling2d": "MaxPool2d", "averagepooling2d": "AvgPool2d", "reshape": "Flatten", "view": "Flatten",
                "globalaveragepooling2d": "`AdaptiveAvgPool2d: 1`", "batchnormalization": "BatchNorm2d"}
_ARG_HINTS = {"filters": "out_channels", "units": "out_features", "pool_size": "kernel_size", "strides": "stride",
              "rate": "p", "kernel": "kernel_size", "size": "kernel_size", "channels": "out_channels"}

_KNOWN_KEYS = ("input", "layers", "name", "description", "train")


@dataclass
class _Layer:
    """One entry of the list after the first pass: a known name and checked keyword arguments."""

    index: str
    type: str
    kwargs: dict
    last_linear: bool = False
    body: list[_Layer] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"layer {self.index} ({self.type})"


class SpecNet(nn.Sequential):
    """An `nn.Sequential` built from a spec; remembers the spec and the shapes it was built for."""

    spec: dict
    input_shape: Shape
    num_classes: int
    info: list[LayerInfo]


def parse_shape(text: Any, what: str = "input") -> Shape:
    """'1x28x28' / [1, 28, 28] -> (1, 28, 28)."""
    try:
        parts = (tuple(int(p) for p in text.lower().replace("×", "x").split("x")) if isinstance(text, str)
                 else tuple(int(p) for p in text))
        if len(parts) != 3 or min(parts) < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"{what} {text!r} is not a shape: write it as CxHxW (channels x height x width), "
                        "e.g. 1x28x28 for MNIST, 3x32x32 for CIFAR-10") from None
    return parts


def _did_you_mean(word: str, choices: list[str], hints: dict) -> str:
    key = word.lower().replace("_", "")
    if key in hints:
        return f"did you mean {hints[key]}?"
    close = ([c for c in choices if c.lower() == word.lower()]
             or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
             or difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1, cutoff=0.6))
    if close:
        match = next(c for c in choices if c.lower() == close[0].lower())
        return f"did you mean {match}?"
    return ""


def _yaml_error(path: Path, e: Exception) -> UserError:
    """One line: where the YAML broke, what the parser expected, and where the broken part began."""
    mark, ctx = getattr(e, "problem_mark", None), getattr(e, "context_mark", None)
    problem = (getattr(e, "problem", None) or str(e).splitlines()[0]).replace("\t", "\\t")
    if ctx is not None and "<stream end>" in problem:  # an unclosed bracket: where it opened is what matters
        opened = str(getattr(e, "context", "")).replace("while parsing a ", "")
        mark, problem = ctx, f"the {opened} opened here is never closed ({problem})"
    elif ctx is not None and mark is not None and ctx.line != mark.line:
        problem += f" ({getattr(e, 'context', '')} that starts at line {ctx.line + 1})"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    hint = "indent with spaces, not tabs" if "\\t" in problem else (
        "check the brackets and indentation there; each layer is a `- Name` or `- Name: {arg: value, ...}` line")
    return UserError(f"{path}: not valid YAML{where}: {problem}; {hint}")


def load_spec(path: str | Path) -> dict:
    """Read a YAML or JSON spec file and check it; errors name the file, the line or the layer."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"model spec {path} does not exist: give a model name (see `cnnlab models`) "
                        "or the path of a .yaml/.json spec (see examples/models/)")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json":
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}; "
                            "fix the syntax (JSON allows no trailing commas or comments)") from None
    else:
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise _yaml_error(path, e) from None
    _read(spec, str(path))
    spec = {**spec, "name": spec.get("name") or path.stem}
    if spec.get("input") is not None:  # a spec that names its input is checked there now, against the file
        build_model(spec, parse_shape(spec["input"], f"{path}: input"), spec_classes(spec) or 10, label=str(path))
    return spec


def _read(spec: Any, label: str) -> list[_Layer]:
    """Pass 1, the checks that need no shapes: the keys, each layer's name, arguments and their types."""
    if isinstance(spec, dict):
        for key in spec:
            if key not in _KNOWN_KEYS:
                hint = _did_you_mean(str(key), list(_KNOWN_KEYS), {})
                raise UserError(f"{label}: unknown key {key!r}; {hint + ' ' if hint else ''}a spec has "
                                f"{', '.join(_KNOWN_KEYS)}")
    if not isinstance(spec, dict) or "layers" not in spec:
        what = ("is a bare list: put `layers:` on a line above it" if isinstance(spec, list) else
                "is empty" if spec is None else "has no 'layers:' list")
        raise UserError(f"{label} {what}; a spec is `layers:` with one `- Layer` per line below it (and optionally "
                        "`input: CxHxW`), see examples/models/lenet5.yaml")
    if not isinstance(spec["layers"], list) or not spec["layers"]:
        raise UserError(f"{label}: 'layers' is empty or not a list; write one `- Layer` per line, "
                        "e.g. `- Conv2d: {out_channels: 16, kernel_size: 3}`, ending with `- Flatten` and `- Linear`")
    if spec.get("input") is not None:
        parse_shape(spec["input"], f"{label}: input")
    train = spec.get("train") or {}
    from .config import BUILTIN_DEFAULTS  # config imports the registry, which imports this module

    if not isinstance(train, dict) or set(train) - set(BUILTIN_DEFAULTS):
        raise UserError(f"{label}: 'train' takes the model's default {', '.join(BUILTIN_DEFAULTS)}; "
                        f"got {train!r}")
    return _parse_layers(spec["layers"], label, "")


def spec_classes(spec: dict) -> int | None:
    """The size the spec's last Linear gives itself, if it gives one (else the data's class count is used)."""
    last = [e for e in spec.get("layers", []) if e == "Linear" or (isinstance(e, dict) and "Linear" in e)]
    args = last[-1]["Linear"] if last and isinstance(last[-1], dict) else None
    size = args.get("out_features") if isinstance(args, dict) else args
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


# --- pass 1: names, arguments and values, no shapes -------------------------------------------------------

def _parse_layers(entries: list, label: str, prefix: str) -> list[_Layer]:
    names = [_entry_name(e) for e in entries]
    last_linear = max((i for i, n in enumerate(names) if n == "Linear"), default=-1) if not prefix else -1
    return [_parse_entry(e, label, f"{prefix}{i + 1}", i == last_linear) for i, e in enumerate(entries)]


def _entry_name(entry: Any) -> Any:
    return entry if isinstance(entry, str) else next(iter(entry)) if isinstance(entry, dict) and entry else None


def _parse_entry(entry: Any, label: str, index: str, last_linear: bool) -> _Layer:
    at = f"{label}, layer {index}"
    if isinstance(entry, dict) and len(entry) > 1 and next(iter(entry.values())) is None:
        name = next(iter(entry))
        raise UserError(f"{at} ({name}): its arguments are not indented under it; write "
                        f"`- {name}: {{{', '.join(f'{k}: {v}' for k, v in list(entry.items())[1:])}}}`")
    if isinstance(entry, str):
        name, args = entry.strip(), None
    elif isinstance(entry, dict) and len(entry) == 1:
        name, args = next(iter(entry.items()))
    else:
        raise UserError(f"{at}: {entry!r} is not a layer: write a name (`- ReLU`) or a name with arguments "
                        "(`- Conv2d: {out_channels: 16, kernel_size: 3}`)")
    if isinstance(name, str) and "(" in name:  # Python call syntax, e.g. "Conv2d(1, 16, 3)"
        raise UserError(f"{at}: {name!r} is Python, not a spec entry; write `- {name.split('(')[0]}: "
                        f"{EXAMPLE.get(name.split('(')[0], '{arg: value}')}` (arguments by name, no in_channels)")
    if name not in LAYERS:
        key = str(name).lower().replace("_", "")
        if key in ("softmax", "logsoftmax"):
            raise UserError(f"{at}: leave {name} out: the loss (CrossEntropyLoss) applies softmax to the last "
                            "Linear's outputs itself, and predict reports probabilities")
        hint = _did_you_mean(str(name), list(LAYERS), _LAYER_HINTS) or f"known layers: {', '.join(LAYERS)}"
        raise UserError(f"{at}: unknown layer {name!r}; {hint}")
    layer = _Layer(index, name, {}, last_linear)
    at = f"{label}, {layer.where}"
    if name == "Residual":
        body = args.get("layers") if isinstance(args, dict) and set(args) == {"layers"} else args
        if not isinstance(body, list) or not body:
            raise UserError(f"{at} needs a list of layers: `- Residual: [ ... ]`, or the layers indented "
                            "below `- Residual:` one `- Layer` per line")
        layer.body = _parse_layers(body, label, f"{index}.")
        return layer
    layer.kwargs = _parse_args(name, args, at, last_linear)
    return layer


def _signature(name: str) -> tuple[list[str], list[str]]:
    """(arguments a spec may give, in PyTorch's order; the required ones), the inferred one excluded."""
    cls, _, infer = LAYERS[name]
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name not in _NOT_ARGS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    free = [p.name for p in params if p.name != infer]
    return free, [p.name for p in params if p.default is p.empty and p.name != infer]


def _parse_args(name: str, args: Any, at: str, last_linear: bool) -> dict:
    free, required = _signature(name)
    infer = LAYERS[name][2]
    if args is None:
        kwargs = {}
    elif isinstance(args, dict):
        kwargs = dict(args)
    elif not free:
        raise UserError(f"{at} takes no arguments here; write it as `- {name}`")
    elif isinstance(args, str) and ("=" in args or ":" in args):
        raise UserError(f"{at}: write the arguments as a mapping, e.g. `- {name}: {EXAMPLE.get(name, '{...}')}`, "
                        f"not {args!r}")
    elif isinstance(args, list) and free[0] in ("out_channels", "out_features", "p", "norm_type"):
        raise UserError(f"{at}: a list gives one argument, {free[0]}; name several: `- {name}: "
                        f"{EXAMPLE.get(name, '{...}')}`" + (f" ({infer} is inferred)" if infer else ""))
    else:  # a single value, or a pair, is the first argument: `MaxPool2d: 2`, `AdaptiveAvgPool2d: [1, 1]`
        kwargs = {free[0]: args}
    for key in kwargs:
        if key not in free and key != infer:
            hint = _did_you_mean(str(key), free, _ARG_HINTS)
            if key == "activation":
                hint = "an activation is a layer of its own: add `- ReLU` after this one;"
            takes = f"{name} takes {', '.join(free)}" if free else f"{name} takes no arguments"
            raise UserError(f"{at}: unknown argument {key!r}; {hint + ' ' if hint else ''}{takes}"
                            + (f" ({infer} is inferred)" if infer else ""))
    for key, value in kwargs.items():
        kwargs[key] = _check_value(name, key, value, at)
    missing = [r for r in required if r not in kwargs and not (last_linear and r == "out_features")]
    if missing:
        extra = ("; only the last Linear may leave out its size (it becomes the class count)"
                 if name == "Linear" else "")
        raise UserError(f"{at} needs {' and '.join(missing)}: e.g. `- {name}: {EXAMPLE.get(name, '{...}')}`{extra}")
    return kwargs


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _ints(low: int, none: bool = False) -> Callable[[Any], bool]:
    """A whole number >= low, or a [height, width] pair of them (or None where PyTorch allows it)."""
    def one(v: Any) -> bool:
        return (none and v is None) or (isinstance(v, int) and not isinstance(v, bool) and v >= low)
    return lambda v: one(v) or (isinstance(v, (list, tuple)) and len(v) == 2 and all(map(one, v)))


_PAIR = "a whole number >= {} or a [height, width] pair, e.g. {}"
_COUNT = (_ints(1), "a whole number >= 1")
# What each argument takes (argument name -> test, words for the error); the rest are true/false flags.
_VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "kernel_size": (_ints(1), _PAIR.format(1, 3)), "stride": (_ints(1, none=True), _PAIR.format(1, 2)),
    "dilation": (_ints(1), _PAIR.format(1, 2)), "padding": (_ints(0), _PAIR.format(0, 1)),
    "output_size": (_ints(1, none=True), _PAIR.format(1, "1 for global pooling")),
    "out_channels": _COUNT, "out_features": _COUNT, "groups": _COUNT, "in_channels": _COUNT, "in_features": _COUNT,
    "num_features": _COUNT, "divisor_override": (_ints(1, none=True), "a whole number >= 1"),
    "p": (lambda v: _num(v) and 0 <= v <= 1, "a probability between 0 and 1, e.g. 0.5 (not a percentage)"),
    "norm_type": (lambda v: _num(v) and v > 0, "a number > 0, e.g. 2 (1 sums the window, large values approach max)"),
    "eps": (lambda v: _num(v) and v > 0, "a small number > 0, e.g. 0.00001"),
    "momentum": (lambda v: v is None or (_num(v) and 0 <= v <= 1), "a number between 0 and 1 (default 0.1)"),
    "negative_slope": (_num, "a number, e.g. 0.01"),
    "padding_mode": (lambda v: v in ("zeros", "reflect", "replicate", "circular"),
                     "one of zeros, reflect, replicate, circular"),
    "approximate": (lambda v: v in ("none", "tanh"), "none or tanh"),
}


def _check_value(name: str, key: str, v: Any, at: str) -> Any:
    """Check one argument's type and range; a YAML list becomes the tuple PyTorch itself stores."""
    ok, need = _VALUES.get(key, (lambda x: isinstance(x, bool), "true or false"))
    if key == "padding" and name == "Conv2d":
        ok, need = (lambda x: x in ("same", "valid") or _ints(0)(x)), need + ", 'same' or 'valid'"
    elif key == "padding":
        need += " ('same' is for Conv2d; pooling pads at most kernel_size // 2)"
    if not ok(v):
        raise UserError(f"{at}: {key} must be {need}, not {v!r}")
    return tuple(v) if isinstance(v, list) else v


# --- pass 2: shapes ------------------------------------------------------------------------------------------

def _infer(layer: _Layer, shape: Shape, at: str) -> dict:
    """Check the incoming shape suits the layer; give the argument PyTorch needs that the shape decides."""
    infer, name = LAYERS[layer.type][2], layer.type
    if name in FLAT_IN and len(shape) != 1:
        flat = f"{'·'.join(map(str, shape))} = {math.prod(shape)}"
        raise UserError(f"{at} needs a flat input but gets {fmt_shape(shape)}: add `- Flatten` before it "
                        f"(it turns {fmt_shape(shape)} into {flat} features)")
    if name in SPATIAL_IN and len(shape) != 3:
        raise UserError(f"{at} needs a CxHxW input but gets the flat {fmt_shape(shape)} (after Flatten): "
                        f"move it before the Flatten")
    if infer is None:
        return {}
    have = shape[0]
    given = layer.kwargs.get(infer)
    if given is not None and given != have:
        what = f"{fmt_shape(shape)} ({have} channel{'s' * (have > 1)})" if len(shape) == 3 else f"{have} features"
        raise UserError(f"{at} says {infer}: {given} but gets {what}: drop {infer}, cnnlab infers it from the "
                        "incoming shape")
    return {infer: have}


def _build(layers: list[_Layer], shape: Shape, num_classes: int, label: str, counts: dict[str, int],
           info: list[LayerInfo]) -> tuple[nn.Sequential, Shape]:
    mods: OrderedDict[str, nn.Module] = OrderedDict()
    for layer in layers:
        name, short = layer.type, LAYERS[layer.type][1]
        at = f"{label}, {layer.where}"
        counts[short] = counts.get(short, 0) + 1
        mod_name, in_shape = f"{short}{counts[short]}", shape
        kwargs = {**layer.kwargs, **_infer(layer, shape, at)}
        if name == "Residual":
            row = len(info)  # the block's row goes before its body's rows
            body, out = _build(layer.body, shape, num_classes, label, counts, info)
            mod, arith = _residual(body, shape, out, at)
            shape = out
        else:
            if name == "Linear" and layer.last_linear:
                kwargs.setdefault("out_features", num_classes)
                if kwargs["out_features"] != num_classes:
                    raise UserError(f"{at} is the last layer and gives {kwargs['out_features']} outputs (from "
                                    f"{fmt_shape(shape)} features), but the data has {num_classes} classes: write "
                                    "`- Linear` with no size (it takes the class count) or out_features: "
                                    f"{num_classes}")
            if name == "Conv2d":
                _check_conv(kwargs, shape, at)
            try:
                mod = LAYERS[name][0](**kwargs)
            except (TypeError, ValueError, RuntimeError) as e:  # what the checks above do not foresee
                raise UserError(f"{at}: PyTorch refuses {kwargs}: {str(e).splitlines()[0]}") from None
            shape, arith = output_shape(mod, shape, at)
        _check_with_torch(mod, in_shape, shape, at)
        counted = (mod.proj if mod.proj is not None else nn.Identity()) if name == "Residual" else mod  # body: own rows
        info.insert(row if name == "Residual" else len(info),
                    LayerInfo(layer.index, mod_name, name, "" if name == "Residual" else mod.extra_repr(), in_shape,
                              shape, arith, sum(p.numel() for p in counted.parameters()), macs(counted, shape)))
        mods[mod_name] = mod
    return nn.Sequential(mods), shape


def _residual(body: nn.Sequential, shape: Shape, out: Shape, at: str) -> tuple[Residual, str]:
    """body(x) + x, with a 1x1 conv (strided if need be) bringing x to the body's shape when it changes it."""
    if len(out) != 3:
        raise UserError(f"{at}: its body must keep a CxHxW shape (no Flatten or Linear inside)")
    if out == shape:
        return Residual(body), "x + body(x)"
    stride = next((s for s in range(1, shape[1] + 1) if (-(-shape[1] // s), -(-shape[2] // s)) == out[1:]), None)
    if stride is None:
        raise UserError(f"{at}: the body turns {fmt_shape(shape)} into {fmt_shape(out)}, which a strided 1x1 "
                        "projection cannot match; keep H and W, or halve them with stride 2 and padding")
    proj = nn.Conv2d(shape[0], out[0], 1, stride=stride, bias=False)
    return Residual(body, proj), f"proj(x) + body(x); proj: 1x1 conv {shape[0]}→{out[0]} channels, stride {stride}"


def _check_conv(kwargs: dict, shape: Shape, at: str) -> None:
    g, cin, cout = kwargs.get("groups", 1), kwargs["in_channels"], kwargs["out_channels"]
    if cin % g or cout % g:
        raise UserError(f"{at}: groups {g} must divide both in_channels {cin} (from the incoming {fmt_shape(shape)}) "
                        f"and out_channels {cout}; e.g. groups: {math.gcd(cin, cout)}")
    if kwargs.get("padding") == "same" and pair(kwargs.get("stride", 1)) != (1, 1):
        k = pair(kwargs["kernel_size"])[0]
        raise UserError(f"{at}: padding 'same' works only with stride 1 in PyTorch; with stride "
                        f"{kwargs['stride']} write padding: {k // 2} (a {shape[1]}x{shape[2]} input then gives "
                        f"{window(shape[1], k, pair(kwargs['stride'])[0], k // 2)[0]} rows)")


def _check_with_torch(mod: nn.Module, in_shape: Shape, shape: Shape, at: str) -> None:
    """The formula above must agree with PyTorch itself (meta tensors cost no memory or time)."""
    try:
        real = tuple(copy.deepcopy(mod).to("meta")(torch.empty(2, *in_shape, device="meta")).shape[1:])
    except RuntimeError as e:
        raise UserError(f"{at} cannot take {fmt_shape(in_shape)}: {str(e).splitlines()[0]}") from None
    if real != shape:
        raise AssertionError(f"shape formula disagrees with PyTorch at {at}: {shape} vs {real}")


def build_model(spec: dict, input_shape: Shape | None = None, num_classes: int = 10, label: str | None = None
                ) -> SpecNet:
    """Build the network a spec describes for inputs of `input_shape` (C, H, W) and `num_classes` outputs."""
    if label is None:
        label = f"model {spec.get('name', 'custom')!r}" if isinstance(spec, dict) else "model"
    layers = _read(spec, label)
    if input_shape is None:
        if spec.get("input") is None:
            raise UserError(f"{label} has no 'input: CxHxW'; add one to the spec or give --input CxHxW")
        input_shape = parse_shape(spec["input"], f"{label}: input")
    input_shape = tuple(int(s) for s in input_shape)
    info: list[LayerInfo] = []
    seq, out = _build(layers, input_shape, num_classes, label, {}, info)
    if out != (num_classes,):
        raise UserError(f"{label} ends with shape {fmt_shape(out)}, but a classifier must end with {num_classes} "
                        "outputs (one per class): end the layers with `- Flatten` and `- Linear`")
    net = SpecNet(OrderedDict(seq.named_children()))
    net.spec = {"name": spec.get("name", "custom"), "layers": spec["layers"]}
    net.input_shape, net.num_classes, net.info = input_shape, num_classes, info
    return net
