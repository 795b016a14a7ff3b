"""Write tiny data sets in their exact published formats, and synthesise MNIST-like digits (for tests).

    from datafiles import write_idx, write_cifar, write_image_folder, mnist_like_digits
"""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _np(a, dtype=np.uint8) -> np.ndarray:
    a = a.numpy() if hasattr(a, "numpy") else np.asarray(a)
    return np.ascontiguousarray(a, dtype=dtype)


def idx_bytes(a) -> bytes:
    """IDX: magic 0x0000080N (uint8, N dims), N big-endian uint32 sizes, then the values row-major."""
    a = _np(a)
    return bytes([0, 0, 0x08, a.ndim]) + np.asarray(a.shape, ">u4").tobytes() + a.tobytes()


def write_idx(dir, train_x, train_y, test_x, test_y, gz: bool = False) -> Path:
    """The four MNIST files; images (N, H, W) or (N, 1, H, W) uint8, labels (N,) 0..255."""
    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    for part, x, y in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        x = _np(x)
        x = x.reshape(x.shape[0], *x.shape[-2:])  # drop a channel axis of 1
        for stem, a in ((f"{part}-images-idx3-ubyte", x), (f"{part}-labels-idx1-ubyte", _np(y))):
            data = idx_bytes(a)
            if gz:
                (d / f"{stem}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (d / stem).write_bytes(data)
    return d


def py2_pickle(obj) -> bytes:
    """Pickle obj as Python 2's cPickle did for the real CIFAR-10 batches: protocol 2, str as BINSTRING
    (read back as bytes with encoding="bytes"), numpy arrays through numpy.core.multiarray._reconstruct."""
    out = bytearray(b"\x80\x02")
    _emit(obj, out)
    return bytes(out + b".")


def _emit(obj, out: bytearray) -> None:
    if isinstance(obj, str):
        obj = obj.encode("latin1")
    if obj is None:
        out += b"N"
    elif isinstance(obj, bool):
        out += b"\x88" if obj else b"\x89"
    elif isinstance(obj, (int, np.integer)):
        out += b"J" + struct.pack("<i", int(obj))
    elif isinstance(obj, bytes):
        out += (b"U" + bytes([len(obj)]) if len(obj) < 256 else b"T" + struct.pack("<i", len(obj))) + obj
    elif isinstance(obj, tuple):
        out += b"("
        for v in obj:
            _emit(v, out)
        out += b"t"
    elif isinstance(obj, list):
        out += b"]("
        for v in obj:
            _emit(v, out)
        out += b"e"
    elif isinstance(obj, dict):
        out += b"}("
        for k, v in obj.items():
            _emit(k, out)
            _emit(v, out)
        out += b"u"
    elif isinstance(obj, np.ndarray):  # numpy 1's ndarray.__reduce__, as the originals hold
        out += b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n"  # _reconstruct(ndarray, (0,), 'b')
        _emit((0,), out)
        _emit(b"b", out)
        out += b"tR("  # then BUILD with (1, shape, dtype, fortran, data)
        _emit(1, out)
        _emit(obj.shape, out)
        out += b"cnumpy\ndtype\n"
        _emit((obj.dtype.str[1:], 0, 1), out)
        out += b"R"
        _emit((3, obj.dtype.str[0], None, None, None, -1, -1, 0), out)
        out += b"b"
        _emit(False, out)
        _emit(np.ascontiguousarray(obj).tobytes(), out)
        out += b"tb"
    else:
        raise TypeError(f"py2_pickle: cannot write {type(obj).__name__}")


def write_cifar(dir, train_x, train_y, test_x, test_y, label_names: list[str] | None = None,
                n_batches: int = 5) -> Path:
    """data_batch_1..n, test_batch and batches.meta; images (N, 3, 32, 32) or (N, 3072) uint8."""
    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    names = label_names or CIFAR_CLASSES
    train_x, test_x = _np(train_x).reshape(-1, 3072), _np(test_x).reshape(-1, 3072)
    chunks = np.array_split(np.arange(len(train_x)), n_batches)
    for i, idx in enumerate(chunks, 1):
        label = f"training batch {i} of {n_batches}"
        _write_batch(d / f"data_batch_{i}", label, train_x[idx], _np(train_y)[idx])
    _write_batch(d / "test_batch", "testing batch 1 of 1", test_x, _np(test_y))
    meta = {"num_cases_per_batch": len(chunks[0]), "label_names": list(names), "num_vis": 3072}
    (d / "batches.meta").write_bytes(py2_pickle(meta))
    return d


def _write_batch(path: Path, label: str, x: np.ndarray, y: np.ndarray) -> None:
    batch = {"batch_label": label, "labels": [int(v) for v in y], "data": x,
             "filenames": [f"image_{i:05d}.png" for i in range(len(x))]}
    path.write_bytes(py2_pickle(batch))


def write_image_folder(dir, x, y, classes: list[str], test_x=None, test_y=None, ext: str = "png") -> Path:
    """<class>/NNNNN.ext, or train/<class>/... and test/<class>/... when test_x is given.

    Images (N, H, W), (N, 1, H, W) or (N, 3, H, W) uint8."""
    d = Path(dir)
    parts = [(d, x, y)] if test_x is None else [(d / "train", x, y), (d / "test", test_x, test_y)]
    for root, xs, ys in parts:
        xs, ys = _np(xs), _np(ys, np.int64)
        if xs.ndim == 4:
            xs = xs[:, 0] if xs.shape[1] == 1 else xs.transpose(0, 2, 3, 1)  # (N, H, W[, 3])
        for i, (img, label) in enumerate(zip(xs, ys)):
            path = root / classes[label] / f"{i:05d}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
    return d


@functools.cache
def _glyph(digit: int, stroke: int) -> Image.Image:
    """A white digit on black ("L", about 50x56), from Pillow's built-in FreeType font, with a margin of
    10 pixels around its ink so slanting and rotating it never clip it."""
    font = ImageFont.load_default(size=48)
    im = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(im).text((48, 48), str(digit), fill=255, font=font, anchor="mm",
                            stroke_width=stroke, stroke_fill=255)
    left, top, right, bottom = im.getbbox()
    return im.crop((left - 10, top - 10, right + 10, bottom + 10))


def mnist_like_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n MNIST-format digits: x (n, 28, 28) uint8 white ink on black, y (n,) int64, balanced, seeded.

    Like MNIST, each digit is scaled to fit a 20x20 box and placed so its centre of mass is at the centre
    of the 28x28 image; jitter in slant, rotation, stroke width, size, aspect and position varies them."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 10).astype(np.int64)
    strokes = rng.integers(0, 4, n)
    shears, angles = rng.uniform(-0.3, 0.3, n), np.radians(rng.uniform(-12, 12, n))
    sizes, aspects = rng.uniform(14, 20, n), rng.uniform(0.8, 1.15, n)  # longer side in pixels; width factor
    shifts = rng.uniform(-1.5, 1.5, (n, 2))  # (dy, dx) of the centre of mass, pixels
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        g = _glyph(int(y[i]), int(strokes[i]))
        # one affine map about the glyph's centre: output -> input = (rotate @ slant)^-1
        cos, sin = np.cos(angles[i]), np.sin(angles[i])
        inv = np.linalg.inv(np.array([[cos, -sin], [sin, cos]]) @ np.array([[1, shears[i]], [0, 1]]))
        centre = np.array(g.size) / 2
        offset = centre - inv @ centre
        coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
        g = g.transform(g.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
        g = g.crop(g.getbbox())
        scale = sizes[i] / max(g.size)
        w, h = min(26, max(1, round(g.width * scale * aspects[i]))), min(26, max(1, round(g.height * scale)))
        a = np.asarray(g.resize((w, h), Image.Resampling.BILINEAR), np.float32)
        mass = a.sum() or 1.0
        cy, cx = a.sum(1) @ np.arange(h) / mass, a.sum(0) @ np.arange(w) / mass
        top = min(max(round(13.5 - cy + shifts[i, 0]), 0), 28 - h)
        left = min(max(round(13.5 - cx + shifts[i, 1]), 0), 28 - w)
        x[i, top:top + h, left:left + w] = a
    return x, y


def fashion_test_images(fashion_dir, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n real test images (n, 28, 28) uint8 and their labels, straight from the IDX files."""
    x = np.frombuffer(gzip.decompress((fashion_dir / "t10k-images-idx3-ubyte.gz").read_bytes()), np.uint8,
                      offset=16)
    y = np.frombuffer(gzip.decompress((fashion_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()), np.uint8,
                      offset=8)
    return x.reshape(-1, 28, 28)[:n].copy(), y[:n].astype(np.int64)
