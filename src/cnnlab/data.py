"""Data sets: the known named sets, finding (or downloading) them, loading any one, splits and statistics.

`load_data` turns a known name or a directory into a DataSet with a train and a test Split; reading the
files themselves (IDX, CIFAR-10 batches, image folders, sklearn's digits) is cnnlab.formats' job. Every bad
input raises UserError with one line that names the file and says what to do.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab import formats
from cnnlab.errors import UserError
from cnnlab.formats import DIGIT_CLASSES, FASHION_CLASSES, IDX_STEMS, IMAGE_EXTS, Split

__all__ = ["DIGIT_CLASSES", "FASHION_CLASSES", "IDX_STEMS", "IMAGE_EXTS", "SYSTEM_DIRS", "DataSet", "Split",
           "channel_stats", "known_datasets", "load_data", "stratified_split", "stratified_subset"]

# Debian's dataset-* packages install here, e.g. dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist.
SYSTEM_DIRS = [Path("/usr/share/datasets")]


@dataclass(frozen=True)
class _Known:
    description: str
    layout: str  # torchvision's folder under a root: where its download puts the files
    how: str     # how to get the data when it is not on this machine


_KNOWN = {
    "fashion-mnist": _Known(
        "Zalando's clothes, 28x28 grey, 10 classes, 60000/10000 (the default)", "FashionMNIST/raw",
        "install it with `apt-get install dataset-fashion-mnist`, or put the four IDX files from "
        "github.com/zalandoresearch/fashion-mnist in a folder and pass --data-dir"),
    "mnist": _Known(
        "handwritten digits, 28x28 grey, 10 classes, 60000/10000", "MNIST/raw",
        "put the four MNIST IDX files (train-images-idx3-ubyte.gz, ...) in a folder and pass --data-dir, "
        "or run once online so torchvision can download them"),
    "cifar10": _Known(
        "photos, 32x32 colour, 10 classes, 50000/10000", "cifar-10-batches-py",
        "unpack cifar-10-python.tar.gz from www.cs.toronto.edu/~kriz/cifar.html into a folder and pass "
        "--data-dir, or run once online so torchvision can download it"),
    "digits": _Known("scikit-learn's handwritten digits, 8x8 grey, 10 classes, 1437/360 (bundled)", "", ""),
}


@dataclass
class DataSet:
    name: str           # a known name, or the directory path as given
    train: Split
    test: Split
    classes: list[str]
    source: str         # the directory it was loaded from, or "sklearn"
    style: str          # how to preprocess user images: "mnist", "fit" or "resize"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return (c, h, w)


def load_data(name_or_dir: str, data_dir: str | None = None, download: bool = True,
              image_size: int | None = None) -> DataSet:
    """Load a known data set by name (looked up, then downloaded) or any recognised directory.

    Known names win over a directory of the same name: pass ./mnist for a folder called mnist."""
    if image_size is not None and image_size < 1:
        raise UserError(f"image size {image_size} must be a positive number of pixels")
    name = _canonical(name_or_dir)
    if name == "digits":
        # seed 1212 holds out the same 360 digits as seed 002's test_size=0.2, random_state=1212
        ds = _dataset("digits", formats.load_digits(), seed=1212)
    elif name is not None:
        found = _find(name, data_dir)
        if found is None and download:
            found = _download(name)
        if found is None:
            raise UserError(f"data set {name} not found (looked in {_looked_in(name, data_dir)}); "
                            f"{_KNOWN[name].how}")
        ds = _dataset(name, formats.load_dir(found, name, image_size))
    else:
        path = Path(name_or_dir).expanduser()
        if not path.exists():
            raise UserError(f"--data {name_or_dir}: no such directory, and not a known data set "
                            f"({', '.join(_KNOWN)})")
        if not path.is_dir():
            raise UserError(f"--data {name_or_dir} is a file; give a directory holding a data set "
                            f"({formats.EXPECTED})")
        ds = _dataset(name_or_dir, formats.load_dir(path, None, image_size))
    if image_size is not None:
        ds.train.x, ds.test.x = _resize(ds.train.x, image_size), _resize(ds.test.x, image_size)
    return ds


def _dataset(name: str, decoded: formats.Decoded, seed: int = 0) -> DataSet:
    """A DataSet of what a format read; a pool without a test split of its own is split 80/20, stratified."""
    train, test = decoded.train, decoded.test
    if test is None:
        keep, held = stratified_split(train.y, 0.2, seed)
        train, test = _take(train, keep), _take(train, held)
    return DataSet(name, train, test, decoded.classes, decoded.source, decoded.style)


def _take(split: Split, idx: torch.Tensor) -> Split:
    files = None if split.files is None else [split.files[i] for i in idx.tolist()]
    return Split(split.x[idx].contiguous(), split.y[idx], files)


def known_datasets(data_dir: str | None = None) -> list[dict]:
    """One row per known name: name, description, present, path (where found, else None), how (to get it)."""
    rows = []
    for name, known in _KNOWN.items():
        found = "sklearn" if name == "digits" else _find(name, data_dir)
        rows.append({"name": name, "description": known.description, "present": found is not None,
                     "path": None if found is None else str(found),
                     "how": known.how or "bundled with scikit-learn"})
    return rows


# --- finding a named data set ---------------------------------------------------------------------------

def _canonical(name: str) -> str | None:
    """The known name that name spells ("FashionMNIST", "cifar-10", ...), else None."""
    key = name.lower().replace("-", "").replace("_", "")
    return {k.replace("-", ""): k for k in _KNOWN}.get(key)


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnlab"


def _roots(name: str, data_dir: str | None) -> list[Path]:
    """Folders to search, in order: --data-dir or CNNLAB_DATA, the user cache, the system dataset folders."""
    roots = []
    given, option = data_dir, "--data-dir"
    if given is None:
        given, option = os.environ.get("CNNLAB_DATA"), "CNNLAB_DATA"
    if given:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise UserError(f"{option} {given} is not a directory; create it or point {option} at your data")
        roots += [path / name, path]
    return roots + [_cache_root() / name] + [d / name for d in SYSTEM_DIRS]


def _holds(d: Path, name: str) -> bool:
    return bool(formats.cifar_paths(d) if name == "cifar10" else formats.idx_paths(d))


def _find(name: str, data_dir: str | None) -> Path | None:
    for root in _roots(name, data_dir):
        for d in (root, root / _KNOWN[name].layout):  # files directly in the root, or torchvision's layout
            if _holds(d, name):
                return d
    return None


def _looked_in(name: str, data_dir: str | None) -> str:
    return ", ".join(str(r) for r in dict.fromkeys(_roots(name, data_dir)))


def _download(name: str) -> Path | None:
    """Download through torchvision into the user cache; offline this fails and says how to get the data."""
    root = _cache_root() / name
    try:
        from torchvision import datasets

        cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}
        cls[name](str(root), train=True, download=True)  # fetches the whole data set, train and test
    except Exception as e:  # noqa: BLE001 - comes as URLError, RuntimeError, OSError...: all mean "offline"
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"data set {name} is not on this machine and downloading it failed ({reason}); "
                        f"{_KNOWN[name].how}") from None
    d = root / _KNOWN[name].layout
    return d if _holds(d, name) else None


# --- splits and statistics -------------------------------------------------------------------------------

def _stratify(labels: np.ndarray, n_a: int, n_b: int) -> np.ndarray | None:
    """labels if sklearn can stratify parts of n_a and n_b samples, else None (an unstratified split)."""
    counts = np.unique(labels, return_counts=True)[1]
    return labels if counts.min() >= 2 and min(n_a, n_b) >= len(counts) else None


def stratified_split(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (keep, held), `fraction` held out, stratified by label and seeded as in seed 002.

    Falls back to an unstratified seeded split when a class is too small to stratify."""
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise UserError(f"split fraction {fraction} must be between 0 and 1, e.g. --val-split 0.2")
    labels = np.asarray(y)
    n = len(labels)
    n_held = math.ceil(fraction * n)  # as sklearn rounds test_size
    if n_held >= n:
        raise UserError(f"cannot hold out {fraction:g} of {n} samples and keep any; "
                        f"use more data or a smaller fraction")
    keep, held = train_test_split(np.arange(n), test_size=fraction, random_state=seed,
                                  stratify=_stratify(labels, n - n_held, n_held))
    return torch.from_numpy(np.sort(keep)), torch.from_numpy(np.sort(held))


def stratified_subset(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of n samples with the class proportions of y (for --limit N), seeded."""
    from sklearn.model_selection import train_test_split

    if n < 1:
        raise UserError(f"--limit {n} must be at least 1")
    labels = np.asarray(y)
    if n >= len(labels):
        return torch.arange(len(labels))
    keep, _ = train_test_split(np.arange(len(labels)), train_size=n, random_state=seed,
                               stratify=_stratify(labels, n, len(labels) - n))
    return torch.from_numpy(np.sort(keep))


def channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W) scaled to [0, 1]."""
    if x.dtype != torch.uint8 or x.ndim != 4 or x.numel() == 0:
        raise ValueError(f"expected non-empty uint8 images (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
    # A histogram of the 256 values per channel gives exact integer sums: no float copy of the data, no
    # cancellation in E[x^2] - E[x]^2, and one fast pass (0.1 s for Fashion-MNIST's 47M pixels).
    values = torch.arange(256, dtype=torch.int64)
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256)
        n, s, q = counts.sum().item(), (counts * values).sum().item(), (counts * values * values).sum().item()
        means.append(s / n / 255)
        stds.append(math.sqrt((q * n - s * s) / (n * n)) / 255)
    return means, stds


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
