"""Prediction on the user's own image files: one object per image,
`{"file", "label", "probability", "top_k": [{"label", "probability"}, ...]}` (the shape
`cnnlab predict --json` prints and the server's POST /predict answers; docs/serving.md).

Two ways in: `predict_files` for a handful of files (all decoded first, so a bad one fails before any
output), and `predict_stream` / `predict_folder` for whole folders: one batch of images in memory at a
time, results yielded as they are produced, unreadable files reported and skipped.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain, islice
from pathlib import Path
from typing import TextIO

import torch
from tqdm.auto import tqdm

from .data import IMAGE_EXTS, open_image, prepare
from .errors import UserError
from .models import ModelMeta, predictor

OUTPUT_FORMATS = ("text", "json", "jsonl", "csv")


@torch.inference_mode()
def predict_tensor(model: torch.nn.Module, meta: ModelMeta, x: torch.Tensor, top_k: int = 3) -> list[dict]:
    """Normalised inputs (N, C, H, W) -> one {label, probability, top_k} per image."""
    model.eval()
    device = next(model.parameters()).device
    return answers(meta, torch.softmax(predictor(model, meta.tta)(x.to(device)).float(), dim=1).cpu(), top_k)


def answers(meta: ModelMeta, probs: torch.Tensor, top_k: int = 3) -> list[dict]:
    """Softmax probabilities (N, K) -> one {label, probability, top_k} per image, rounded to 6 decimals
    (also what the server's other backends' outputs go through)."""
    k = max(1, min(top_k, probs.shape[1]))
    p, i = probs.topk(k, dim=1)
    out = []
    for pr, ix in zip(p.tolist(), i.tolist()):
        top = [{"label": meta.classes[c], "probability": round(v, 6)} for v, c in zip(pr, ix)]
        out.append({"label": top[0]["label"], "probability": top[0]["probability"], "top_k": top})
    return out


def predict_images(model: torch.nn.Module, meta: ModelMeta, images: list, names: list[str],
                   top_k: int = 3) -> list[dict]:
    """Decoded PIL images -> predictions with their file names, in one batch."""
    x = torch.stack([prepare(img, meta) for img in images])
    return [{"file": n, **r} for n, r in zip(names, predict_tensor(model, meta, x, top_k))]


def predict_files(model: torch.nn.Module, meta: ModelMeta, paths: list[str | Path], top_k: int = 3,
                  batch_size: int = 256) -> list[dict]:
    """Predict image files; every file is decoded first so a bad one fails before any output."""
    out = []
    for i in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[i:i + batch_size]]
        out += predict_images(model, meta, [open_image(p) for p in chunk], chunk, top_k)
    return out


def iter_image_files(root: str | Path) -> Iterator[Path]:
    """Image files under `root`, recursively, in sorted order (by extension; hidden files and folders
    skipped).

    A generator over os.walk: memory holds one folder's listing, not the whole tree."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # walked in this order
        for f in sorted(files):
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTS):  # a folder's notes and CSVs are not
                yield Path(folder) / f


def predict_stream(model: torch.nn.Module, meta: ModelMeta, paths: Iterable[str | Path], top_k: int = 3,
                   batch_size: int = 256, on_error: Callable[[str, str], None] | None = None,
                   progress: bool | None = False, total: int | None = None, workers: int | None = None
                   ) -> Iterator[dict]:
    """Predictions for a stream of image files, `batch_size` images in memory at a time, in input order.

    A file that cannot be read goes to `on_error(path, message)` and is skipped; with no `on_error` it
    raises UserError. `progress` shows a tqdm bar (None: only on a terminal or in a notebook).
    Decoding runs on `workers` threads (Pillow and NumPy release the GIL while they work)."""
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be >= 1")
    bar = _bar(total, progress)
    it = iter(paths)
    with ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1)) as pool:
        try:
            while chunk := [str(p) for p in islice(it, batch_size)]:
                loaded = list(pool.map(lambda p: _load(p, meta), chunk))  # list(): a batch, never the stream
                ok = [(p, x) for p, x in zip(chunk, loaded) if not isinstance(x, UserError)]
                for p, err in ((p, x) for p, x in zip(chunk, loaded) if isinstance(x, UserError)):
                    if on_error is None:
                        raise err
                    on_error(p, str(err))
                if ok:
                    x = torch.stack([x for _, x in ok])  # (B, C, H, W)
                    yield from ({"file": p, **r}
                                for (p, _), r in zip(ok, predict_tensor(model, meta, x, top_k)))
                bar.update(len(chunk))
        finally:
            bar.close()


def count_images(roots: Iterable[str | Path]) -> int:
    """How many images `predict_folder(roots)` will predict: a cheap listing pass, so a bar knows the end."""
    return sum(1 if not Path(r).is_dir() else sum(1 for _ in iter_image_files(r)) for r in roots)


def predict_folder(model: torch.nn.Module, meta: ModelMeta, roots: str | Path | Iterable[str | Path],
                   top_k: int = 3, batch_size: int = 256, on_error: Callable[[str, str], None] | None = None,
                   progress: bool | None = None) -> Iterator[dict]:
    """Every image under the folder(s) `roots`, recursively (a file among them is taken as it is), streamed
    in order; see `predict_stream` for batching, errors and the progress bar."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    paths = chain.from_iterable(iter_image_files(r) if Path(r).is_dir() else [r] for r in roots)
    return predict_stream(model, meta, paths, top_k, batch_size, on_error, progress, count_images(roots))


def write_predictions(results: Iterable[dict], fmt: str, out: TextIO, top_k: int) -> int:
    """Write predictions as they arrive; returns how many. Formats: text, json (one list), jsonl, csv.

    csv columns: file, label, probability, then label_2, probability_2, ... up to top_k."""
    if fmt not in OUTPUT_FORMATS:
        raise UserError(f"--format {fmt}: unknown; use one of {', '.join(OUTPUT_FORMATS)}")
    n = 0
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if fmt == "json":
        out.write("[")
    for r in results:
        if fmt == "json":
            out.write((",\n" if n else "") + json.dumps(r))
        elif fmt == "jsonl":
            out.write(json.dumps(r) + "\n")
        elif fmt == "csv":
            if n == 0:
                writer.writerow(["file", "label", "probability"]
                                + [f"{c}_{i}" for i in range(2, len(r["top_k"]) + 1)
                                   for c in ("label", "probability")])
            writer.writerow([r["file"], r["label"], r["probability"]]
                            + [v for t in r["top_k"][1:] for v in (t["label"], t["probability"])])
        else:
            others = ", ".join(f"{t['label']} {100 * t['probability']:.1f}%" for t in r["top_k"][1:])
            out.write(f"{r['file']}: {r['label']} ({100 * r['probability']:.1f}%)"
                      + (f"   then {others}" if others else "") + "\n")
        if fmt != "json":
            out.flush()  # streamed: a reader (`| head`, `tail -f`) sees each line as it is produced
        n += 1
    if fmt == "json":
        out.write("]\n")
    elif fmt == "csv" and n == 0:
        writer.writerow(["file", "label", "probability"])
    out.flush()
    return n


def _load(path: str, meta: ModelMeta) -> torch.Tensor | UserError:
    """One file -> its model input, or the UserError saying why not (returned, so one bad file
    does not cancel the rest of its batch in the thread pool)."""
    try:
        return prepare(open_image(path), meta)
    except UserError as e:
        return e
    except (OSError, ValueError) as e:  # read or shape trouble after decoding: still this file's fault
        return UserError(f"{path}: not usable as an image ({type(e).__name__}: {str(e)[:80]})")


def _bar(total: int | None, progress: bool | None):
    show = progress if progress is not None else sys.stderr.isatty()
    return tqdm(total=total, disable=not show, unit="img", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5)
