"""The named data sets cnnlab knows, and finding them: --data-dir / $CNNLAB_DATA, the user cache, the system
dataset folders (Debian's dataset-fashion-mnist), then torchvision's download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from . import formats

# Debian's dataset-* packages install here, e.g. dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist.
SYSTEM_DIRS = [Path("/usr/share/datasets")]


@dataclass(frozen=True)
class _Known:
    description: str
    layout: str  # torchvision's folder under a root: where its download puts the files
    how: str     # how to get the data when it is not on this machine


KNOWN = {
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




def known_datasets(data_dir: str | None = None) -> list[dict]:
    """One row per known name: name, description, present, path (where found, else None), how (to get it)."""
    rows = []
    for name, known in KNOWN.items():
        found = "sklearn" if name == "digits" else find(name, data_dir)
        rows.append({"name": name, "description": known.description, "present": found is not None,
                     "path": None if found is None else str(found),
                     "how": known.how or "bundled with scikit-learn"})
    return rows


def canonical(name: str) -> str | None:
    """The known name that name spells ("FashionMNIST", "cifar-10", ...), else None."""
    key = name.lower().replace("-", "").replace("_", "")
    return {k.replace("-", ""): k for k in KNOWN}.get(key)


def cache_root() -> Path:
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
    return roots + [cache_root() / name] + [d / name for d in SYSTEM_DIRS]


def _holds(d: Path, name: str) -> bool:
    return bool(formats.cifar_paths(d) if name == "cifar10" else formats.idx_paths(d))


def find(name: str, data_dir: str | None) -> Path | None:
    for root in _roots(name, data_dir):
        for d in (root, root / KNOWN[name].layout):  # files directly in the root, or torchvision's layout
            if _holds(d, name):
                return d
    return None


def looked_in(name: str, data_dir: str | None) -> str:
    return ", ".join(str(r) for r in dict.fromkeys(_roots(name, data_dir)))


def download(name: str) -> Path | None:
    """Download through torchvision into the user cache; offline this fails and says how to get the data."""
    root = cache_root() / name
    try:
        from torchvision import datasets  # heavy (and only needed online): imported on first use

        cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}
        cls[name](str(root), train=True, download=True)  # fetches the whole data set, train and test
    except Exception as e:  # noqa: BLE001 - comes as URLError, RuntimeError, OSError...: all mean "offline"
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"data set {name} is not on this machine and downloading it failed ({reason}); "
                        f"{KNOWN[name].how}") from None
    d = root / KNOWN[name].layout
    return d if _holds(d, name) else None
