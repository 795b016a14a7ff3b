"""Image folders as a data set: `train/<class>/*` and `test/<class>/*`, or `<class>/*` as one pool.

Real photo folders: any size, EXIF-rotated, grey, CMYK, palette or with transparency (images.to_array).
Every image is decoded once, straight to one size, grey if all are grey, else RGB, and kept in the user
cache (cache.py), so the next run decodes only files added or changed since. A file that does not decode
stops loading with an error naming it, or with bad_images="skip" (`--bad-images skip`) is left out and
listed on stderr.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import BrokenImage, UserError
from . import cache
from .formats import Decoded, Split
from .images import IMAGE_EXTS, decode_file, image_hw, resize_array

BAD_IMAGES = ("refuse", "skip")  # what to do with files that do not decode
MIXED_SIZE = 32  # the side images of different sizes are brought to when no image size is given


def load_folder(d: Path, image_size: int | None, bad_images: str = "refuse") -> Decoded:
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
    x, broken = decode_images(d, [f for f, _ in train + test], image_size)
    if broken:
        _bad(broken, bad_images)
        train, test = [s for s in train if s[0] not in broken], [s for s in test if s[0] not in broken]
        _check_classes(classes, train, test, d)
    y = torch.tensor([i for _, i in train + test], dtype=torch.int64)
    n = len(train)
    held = Split(x[n:], y[n:], [str(f) for f, _ in test]) if train_dir.is_dir() else None  # None: a pool
    return Decoded(Split(x[:n], y[:n], [str(f) for f, _ in train]), held, classes, str(d), "resize",
                   skipped=[(str(f), why) for f, why in broken.items()])


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


def decode_images(root: Path, files: list[Path], image_size: int | None
                  ) -> tuple[torch.Tensor, dict[Path, str]]:
    """Every file under root at one size: (N, C, H, W) uint8 of those that decode (in order, C=1 if all are
    grey), and why each of the others does not. Files unchanged since the last call come from the cache."""
    size = str(image_size or "native")
    rels = [f.relative_to(root).as_posix() for f in files]
    stamps = [cache.stamp(f) for f in files]
    cached, cached_hw = cache.load(root, size)
    entries = {r: cached[r] for r, st in zip(rels, stamps) if r in cached and cached[r].stamp == st}
    hw = (image_size, image_size) if image_size else _common_hw(files, rels, entries)
    if cached_hw is not None and hw != cached_hw:  # a new file changed the common size: decode all again
        entries = {}
    fresh = [i for i, r in enumerate(rels) if r not in entries]
    for i in fresh:
        entries[rels[i]] = _decode(files[i], stamps[i], hw)
    if fresh or len(cached) != len(rels):
        cache.save(root, size, {r: entries[r] for r in rels}, hw)
    ordered = [entries[r] for r in rels]
    broken = {f: e.error for f, e in zip(files, ordered) if e.pixels is None}
    return _stack(ordered, hw), broken


def _common_hw(files: list[Path], rels: list[str], entries: dict[str, cache.Entry]) -> tuple[int, int]:
    """The files' own size if they all share one, else MIXED_SIZE square. Read from the cache or the files'
    headers, so that each file is decoded once, straight to this size."""
    sizes = set()
    for f, r in zip(files, rels):
        hw = entries[r].hw if r in entries else image_hw(f)
        if hw and hw != (0, 0):  # a broken file has no size
            sizes.add(hw)
    return sizes.pop() if len(sizes) == 1 else (MIXED_SIZE, MIXED_SIZE)


def _decode(f: Path, stamp: tuple[int, int], hw: tuple[int, int]) -> cache.Entry:
    try:
        a = decode_file(f)  # (H, W) grey or (H, W, 3), the file's own size
    except BrokenImage as e:
        return cache.Entry(stamp, (0, 0), None, str(e))
    own = (a.shape[0], a.shape[1])
    a = resize_array(a, *hw)
    return cache.Entry(stamp, own, a[None] if a.ndim == 2 else a.transpose(2, 0, 1))


def _stack(entries: list[cache.Entry], hw: tuple[int, int]) -> torch.Tensor:
    good = [e.pixels for e in entries if e.pixels is not None]
    channels = 1 if all(p.shape[0] == 1 for p in good) else 3
    out = np.empty((len(good), channels, *hw), np.uint8)  # (N, C, H, W)
    for i, p in enumerate(good):
        out[i] = p  # a grey image broadcasts into all three channels of a colour set
    return torch.from_numpy(out)


def _bad(broken: dict[Path, str], bad_images: str) -> None:
    """Refuse (an error naming the first file) or list the skipped files on stderr."""
    if bad_images == "refuse":
        why = next(iter(broken.values()))
        if len(broken) == 1:
            raise UserError(f"{why}; replace or delete it, or pass --bad-images skip to train without it")
        raise UserError(f"{why}; and {len(broken) - 1} more file(s) do not decode; replace or delete them, "
                        "or pass --bad-images skip to train without them (it lists them)")
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank loads the data: one list is enough
        print(f"warning: skipped {len(broken)} image(s) that do not decode (--bad-images skip):",
              file=sys.stderr)
        for why in broken.values():
            print(f"  {why}", file=sys.stderr)


def _check_classes(classes: list[str], train: list, test: list, d: Path) -> None:
    for split in (train, test) if test else (train,):
        have = {i for _, i in split}
        for i, c in enumerate(classes):
            if i not in have:
                raise UserError(f"{d}: no image of class {c!r} decodes in the "
                                f"{'test' if split is test else 'training'} set; add some that do")
