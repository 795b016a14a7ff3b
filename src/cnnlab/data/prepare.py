"""A user's image -> the model's input, looking exactly like the training data did.

One code path for `cnnlab predict`, the HTTP API and the drawing page, so a digit drawn in the
browser is prepared like a PNG on disk. Three styles (chosen by the data set, stored in the model):

- "mnist":  handwritten digits. Grey, ink bright on dark, cropped to the ink, scaled to fit a
            20x20 box keeping aspect, centred by centre of mass in 28x28 -- how MNIST was made.
- "fit":    Fashion-MNIST-like objects: grey, bright on dark, cropped and scaled to fill the frame.
- "resize": photos (CIFAR-10, image folders): resized to the model's size, colour kept.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from PIL import Image


class Preprocessing(Protocol):
    """What preparing an image needs to know about the model (a models.ModelMeta has all of it)."""

    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: list[float]  # per channel, in [0, 1] units
    std: list[float]
    style: str  # "mnist", "fit" or "resize"

def _grey(img: Image.Image) -> np.ndarray:
    """Any mode (RGBA, P, CMYK, 16-bit, ...) -> float32 grey in [0, 1], transparency resolved."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float32)
        lo, hi = float(a.min()), float(a.max())
        return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3]
        lum = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        # Transparent background: put the strokes on a background that contrasts with them.
        ink = lum[alpha > 0.5]
        bg = 0.0 if ink.size and ink.mean() > 0.5 else 1.0
        return alpha * lum + (1 - alpha) * bg
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def _bright_on_dark(g: np.ndarray) -> np.ndarray:
    """Make the background 0 and the ink/object up to 1, whatever the paper and pen were."""
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    bg = float(np.median(border))
    if bg > 0.5:  # dark ink on light paper: invert
        g, bg = 1.0 - g, 1.0 - bg
    g = np.clip(g - bg, 0, None)
    peak = float(g.max())
    if peak < 1e-3:
        return np.zeros_like(g)
    g = g / peak
    # Paper texture and shadows in photos sit well below the ink: drop them.
    return np.where(g < 0.15, 0.0, g).astype(np.float32)


def _crop_to_content(g: np.ndarray) -> np.ndarray:
    # The box is taken from clearly-ink pixels only, so stray paper noise far away cannot widen it.
    ys, xs = np.nonzero(g > 0.35)
    if len(ys) == 0:
        return g
    return g[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def _scale_into(g: np.ndarray, box: int) -> np.ndarray:
    """Resize so the longer side is `box`, keeping aspect (antialiased, like MNIST's own scaling)."""
    h, w = g.shape
    s = box / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(g).resize(size, Image.Resampling.LANCZOS), dtype=np.float32).clip(0, 1)


def _place(g: np.ndarray, h: int, w: int, by_mass: bool) -> np.ndarray:
    """Paste `g` into an h x w canvas, centred by centre of mass (MNIST) or by its box."""
    out = np.zeros((h, w), dtype=np.float32)
    gh, gw = g.shape
    if by_mass and g.sum() > 0:
        yy, xx = np.mgrid[0:gh, 0:gw]
        cy, cx = (yy * g).sum() / g.sum(), (xx * g).sum() / g.sum()
        top, left = round(h / 2 - cy - 0.5), round(w / 2 - cx - 0.5)
    else:
        top, left = (h - gh) // 2, (w - gw) // 2
    top, left = min(max(top, 0), h - gh), min(max(left, 0), w - gw)
    out[top: top + gh, left: left + gw] = g
    return out


def to_model_pixels(img: Image.Image, meta: Preprocessing) -> np.ndarray:
    """The image as the model sees it before normalisation: (C, H, W) float32 in [0, 1]."""
    c, h, w = meta.input_shape
    if meta.style in ("mnist", "fit"):
        g = _crop_to_content(_bright_on_dark(_grey(img)))
        if meta.style == "mnist":
            g = _place(_scale_into(g, max(1, round(min(h, w) * 20 / 28))), h, w, by_mass=True)
        else:
            g = _place(_scale_into(g, min(h, w)), h, w, by_mass=False)
        return np.repeat(g[None], c, axis=0)
    mode = "L" if c == 1 else "RGB"
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = Image.fromarray((_grey(img) * 255).astype(np.uint8))
    rgb = img.convert("RGBA").convert(mode) if "A" in img.mode or img.mode == "P" else img.convert(mode)
    a = np.asarray(rgb.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    return a[None] if c == 1 else a.transpose(2, 0, 1).copy()


def normalize(pixels: torch.Tensor | np.ndarray, meta: Preprocessing) -> torch.Tensor:
    """(…, C, H, W) in [0, 1] -> the normalised float tensor the model takes."""
    x = torch.as_tensor(pixels, dtype=torch.float32)
    mean = torch.tensor(meta.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(meta.std, dtype=torch.float32).view(-1, 1, 1)
    return (x - mean) / std


def prepare(img: Image.Image, meta: Preprocessing) -> torch.Tensor:
    """A decoded image -> (C, H, W) normalised model input."""
    return normalize(to_model_pixels(img, meta), meta)
