"""Decoded image folders kept on disk, so that a second run over the same photos starts in seconds.

One file per folder and image size, `<user cache>/cnnlab/images/<folder>-<size>-<hash>.npz`: the pixels of
every file at that size, and a manifest naming each file with its byte size and modification time when it
was decoded. A file that is added, removed or changed (size or mtime) is decoded again, and only that file;
broken files are remembered too, so `--bad-images skip` does not retry them on every run. Entries unused for
MAX_AGE_DAYS are deleted when a new one is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_write
from .catalog import cache_root

VERSION = 1  # bump when decoding changes the pixels a file gives: older cache files are then ignored
MAX_AGE_DAYS = 30


@dataclass
class Entry:
    """One file as decoded: the stamp it had, its own size, and its pixels at the folder's size."""

    stamp: tuple[int, int]  # (bytes, mtime in ns) of the file when it was decoded
    hw: tuple[int, int]  # the file's own (height, width), EXIF rotation applied; (0, 0) when broken
    pixels: np.ndarray | None  # (C, h, w) uint8, C = 1 for grey files, 3 for colour; None when broken
    error: str = ""  # why it does not decode


def stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def cache_path(root: Path, size: str) -> Path:
    """Where the decoded images of folder `root` at `size` ("64", or "native") are kept."""
    root = root.resolve()
    digest = hashlib.sha256(f"{root}|{size}".encode()).hexdigest()[:16]
    return cache_root() / "images" / f"{root.name}-{size}-{digest}.npz"


def load(root: Path, size: str) -> tuple[dict[str, Entry], tuple[int, int] | None]:
    """The cached entries by path relative to root, and the (h, w) they were decoded at ({} when none)."""
    path = cache_path(root, size)
    try:
        with np.load(path, allow_pickle=False) as z:
            manifest = json.loads(z["manifest"].tobytes())
            pixels = z["pixels"]
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return {}, None  # a torn or foreign file: decode again (and overwrite it)
    if manifest.get("version") != VERSION or manifest.get("root") != str(root.resolve()):
        return {}, None
    try:
        os.utime(path)  # in use: keep it past MAX_AGE_DAYS
    except OSError:
        pass
    entries = {}
    row = 0
    for rel, size_, mtime, h, w, grey, error in manifest["files"]:
        px = None
        if not error:
            px = pixels[row, :1] if grey else pixels[row]
            row += 1
        entries[rel] = Entry((size_, mtime), (h, w), px, error)
    return entries, tuple(manifest["hw"])


def save(root: Path, size: str, entries: dict[str, Entry], hw: tuple[int, int]) -> None:
    """Write the entries (all decoded at hw) in one file, atomically; a failure only costs speed."""
    good = [e for e in entries.values() if e.pixels is not None]
    channels = 3 if any(e.pixels.shape[0] == 3 for e in good) else 1
    pixels = np.empty((len(good), channels, *hw), np.uint8)  # (N, C, h, w)
    for i, e in enumerate(good):
        pixels[i] = e.pixels  # a grey file's one channel is repeated into three when others are in colour
    files = [[rel, *e.stamp, *e.hw, e.pixels is not None and e.pixels.shape[0] == 1, e.error]
             for rel, e in entries.items()]
    manifest = {"version": VERSION, "root": str(root.resolve()), "hw": list(hw), "files": files}
    text = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    path = cache_path(root, size)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a temp file's name
            np.savez(f, pixels=pixels, manifest=text)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
        _prune(path.parent, keep=path)
    except OSError as e:
        print(f"warning: cannot write the image cache {path} ({e.strerror or e}); the next run decodes "
              "the images again", file=sys.stderr)


def _prune(folder: Path, keep: Path) -> None:
    """Delete cache files not used for MAX_AGE_DAYS (folders long gone, sizes no longer trained)."""
    too_old = time.time() - MAX_AGE_DAYS * 86400
    for f in folder.glob("*.npz"):
        try:
            if f != keep and f.stat().st_mtime < too_old:
                f.unlink()
        except OSError:
            pass
