"""Render data-set digits as a user's phone photo of them would look (for tests and benchmarks).

    from photos import photograph
    photograph(digit_28x28_uint8, seed) -> JPEG bytes

What a photo of a digit written on paper adds, each drawn at random per image (seeded):

- size and place: the 28x28 field is enlarged 8-13x with a smooth (bicubic) filter, so a digit of
  MNIST's 20 pixels is 160-260 pixels tall in a 512x384 picture, and put anywhere in it (off-centre);
- ink and paper: dark ink (grey level 25-70) on light paper (190-235), a warm tint;
- uneven light: a linear fall-off of up to 30 levels across the page and a vignette darkening the
  corners by up to 25;
- focus and sensor: a Gaussian blur (sigma 0.8-2.5 pixels), sensor noise (sigma 2-6 grey levels);
- the file: JPEG at quality 75-92.

Nothing else changes the digit (no rotation or slant), so a photo shows the same digit as its tensor and
any accuracy lost on photos is lost by preparing them.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

SIZE = (512, 384)  # (W, H) of the photo: small for a phone, large for a 28x28 digit


def photograph(digit: np.ndarray, seed: int, size: tuple[int, int] = SIZE) -> bytes:
    """A (28, 28) uint8 white-on-black digit -> JPEG bytes of dark ink on light, unevenly lit paper."""
    rng = np.random.default_rng(seed)
    w, h = size
    side = min(round(digit.shape[0] * rng.uniform(8, 13)), h)
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float32) / 255
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    cover = np.zeros((h, w), np.float32)
    cover[top:top + side, left:left + side] = ink.clip(0, 1)

    yy, xx = np.ogrid[0:h, 0:w]
    yy, xx = (yy / h - 0.5).astype(np.float32), (xx / w - 0.5).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) * rng.uniform(0, 30)
    corner = (xx ** 2 + yy ** 2) / 0.5  # 0 in the middle, 1 in the corners
    paper = rng.uniform(190, 235) + ramp - rng.uniform(0, 25) * corner
    shade = paper * (1 - cover) + rng.uniform(25, 70) * cover
    shade = ndimage.gaussian_filter(shade, rng.uniform(0.8, 2.5))  # out of focus
    shade += rng.standard_normal(shade.shape, np.float32) * rng.uniform(2, 6)  # sensor noise
    rgb = np.stack([shade, shade * 0.97, shade * 0.92], axis=-1).clip(0, 255).astype(np.uint8)  # warm tint
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=int(rng.integers(75, 93)))
    return buf.getvalue()
