"""Image folders as a data set: `train/<class>/*` and `test/<class>/*`, or `<class>/*` as one pool.

Every image is decoded once (images.decode_file), grey if all are grey, else RGB, at one size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .formats import Decoded, Split
from .images import IMAGE_EXTS, decode_file


def load_folder(d: Path, image_size: int | None) -> Decoded:
    """train/<class>/* and test/<class>/*, or <class>/* as one pool (test None)."""
    train_dir, test_dir = d / "train", d / "test"
    if train_dir.is_dir() != test_dir.is_dir():
        have, lack = (train_dir, test_dir) if train_dir.is_dir() else (test_dir, train_dir)
        raise UserError(f"{have} exists but {lack} does not; give both, "
                        f"or put the class folders directly in {d}")
    if train_dir.is_dir():
        train_files, test_files = _class_files(train_dir), _class_files(test_dir)
        if train_files.keys() != test_files.keys():
            only_train = sorted(train_files.keys() - test_files.keys())
            only_test = sorted(test_files.keys() - train_files.keys())
            raise UserError(f"{test_dir}: class folders differ from {train_dir} (only in train: "
                            f"{only_train}, only in test: {only_test}); give both the same classes")
        classes = sorted(train_files)
        train = [(f, i) for i, c in enumerate(classes) for f in train_files[c]]
        test = [(f, i) for i, c in enumerate(classes) for f in test_files[c]]
    else:
        files = _class_files(d)
        classes = sorted(files)
        train, test = [(f, i) for i, c in enumerate(classes) for f in files[c]], []
    # one decode for both splits, so both get the same channels and size
    x = _decode_all([f for f, _ in train + test], image_size)
    y = torch.tensor([i for _, i in train + test], dtype=torch.int64)
    n = len(train)
    held = Split(x[n:], y[n:], [str(f) for f, _ in test]) if train_dir.is_dir() else None  # None: a pool
    return Decoded(Split(x[:n], y[:n], [str(f) for f, _ in train]), held, classes, str(d), "resize")


def _class_files(d: Path) -> dict[str, list[Path]]:
    class_dirs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        found = f"only one class folder ({class_dirs[0].name})" if class_dirs else "no class folders"
        raise UserError(f"{d} has {found}; a classifier needs at least two: {d}/<class>/<image>")
    out = {}
    for c in class_dirs:
        # files without an image extension (notes.txt, .DS_Store, ...) are not samples: skip them
        out[c.name] = sorted(f for f in c.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS
                             and not any(part.startswith(".") for part in f.relative_to(c).parts))
        if not out[c.name]:
            raise UserError(f"{c} holds no images ({', '.join(sorted(IMAGE_EXTS))}); "
                            f"add some or remove the folder")
    return out


def _decode_all(files: list[Path], image_size: int | None) -> torch.Tensor:
    """Decode every image once: grey (C=1) if all are grey, else RGB; one size for all."""
    arrays = [decode_file(f) for f in files]
    grey = all(a.ndim == 2 for a in arrays)
    sizes = {a.shape[:2] for a in arrays}
    h, w = (image_size, image_size) if image_size else sizes.pop() if len(sizes) == 1 else (32, 32)
    out = np.empty((len(arrays), 1 if grey else 3, h, w), np.uint8)  # (N, C, H, W)
    for i, a in enumerate(arrays):
        if not grey and a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        if a.shape[:2] != (h, w):
            a = np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR))
        out[i] = a[None] if grey else a.transpose(2, 0, 1)
    return torch.from_numpy(out)
