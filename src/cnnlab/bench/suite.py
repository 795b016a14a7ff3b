"""`run_bench`: every section of `cnnlab bench`, in one process, on the same data and thread count.

1. **epochs**: for each model, one epoch of the seeds' loop and of `cnnlab.train` from the same initial
   weights, with the FLOP floor (training FLOPs, 3 x 2 x multiply-adds per image, over a matmul peak
   measured here);
2. **budgets**: `cnnlab train --time B` with the default recipe for each budget, and the inference speed of
   the model the last one trained;
3. **same accuracy** (`--seed-epochs`): the seeds' loop for N epochs, and how long cnnlab's default takes to
   reach the test accuracy it reached;
4. **peers** (`--peers`): the Keras and pytorch/examples recipes and the seeds' loop, each until it reaches
   91% test accuracy or a cap, against cnnlab's shortest budget that reaches it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import channel_stats, load_data
from ..errors import UserError
from ..models import create_model, fmt_shape, predictor, totals
from ..training.options import DEFAULT_MODEL, TrainConfig, parse_duration
from ..training.runtime import amp_dtype, choose_threads, cpu_has_bf16
from .cnnlab_side import budget_run, cnnlab_epoch, first_crossing, inference_speed
from .machine import describe, load_average, machine_info, matmul_gflops
from .peers import KerasConvnet, PytorchExamples, keras_available, time_to_target
from .report import format_row
from .seed_loop import SEED_BATCH, SeedLoop, seed_epoch, torchvision_root

PEER_TARGET = 0.91


@dataclass
class BenchOptions:
    # data (28x28 IDX files: fashion-mnist, mnist or a directory), data_dir, threads (None: measured by
    # runtime.choose_threads) and seed, as training takes them
    config: TrainConfig = field(default_factory=TrainConfig)
    models: tuple[str, ...] = ("mnist-classifier", "lenet5", DEFAULT_MODEL)
    quick: bool = False  # a smoke run: a slice of the data, times extrapolated to a full epoch
    limit: int | None = None  # training images per timed epoch (default: all; 2,048 with quick)
    accuracy: bool = True  # the budget runs and inference
    budgets: tuple[str, ...] = ("20s", "2m")  # --time budgets of the default recipe
    seed_epochs: tuple[int, ...] = ()  # the same-accuracy comparison: the seeds' loop for N epochs
    peers: bool = False  # the peers' recipes to 91%
    peer_cap: float = 900.0  # seconds of training a peer gets to reach 91%


def run_bench(opts: BenchOptions, log=None) -> dict:
    """Run the sections asked for; returns the figures as one JSON-ready dict. `log(str)` gets progress."""
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
    log(f"machine: {describe(machine)}, {threads} thread(s)")
    peak = {"fp32": round(matmul_gflops(threads), 1)}
    if cpu_has_bf16():
        peak["bf16"] = round(matmul_gflops(threads, torch.bfloat16), 1)
    precision = "bf16" if amp_dtype(torch.device("cpu")) == torch.bfloat16 else "fp32"  # what training uses
    result = {"machine": machine, "threads": threads, "quick": opts.quick, "matmul_gflops": peak,
              "train_precision": precision,
              "data": {"name": ds.name, "train_images": n_train, "full_train_images": n_full,
                       "test_images": n_test}}
    mean, std = channel_stats(ds.train.x[:n_train])
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as tmp:
        tmp = Path(tmp)
        raw = torchvision_root(ds, tmp / "tv", n_train, n_test)
        result["epochs"] = _epochs(opts, raw, n_train, n_full, threads, mean[0], std[0], peak, precision, tmp,
                                   log)
        data, data_dir = (str(raw), None) if opts.quick else (cfg.data, cfg.data_dir)
        runs = {}
        if opts.accuracy or opts.seed_epochs or opts.peers:
            runs = _budgets(opts, data, data_dir, threads, tmp, log)
            result["time_to_accuracy"] = {"model": "the default for each budget", "runs": runs}
        if opts.accuracy and runs:
            last = runs[list(runs)[-1]]
            run = last.pop("run")
            model = predictor(run.model, run.meta.tta)  # as served: with its test-time flips
            x = (ds.test.x[:n_test].float() / 255 - mean[0]) / std[0]
            torch.set_num_threads(threads)
            result["inference"] = {"model": last["model"], "threads": threads, **inference_speed(model, x)}
        for r in runs.values():
            r.pop("run", None)
        if opts.seed_epochs:
            result["same_accuracy"] = _same_accuracy(opts, tmp / "tv", mean[0], std[0], runs, threads, log)
        if opts.peers:
            result["peers"] = _peers(opts, ds, tmp / "tv", (mean[0], std[0]), data, data_dir, threads, runs,
                                     tmp, log)
    result["machine"]["load_average_end"] = load_average()
    result["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    return result


def _epochs(opts, raw, n_train, n_full, threads, mean, std, peak, precision, tmp, log) -> list[dict]:
    rows, scale = [], n_full / n_train  # seconds on the slice -> seconds per full epoch
    for name in opts.models:
        model = create_model(name, (1, 28, 28), 10)
        macs = totals(model)["macs"]
        torch.set_num_threads(threads)
        log(f"{name}: the seeds' loop, one epoch of {n_train} images ...")
        seed = seed_epoch(name, raw.parent.parent, mean, std, opts.config.seed)
        log(f"{name}: cnnlab.train, one epoch of {n_train} images ...")
        ours = cnnlab_epoch(name, raw, n_train, threads, opts.config.seed, tmp / "runs" / name)
        flops = n_full * 6 * macs  # an epoch's training FLOPs: 3 passes x 2 FLOPs per multiply-add
        floor = flops / (peak[precision] * 1e9)
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
        rows.append(row)
        log(format_row(row))
    return rows


def _budgets(opts, data, data_dir, threads, tmp, log) -> dict:
    runs = {}
    budgets = ("5s",) if opts.quick else opts.budgets
    for b in budgets:
        log(f"cnnlab train --time {b} ...")
        runs[b] = budget_run(b, data, data_dir, threads, tmp / "budget" / b)
        log(f"  {runs[b]['model']}, {runs[b]['epochs']} epochs, {runs[b]['used_seconds']:.1f} s in all, "
            f"test {100 * runs[b]['test_accuracy']:.2f}%")
    return runs


def _same_accuracy(opts, root, mean, std, runs, threads, log) -> list[dict]:
    """The seeds' loop for N epochs; the training seconds cnnlab's default needed for the test accuracy
    it reached (its first validation point at or above it, in the longest budget run)."""
    rows = (runs[max(runs, key=lambda b: runs[b]["used_seconds"])]["rows"]) if runs else []
    out = []
    for name in [m for m in opts.models if m != DEFAULT_MODEL]:
        torch.set_num_threads(threads)
        loop, seconds = SeedLoop(name, root, mean, std, opts.config.seed), 0.0
        for epoch in range(1, max(opts.seed_epochs) + 1):
            seconds += loop.train_epoch()
            if epoch in opts.seed_epochs:
                acc = loop.test()
                ours = first_crossing(rows, acc)
                out.append({"model": name, "epochs": epoch, "seed_seconds": round(seconds, 2),
                            "seed_test_accuracy": round(acc, 4), "cnnlab_seconds": ours,
                            "ratio": round(seconds / ours, 1) if ours else None})
                log(f"  seeds' loop {name}, {epoch} epoch(s): {seconds:.1f} s, test {100 * acc:.2f}%; cnnlab "
                    f"reached it in {'-' if ours is None else f'{ours:.1f} s'}")
    return out


def _peers(opts, ds, root, stats, data, data_dir, threads, runs, tmp, log) -> dict:
    """cnnlab's shortest budget that reaches 91% test accuracy, then each peer to 91% or its cap."""
    def shortest() -> dict | None:
        good = [r for r in runs.values() if r["test_accuracy"] >= PEER_TARGET]
        return min(good, key=lambda r: r["used_seconds"]) if good else None

    ours = shortest()
    for b in ("30s", "45s", "60s", "90s"):  # budgets between those asked for: the shortest that gets there
        if ours is not None and ours["used_seconds"] <= parse_duration(b):
            break
        if b in runs:
            continue
        runs[b] = budget_run(b, data, data_dir, threads, tmp / "budget" / b)
        runs[b].pop("run")
        ours = shortest()
    peers = [SeedLoop(m, root, *stats, opts.config.seed) for m in ("mnist-classifier", "lenet5")]
    peers.append(PytorchExamples(root, opts.config.seed))
    if keras_available():
        n = len(ds.train) if not opts.quick else opts.limit or 2048
        peers.append(KerasConvnet(ds.train.x[:n, 0].numpy(), ds.train.y[:n].numpy(),
                                  ds.test.x[:, 0].numpy(), ds.test.y.numpy(), opts.config.seed))
    else:
        log("  Keras is not installed: `pip install cnnlab[peers]` adds it")
    mine = None if ours is None else {"command": ours["command"], "seconds": ours["used_seconds"],
                                      "test_accuracy": ours["test_accuracy"]}
    out = {"target": PEER_TARGET, "cnnlab": mine, "peers": []}
    for peer in peers:
        torch.set_num_threads(threads)
        log(f"{peer.name}: to {100 * PEER_TARGET:.0f}% test accuracy (cap {opts.peer_cap:.0f} s of training)")
        r = time_to_target(peer, PEER_TARGET, opts.peer_cap, log)
        if ours is not None:  # a peer that never got there is at least cap / ours slower
            r["ratio"] = round((r["seconds"] or opts.peer_cap) / ours["used_seconds"], 1)
            r["ratio_is_lower_bound"] = not r["reached"]
        out["peers"].append(r)
    return out
