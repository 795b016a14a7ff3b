"""Data sets in MNIST's and CIFAR-10's own file formats, written from data that is on this machine offline.

The notes use MNIST (000, 002) and CIFAR-10 (001), which torchvision downloads. Where they are not on the
machine, the notebooks write stand-ins in exactly those file formats, so cnnlab reads them the way it reads
the real files (`cnnlab.train(data="mnist")` / `data="cifar10"` use the real ones when present):

- `digits_as_mnist`: the 1,797 real handwritten digits scikit-learn ships (8x8, 16 grey levels), scaled
  to 20x20 and centred by their centre of mass in 28x28, as MNIST was made; written as IDX files.
- `fashion_as_cifar`: Fashion-MNIST garments (Debian's dataset-fashion-mnist) at 32x32 in colour, each
  drawn in a random colour on a random background, so colour says nothing about the class and all three
  channels matter; written as CIFAR-10 python batches.
- `grass_and_gravel`: a folder of real photos in two classes, the layout of a user's own photos
  (`train/<class>/*.jpg`, `test/<class>/*.jpg`), cut from scikit-image's photographs of a lawn and of a
  gravel path. The tests and benchmarks build the same folder (tests/photo_set.py).
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, a: np.ndarray) -> None:
    """One IDX file, gzipped: 0, 0, 0x08 (unsigned bytes), the number of dimensions, each size as a
    big-endian uint32, then the values row by row."""
    a = np.ascontiguousarray(a, np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    path.write_bytes(gzip.compress(header + a.tobytes(), mtime=0))


def _mnist_style(img8: np.ndarray) -> np.ndarray:
    """An 8x8 digit (0..16) made as MNIST made its images: 20x20, centre of mass at the centre of 28x28."""
    a = np.asarray(Image.fromarray(np.uint8(img8 * 255 / 16)).resize((20, 20), Image.Resampling.BICUBIC),
                   np.float32)
    mass = a.sum() or 1.0
    cy, cx = a.sum(1) @ np.arange(20) / mass, a.sum(0) @ np.arange(20) / mass
    top, left = int(np.clip(round(13.5 - cy), 0, 8)), int(np.clip(round(13.5 - cx), 0, 8))
    out = np.zeros((28, 28), np.uint8)
    out[top:top + 20, left:left + 20] = np.clip(a, 0, 255)
    return out


def digits_as_mnist(folder: str | Path, test_fraction: float = 0.2, seed: int = 0) -> Path:
    """scikit-learn's handwritten digits as the four MNIST IDX files in `folder`; returns the folder."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x = np.stack([_mnist_style(im) for im in digits.images])
    xtr, xte, ytr, yte = train_test_split(x, digits.target, test_size=test_fraction, random_state=seed,
                                          stratify=digits.target)
    for part, xs, ys in (("train", xtr, ytr), ("t10k", xte, yte)):
        write_idx(d / f"{part}-images-idx3-ubyte.gz", xs)
        write_idx(d / f"{part}-labels-idx1-ubyte.gz", ys)
    return d


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = np.frombuffer(raw[4:4 + 4 * ndim], ">u4")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _tinted(x28: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 28, 28) grey garments -> (N, 3, 32, 32): padded to 32x32, ink and background in random colours."""
    x = np.pad(x28, ((0, 0), (2, 2), (2, 2))).astype(np.float32)[:, None] / 255  # (N, 1, 32, 32)
    ink, paper = rng.uniform(0, 1, (2, len(x), 3, 1, 1))
    return np.uint8(255 * (paper + (ink - paper) * x))


def fashion_as_cifar(folder: str | Path, n_train: int = 10000, n_test: int = 2000, seed: int = 0) -> Path:
    """Fashion-MNIST as CIFAR-10 python batches (data_batch_1..5, test_batch, batches.meta) in `folder`."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    parts = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        x = read_idx(FASHION / f"{part}-images-idx3-ubyte.gz")[:n]
        y = read_idx(FASHION / f"{part}-labels-idx1-ubyte.gz")[:n]
        parts[part] = (_tinted(x, rng).reshape(n, 3072), [int(v) for v in y])  # rows: 1024 R, 1024 G, 1024 B

    def batch(label: str, x: np.ndarray, y: list[int]) -> dict:
        # CIFAR-10's keys; the originals were pickled by Python 2, protocol 2, which Python 3 still writes
        return {b"batch_label": label.encode(), b"labels": y, b"data": x,
                b"filenames": [f"{i:05d}.png".encode() for i in range(len(y))]}

    (xs, ys) = parts["train"]
    for i, idx in enumerate(np.array_split(np.arange(len(ys)), 5), 1):
        blob = batch(f"training batch {i} of 5", xs[idx], [ys[j] for j in idx])
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(blob, protocol=2))
    (d / "test_batch").write_bytes(pickle.dumps(batch("testing batch 1 of 1", *parts["t10k"]), protocol=2))
    meta = {b"label_names": [c.encode() for c in classes], b"num_cases_per_batch": n_train // 5,
            b"num_vis": 3072}
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return d


PHOTO_CLASSES = ("grass", "gravel")
TRAIN_ROWS = 0.6  # the top 60 % of each photograph gives the training crops, the rest the test crops
SIDE = (12, 40)  # crop side in pixels: small crops of two grainy textures are what makes it hard


def _photograph(name: str) -> np.ndarray:
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


def grass_and_gravel(folder: str | Path, n_train: int = 120, n_test: int = 60, seed: int = 0,
                     sides: tuple[int, int] = SIDE) -> Path:
    """A photo folder, `n_train` and `n_test` photos per class, cut from scikit-image's 512x512 photographs
    `grass.png` and `gravel.png`; returns the folder.

    Each photo is a crop of a random size (`sides` pixels a side, aspect 3:4 to 4:3) at a random place,
    rescaled by 0.7-1.6 and saved as a JPEG of quality 60-95 (one in eight as PNG): files of many sizes
    and encodings, like a user's. Training crops come from the top 60% of each photograph and test crops
    from the bottom 40%, so no test pixel is ever seen in training. The same seed writes the same files.
    """
    out = Path(folder)
    rng = np.random.default_rng(seed)
    for c in PHOTO_CLASSES:
        a = _photograph(c)
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
