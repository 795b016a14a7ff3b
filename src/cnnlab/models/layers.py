"""The layer vocabulary: every layer a spec may name, in one table.

Spec checking, shape arithmetic, the summary, the NumPy engine, the feature maps of the web page and
the inspector all read this table (as timm's `create_act.py` keeps one table of activations), so a
new layer type is added here once. Names and arguments are PyTorch's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class LayerType:
    torch: type[nn.Module] | None  # the class built; None for Residual, assembled from its body (build.py)
    short: str  # module-name prefix: conv1, bn2, fc3
    infers: str | None  # the argument cnnlab takes from the incoming shape (in_channels, in_features)
    role: str  # conv | pool | adaptive_pool | norm | activation | dropout | flatten | linear | block
    takes: str  # the input it needs: "spatial" (C x H x W), "flat" (F,) or "any"
    example: str = ""  # arguments to show in error messages, as YAML


LAYERS: dict[str, LayerType] = {
    "Conv2d": LayerType(nn.Conv2d, "conv", "in_channels", "conv", "spatial",
                        "{out_channels: 16, kernel_size: 3}"),
    "MaxPool2d": LayerType(nn.MaxPool2d, "maxpool", None, "pool", "spatial", "2"),
    "AvgPool2d": LayerType(nn.AvgPool2d, "avgpool", None, "pool", "spatial", "2"),
    "LPPool2d": LayerType(nn.LPPool2d, "lppool", None, "pool", "spatial", "{norm_type: 2, kernel_size: 2}"),
    "AdaptiveAvgPool2d": LayerType(nn.AdaptiveAvgPool2d, "gap", None, "adaptive_pool", "spatial", "1"),
    "AdaptiveMaxPool2d": LayerType(nn.AdaptiveMaxPool2d, "gmp", None, "adaptive_pool", "spatial", "1"),
    "BatchNorm2d": LayerType(nn.BatchNorm2d, "bn", "num_features", "norm", "spatial"),
    "BatchNorm1d": LayerType(nn.BatchNorm1d, "bn", "num_features", "norm", "flat"),
    "Dropout": LayerType(nn.Dropout, "dropout", None, "dropout", "any", "0.5"),
    "Dropout2d": LayerType(nn.Dropout2d, "dropout", None, "dropout", "spatial", "0.1"),
    "ReLU": LayerType(nn.ReLU, "relu", None, "activation", "any"),
    "LeakyReLU": LayerType(nn.LeakyReLU, "lrelu", None, "activation", "any"),
    "Tanh": LayerType(nn.Tanh, "tanh", None, "activation", "any"),
    "Sigmoid": LayerType(nn.Sigmoid, "sigmoid", None, "activation", "any"),
    "GELU": LayerType(nn.GELU, "gelu", None, "activation", "any"),
    "SiLU": LayerType(nn.SiLU, "silu", None, "activation", "any"),
    "Flatten": LayerType(nn.Flatten, "flatten", None, "flatten", "any"),
    "Linear": LayerType(nn.Linear, "fc", "in_features", "linear", "flat", "84"),
    "Residual": LayerType(None, "res", None, "block", "spatial"),
}


def names(*roles: str) -> tuple[str, ...]:
    """The spec names of the layers with these roles, in table order, e.g. names("pool", "adaptive_pool")."""
    return tuple(name for name, t in LAYERS.items() if t.role in roles)


CONV = names("conv")
POOL = names("pool", "adaptive_pool")
# Layers that belong to the conv block before them: what comes out of them is the block's output.
FOLLOWERS = names("norm", "activation", "dropout")


def name_of(module: nn.Module) -> str | None:
    """The spec name of a module's class (a subclass counts as its nearest listed class), or None."""
    for cls in type(module).__mro__:
        for name, t in LAYERS.items():
            if t.torch is cls:
                return name
    return None
