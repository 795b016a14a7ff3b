"""A real two-class photo folder, made offline from the photographs scikit-image ships: grass vs gravel.

    python tests/photo_set.py OUT_DIR [--train 120] [--test 60] [--seed 0]

scikit-image's `grass.png` and `gravel.png` are 512x512 greyscale photographs of a lawn and of a gravel
path. Every sample is a crop of one of them: a random size (12 to 40 pixels a side, aspect 3:4 to 4:3),
a random place, rescaled by 0.7-1.6 and saved as a JPEG of quality 60-95 (one in eight as PNG), so the
folder has files of many sizes and encodings like a user's photos. Training crops come from the top
60% of each photograph and test crops from the bottom 40%: no test pixel was ever seen in training.
Small crops of two grainy grey textures are not easy: a logistic regression on frozen ImageNet features
gets a few percent of them wrong (docs/photos.md has the figures).

Layout: OUT_DIR/train/<class>/*.jpg and OUT_DIR/test/<class>/*.jpg, the layout `cnnlab train --data`
reads. The same seed writes the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("grass", "gravel")
TRAIN_ROWS = 0.6  # the top 60 % of each photograph gives the training crops, the rest the test crops
SIDE = (12, 40)  # crop side in pixels: small crops of two grainy textures are what makes it hard


def _source(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()  # (512, 512) uint8, shipped inside the wheel: no download


def _crop(a: np.ndarray, rows: tuple[int, int], rng: np.random.Generator, sides: tuple[int, int]
          ) -> Image.Image:
    side = int(rng.integers(sides[0], sides[1] + 1))
    aspect = float(rng.uniform(0.75, 4 / 3))
    h = min(rows[1] - rows[0], max(8, round(side / np.sqrt(aspect))))
    w = min(a.shape[1], max(8, round(side * np.sqrt(aspect))))
    top = int(rng.integers(rows[0], rows[1] - h + 1))
    left = int(rng.integers(0, a.shape[1] - w + 1))
    img = Image.fromarray(a[top:top + h, left:left + w])
    scale = float(rng.uniform(0.7, 1.6))
    return img.resize((max(8, round(w * scale)), max(8, round(h * scale))), Image.Resampling.LANCZOS)


def build(out: str | Path, n_train: int = 120, n_test: int = 60, seed: int = 0,
          sides: tuple[int, int] = SIDE) -> Path:
    """Write the folder (n_train and n_test images per class) and return its path; `sides`: the range of
    crop sides in pixels (larger crops make an easier set)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    for c in CLASSES:
        a = _source(c)
        cut = round(TRAIN_ROWS * a.shape[0])
        for part, n, rows in (("train", n_train, (0, cut)), ("test", n_test, (cut, a.shape[0]))):
            d = out / part / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = _crop(a, rows, rng, sides)
                if rng.random() < 1 / 8:
                    img.save(d / f"{c}_{i:03d}.png")
                else:
                    img.save(d / f"{c}_{i:03d}.jpg", quality=int(rng.integers(60, 96)))
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--train", type=int, default=120, help="training images per class")
    p.add_argument("--test", type=int, default=60, help="test images per class")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(build(a.out, a.train, a.test, a.seed))
