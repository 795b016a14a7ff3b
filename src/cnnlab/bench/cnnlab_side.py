"""cnnlab's side of the bench: one epoch through the trainer, runs on a time budget, inference speed."""

from __future__ import annotations

import contextlib
import copy
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from ..run import train
from ..training.runtime import amp_dtype, autocast
from .seed_loop import SEED_BATCH

THRESHOLDS = (0.91, 0.93)  # the time-to-accuracy marks


def cnnlab_epoch(name: str, data_dir: Path, n_train: int, threads: int, seed: int, out: Path) -> dict:
    """One epoch of `cnnlab.train` on the same files, batch and initial weights; no validation split."""
    with contextlib.redirect_stdout(sys.stderr):  # its epoch line must not mix into --json output
        # on the CPU, like the seeds' loop: a GPU would compare devices, not loops
        run = train(model=name, data=str(data_dir), epochs=1, batch_size=SEED_BATCH, val_split=0.0,
                    device="cpu", threads=threads, seed=seed, eval_every=n_train, out=str(out),
                    progress=False)
    r = run.results
    return {"seconds": r["train_seconds"], "test_accuracy": r["test_accuracy"]}


def first_crossing(rows: list[dict], threshold: float) -> float | None:
    """Training seconds at the first validation point with val_accuracy >= threshold, else None."""
    for r in rows:
        acc = r.get("val_accuracy")
        if acc not in (None, "") and float(acc) >= threshold:
            return float(r["seconds"])
    return None


def budget_run(budget: str, data: str, data_dir: str | None, threads: int, out: Path,
               thresholds: tuple[float, ...] = THRESHOLDS) -> dict:
    """`cnnlab train --time BUDGET` with the budget's default model: what the budget bought, and when
    validation first reached each threshold. `used_seconds` is the whole run, set-up and final test
    included."""
    start = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):
        run = train(data=data, data_dir=data_dir, threads=threads, time=budget,
                    out=str(out), progress=False, started_at=start)
    r, rows = run.results, run.metrics
    tb = r["time_budget"]
    return {"command": f"cnnlab train --time {budget}", "model": r["model"], "device": r["device"],
            "precision": r["precision"],
            "epochs": tb["epochs"], "used_seconds": tb["used_seconds"], "train_seconds": r["train_seconds"],
            "test_accuracy": r["test_accuracy"], "best_val_accuracy": r["best_val_accuracy"],
            "val_crossings": {f"{t:.2f}": first_crossing(rows, t) for t in thresholds},
            "rows": [{k: row[k] for k in ("seconds", "val_accuracy")} for row in rows], "run": run}


def inference_speed(model: torch.nn.Module, x: torch.Tensor, single: int = 300) -> dict:
    """Images/s at batch 1 and 1024 and the batch-1 latency (p50, p90): the model as loaded for serving
    (float32, channels-last), then with bf16 autocast where the CPU computes it natively."""
    cpu = torch.device("cpu")
    out = _inference(model.eval(), x, single, None)
    out.update({f"{k}_fast": v for k, v in
                _inference(copy.deepcopy(model).eval(), x, single, amp_dtype(cpu)).items()})
    return out


def _inference(model: torch.nn.Module, x: torch.Tensor, single: int, amp: torch.dtype | None) -> dict:
    cpu = torch.device("cpu")
    lat = []
    big = x[:1024] if len(x) >= 1024 else x.repeat(math.ceil(1024 / len(x)), 1, 1, 1)[:1024]
    best = math.inf
    with torch.inference_mode(), autocast(cpu, amp):
        for i in range(10):
            model(x[i:i + 1])  # warm-up: oneDNN builds its kernels on first use
        for i in range(single):
            t = time.perf_counter()
            model(x[i % len(x):i % len(x) + 1])
            lat.append(time.perf_counter() - t)
        model(big)
        for _ in range(3):
            t = time.perf_counter()
            model(big)
            best = min(best, time.perf_counter() - t)
    lat.sort()
    return {"batch1_images_per_s": round(len(lat) / sum(lat), 1),
            "batch1_p50_ms": round(1e3 * statistics.median(lat), 3),
            "batch1_p90_ms": round(1e3 * lat[int(0.9 * (len(lat) - 1))], 3),
            "batch1024_images_per_s": round(len(big) / best, 1)}
