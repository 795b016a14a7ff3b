"""Writing files so that a kill at any instant leaves either the old file or the new one, never a torn one.

Every file cnnlab writes into a run directory (weights, checkpoints, config, metrics, results, the
report) goes through `atomic_write`. Used by every layer, so it imports nothing of cnnlab.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Write via `write(tmp_path)` to a temp file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a run's files are as readable as any other
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if os.name != "nt":  # a directory cannot be opened (to fsync the rename) on Windows
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def write_yaml(path: str | Path, data: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
