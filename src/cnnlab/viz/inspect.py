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


def save_inspection(run: Run, out_dir: str | Path | None = None, image: str | Path | None = None,
                    index: int = 0, layer: str | None = None, only_missing: bool = False) -> list[Path]:
    """Write filters_<conv>.png, feature_maps_<layer>.png, attribution.png and conv_arithmetic.png.

    The input is `image` (any picture, prepared like `cnnlab predict`) or test image number `index`.
    `layer` limits filters and feature maps to that layer; `only_missing` skips pictures already there.
    """
    model, meta = run.model, run.meta
    out = Path(out_dir) if out_dir is not None else run.path / "inspect"
    out.mkdir(parents=True, exist_ok=True)
    spatial = map_layers(model)
    if layer is not None and layer not in {i.name for i, _ in spatial}:
        raise UserError(f"--layer {layer}: not a conv/pool layer of this model; choose one of "
                        f"{', '.join(i.name for i, _ in spatial)}")
    if image is not None:
        pixels = to_model_pixels(open_image(image), meta)  # (C, H, W) in [0, 1]
        true, caption = None, f"your image {Path(image).name}"
    else:
        test = run.test_set()
        if not 0 <= index < len(test.y):
            raise UserError(f"--index {index}: the test set has {len(test.y)} images; "
                            f"give 0..{len(test.y) - 1}")
        pixels = test.x[index].float().div(255).numpy()
        true = int(test.y[index])
        caption = f"test image #{index} (true: {meta.classes[true]})"
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
