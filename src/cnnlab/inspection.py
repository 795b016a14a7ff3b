"""See inside a trained network: its filters, its feature maps, what it looks at, and one convolution by hand.

Every picture is computed from the run's real weights and one real input (a test image or the user's
own, prepared by `preprocess.prepare` exactly as `cnnlab predict` does). Layer names and shapes come
from `model.info`, so the pictures use the words and numbers of `cnnlab summary`.
The convolution by hand is its own concept, in `conv_arithmetic.py`; `save_inspection` writes it too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: works on servers and in CI with no display
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .conv_arithmetic import (
    CONV,
    ConvArithmetic,
    arithmetic_figure,
    axis_off,
    conv_arithmetic,
    layers_of,
    show_image,
)
from .errors import UserError
from .preprocess import normalize
from .spec import LayerInfo
from .summary import fmt_shape

if TYPE_CHECKING:
    from .run import Run

# One convolution by hand has its own module (conv_arithmetic.py); its names are re-exported here so
# `from cnnlab.inspection import conv_arithmetic` keeps working.
__all__ = ["CONV", "MAX_MAPS", "POOL", "ConvArithmetic", "arithmetic_figure", "attribution_figure", "attributions",
           "conv_arithmetic", "feature_map_figure", "feature_maps", "filter_figure", "filter_tiles", "gradcam_layer",
           "layers_of", "save_inspection"]

POOL = ("MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")
MAX_MAPS = 64  # feature-map channels drawn per layer; more would make tiles too small to read


# --- filters ---------------------------------------------------------------------------------------------

def _mosaic(tiles: np.ndarray, gap: int = 1) -> np.ndarray:
    """(R, N, h, w[, 3]) tiles -> one (R·(h+gap), N·(w+gap)) image; gaps are NaN (grey) or white (RGB).

    One image per band instead of one matplotlib axes per tile: hundreds of axes take seconds to draw."""
    r, n, h, w = tiles.shape[:4]
    img = np.full((r * (h + gap) - gap, n * (w + gap) - gap, *tiles.shape[4:]), 1.0 if tiles.ndim == 5 else np.nan)
    for i in range(r):
        for j in range(n):
            img[i * (h + gap): i * (h + gap) + h, j * (w + gap): j * (w + gap) + w] = tiles[i, j]
    return img


def _label_tiles(ax, tiles: np.ndarray, cols: list[str], rows: list[str] | None, gap: int = 1) -> None:
    r, n, h, w = tiles.shape[:4]
    ax.set_xticks([j * (w + gap) + (w - 1) / 2 for j in range(n)], cols, fontsize=7)
    ax.set_yticks([i * (h + gap) + (h - 1) / 2 for i in range(r)] if rows else [], rows or [], fontsize=7)
    ax.tick_params(length=0, labeltop=True, labelbottom=False, pad=1)
    for sp in ax.spines.values():
        sp.set_visible(False)


def filter_tiles(conv: nn.Conv2d, first: bool) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """What `filter_figure` draws: tiles (out, rows, kh, kw), a name per row, and for big layers the
    input channel each filter's tile was taken from (its strongest slice, by L2 norm), else None."""
    w = conv.weight.detach().float().cpu().numpy()  # (out, in/groups, kh, kw)
    out, cin = w.shape[:2]
    if not first and out * cin > 256:
        pick = np.sqrt((w ** 2).sum((2, 3))).argmax(1)
        return w[np.arange(out), pick][:, None], [], pick
    names = ["R", "G", "B"] if first and cin == 3 else [f"in {c}" for c in range(cin)]
    return w, names if cin > 1 else [], None


def filter_figure(info: LayerInfo, conv: nn.Conv2d, first: bool) -> Figure:
    """Every filter of a conv layer. First layer: one tile per input channel (plus colour for RGB);
    deeper layers: the full filter x input-channel matrix when small, else each filter's strongest slice."""
    tiles, row_names, pick = filter_tiles(conv, first)
    out, rows, kh, kw = tiles.shape
    rgb = first and conv.in_channels == 3
    ncols = min(out, 16 if rows > 1 else max(6, math.ceil(math.sqrt(2 * out))))
    bands = math.ceil(out / ncols)
    lim = float(np.abs(tiles).max()) or 1.0
    tile = 0.5 if rows * out > 32 else 0.9
    heights = [rows, 1] * bands if rgb else [rows] * bands
    fig, axes = plt.subplots(len(heights), 1, figsize=(2.2 + tile * ncols, 1.3 + tile * 1.25 * sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")
    im = None
    for b in range(bands):
        sel = range(b * ncols, min(out, (b + 1) * ncols))
        band = np.full((rows, ncols, kh, kw), np.nan)
        band[:, :len(sel)] = tiles[list(sel)].transpose(1, 0, 2, 3)
        labels = [f"#{o}" + (f"←{pick[o]}" if pick is not None else "") for o in sel] + [""] * (ncols - len(sel))
        ax = axes[b * (1 + rgb), 0]
        im = ax.imshow(_mosaic(band), cmap=cmap, vmin=-lim, vmax=lim)
        ax.set_gid("filters")
        _label_tiles(ax, band, labels, row_names)
        if rgb:  # the filter as a colour patch: the colour pattern that excites it most
            f = tiles[list(sel)].transpose(0, 2, 3, 1)
            lo, hi = f.min((1, 2, 3), keepdims=True), f.max((1, 2, 3), keepdims=True)
            col = np.ones((1, ncols, kh, kw, 3))
            col[0, :len(sel)] = (f - lo) / np.maximum(hi - lo, 1e-12)
            ax2 = axes[b * 2 + 1, 0]
            ax2.imshow(_mosaic(col))
            _label_tiles(ax2, col, [""] * ncols, ["RGB"])
    w = conv.weight
    what = ("tile = the filter's weights for each input channel" if first else
            "tile = each filter's strongest input-channel slice (#filter←channel)" if pick is not None else
            "rows = input channels, columns = filters")
    fig.suptitle(f"{info.name} ({info.type} {info.args})\n{out} filters of "
                 f"{w.shape[1]}x{kh}x{kw} weights — {what}", fontsize=10)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.04, pad=0.02, label="weight (red +, blue −)")
    return fig


# --- feature maps ----------------------------------------------------------------------------------------

@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor) -> list[tuple[LayerInfo, torch.Tensor]]:
    """The output of every conv/pool layer for one normalised input x (C, H, W): (summary row, (C, H, W))."""
    found: list[tuple[LayerInfo, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out, info=info: found.append((info, out[0].detach().cpu())))
             for info, m in layers_of(model, CONV + POOL)]
    was = model.training
    try:
        model.eval()
        model(x[None].to(next(model.parameters()).device))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return found


def feature_map_figure(info: LayerInfo, fmap: torch.Tensor, pixels: np.ndarray, caption: str) -> Figure:
    """One layer's output channels beside the input image, on one colour scale (a dead channel looks dead)."""
    a = fmap.float().numpy()
    c, h, w = a.shape
    shown = min(c, MAX_MAPS)
    head = f"{info.name} ({info.type} {info.args}): output {fmt_shape(a.shape)}"
    if h * w == 1:  # 1x1 maps are single numbers: a bar per channel reads better than 1-pixel tiles
        fig, (ax0, ax) = plt.subplots(1, 2, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1, 5]})
        show_image(ax0, pixels)
        ax0.set_title(caption, fontsize=8)
        ax.bar(range(c), a[:, 0, 0], color=np.where(a[:, 0, 0] >= 0, "tab:red", "tab:blue"))
        ax.set_xlabel("channel")
        ax.set_ylabel("activation")
        ax.set_title(f"{head} — {c} maps of 1x1, one value each", fontsize=10)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return fig
    ncols = min(shown, max(3, math.ceil(math.sqrt(2 * shown))))
    nrows = math.ceil(shown / ncols)
    t = 1.2 if h >= 8 else 0.8
    fig = plt.figure(figsize=(3.5 + t * ncols, 1.2 + max(2.4, 1.15 * t * nrows)))
    gs = fig.add_gridspec(nrows, 2, width_ratios=[3.0, t * ncols])
    ax0 = fig.add_subplot(gs[:, 0])
    show_image(ax0, pixels)
    ax0.set_title(caption, fontsize=8)
    lo, hi = float(a[:shown].min()), float(a[:shown].max())
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    axes, im = [], None
    for r in range(nrows):
        sel = range(r * ncols, min(shown, (r + 1) * ncols))
        band = np.full((1, ncols, h, w), np.nan)
        band[0, :len(sel)] = a[list(sel)]
        ax = fig.add_subplot(gs[r, 1])
        im = ax.imshow(_mosaic(band), cmap=cmap, vmin=lo, vmax=hi)
        ax.set_gid("feature-maps")
        _label_tiles(ax, band, [f"ch {k}" for k in sel] + [""] * (ncols - len(sel)), None)
        axes.append(ax)
    more = f" (first {shown} of {c} channels)" if shown < c else ""
    fig.suptitle(f"{head}{more}\ninput {fmt_shape(info.in_shape)}; one colour scale for all channels", fontsize=10)
    fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02, label="activation")
    return fig


# --- saliency and Grad-CAM -------------------------------------------------------------------------------

def gradcam_layer(model: nn.Module) -> tuple[LayerInfo, nn.Module]:
    """The last conv layer that still has a spatial map (>1x1): Grad-CAM on a 1x1 map would be one flat value."""
    convs = layers_of(model, CONV)
    if not convs:
        raise UserError(f"model {model.spec.get('name')!r} has no Conv2d layer: Grad-CAM needs one")
    spatial = [(i, m) for i, m in convs if math.prod(i.out_shape[1:]) > 1]
    return (spatial or convs)[-1]


def attributions(model: nn.Module, x: torch.Tensor, target: int) -> dict[str, np.ndarray]:
    """Saliency |d score / d pixel| (max over channels) and Grad-CAM upsampled to the input, both (H, W)."""
    from captum.attr import LayerAttribution, LayerGradCam, Saliency

    model.eval()
    inp = x[None].clone().requires_grad_(True)
    sal = Saliency(model).attribute(inp, target=target, abs=True)[0].amax(0)
    _, layer = gradcam_layer(model)
    cam = LayerGradCam(model, layer).attribute(inp, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[1:]), interpolate_mode="bilinear")[0, 0]
    return {"saliency": sal.detach().cpu().numpy(), "gradcam": cam.detach().cpu().numpy()}


def attribution_figure(model: nn.Module, x: torch.Tensor, pixels: np.ndarray, classes: list[str],
                       true: int | None, caption: str) -> Figure:
    """Rows: the predicted class and the true one (or the runner-up when the truth is unknown)."""
    with torch.no_grad():
        prob = torch.softmax(model.eval()(x[None]), 1)[0]
    order = prob.argsort(descending=True).tolist()
    pred = order[0]
    targets = [(pred, "predicted")]
    if true is None:
        targets.append((order[1], "runner-up"))
    elif true != pred:
        targets.append((true, "true"))
    info, _ = gradcam_layer(model)
    fig, axes = plt.subplots(len(targets), 3, figsize=(9.5, 3.3 * len(targets) + 0.6), squeeze=False)
    grey = pixels.mean(0)
    for r, (t, why) in enumerate(targets):
        maps = attributions(model, x, t)
        name = f"{why} class '{classes[t]}' (p = {prob[t]:.2f})"
        show_image(axes[r, 0], pixels)
        axes[r, 0].set_title(caption if r == 0 else "", fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=9)
        panels = [("saliency", "hot", "saliency: |∂ score / ∂ pixel|"),
                  ("gradcam", "jet", f"Grad-CAM at {info.name} ({fmt_shape(info.out_shape)}), upsampled")]
        for c, (key, cmap, what) in enumerate(panels):
            m = maps[key]
            m = m / m.max() if m.max() > 0 else m
            ax = axes[r, c + 1]
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            im = ax.imshow(m, cmap=cmap, alpha=0.55, vmin=0, vmax=1)
            ax.set_title(f"{what}\nfor '{classes[t]}'", fontsize=8)
            axis_off(ax)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="relative importance")
    if true is not None and true == pred:
        fig.text(0.5, 0.005, "the prediction is correct: predicted = true class", ha="center", fontsize=9)
    fig.suptitle("What the model looks at (bright = raises that class's score most)", fontsize=11)
    fig.tight_layout()
    return fig


# --- everything, to files ---------------------------------------------------------------------------------

def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def save_inspection(run: Run, out_dir: str | Path | None = None, image: str | Path | None = None,
                    index: int = 0, layer: str | None = None, only_missing: bool = False) -> list[Path]:
    """Write filters_<conv>.png, feature_maps_<layer>.png, attribution.png and conv_arithmetic.png.

    The input is `image` (any picture, prepared like `cnnlab predict`) or test image number `index`.
    `layer` limits filters and feature maps to that layer; `only_missing` skips pictures already there.
    """
    from .mistakes import load_test_set
    from .preprocess import open_image, to_model_pixels

    model, meta = run.model, run.meta
    out = Path(out_dir) if out_dir is not None else run.path / "inspect"
    out.mkdir(parents=True, exist_ok=True)
    spatial = layers_of(model, CONV + POOL)
    if layer is not None and layer not in {i.name for i, _ in spatial}:
        raise UserError(f"--layer {layer}: not a conv/pool layer of this model; choose one of "
                        f"{', '.join(i.name for i, _ in spatial)}")
    if image is not None:
        pixels = to_model_pixels(open_image(image), meta)  # (C, H, W) in [0, 1]
        true, caption = None, f"your image {Path(image).name}"
    else:
        test = load_test_set(run)
        if not 0 <= index < len(test.y):
            raise UserError(f"--index {index}: the test set has {len(test.y)} images; give 0..{len(test.y) - 1}")
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

    convs = layers_of(model, CONV)
    for n, (info, conv) in enumerate(convs):
        if layer in (None, info.name) and (p := want(f"filters_{info.name}.png")):
            paths.append(_save(filter_figure(info, conv, first=n == 0), p))
    for info, fmap in feature_maps(model, x):
        if layer in (None, info.name) and (p := want(f"feature_maps_{info.name}.png")):
            paths.append(_save(feature_map_figure(info, fmap, pixels, caption), p))
    if layer is None:
        if p := want("attribution.png"):
            paths.append(_save(attribution_figure(model, x, pixels, meta.classes, true, caption), p))
        if p := want("conv_arithmetic.png"):
            paths.append(_save(arithmetic_figure(model, x, pixels, caption), p))
    return paths
