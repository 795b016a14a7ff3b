"""`cnnlab inspect`: every picture of what a trained network does, for one input, written to files.

Filters (filters.py), feature maps (feature_maps.py), saliency and Grad-CAM (attribution.py) and one
convolution by hand (conv_arithmetic.py), all computed from the run's real weights and one real input
(a test image, or the user's own prepared exactly as `cnnlab predict` prepares it). Layer names and
shapes come from the model's summary rows, so the pictures use the words and numbers of `cnnlab summary`;
which layers are drawn is models.parts' choice (a pretrained backbone: its first conv and its stages).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from ..data import normalize, open_image, to_model_pixels
from ..errors import UserError
from ..models import filter_layers, map_layers
from .attribution import attribution_figure
from .conv_arithmetic import arithmetic_figure
from .feature_maps import feature_map_figure, feature_maps
from .figures import save_figure
from .filters import filter_figure

if TYPE_CHECKING:
    from ..run import Run


def inspection_input(run: Run, image: str | Path | None = None, index: int = 0
                     ) -> tuple[np.ndarray, int | None, str]:
    """(pixels (C, H, W) in [0, 1], the true class or None, a caption): `image` (any picture, prepared like
    `cnnlab predict`) or test image number `index`."""
    if image is not None:
        pixels = to_model_pixels(open_image(image), run.meta)
        return pixels, None, f"your image {Path(image).name}"
    test = run.test_set()
    if not 0 <= index < len(test.y):
        raise UserError(f"--index {index}: the test set has {len(test.y)} images; give 0..{len(test.y) - 1}")
    true = int(test.y[index])
    caption = f"test image #{index} (true: {run.meta.classes[true]})"
    return test.x[index].float().div(255).numpy(), true, caption


def check_layer(layer: str | None, layers: list, kind: str) -> None:
    """UserError unless `layer` is None or names one of `layers` ((summary row, module) pairs)."""
    names = [i.name for i, _ in layers]
    if layer is not None and layer not in names:
        raise UserError(f"--layer {layer}: not a {kind} layer of this model; choose one of "
                        f"{', '.join(names)}")


def filter_figures(run: Run, layer: str | None = None) -> list[Figure]:
    """Every conv layer's filters (or one layer's), as filters_<conv>.png draws them."""
    convs = filter_layers(run.model)
    check_layer(layer, convs, "conv")
    return [filter_figure(info, conv, first=n == 0) for n, (info, conv) in enumerate(convs)
            if layer in (None, info.name)]


def feature_map_figures(run: Run, image: str | Path | None = None, index: int = 0,
                        layer: str | None = None) -> list[Figure]:
    """Every conv/pool layer's output (or one layer's) for `image` or test image `index`."""
    check_layer(layer, map_layers(run.model), "conv/pool")
    pixels, _, caption = inspection_input(run, image, index)
    maps = feature_maps(run.model, normalize(pixels, run.meta))
    return [feature_map_figure(info, fmap, pixels, caption) for info, fmap in maps
            if layer in (None, info.name)]


def save_inspection(run: Run, out_dir: str | Path | None = None, image: str | Path | None = None,
                    index: int = 0, layer: str | None = None, only_missing: bool = False) -> list[Path]:
    """Write filters_<conv>.png, feature_maps_<layer>.png, attribution.png and conv_arithmetic.png.

    The input is `image` (any picture, prepared like `cnnlab predict`) or test image number `index`.
    `layer` limits filters and feature maps to that layer; `only_missing` skips pictures already there.
    """
    model, meta = run.model, run.meta
    out = Path(out_dir) if out_dir is not None else run.path / "inspect"
    out.mkdir(parents=True, exist_ok=True)
    check_layer(layer, map_layers(model), "conv/pool")
    pixels, true, caption = inspection_input(run, image, index)
    x = normalize(pixels, meta)
    paths: list[Path] = []

    def want(name: str) -> Path | None:
        p = out / name
        if only_missing and p.is_file():
            paths.append(p)
            return None
        return p

    convs = filter_layers(model)
    for n, (info, conv) in enumerate(convs):
        if layer in (None, info.name) and (p := want(f"filters_{info.name}.png")):
            paths.append(save_figure(filter_figure(info, conv, first=n == 0), p, tight=True))
    for info, fmap in feature_maps(model, x):
        if layer in (None, info.name) and (p := want(f"feature_maps_{info.name}.png")):
            paths.append(save_figure(feature_map_figure(info, fmap, pixels, caption), p, tight=True))
    if layer is None:
        if p := want("attribution.png"):
            paths.append(save_figure(attribution_figure(model, x, pixels, meta.classes, true, caption), p,
                                     tight=True))
        if p := want("conv_arithmetic.png"):
            paths.append(save_figure(arithmetic_figure(model, x, pixels, caption), p, tight=True))
    return paths
