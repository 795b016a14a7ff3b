"""A user's image -> the model's input, looking exactly like the training data did.

One code path for `cnnlab predict`, the HTTP API and the drawing page, so a digit drawn in the
browser is prepared like a PNG on disk. Three styles (chosen by the data set, stored in the model):

- "mnist":  handwritten digits. Grey, ink bright on dark, cropped to the ink, scaled so the ink fits a
            20x20 box keeping aspect, centred by centre of mass in 28x28 -- how MNIST was made.
- "fit":    Fashion-MNIST-like objects: grey, bright on dark, cropped and scaled to fill the frame.
- "resize": photos (CIFAR-10, image folders): resized to the model's size, colour kept, exactly as
            training folders are decoded (images.to_array, images.resize_array).

An image that already has the model's size is framed like the data set (a test image saved as a PNG):
for "mnist" and "fit" it is only turned grey and bright-on-dark; cropping or rescaling it again would
change the very pixels the model was trained on. Any other image is cleaned (ink.py) and framed here.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from PIL import Image

from . import ink
from .images import resize_array, to_array


class Preprocessing(Protocol):
    """What preparing an image needs to know about the model (a models.ModelMeta has all of it)."""

    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: list[float]  # per channel, in [0, 1] units
    std: list[float]
    style: str  # "mnist", "fit" or "resize"


MNIST_BOX = 20 / 28  # MNIST fits each digit's ink in a 20x20 box of the 28x28 field


def to_model_pixels(img: Image.Image, meta: Preprocessing) -> np.ndarray:
    """The image as the model sees it before normalisation: (C, H, W) float32 in [0, 1]."""
    c, h, w = meta.input_shape
    if meta.style not in ("mnist", "fit"):
        return _resized(img, c, h, w)
    g = ink.bright_on_dark(ink.grey(img))
    if g.shape != (h, w):
        g = _frame(ink.clean(g), h, w, by_mass=meta.style == "mnist")
    return np.repeat(g[None], c, axis=0)


def _resized(img: Image.Image, c: int, h: int, w: int) -> np.ndarray:
    a = to_array(img)  # (H, W) grey or (H, W, 3)
    if c == 1 and a.ndim == 3:
        a = np.asarray(Image.fromarray(a).convert("L"))
    a = resize_array(a, h, w).astype(np.float32) / 255.0
    if a.ndim == 2:
        return np.repeat(a[None], c, axis=0)
    return a.transpose(2, 0, 1).copy()


def _frame(g: np.ndarray, h: int, w: int, by_mass: bool) -> np.ndarray:
    """Ink on 0 -> an h x w field: the ink's longer side scaled to the MNIST box (by_mass) or to the whole
    field, centred by its centre of mass (MNIST) or by its box. Sub-pixel: the crop is resampled directly
    into place, so no rounding moves the digit by up to half a pixel."""
    rows, cols = np.flatnonzero(g.any(1)), np.flatnonzero(g.any(0))  # 10x faster than np.nonzero(g)
    if len(rows) == 0:
        return np.zeros((h, w), np.float32)
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = min(h, w) * (MNIST_BOX if by_mass else 1.0)
    scale = side / max(y1 - y0, x1 - x0)  # output pixels per source pixel
    if by_mass:
        mass = g.sum()
        cy = float(g.sum(1) @ np.arange(g.shape[0])) / mass + 0.5  # continuous coordinates
        cx = float(g.sum(0) @ np.arange(g.shape[1])) / mass + 0.5
    else:
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    # the source rectangle that lands on the field, padded with background wherever it leaves the image
    top, left = cy - h / 2 / scale, cx - w / 2 / scale
    bottom, right = cy + h / 2 / scale, cx + w / 2 / scale
    pad = int(np.ceil(max(0.0, -top, -left, bottom - g.shape[0], right - g.shape[1]))) + 1
    padded = np.pad(g, pad)
    box = (left + pad, top + pad, right + pad, bottom + pad)
    out = Image.fromarray(padded, "F").resize((w, h), Image.Resampling.BILINEAR, box=box)
    return np.asarray(out, dtype=np.float32).clip(0, 1)


def normalize(pixels: torch.Tensor | np.ndarray, meta: Preprocessing) -> torch.Tensor:
    """(…, C, H, W) in [0, 1] -> the normalised float tensor the model takes."""
    x = torch.as_tensor(pixels, dtype=torch.float32)
    mean = torch.tensor(meta.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(meta.std, dtype=torch.float32).view(-1, 1, 1)
    return (x - mean) / std


def prepare(img: Image.Image, meta: Preprocessing) -> torch.Tensor:
    """A decoded image -> (C, H, W) normalised model input."""
    return normalize(to_model_pixels(img, meta), meta)
