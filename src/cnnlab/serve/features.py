"""Feature maps of each conv block, as small PNG mosaics for the web page.

One image per block (all its channels tiled, each scaled to its own range) keeps a response small:
fastcnn's two blocks (16x28x28 and 48x14x14) come to about 48 KB of base64 PNG for a Fashion-MNIST
image, where the raw floats would be 21,952 numbers (~200 KB as JSON text).
"""

from __future__ import annotations

import base64
import io
import math
import threading

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..models import Residual, map_layers
from ..models.layers import CONV, FOLLOWERS, name_of
from ..viz.tiles import grid
from ..viz.tiles import mosaic as tile_mosaic

MAX_CHANNELS = 128  # more tiles than this are unreadable at page size anyway
GAP = 1  # pixels between tiles
_GAP_RGB = (30, 34, 48)  # the page's panel colour, so tiles stand apart


def _colormap() -> np.ndarray:
    """(256, 3) uint8 'magma': dark for zero, bright for strong activation."""
    import matplotlib

    return (matplotlib.colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


_CMAP = _colormap()


def conv_blocks(model: nn.Sequential) -> dict[int, list[str]]:
    """Index of each conv block's last layer -> the layer names in that block, e.g.
    {2: [conv1, bn1, relu1]}."""
    children = list(model.named_children())
    blocks: dict[int, list[str]] = {}
    i = 0
    while i < len(children):
        name, mod = children[i]
        if name_of(mod) in CONV or isinstance(mod, Residual):
            names = [name]
            while i + 1 < len(children) and name_of(children[i + 1][1]) in FOLLOWERS:
                i += 1
                names.append(children[i][0])
            blocks[i] = names
        i += 1
    return blocks


def mosaic(maps: np.ndarray) -> tuple[Image.Image, int]:
    """(C, H, W) activations -> one RGB image of C tiles, and its column count."""
    c, h, w = maps.shape
    cols = math.ceil(math.sqrt(c * h / w))  # roughly square overall
    gap = GAP if h * w > 1 else 0  # 1x1 maps read better as one block of colours
    # Each channel to its own range shows every channel's pattern; a 1x1 map has no pattern, so
    # those (after global pooling, or LeNet's conv3) are scaled together to compare channels.
    axes = (1, 2) if h * w > 1 else (0, 1, 2)
    lo = maps.min(axis=axes, keepdims=True)
    span = maps.max(axis=axes, keepdims=True) - lo
    scaled = np.where(span > 1e-8, (maps - lo) / np.where(span > 1e-8, span, 1), 0.0)
    tiles = grid(scaled, cols)  # (rows, cols, H, W), NaN where the grid has no channel
    rgb = _CMAP[(np.nan_to_num(tiles) * 255).round().astype(np.uint8)]  # (rows, cols, H, W, 3)
    rgb[np.isnan(tiles)] = _GAP_RGB
    return Image.fromarray(tile_mosaic(rgb, gap, fill=np.array(_GAP_RGB, np.uint8)).astype(np.uint8)), cols


def _data_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _entry(layer: str, h: torch.Tensor) -> dict:
    maps = h[0].float().cpu().numpy()  # (C, H, W)
    shown = maps[:MAX_CHANNELS]
    img, cols = mosaic(shown)
    return {"layer": layer, "shape": list(maps.shape), "channels_shown": len(shown),
            "grid": [math.ceil(len(shown) / cols), cols], "png": _data_uri(img)}


@torch.inference_mode()
def feature_maps(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """One normalised input (1, C, H, W) -> per conv block: layers, shape, tile grid and a PNG data URI."""
    h = x.to(next(model.parameters()).device)
    if not isinstance(model, nn.Sequential):  # a pretrained backbone: its stages' outputs, one forward pass
        return _stage_maps(model, h)
    blocks = conv_blocks(model)
    out = []
    for i, mod in enumerate(model):
        h = mod(h)
        if i in blocks:
            out.append(_entry(" → ".join(blocks[i]), h))
        if i >= max(blocks, default=-1):
            break  # nothing after the last block is shown: skip the classifier head
    return out


def _stage_maps(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """A backbone's stage outputs, caught by forward hooks. Requests share the model and run in parallel
    threads: a hook keeps only the outputs of the forward pass its own request runs (a module runs in the
    thread that calls it), so another request passing meanwhile is not mixed in."""
    owner, found = threading.get_ident(), []
    hooks = [mod.register_forward_hook(lambda _m, _i, out, name=info.name: found.append((name, out))
                                       if threading.get_ident() == owner else None)
             for info, mod in map_layers(model)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return [_entry(name.removeprefix("body."), h) for name, h in found]
