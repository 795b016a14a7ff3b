"""`cnnlab bench`: the seeds' DataLoader loop and cnnlab's trainer, side by side in one process, same data.

For each model the seeds' loop (torchvision's FashionMNIST dataset over the same IDX files, per-sample
`ToTensor` + `Normalize`, `DataLoader(batch_size=128, shuffle=True)`, an optimiser step per batch) and
`cnnlab.train` each train one epoch from the same initial weights at the same thread count; then the
test accuracy of both. The FLOP floor is the model's training FLOPs (3 x 2 x multiply-adds per image)
divided by a matrix-multiply peak measured here. Then the fast recipe's time to accuracy and the
inference speed of the model it trains. docs/benchmarks.md records a full run.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import channel_stats, load_data
from .errors import UserError
from .models import create_model, fmt_shape, totals
from .run import train
from .training.config import resolve
from .training.options import DEFAULT_MODEL, TrainConfig
from .training.recipe import make_optimizer
from .training.runtime import amp_dtype, autocast, choose_threads, cpu_has_bf16, prepare_model

SEED_BATCH = 128  # every seed notebook's DataLoader batch size
THRESHOLDS = (0.91, 0.93)  # time-to-accuracy marks
# The fast recipe's short run, `cnnlab train --epochs 2 --augment none`: in two epochs mirrored images
# regularise more than they teach (91.14 % test without flips, 90.84 % with them; docs/benchmarks.md).
SHORT = {"epochs": 2, "augment": "none"}


@dataclass
class BenchOptions:
    # data (28x28 IDX files: fashion-mnist, mnist or a directory), data_dir, threads (None: measured by
    # runtime.choose_threads) and seed, as training takes them
    config: TrainConfig = field(default_factory=TrainConfig)
    models: tuple[str, ...] = ("mnist-classifier", "lenet5", DEFAULT_MODEL)
    quick: bool = False  # a smoke run: a slice of the data, times extrapolated to a full epoch
    limit: int | None = None  # training images per timed epoch (default: all; 2,048 with quick)
    accuracy: bool = True  # the time-to-accuracy and inference sections


# --- the machine ----------------------------------------------------------------------------------------

def machine_info() -> dict:
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    kib = _proc_field("/proc/meminfo", "MemTotal")
    ram = round(int(kib.split()[0]) / 2**20, 1) if kib else None
    return {"cpu": cpu, "cpus": os.cpu_count(), "ram_gib": ram, "torch": torch.__version__,
            "cpu_bf16": cpu_has_bf16(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


def _proc_field(path: str, key: str) -> str | None:
    """The value of the first `key: value` line of a /proc file, or None (not Linux)."""
    try:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), None)
    except OSError:
        return None


def matmul_gflops(threads: int, dtype: torch.dtype = torch.float32, n: int = 1024, repeats: int = 7) -> float:
    """Best GFLOP/s of an n x n torch.mm at `threads` threads: the peak the FLOP floor divides by."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=gen).to(dtype), torch.randn(n, n, generator=gen).to(dtype)
        torch.mm(a, b)
        best = math.inf
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            torch.mm(a, b)
            # The best run, and CPU time where it is shorter than wall time: on a shared machine the
            # scheduler's pauses must not lower the peak (and so the floor) below what the CPU can do.
            best = min(best, time.perf_counter() - t, (time.process_time() - c) / threads)
        return 2 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(old)


# --- the seeds' loop, as seed 000 writes it ------------------------------------------------------------

def seed_train(model, train_loader, optimizer, criterion) -> list[str]:
    """Seed 000's `train(1)`: one epoch over the DataLoader, a log line every 10 batches."""
    model.train()
    log = []
    for batch_idx, (data, target) in enumerate(train_loader):
        optimizer.zero_grad()
        output = model(data)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % 10 == 0:
            log.append(f"Train Epoch: 0 [{batch_idx * len(data)}/{len(train_loader.dataset)}]\t"
                       f"Loss: {loss.item():.6f}")
    return log


def seed_validate(model, test_loader) -> float:
    """Seed 000's `validate()`: accuracy over the test DataLoader."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            correct += (model(data).argmax(1) == target).sum().item()
    return correct / len(test_loader.dataset)


def _seed_optimizer(name: str, params):
    """The model's own optimiser at its own (constant) learning rate, as a seed notebook would set it."""
    return make_optimizer(resolve(TrainConfig(model=name)), params)


def seed_epoch(name: str, root: Path, mean: float, std: float, seed: int) -> dict:
    """One epoch of the seeds' loop over the torchvision dataset at `root`; seconds and test accuracy."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    cls = datasets.FashionMNIST if (root / "FashionMNIST").is_dir() else datasets.MNIST
    train_set = cls(str(root), train=True, download=False, transform=tf)
    test_set = cls(str(root), train=False, download=False, transform=tf)
    train_loader = DataLoader(train_set, batch_size=SEED_BATCH, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=SEED_BATCH, shuffle=False)
    torch.manual_seed(seed)  # the same initial weights as cnnlab.train(seed=seed)
    model = create_model(name, (1, 28, 28), 10)
    optimizer = _seed_optimizer(name, model.parameters())
    t = time.perf_counter()
    seed_train(model, train_loader, optimizer, torch.nn.CrossEntropyLoss())
    seconds = time.perf_counter() - t
    accuracy = seed_validate(model, test_loader)
    t = time.perf_counter()
    for _ in train_loader:  # the same epoch without the model: what the per-sample data pipeline costs
        pass
    return {"seconds": seconds, "data_seconds": time.perf_counter() - t, "test_accuracy": accuracy}


def cnnlab_epoch(name: str, data_dir: Path, n_train: int, threads: int, seed: int, out: Path) -> dict:
    """One epoch of `cnnlab.train` on the same files, batch and initial weights; no validation split."""
    with contextlib.redirect_stdout(sys.stderr):  # its epoch line must not mix into --json output
        # on the CPU, like the seeds' loop: a GPU would compare devices, not loops
        run = train(model=name, data=str(data_dir), epochs=1, batch_size=SEED_BATCH, val_split=0.0,
                    device="cpu", threads=threads, seed=seed, eval_every=n_train, out=str(out),
                    progress=False)
    r = run.results
    return {"seconds": r["train_seconds"], "test_accuracy": r["test_accuracy"]}


# --- data for both loops ----------------------------------------------------------------------------------

def _write_idx(path: Path, a: np.ndarray) -> None:
    """IDX: magic 0x0000080N (uint8, N dims), N big-endian uint32 sizes, then the bytes row-major."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    path.write_bytes(bytes([0, 0, 8, a.ndim]) + np.asarray(a.shape, ">u4").tobytes() + a.tobytes())


def torchvision_root(ds, root: Path, n_train: int, n_test: int) -> Path:
    """Write the first n_train/n_test images in torchvision's raw layout under root; returns the raw folder.

    torchvision's FashionMNIST (MNIST for digits) reads uncompressed IDX files from ROOT/FashionMNIST/raw
    and downloads nothing when they are there; cnnlab.train reads the same folder, so both loops see the
    same bytes (and cnnlab tells clothes from digits by that folder name, as for any IDX folder).
    """
    raw = root / ("MNIST" if ds.style == "mnist" else "FashionMNIST") / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for part, split, n in (("train", ds.train, n_train), ("t10k", ds.test, n_test)):
        _write_idx(raw / f"{part}-images-idx3-ubyte", split.x[:n, 0].numpy())
        _write_idx(raw / f"{part}-labels-idx1-ubyte", split.y[:n].numpy())
    return raw


# --- time to accuracy and inference ---------------------------------------------------------------------

def first_crossing(rows: list[dict], threshold: float) -> float | None:
    """Training seconds at the first validation point with val_accuracy >= threshold, else None."""
    for r in rows:
        acc = r.get("val_accuracy")
        if acc not in (None, "") and float(acc) >= threshold:
            return float(r["seconds"])
    return None


def time_to_accuracy(data: str, data_dir: str | None, threads: int, out: Path, quick: bool) -> dict:
    """The fast recipe: a short run (SHORT) and fastcnn's defaults; test accuracy, seconds, validation
    crossings.

    With quick, one epoch of the short kind only (on the bench's slice of the data)."""
    runs = {}
    plans = {"short": {"epochs": 1}} if quick else {"short": SHORT, "default": {}}
    for label, kw in plans.items():
        with contextlib.redirect_stdout(sys.stderr):
            run = train(model=DEFAULT_MODEL, data=data, data_dir=data_dir, threads=threads,
                        out=str(out / label), progress=False, **kw)
        r, rows = run.results, run.metrics
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in kw.items())
        runs[label] = {"command": f"cnnlab train {flags}".strip(), "device": r["device"],
                       "epochs": r["epochs"], "train_seconds": r["train_seconds"],
                       "test_accuracy": r["test_accuracy"], "best_val_accuracy": r["best_val_accuracy"],
                       "val_crossings": {f"{t:.2f}": first_crossing(rows, t) for t in THRESHOLDS}, "run": run}
    return runs


def inference_speed(model: torch.nn.Module, x: torch.Tensor, single: int = 300) -> dict:
    """Images/s at batch 1 and 1024 and the batch-1 latency (p50, p90): the model as loaded for serving
    (float32, NCHW), then in training's form (channels-last, bf16 autocast where the CPU has it)."""
    cpu = torch.device("cpu")
    fast = prepare_model(copy.deepcopy(model), cpu)
    out = _inference(model.eval(), x, single, None)
    out.update({f"{k}_fast": v for k, v in _inference(fast.eval(), x, single, amp_dtype(cpu)).items()})
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


# --- the whole benchmark ----------------------------------------------------------------------------------

def run_bench(opts: BenchOptions, log=None) -> dict:
    """Run every section; returns the figures as one JSON-ready dict. `log(str)` gets progress lines."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    t_start = time.perf_counter()
    cfg = opts.config
    ds = load_data(cfg.data, cfg.data_dir)
    if tuple(ds.input_shape) != (1, 28, 28):
        raise UserError(f"--data {cfg.data}: cnnlab bench compares with the seeds' MNIST loop and needs "
                        f"1x28x28 IDX data (fashion-mnist, mnist or such a folder); this is "
                        f"{fmt_shape(ds.input_shape)}")
    n_full = len(ds.train)
    limit = opts.limit or (2048 if opts.quick else None)
    if limit is not None and limit < 2 * SEED_BATCH:
        raise UserError(f"--limit {limit}: use at least {2 * SEED_BATCH} images "
                        f"(two batches of {SEED_BATCH})")
    n_train = min(n_full, limit or n_full)
    if n_train < 2 * SEED_BATCH:
        raise UserError(f"--data {cfg.data}: only {n_train} training images; the bench needs at least "
                        f"{2 * SEED_BATCH} (two batches of {SEED_BATCH})")
    n_test = min(len(ds.test), 2000 if opts.quick else len(ds.test))
    threads = choose_threads(cfg.threads)
    machine = machine_info()
    log(f"machine: {machine['cpu']}, {machine['cpus']} CPUs, torch {machine['torch']}, {threads} thread(s)")
    peak = {"fp32": round(matmul_gflops(threads), 1)}
    if cpu_has_bf16():
        peak["bf16"] = round(matmul_gflops(threads, torch.bfloat16), 1)
    # The floor is taken against the peak of the precision cnnlab.train computes in here (bf16 autocast
    # where the CPU has it natively, runtime.amp_dtype); the float32 floor is reported beside it.
    train_dtype = amp_dtype(torch.device("cpu"))
    peak_used = peak["bf16"] if train_dtype == torch.bfloat16 else peak["fp32"]
    log(f"matmul peak at {threads} thread(s): " + ", ".join(f"{v} GFLOP/s {k}" for k, v in peak.items()))
    mean, std = channel_stats(ds.train.x[:n_train])
    result = {"machine": machine, "threads": threads, "quick": opts.quick, "matmul_gflops": peak,
              "train_precision": "bf16" if train_dtype == torch.bfloat16 else "fp32",
              "data": {"name": ds.name, "train_images": n_train, "full_train_images": n_full,
                       "test_images": n_test},
              "epochs": []}
    scale = n_full / n_train  # seconds on the slice -> seconds per full epoch
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as tmp:
        tmp = Path(tmp)
        raw = torchvision_root(ds, tmp / "tv", n_train, n_test)
        for name in opts.models:
            model = create_model(name, ds.input_shape, len(ds.classes))
            macs = totals(model)["macs"]
            torch.set_num_threads(threads)
            log(f"{name}: the seeds' loop, one epoch of {n_train} images ...")
            seed = seed_epoch(name, tmp / "tv", mean[0], std[0], cfg.seed)
            log(f"{name}: cnnlab.train, one epoch of {n_train} images ...")
            ours = cnnlab_epoch(name, raw, n_train, threads, cfg.seed, tmp / "runs" / name)
            flops = n_full * 6 * macs  # an epoch's training FLOPs: 3 passes x 2 FLOPs per multiply-add
            floor = flops / (peak_used * 1e9)
            row = {"model": name, "macs": macs, "params": totals(model)["params"], "batch_size": SEED_BATCH,
                   "floor_epoch_seconds": round(floor, 6),
                   "floor_epoch_seconds_fp32": round(flops / (peak["fp32"] * 1e9), 6)}
            for key, r in (("seed", seed), ("cnnlab", ours)):
                row[key] = {"epoch_seconds": round(r["seconds"] * scale, 6),
                            "images_per_s": round(n_train / r["seconds"], 1),
                            "test_accuracy": round(r["test_accuracy"], 4)}
            row["seed"]["data_pipeline_seconds"] = round(seed["data_seconds"] * scale, 6)
            row["speedup"] = round(row["seed"]["epoch_seconds"] / row["cnnlab"]["epoch_seconds"], 3)
            row["cnnlab_over_floor"] = round(row["cnnlab"]["epoch_seconds"] / floor, 3)
            result["epochs"].append(row)
            log(format_row(row))
        if opts.accuracy:
            log(f"{DEFAULT_MODEL}: time to accuracy with its default recipe ...")
            tta_data, tta_dir = (str(raw), None) if opts.quick else (cfg.data, cfg.data_dir)
            runs = time_to_accuracy(tta_data, tta_dir, threads, tmp / "tta", opts.quick)
            last = runs.get("default", runs["short"])
            model = last.pop("run").model
            runs.get("short", {}).pop("run", None)
            result["time_to_accuracy"] = {"model": DEFAULT_MODEL, **runs}
            x = (ds.test.x[:n_test].float() / 255 - mean[0]) / std[0]
            torch.set_num_threads(threads)
            result["inference"] = {"model": DEFAULT_MODEL, "threads": threads, **inference_speed(model, x)}
    result["machine"]["load_average_end"] = (round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg")
                                             else None)
    result["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    return result


# --- the table ----------------------------------------------------------------------------------------------

_COLUMNS = ("model", "seed s", "seed img/s", "(data s)", "cnnlab s", "cnnlab img/s", "ratio", "floor s",
            "ours/floor", "fp32 floor", "seed acc", "cnnlab acc")
_WIDTHS = (16, 7, 10, 8, 8, 12, 5, 7, 10, 10, 8, 10)


def format_row(row: dict) -> str:
    s, c = row["seed"], row["cnnlab"]
    cells = (row["model"], f"{s['epoch_seconds']:.2f}", f"{s['images_per_s']:.0f}",
             f"{s['data_pipeline_seconds']:.2f}",
             f"{c['epoch_seconds']:.2f}", f"{c['images_per_s']:.0f}", f"{row['speedup']:.1f}x",
             f"{row['floor_epoch_seconds']:.2f}", f"{row['cnnlab_over_floor']:.1f}x",
             f"{row['floor_epoch_seconds_fp32']:.2f}", f"{100 * s['test_accuracy']:.2f}%",
             f"{100 * c['test_accuracy']:.2f}%")
    return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(cells, _WIDTHS)))


def format_report(r: dict) -> str:
    m, d = r["machine"], r["data"]
    peak = ", ".join(f"{v} GFLOP/s {k}" for k, v in r["matmul_gflops"].items())
    lines = [(f"cnnlab bench{' --quick' if r['quick'] else ''}: {m['cpu']}, {m['cpus']} CPUs, "
              f"{m['ram_gib']} GiB, torch {m['torch']}, {r['threads']} thread(s), load average "
              f"{m['load_average']} -> {m.get('load_average_end')}"),
             (f"matmul peak (torch.mm 1024x1024, {r['threads']} thread(s)): {peak}; cnnlab trains in "
             f"{r['train_precision']}"),
             "",
             f"one epoch of {d['name']} ({d['full_train_images']} images, batch {SEED_BATCH}"
             + (f"; timed on {d['train_images']} and scaled"
                if d['train_images'] < d['full_train_images'] else "")
             + "), same data, same initial weights:",
             (f"seconds per epoch; (data s) = the seed loop's DataLoader alone; FLOP floor at the "
              f"{r['train_precision']} peak and ours/floor, and the floor at the fp32 peak; test accuracy on "
              f"{d['test_images']} images"),
             "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                       for i, (v, w) in enumerate(zip(_COLUMNS, _WIDTHS)))]
    lines += [format_row(row) for row in r["epochs"]]
    tta = r.get("time_to_accuracy")
    if tta:
        lines += ["",
                  f"time to accuracy, {tta['model']} on {d['name'] if r['quick'] else 'the full data set'}:",
                  "(seconds of training incl. validation; test accuracy of the best validation checkpoint)"]
        for label in ("short", "default"):
            t = tta.get(label)
            if t:
                cross = ", ".join(f"{k}: {'-' if v is None else f'{v:.1f} s'}"
                                  for k, v in t["val_crossings"].items())
                lines.append(f"  {t['command']:<38} {t['device']:<4} {t['epochs']:>2} epochs "
                             f"{t['train_seconds']:6.1f} s  "
                             f"test {100 * t['test_accuracy']:.2f}%  validation reached {cross}")
    inf = r.get("inference")
    if inf:
        lines += ["", f"inference, {inf['model']} ({inf['threads']} thread(s)):"]
        for label, sfx in (("as served (float32, NCHW)", ""),
                           ("training form (channels-last, autocast)", "_fast")):
            lines.append(f"  {label:<38} batch 1: {inf['batch1_images_per_s' + sfx]:5.0f} images/s, "
                         f"p50 {inf['batch1_p50_ms' + sfx]:.2f} ms, p90 {inf['batch1_p90_ms' + sfx]:.2f} ms; "
                         f"batch 1024: {inf['batch1024_images_per_s' + sfx]:5.0f} images/s")
    lines.append(f"({r['bench_seconds']:.0f} s in all)")
    return "\n".join(lines)
