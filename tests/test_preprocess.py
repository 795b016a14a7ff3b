"""User images -> model input: photographed digits must look like MNIST and be read correctly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datafiles import _glyph
from helpers import cli
from PIL import Image

from cnnlab.data import open_image, to_model_pixels
from cnnlab.models import ModelMeta

MNIST_META = ModelMeta(spec={}, input_shape=(1, 28, 28), classes=[str(i) for i in range(10)], mean=[0.13],
                       std=[0.31], style="mnist")


def photographed_digit(digit: int, seed: int, size=(480, 360)) -> Image.Image:
    """Dark ink on uneven light paper, large and off-centre, with sensor noise: like a phone photo."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    paper = 215 + 25 * (xx / w) - 15 * (yy / h) + rng.normal(0, 4, (h, w))  # light gradient + noise
    glyph = _glyph(digit, int(rng.integers(1, 4))).rotate(rng.uniform(-8, 8), Image.Resampling.BILINEAR)
    glyph = glyph.crop(glyph.getbbox())
    scale = rng.uniform(2.2, 3.2)
    glyph = glyph.resize((int(glyph.width * scale), int(glyph.height * scale)), Image.Resampling.BILINEAR)
    ink = np.zeros((h, w))
    top = int(rng.integers(10, h - glyph.height - 10))
    left = int(rng.integers(10, w - glyph.width - 10))
    ink[top:top + glyph.height, left:left + glyph.width] = np.asarray(glyph) / 255.0
    img = paper * (1 - ink) + 40 * ink  # ink is dark grey, not pure black
    rgb = np.stack([img, img * 0.98, img * 0.95], axis=-1).clip(0, 255).astype(np.uint8)  # warm paper tint
    return Image.fromarray(rgb, "RGB")


def test_photo_of_digit_becomes_mnist_like():
    px = to_model_pixels(photographed_digit(7, seed=0), MNIST_META)[0]
    assert px.shape == (28, 28)
    # background black, ink bright, like MNIST
    assert px[0].max() == 0 and px[:, 0].max() == 0 and px.max() == pytest.approx(1.0, abs=0.05)
    ys, xs = np.nonzero(px > 0.05)
    # fitted in a 20x20 box ...
    assert max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) <= 21
    # ... and centred by centre of mass (within a pixel of the middle)
    cy, cx = (np.arange(28) @ px.sum(1)) / px.sum(), (np.arange(28) @ px.sum(0)) / px.sum()
    assert abs(cy - 13.5) < 1.0 and abs(cx - 13.5) < 1.0


def test_light_on_dark_and_dark_on_light_give_the_same_input():
    photo = photographed_digit(3, seed=1).convert("L")
    a = to_model_pixels(photo, MNIST_META)
    b = to_model_pixels(Image.fromarray(255 - np.asarray(photo)), MNIST_META)
    assert np.abs(a - b).mean() < 0.02


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "I;16", "1"])
def test_every_image_mode_is_accepted(mode, tmp_path):
    img = photographed_digit(4, seed=2).convert("L")
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img).astype(np.uint16) * 257)
    else:
        img = img.convert(mode)
    px = to_model_pixels(img, MNIST_META)
    assert px.shape == (1, 28, 28) and np.isfinite(px).all() and px.max() > 0.5


def test_transparent_drawing_keeps_its_strokes():
    """A canvas export: black strokes on a fully transparent background (not black on black)."""
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[40:160, 95:105] = (0, 0, 0, 255)  # a "1"
    px = to_model_pixels(Image.fromarray(rgba, "RGBA"), MNIST_META)[0]
    # the 120x10 bar scaled into the 20-pixel box: 20 x 1.67 pixels of ink, wherever the pixel grid cuts it
    assert px[0].max() == 0 and px.sum() == pytest.approx(20 * 10 / 6, rel=0.1) and px.max() > 0.7


def test_fit_and_resize_styles_keep_shape():
    photo = photographed_digit(5, seed=3)
    fit = to_model_pixels(photo, ModelMeta({}, (1, 28, 28), ["a"], [0.3], [0.3], style="fit"))
    assert fit.shape == (1, 28, 28)
    rgb = to_model_pixels(photo, ModelMeta({}, (3, 32, 32), ["a"], [0.5] * 3, [0.25] * 3, style="resize"))
    assert rgb.shape == (3, 32, 32) and rgb.max() <= 1.0


def test_open_image_refuses_non_images(tmp_path):
    from cnnlab.errors import UserError

    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(UserError, match="notes.png"):
        open_image(bad)


def test_predict_reads_photographed_digits(digits_run, tmp_path):
    """The issue's check: large, off-centre, dark-on-light digit photos, nearly all right."""
    files, truth = [], []
    for i in range(30):
        d = i % 10
        p = tmp_path / f"photo_{i}_{d}.jpg"
        photographed_digit(d, seed=100 + i).save(p, quality=85)
        files.append(str(p))
        truth.append(str(d))
    r = cli("predict", str(digits_run.path), *files, "--json", "--top-k", "3")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [o["file"] for o in out] == files
    right = sum(o["label"] == t for o, t in zip(out, truth))
    assert right >= 27, f"only {right}/30 photographed digits read correctly"
