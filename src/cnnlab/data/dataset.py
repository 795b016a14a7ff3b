"""Loading a data set: `load_data` turns a known name or a directory into a DataSet, a train and a test
Split of uint8 image tensors in memory.

Finding named sets is catalog.py's job, reading the files formats.py's and folders.py's, splitting
splits.py's. Every bad input raises UserError with one line that names the file and says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import UserError
from . import catalog, folders, formats
from .formats import Split
from .splits import stratified_split

EXPECTED = ("expected IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...), "
            "CIFAR-10 batches (data_batch_1..5, test_batch, batches.meta) "
            "or class folders (train/<class>/*, test/<class>/* or <class>/*)")


@dataclass
class DataSet:
    name: str           # a known name, or the directory path as given
    train: Split
    test: Split
    classes: list[str]
    source: str         # the directory it was loaded from, or "sklearn"
    style: str          # how to preprocess user images: "mnist", "fit" or "resize"
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why): not decoded, left out

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return (c, h, w)


def load_data(name_or_dir: str, data_dir: str | None = None, download: bool = True,
              image_size: int | None = None, bad_images: str = "refuse") -> DataSet:
    """Load a known data set by name (looked up, then downloaded) or any recognised directory.

    Known names win over a directory of the same name: pass ./mnist for a folder called mnist. In an
    image folder, a file that does not decode is an error (bad_images="refuse") or left out ("skip")."""
    if image_size is not None and image_size < 1:
        raise UserError(f"image size {image_size} must be a positive number of pixels")
    if bad_images not in folders.BAD_IMAGES:
        raise UserError(f"--bad-images {bad_images}: must be one of {', '.join(folders.BAD_IMAGES)}")
    name = catalog.canonical(name_or_dir)
    if name == "digits":
        # seed 1212 holds out the same 360 digits as seed 002's test_size=0.2, random_state=1212
        ds = _dataset("digits", formats.load_digits(), seed=1212)
    elif name is not None:
        found = catalog.find(name, data_dir)
        if found is None and download:
            found = catalog.download(name)
        if found is None:
            raise UserError(f"data set {name} not found (looked in {catalog.looked_in(name, data_dir)}); "
                            f"{catalog.KNOWN[name].how}")
        ds = _dataset(name, load_dir(found, name, image_size, bad_images))
    else:
        path = Path(name_or_dir).expanduser()
        if not path.exists():
            raise UserError(f"--data {name_or_dir}: no such directory, and not a known data set "
                            f"({', '.join(catalog.KNOWN)})")
        if not path.is_dir():
            raise UserError(f"--data {name_or_dir} is a file; give a directory holding a data set "
                            f"({EXPECTED})")
        ds = _dataset(name_or_dir, load_dir(path, None, image_size, bad_images))
    if image_size is not None:
        ds.train.x, ds.test.x = _resize(ds.train.x, image_size), _resize(ds.test.x, image_size)
    return ds


def load_dir(d: Path, name: str | None, image_size: int | None,
             bad_images: str = "refuse") -> formats.Decoded:
    """Decode whatever data set directory d holds; name (a known name, or None) picks the IDX class names."""
    if formats.idx_paths(d):
        return formats.load_idx(d, name)
    if formats.cifar_paths(d):
        return formats.load_cifar(d)
    for sub in ("FashionMNIST/raw", "MNIST/raw", "cifar-10-batches-py", "raw"):  # torchvision's folders
        if formats.idx_paths(d / sub) or formats.cifar_paths(d / sub):
            return load_dir(d / sub, name, image_size, bad_images)
    if any(p.is_dir() and not p.name.startswith(".") for p in d.iterdir()):
        return folders.load_folder(d, image_size, bad_images)
    raise UserError(f"{d} holds no data set cnnlab recognises: {EXPECTED}")


def _dataset(name: str, decoded: formats.Decoded, seed: int = 0) -> DataSet:
    """A DataSet of what a format read; a pool without a test split of its own is split 80/20, stratified."""
    train, test = decoded.train, decoded.test
    if test is None:
        keep, held = stratified_split(train.y, 0.2, seed)
        train, test = _take(train, keep), _take(train, held)
    return DataSet(name, train, test, decoded.classes, decoded.source, decoded.style, decoded.skipped)


def _take(split: Split, idx: torch.Tensor) -> Split:
    files = None if split.files is None else [split.files[i] for i in idx.tolist()]
    return Split(split.x[idx].contiguous(), split.y[idx], files)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C, size, size) uint8, bilinear with antialiasing, in chunks."""
    if tuple(x.shape[2:]) == (size, size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, len(x), 4096):
        chunk = torch.nn.functional.interpolate(x[i:i + 4096].float(), size=(size, size), mode="bilinear",
                                                antialias=True, align_corners=False)
        out[i:i + 4096] = chunk.round_().clamp_(0, 255)
    return out
