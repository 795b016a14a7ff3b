"""Which layers the pictures show (`cnnlab inspect`, the report, the web page's feature maps).

A layer-list model shows every conv and pooling layer: a handful, each one a line of its spec. A pretrained
backbone has dozens of convs, so it shows the filters of its first conv (the only ones that look at
pixels), the outputs of its stages, and Grad-CAM on its last stage (the last conv stage, 7x7 at 224 px).
"""

from __future__ import annotations

import math

from torch import nn

from ..errors import UserError
from .build import layers_of
from .layers import CONV, POOL
from .pretrained import PretrainedNet
from .shapes import LayerInfo


def filter_layers(model: nn.Module) -> list[tuple[LayerInfo, nn.Module]]:
    """The conv layers whose filters are drawn."""
    convs = layers_of(model, CONV)
    return convs[:1] if isinstance(model, PretrainedNet) else convs


def map_layers(model: nn.Module) -> list[tuple[LayerInfo, nn.Module]]:
    """The layers whose outputs (feature maps) are drawn, in forward order."""
    if isinstance(model, PretrainedNet):
        return model.stage_layers()
    return layers_of(model, CONV + POOL)


def cam_layer(model: nn.Module) -> tuple[LayerInfo, nn.Module]:
    """Where Grad-CAM looks: a backbone's last stage, else the last conv layer that still has a spatial map
    (>1x1): Grad-CAM on a 1x1 map would be one flat value."""
    if isinstance(model, PretrainedNet):
        return model.stage_layers()[-1]
    convs = layers_of(model, CONV)
    if not convs:
        raise UserError(f"model {model.spec.get('name')!r} has no Conv2d layer: Grad-CAM needs one")
    spatial = [(i, m) for i, m in convs if math.prod(i.out_shape[1:]) > 1]
    return (spatial or convs)[-1]
