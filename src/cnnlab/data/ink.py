"""A photo or drawing of a digit or object -> its ink, bright on a background of exactly 0.

Used by prepare.py for the "mnist" and "fit" styles on images that are not yet framed like the data
set. The steps undo what a camera and a sheet of paper add, each estimated from the image itself, so a
clean drawing passes through unchanged:

    grey            any mode; transparency resolved against the strokes' own colour
    bright_on_dark  dark ink on light paper is inverted
    clean           uneven light (a smooth surface fitted to the border), noise (a floor from the
                    background's own spread), specks (small separate blobs) -> ink in [0, 1]
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .images import to_array

WORK_SIDE = 512  # larger images are box-averaged down first: the model sees 20-28 pixels of it anyway
NOISE_SIGMAS = 4.0  # background pixels stay below mean + 4 sigma: about 3 in 100,000 pass as ink
SPECK = 0.02  # a separate blob holding less than 2% of the ink is dirt or noise, not part of the object


def grey(img: Image.Image) -> np.ndarray:
    """Any mode (RGBA, P, CMYK, 16-bit, ...) -> (H, W) float32 grey in [0, 1], transparency resolved."""
    background = "white"
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        strokes = rgba[..., :3][rgba[..., 3] > 0.5] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        # A canvas export: strokes on a transparent background. Lay them on a background they contrast with.
        background = "black" if strokes.size and strokes.mean() > 0.5 else "white"
    a = to_array(img, background)
    if a.ndim == 3:
        a = np.asarray(Image.fromarray(a).convert("L"))
    return a.astype(np.float32) / 255.0


def bright_on_dark(g: np.ndarray) -> np.ndarray:
    """Invert an image whose border (its background) is mostly light: ink ends up bright on dark."""
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    return 1.0 - g if float(np.median(border)) > 0.5 else g


def clean(g: np.ndarray) -> np.ndarray:
    """(H, W) bright-on-dark grey -> ink in [0, 1] on exactly 0 (H and W at most WORK_SIDE)."""
    g = _shrink(g)
    surface, sigma = _background(g)
    g = g - surface
    floor = NOISE_SIGMAS * sigma
    ink = g[g > floor]
    if ink.size == 0:
        return np.zeros_like(g)
    # The ink's own level (not the brightest pixel, which noise can push up) becomes 1, as in MNIST.
    peak = float(np.percentile(ink, 99))
    if peak - floor < 0.05:  # no contrast left: a blank page
        return np.zeros_like(g)
    g = np.clip((g - floor) / (peak - floor), 0.0, 1.0).astype(np.float32)
    return _drop_specks(g)


def _shrink(g: np.ndarray) -> np.ndarray:
    """Box-average by a whole factor so the longer side is at most WORK_SIDE (ink coverage is kept)."""
    factor = -(-max(g.shape) // WORK_SIDE)
    return g if factor == 1 else np.asarray(Image.fromarray(g, "F").reduce(factor), dtype=np.float32)


def _background(g: np.ndarray) -> tuple[np.ndarray, float]:
    """The background as a smooth surface, and the spread of the background pixels around it.

    A quadratic a + bx + cy + dx^2 + exy + fy^2 (light falling off across a page, a vignette) is fitted
    by least squares to a ring along the border, which is background unless the object touches it; the
    fit is repeated without the pixels far above it (ink reaching the border). Sigma is the robust
    (median absolute deviation) spread of the remaining ring pixels."""
    h, w = g.shape
    m = max(1, round(0.08 * min(h, w)))
    strips = (g[:m], g[h - m:], g[:, :m], g[:, w - m:])
    if min(s.min() for s in strips) == max(s.max() for s in strips):
        # a canvas or a clean scan: the whole ring is one value, nothing to fit (2 ms a request saved)
        return np.full((h, w), g[0, 0], np.float32), 0.0
    ring = np.ones((h, w), bool)
    ring[m:h - m, m:w - m] = False
    ys, xs = np.nonzero(ring)
    if len(ys) > 4000:  # a few thousand points fix six coefficients well
        step = len(ys) // 4000 + 1
        ys, xs = ys[::step], xs[::step]
    yy, xx = (ys / h - 0.5), (xs / w - 0.5)
    basis = np.stack([np.ones_like(yy), xx, yy, xx * xx, xx * yy, yy * yy], axis=1)
    z = g[ys, xs].astype(np.float64)
    keep = np.ones(len(z), bool)
    for _ in range(3):
        # the 6x6 normal equations, summed by einsum: a threaded BLAS least-squares call on a few thousand
        # points was measured 5x slower on a busy 2-core machine (its threads wait for each other)
        b = basis[keep]
        coef = np.linalg.lstsq(np.einsum("ni,nj->ij", b, b), np.einsum("ni,n->i", b, z[keep]), rcond=None)[0]
        resid = z - basis @ coef
        sigma = 1.4826 * float(np.median(np.abs(resid[keep] - np.median(resid[keep]))))
        keep = resid < max(3 * sigma, 1 / 255)
        if keep.sum() < 6:
            break
    gy = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]  # (h, 1)
    gx = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]  # (1, w)
    c = coef.astype(np.float32)
    surface = (c[0] + c[2] * gy + c[5] * gy * gy) + (c[1] + c[3] * gx) * gx + c[4] * gy * gx  # (h, w)
    return surface, sigma


def _drop_specks(g: np.ndarray) -> np.ndarray:
    """Zero the separate blobs (8-connected) that hold less than SPECK of the ink."""
    from scipy import ndimage  # imported here to keep `cnnlab --help` fast

    labels, n = ndimage.label(g > 0, structure=np.ones((3, 3)))
    if n <= 1:
        return g
    mass = ndimage.sum_labels(g, labels, index=np.arange(1, n + 1))
    small = np.flatnonzero(mass < SPECK * mass.sum()) + 1
    g[np.isin(labels, small)] = 0.0
    return g
