"""File formats: bytes on disk -> uint8 image tensors, int64 labels and class names.

Readers for MNIST/Fashion-MNIST IDX files (plain or .gz), CIFAR-10 python batches (through an allow-list
unpickler) and scikit-learn's bundled 8x8 digits; image folders are folders.py's. Every bad input raises
UserError with one line that names the file and says what to do.
"""

from __future__ import annotations

import gzip
import math
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..models.shapes import fmt_shape

DIGIT_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_MAGIC = {3: 2051, 1: 2049}  # 0x0000080N: unsigned bytes, N dimensions
@dataclass
class Split:
    x: torch.Tensor  # (N, C, H, W) uint8, contiguous
    y: torch.Tensor  # (N,) int64
    files: list[str] | None = None  # source path per sample for image folders, else None

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Decoded:
    """What one source holds: its own train and test splits, or (test None) one pool for data.py to split."""
    train: Split         # every sample when test is None
    test: Split | None   # None for a flat <class>/* folder and for sklearn's digits, which come unsplit
    classes: list[str]
    source: str          # the directory the files were read from, or "sklearn"
    style: str           # how to preprocess user images: "mnist", "fit" or "resize"
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) left out: --bad-images skip


def idx_paths(d: Path) -> dict[str, Path | None]:
    """The four IDX files in d (plain preferred over .gz); empty if d holds none of them."""
    if not d.is_dir():
        return {}
    paths = {stem: next((p for p in (d / stem, d / f"{stem}.gz") if p.is_file()), None) for stem in IDX_STEMS}
    return paths if any(paths.values()) else {}


def _read_bytes(path: Path) -> bytearray:
    try:
        raw = path.read_bytes()
        # bytearray, not bytes: numpy views of it are writable, so torch.from_numpy needs no extra copy
        return bytearray(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    except gzip.BadGzipFile:
        raise UserError(f"{path}: not a gzip file although its name ends in .gz; "
                        f"rename it without .gz or download it again") from None
    except (EOFError, zlib.error) as e:
        raise UserError(f"{path}: corrupt or truncated gzip data ({e}); download it again") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file: big-endian magic 0x0000080N, N big-endian uint32 dimensions, then the raw uint8 values."""
    raw = _read_bytes(path)
    kind, header = ("images" if ndim == 3 else "labels"), 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: only {len(raw)} bytes, too short for an IDX {kind} file "
                        f"(the header alone is {header}); the file is empty or truncated, download it again")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise UserError(f"{path}: not an IDX {kind} file (magic number {magic}, expected "
                        f"{_IDX_MAGIC[ndim]}); check that the file holds what its name says")
    dims = tuple(int(v) for v in np.frombuffer(raw, ">u4", ndim, 4))
    need, have = math.prod(dims), len(raw) - header
    if have != need:
        what = "truncated" if have < need else "has extra bytes"
        raise UserError(f"{path}: {what}: its header says {fmt_shape(dims)} = {need} bytes of data "
                        f"but it holds {have}; download it again")
    return np.frombuffer(raw, np.uint8, need, header).reshape(dims)


def load_idx(d: Path, name: str | None) -> Decoded:
    paths = idx_paths(d)
    missing = [stem for stem, p in paths.items() if p is None]
    if missing:
        raise UserError(f"{d / missing[0]}[.gz] is missing; an IDX data set needs all four files: "
                        f"{', '.join(IDX_STEMS)}")
    # a directory given by path is Fashion-MNIST if it (or, in torchvision's layout, its parent) says so
    says_fashion = "fashion" in "/".join(d.resolve().parts[-2:]).lower()
    fashion = name == "fashion-mnist" or (name is None and says_fashion)
    classes = FASHION_CLASSES if fashion else DIGIT_CLASSES
    classes_txt = d / "classes.txt"
    if classes_txt.is_file():
        classes = [line.strip() for line in classes_txt.read_text().splitlines() if line.strip()]
        if len(classes) < 2:
            raise UserError(f"{classes_txt}: needs at least two class names, one per line; "
                            f"it has {len(classes)}")
    splits = []
    for part in ("train", "t10k"):
        x_path, y_path = paths[f"{part}-images-idx3-ubyte"], paths[f"{part}-labels-idx1-ubyte"]
        x, y = _read_idx(x_path, 3), _read_idx(y_path, 1)
        if len(x) != len(y):
            raise UserError(f"{y_path}: holds {len(y)} labels but {x_path.name} holds {len(x)} images; "
                            f"both must come from the same data set")
        if len(y) and y.max() >= len(classes):
            raise UserError(f"{y_path}: label {y.max()} is out of range for {len(classes)} classes; "
                            f"list the class names, one per line, in {classes_txt}")
        splits.append(Split(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y).long()))
    train, test = splits
    if train.x.shape[2:] != test.x.shape[2:]:
        raise UserError(f"{paths['t10k-images-idx3-ubyte']}: images are {tuple(test.x.shape[2:])} but the "
                        f"training images are {tuple(train.x.shape[2:])}; both must be the same size")
    return Decoded(train, test, list(classes), str(d), "fit" if fashion else "mnist")


def cifar_paths(d: Path) -> list[Path]:
    """CIFAR-10 batch files in d: data_batch_1.., test_batch, batches.meta (those present)."""
    if not d.is_dir():
        return []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    return [d / n for n in names if (d / n).is_file()]


def load_cifar(d: Path) -> Decoded:
    for required in ("data_batch_1", "test_batch", "batches.meta"):
        if not (d / required).is_file():
            raise UserError(f"{d / required} is missing; CIFAR-10 python batches are data_batch_1..5, "
                            f"test_batch and batches.meta")
    meta = _unpickle(d / "batches.meta")
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) < 2:
        raise UserError(f"{d / 'batches.meta'}: no list of label_names; it is not a CIFAR-10 batches.meta")
    classes = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]
    train_paths = [d / f"data_batch_{i}" for i in range(1, 6) if (d / f"data_batch_{i}").is_file()]
    train = [_cifar_batch(p, len(classes)) for p in train_paths]
    xs, ys = zip(*train)
    train = Split(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))
    test = Split(*map(torch.from_numpy, _cifar_batch(d / "test_batch", len(classes))))
    return Decoded(train, test, classes, str(d), "resize")


def _cifar_batch(path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    x, y = batch.get("data"), batch.get("labels")
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == 3 * 32 * 32):
        raise UserError(f"{path}: not a CIFAR-10 batch: expected 'data' as an (N, 3072) uint8 array")
    try:
        y = np.asarray(y, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError(f"{path}: 'labels' is not a list of integers") from None
    if len(y) != len(x):
        raise UserError(f"{path}: holds {len(y)} labels for {len(x)} images; they must match")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise UserError(f"{path}: label {y.max() if y.max() >= n_classes else y.min()} is out of range "
                        f"for the {n_classes} label_names in batches.meta")
    x = np.require(x, requirements=["C", "W"])  # a copy only if the pickle gave a read-only view
    return x.reshape(-1, 3, 32, 32), y  # rows are 1024 red, 1024 green, 1024 blue values, row-major


class _Refused(pickle.UnpicklingError):
    pass


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 writes bytes in protocol 2 as _codecs.encode(str, "latin1"): allow that, and no other codec.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode with other than a string and latin1")
    return text.encode("latin1")


# The stdlib pickle has no safe mode: pickle.load calls whatever the file names (os.system, eval, ...), so
# this hand-written allow-list admits only what a CIFAR batch of numpy arrays needs, in numpy 1 and 2 names.
_reconstruct = np.zeros(1).__reduce_ex__(2)[0]
_frombuffer = np.zeros(1).__reduce_ex__(5)[0]
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def _unpickle(path: Path) -> dict:
    """A CIFAR batch: a dict (keys bytes in the originals, from Python 2) of numpy arrays and lists."""
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except _Refused as e:
        raise UserError(f"{path}: refused to unpickle it: it names {e}, which a CIFAR-10 batch never "
                        f"needs (the file may be malicious); delete it and unpack the original archive again"
                        ) from None
    except Exception as e:  # noqa: BLE001 - a corrupt pickle can raise almost anything (EOFError, ...)
        raise UserError(f"{path}: not a readable CIFAR-10 batch ({type(e).__name__}: {e}); "
                        f"unpack the original archive again") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: holds a {type(obj).__name__}, not the dict of a CIFAR-10 batch")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def load_digits() -> Decoded:
    """scikit-learn's 1797 bundled 8x8 digits as one pool, 0..16 grey levels scaled to 0..255."""
    from sklearn.datasets import load_digits as sklearn_digits  # heavy: off the CLI's start-up path

    bunch = sklearn_digits()
    x = torch.from_numpy(np.rint(bunch.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.from_numpy(bunch.target).long()
    return Decoded(Split(x, y), None, list(DIGIT_CLASSES), "sklearn", "mnist")

