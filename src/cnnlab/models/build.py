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

Building happens in two passes. The first (`check.check_spec`) reads the list without any shapes, so
a misspelt layer, argument or value is reported against the file. The second, here, walks the shapes,
computing each layer's output by the formula PyTorch documents (so the arithmetic can be shown, and a
collapse explained), then checks it against PyTorch on the "meta" device (no memory, no FLOPs).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path

import torch
import yaml
from torch import nn

from ..errors import UserError
from .check import Layer, check_spec, parse_shape
from .layers import LAYERS
from .shapes import LayerInfo, Shape, fmt_shape, macs, output_shape, pair, window

__all__ = ["Residual", "SpecNet", "build_model", "channels_last", "layers_of", "load_spec", "spec_classes"]


class Residual(nn.Module):
    """`body(x) + proj(x)`; `proj` is a 1x1 Conv2d only when the body changes the shape."""

    def __init__(self, body: nn.Sequential, proj: nn.Conv2d | None = None):
        super().__init__()
        self.body = body
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (self.proj(x) if self.proj is not None else x)


class SpecNet(nn.Sequential):
    """An `nn.Sequential` built from a spec; remembers the spec and the shapes it was built for."""

    spec: dict
    input_shape: Shape
    num_classes: int
    info: list[LayerInfo]


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
        "check the brackets and indentation there; each layer is a `- Name` or `- Name: {arg: value, ...}` "
        "line")
    return UserError(f"{path}: not valid YAML{where}: {problem}; {hint}")


def load_spec(path: str | Path) -> dict:
    """Read a YAML or JSON spec file and check it; errors name the file, the line or the layer."""
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
    check_spec(spec, str(path))
    spec = {**spec, "name": spec.get("name") or path.stem}
    if spec.get("input") is not None:  # a spec that names its input is checked there now, against the file
        build_model(spec, parse_shape(spec["input"], f"{path}: input"), spec_classes(spec) or 10,
                    label=str(path))
    return spec


def spec_classes(spec: dict) -> int | None:
    """The size the spec's last Linear gives itself, if it gives one (else the data's class count is used)."""
    last = [e for e in spec.get("layers", []) if e == "Linear" or (isinstance(e, dict) and "Linear" in e)]
    args = last[-1]["Linear"] if last and isinstance(last[-1], dict) else None
    size = args.get("out_features") if isinstance(args, dict) else args
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


# --- pass 2: shapes -------------------------------------------------------------------------------------

def _infer(layer: Layer, shape: Shape, at: str) -> dict:
    """Check the incoming shape suits the layer; give the argument PyTorch needs that the shape decides."""
    infer, takes = LAYERS[layer.type].infers, LAYERS[layer.type].takes
    if takes == "flat" and len(shape) != 1:
        flat = f"{'·'.join(map(str, shape))} = {math.prod(shape)}"
        raise UserError(f"{at} needs a flat input but gets {fmt_shape(shape)}: add `- Flatten` before it "
                        f"(it turns {fmt_shape(shape)} into {flat} features)")
    if takes == "spatial" and len(shape) != 3:
        raise UserError(f"{at} needs a CxHxW input but gets the flat {fmt_shape(shape)} (after Flatten): "
                        f"move it before the Flatten")
    if infer is None:
        return {}
    have = shape[0]
    given = layer.kwargs.get(infer)
    if given is not None and given != have:
        what = (f"{fmt_shape(shape)} ({have} channel{'s' * (have > 1)})" if len(shape) == 3
                else f"{have} features")
        raise UserError(f"{at} says {infer}: {given} but gets {what}: drop {infer}, cnnlab infers it "
                        "from the incoming shape")
    return {infer: have}


def _build(layers: list[Layer], shape: Shape, num_classes: int, label: str, counts: dict[str, int],
           info: list[LayerInfo]) -> tuple[nn.Sequential, Shape]:
    mods: OrderedDict[str, nn.Module] = OrderedDict()
    for layer in layers:
        name, short = layer.type, LAYERS[layer.type].short
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
                    raise UserError(f"{at} is the last layer and gives {kwargs['out_features']} outputs "
                                    f"(from {fmt_shape(shape)} features), but the data has {num_classes} "
                                    "classes: write `- Linear` with no size (it takes the class count) or "
                                    f"out_features: {num_classes}")
            if name == "Conv2d":
                _check_conv(kwargs, shape, at)
            try:
                mod = LAYERS[name].torch(**kwargs)  # every layer but Residual has a torch class
            except (TypeError, ValueError, RuntimeError) as e:  # what the checks above do not foresee
                raise UserError(f"{at}: PyTorch refuses {kwargs}: {str(e).splitlines()[0]}") from None
            shape, arith = output_shape(mod, shape, at)
        _check_with_torch(mod, in_shape, shape, at)
        # body: own rows
        counted = (mod.proj if mod.proj is not None else nn.Identity()) if name == "Residual" else mod
        info.insert(row if name == "Residual" else len(info),
                    LayerInfo(layer.index, mod_name, name, "" if name == "Residual" else mod.extra_repr(),
                              in_shape, shape, arith, sum(p.numel() for p in counted.parameters()),
                              macs(counted, shape)))
        mods[mod_name] = mod
    return nn.Sequential(mods), shape


def _residual(body: nn.Sequential, shape: Shape, out: Shape, at: str) -> tuple[Residual, str]:
    """body(x) + x, with a 1x1 conv (strided if need be) bringing x to the body's shape when it changes it."""
    if len(out) != 3:
        raise UserError(f"{at}: its body must keep a CxHxW shape (no Flatten or Linear inside)")
    if out == shape:
        return Residual(body), "x + body(x)"
    stride = next((s for s in range(1, shape[1] + 1) if (-(-shape[1] // s), -(-shape[2] // s)) == out[1:]),
                  None)
    if stride is None:
        raise UserError(f"{at}: the body turns {fmt_shape(shape)} into {fmt_shape(out)}, which a strided 1x1 "
                        "projection cannot match; keep H and W, or halve them with stride 2 and padding")
    proj = nn.Conv2d(shape[0], out[0], 1, stride=stride, bias=False)
    return Residual(body, proj), (f"proj(x) + body(x); proj: 1x1 conv {shape[0]}→{out[0]} channels, "
                                  f"stride {stride}")


def _check_conv(kwargs: dict, shape: Shape, at: str) -> None:
    g, cin, cout = kwargs.get("groups", 1), kwargs["in_channels"], kwargs["out_channels"]
    if cin % g or cout % g:
        raise UserError(f"{at}: groups {g} must divide both in_channels {cin} (from the incoming "
                        f"{fmt_shape(shape)}) and out_channels {cout}; e.g. groups: {math.gcd(cin, cout)}")
    if kwargs.get("padding") == "same" and pair(kwargs.get("stride", 1)) != (1, 1):
        k = pair(kwargs["kernel_size"])[0]
        raise UserError(f"{at}: padding 'same' works only with stride 1 in PyTorch; with stride "
                        f"{kwargs['stride']} write padding: {k // 2} (a {shape[1]}x{shape[2]} input then "
                        f"gives {window(shape[1], k, pair(kwargs['stride'])[0], k // 2)[0]} rows)")


def _check_with_torch(mod: nn.Module, in_shape: Shape, shape: Shape, at: str) -> None:
    """The formula above must agree with PyTorch itself: one zero image through the layer, in eval mode (no
    BatchNorm statistics change). A real tensor, not a meta one: the first meta-device op imports torch's
    decompositions, 2.5 s of a short training budget, while a layer's forward on one image takes
    microseconds."""
    was_training = mod.training
    try:
        with torch.no_grad():
            real = tuple(mod.eval()(torch.zeros(1, *in_shape)).shape[1:])
    except RuntimeError as e:
        raise UserError(f"{at} cannot take {fmt_shape(in_shape)}: {str(e).splitlines()[0]}") from None
    finally:
        mod.train(was_training)
    if real != shape:
        raise AssertionError(f"shape formula disagrees with PyTorch at {at}: {shape} vs {real}")


def channels_last(model: nn.Module) -> nn.Module:
    """Channels-last (NHWC) weights for conv nets: training, evaluation and serving all compute in it.

    oneDNN (CPU) and cuDNN (GPU) have their fastest conv and pooling kernels for NHWC; on a 2-vCPU VM
    max pooling alone ran 10x faster than in NCHW. Inputs need no conversion: a conv with NHWC weights
    returns NHWC activations, and one-channel images are laid out the same either way.
    """
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model


def layers_of(model: nn.Module, types: tuple[str, ...]) -> list[tuple[LayerInfo, nn.Module]]:
    """(summary row, module) for every layer of the given spec types, in forward order (residual bodies
    too). Rows name a module by its path (a backbone's `body.blocks.0.0.conv_dw`) or, in a SpecNet, by its
    own name, unique in the model (`conv3` inside `res1.body`)."""
    paths = dict(model.named_modules())
    by_name = {path.rsplit(".", 1)[-1]: m for path, m in paths.items() if path}
    return [(i, paths.get(i.name) or by_name[i.name]) for i in model.info if i.type in types]


def build_model(spec: dict, input_shape: Shape | None = None, num_classes: int = 10, label: str | None = None
                ) -> SpecNet:
    """Build the network a spec describes for inputs of `input_shape` (C, H, W) and `num_classes` outputs."""
    if label is None:
        label = f"model {spec.get('name', 'custom')!r}" if isinstance(spec, dict) else "model"
    layers = check_spec(spec, label)
    if input_shape is None:
        if spec.get("input") is None:
            raise UserError(f"{label} has no 'input: CxHxW'; add one to the spec or give --input CxHxW")
        input_shape = parse_shape(spec["input"], f"{label}: input")
    input_shape = tuple(int(s) for s in input_shape)
    info: list[LayerInfo] = []
    seq, out = _build(layers, input_shape, num_classes, label, {}, info)
    if out != (num_classes,):
        raise UserError(f"{label} ends with shape {fmt_shape(out)}, but a classifier must end with "
                        f"{num_classes} outputs (one per class): end the layers with `- Flatten` and "
                        "`- Linear`")
    net = SpecNet(OrderedDict(seq.named_children()))
    net.spec = {"name": spec.get("name", "custom"), "layers": spec["layers"]}
    net.input_shape, net.num_classes, net.info = input_shape, num_classes, info
    return net
