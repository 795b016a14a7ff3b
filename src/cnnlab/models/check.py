"""Pass 1 of building a model from a spec: the layer vocabulary, and every check that needs no shapes.

A spec becomes a model in two passes (`build.build_model` runs both):

1. here, `check_spec` reads the dict as written, with no shapes: the top-level keys, `input:`, `train:`,
   and for each layer its name, its arguments (PyTorch's own keyword names, read off the class's
   signature) and each value's type and range. The result is a list of `Layer`s: known names and
   checked keyword arguments, with YAML lists turned into the tuples PyTorch stores.
2. `build.py` then walks the shapes: it infers in_channels / in_features, computes each layer's output
   by PyTorch's formula, and checks it against PyTorch on the "meta" device.

Splitting them means a misspelt layer, argument or value is reported against the file before any shape
exists, so the message cannot be a shape error caused by a typo further up. What pass 1 guarantees:
every error is a `UserError` whose one line names the file, and the layer when one is at fault
("layer 3 (Conv2d)", "layer 5.2" inside a Residual), and says how to fix it, using the PyTorch name
when the user brought a Keras or Python one (Dense, filters, `Conv2d(1, 16, 3)`, Softmax).

The layer names come from the one vocabulary table in `layers.py`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from .layers import LAYERS
from .shapes import Shape

__all__ = ["TRAIN_DEFAULTS", "Layer", "check_spec", "parse_shape"]

# What a spec's `train:` section may set (the model's own training defaults, as a named model has them),
# and the built-in value of each where neither the model nor the user gives one.
TRAIN_DEFAULTS = {"epochs": 5, "batch_size": 128, "lr": 0.001, "optimizer": "adam", "momentum": 0.9,
                  "weight_decay": 0.0, "schedule": "constant", "label_smoothing": 0.0, "augment": "none"}

_NOT_ARGS = {"self", "device", "dtype", "return_indices", "start_dim", "end_dim"}  # one tensor in, one out
# Names people bring from Keras or from Python code, and what to write instead.
_LAYER_HINTS = {"dense": "Linear (Keras' Dense is PyTorch's Linear)", "fullyconnected": "Linear",
                "conv": "Conv2d", "convolution": "Conv2d", "pool": "MaxPool2d or AvgPool2d",
                "batchnorm": "BatchNorm2d", "maxpooling2d": "MaxPool2d", "averagepooling2d": "AvgPool2d",
                "reshape": "Flatten", "view": "Flatten",
                "globalaveragepooling2d": "`AdaptiveAvgPool2d: 1`", "batchnormalization": "BatchNorm2d"}
_ARG_HINTS = {"filters": "out_channels", "units": "out_features", "pool_size": "kernel_size",
              "strides": "stride", "rate": "p", "kernel": "kernel_size", "size": "kernel_size",
              "channels": "out_channels"}

_KNOWN_KEYS = ("input", "layers", "name", "description", "train")


@dataclass
class Layer:
    """One entry of the list after the first pass: a known name and checked keyword arguments."""

    index: str  # "3", or "5.2" inside a residual block
    type: str
    kwargs: dict
    last_linear: bool = False
    body: list[Layer] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"layer {self.index} ({self.type})"


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


def _example(name: str, fallback: str = "{...}") -> str:
    t = LAYERS.get(name)
    return t.example if t is not None and t.example else fallback


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


def check_spec(spec: Any, label: str) -> list[Layer]:
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
        raise UserError(f"{label} {what}; a spec is `layers:` with one `- Layer` per line below it "
                        "(and optionally `input: CxHxW`), see examples/models/lenet5.yaml")
    if not isinstance(spec["layers"], list) or not spec["layers"]:
        raise UserError(f"{label}: 'layers' is empty or not a list; write one `- Layer` per line, "
                        "e.g. `- Conv2d: {out_channels: 16, kernel_size: 3}`, ending with `- Flatten` "
                        "and `- Linear`")
    if spec.get("input") is not None:
        parse_shape(spec["input"], f"{label}: input")
    train = spec.get("train") or {}
    if not isinstance(train, dict) or set(train) - set(TRAIN_DEFAULTS):
        raise UserError(f"{label}: 'train' takes the model's default {', '.join(TRAIN_DEFAULTS)}; "
                        f"got {train!r}")
    return _parse_layers(spec["layers"], label, "")


def _parse_layers(entries: list, label: str, prefix: str) -> list[Layer]:
    names = [_entry_name(e) for e in entries]
    last_linear = max((i for i, n in enumerate(names) if n == "Linear"), default=-1) if not prefix else -1
    return [_parse_entry(e, label, f"{prefix}{i + 1}", i == last_linear) for i, e in enumerate(entries)]


def _entry_name(entry: Any) -> Any:
    return (entry if isinstance(entry, str)
            else next(iter(entry)) if isinstance(entry, dict) and entry else None)


def _parse_entry(entry: Any, label: str, index: str, last_linear: bool) -> Layer:
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
                        f"{_example(name.split('(')[0], '{arg: value}')}` "
                        "(arguments by name, no in_channels)")
    if name not in LAYERS:
        key = str(name).lower().replace("_", "")
        if key in ("softmax", "logsoftmax"):
            raise UserError(f"{at}: leave {name} out: the loss (CrossEntropyLoss) applies softmax to the "
                            "last Linear's outputs itself, and predict reports probabilities")
        hint = _did_you_mean(str(name), list(LAYERS), _LAYER_HINTS) or f"known layers: {', '.join(LAYERS)}"
        raise UserError(f"{at}: unknown layer {name!r}; {hint}")
    layer = Layer(index, name, {}, last_linear)
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
    cls, infer = LAYERS[name].torch, LAYERS[name].infers
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name not in _NOT_ARGS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    free = [p.name for p in params if p.name != infer]
    return free, [p.name for p in params if p.default is p.empty and p.name != infer]


def _parse_args(name: str, args: Any, at: str, last_linear: bool) -> dict:
    free, required = _signature(name)
    infer = LAYERS[name].infers
    if args is None:
        kwargs = {}
    elif isinstance(args, dict):
        kwargs = dict(args)
    elif not free:
        raise UserError(f"{at} takes no arguments here; write it as `- {name}`")
    elif isinstance(args, str) and ("=" in args or ":" in args):
        raise UserError(f"{at}: write the arguments as a mapping, e.g. `- {name}: {_example(name)}`, "
                        f"not {args!r}")
    elif isinstance(args, list) and free[0] in ("out_channels", "out_features", "p", "norm_type"):
        raise UserError(f"{at}: a list gives one argument, {free[0]}; name several: `- {name}: "
                        f"{_example(name)}`" + (f" ({infer} is inferred)" if infer else ""))
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
        raise UserError(f"{at} needs {' and '.join(missing)}: e.g. `- {name}: {_example(name)}`{extra}")
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
    "out_channels": _COUNT, "out_features": _COUNT, "groups": _COUNT, "in_channels": _COUNT,
    "in_features": _COUNT, "num_features": _COUNT,
    "divisor_override": (_ints(1, none=True), "a whole number >= 1"),
    "p": (lambda v: _num(v) and 0 <= v <= 1, "a probability between 0 and 1, e.g. 0.5 (not a percentage)"),
    "norm_type": (lambda v: _num(v) and v > 0,
                  "a number > 0, e.g. 2 (1 sums the window, large values approach max)"),
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

