"""The run directory: its layout, its lock, and the small files in it (all written atomically).

    runs/<name>/
      config.yaml  metrics.csv  results.json  split.json  summary.txt  [spec.yaml]
      best.safetensors  last.safetensors  checkpoints/last.pt  plots/*.png  [tensorboard/]  .lock

spec.yaml is the spec file a run was started with (--model my_net.yaml), as read (its name made
explicit), so that --resume needs nothing outside the run directory and resumes the model it started,
even if the file was edited or deleted since.

A run is finished exactly when results.json exists: it is written last.
"""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Self

from filelock import FileLock, Timeout

from ..errors import UserError
from ..files import atomic_write_text
from ..models import is_registered

METRIC_FIELDS = ["step", "epoch", "train_loss", "val_loss", "val_accuracy", "lr", "seconds"]


def default_run_dir(model: str, data: str, root: str | Path = "runs") -> Path:
    stem = f"{Path(model).stem}-{Path(data.rstrip('/')).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = Path(root) / stem, 1
    while path.exists():
        n += 1
        path = Path(root) / f"{stem}-{n}"
    return path


def is_finished(path: str | Path) -> bool:
    return (Path(path) / "results.json").is_file()


class RunLock:
    """An exclusive lock on a run directory, so two trainings never write into one.

    filelock's lock is the operating system's (flock on Unix, LockFileEx on Windows), so it is freed
    when its process dies, even by SIGKILL. Entering creates the directory if needed; a second
    `cnnlab train` (or `--resume`) into a locked directory is refused at once, before it writes there.
    """

    def __init__(self, path: Path):
        self.path = path / ".lock"
        self.lock = FileLock(self.path, timeout=0)

    def __enter__(self) -> Self:
        _make_dir(self.path.parent)
        try:
            self.lock.acquire()
        except Timeout:
            other = self.path.read_text().strip() or "?"
            raise UserError(f"{self.path.parent} is in use by another cnnlab train (pid {other}); "
                            "wait for it to finish or choose another --out") from None
        except OSError as e:
            raise UserError(f"--out {self.path.parent}: cannot write there ({e.strerror}); choose a writable "
                            "place") from None
        try:
            self.path.write_text(str(os.getpid()))  # for the message a second trainer gives
        except OSError:
            pass  # Windows may refuse a second handle on a locked file: the pid is only a courtesy
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()


def check_new(path: Path) -> None:
    """Refuse, before anything is written, an --out that is a file or holds a finished run."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file, not a directory: choose another --out")
    if is_finished(path):
        raise UserError(f"{path} already holds a finished run: choose another --out (nothing was changed)")


def prepare_new(path: Path) -> None:
    """Make a fresh run directory (call it holding the RunLock), refusing to overwrite any earlier run."""
    check_new(path)
    if (path / "checkpoints" / "last.pt").exists():
        raise UserError(f"{path} holds an unfinished run: continue it with `cnnlab train --resume {path}` "
                        "or choose another --out")
    make_subdirs(path)


def make_subdirs(path: Path) -> None:
    for sub in ("plots", "checkpoints"):
        _make_dir(path / sub)


def remove_stale_temps(path: Path) -> None:
    """Delete the temp files of atomic writes cut short by a kill (call it holding the RunLock)."""
    for d in (path, path / "checkpoints", path / "plots"):
        for tmp in d.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _make_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file where the run needs a directory: choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {path}: cannot create the run directory ({e.strerror}); choose a writable "
                        "place") from None


def spec_copy(run: Path, model: str) -> Path | None:
    """Where a run keeps its copy of the spec file `model`; None for a registered model name."""
    return None if is_registered(model) else run / "spec.yaml"


def write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in METRIC_FIELDS})
    atomic_write_text(path, buf.getvalue())


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        out.append({k: (float(v) if v not in ("", None) else None) for k, v in r.items()})
        out[-1]["step"] = int(out[-1]["step"])
    return out
