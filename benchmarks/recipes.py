"""Time to accuracy of candidate fast models through the real trainer: the search behind fastcnn's design.

    .venv/bin/python benchmarks/recipes.py                    # every candidate, 3 epochs (about 4 min)
    .venv/bin/python benchmarks/recipes.py --only fastcnn head-24-48 --epochs 20 --augment flip

Each candidate is a layer list in the spec format, all trained with one recipe; each row is one
`cnnlab.train` run on Fashion-MNIST (54,000 training / 6,000 validation images; test accuracy on the
10,000 test images, of the best validation checkpoint). Seconds are the trainer's own `train_seconds`
(validation included).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import cnnlab
from cnnlab.models import create_model, get_entry, totals


def conv(out: int, k: int = 3, s: int = 1) -> dict:
    return {"Conv2d": {"out_channels": out, "kernel_size": k, "stride": s, "padding": k // 2, "bias": False}}


BN, RELU, POOL = {"BatchNorm2d": None}, "ReLU", {"MaxPool2d": 2}
HEAD = ["Flatten", {"Linear": 256}, "ReLU", {"Dropout": 0.2}, "Linear"]
# The short recipe every candidate gets (fastcnn's own, three epochs, no augmentation: `cnnlab train
# --epochs 3 --augment none`); --epochs and --augment change it for all.
RECIPE = {"optimizer": "adamw", "lr": 0.008, "weight_decay": 5e-4, "batch_size": 256, "epochs": 3,
          "schedule": "onecycle", "label_smoothing": 0.1, "augment": "none"}
CANDIDATES = {
    # cnnlab's first default: conv-BN-ReLU-pool x3 (24-48-96), global max pooling
    "old-default": [conv(24), BN, RELU, POOL, conv(48), BN, RELU, POOL, conv(96), BN, RELU,
                    {"AdaptiveMaxPool2d": 1}, "Flatten", "Linear"],
    # the same with pooling before BN and ReLU: 4x fewer values through them
    "pool-first": [conv(24), POOL, BN, RELU, conv(48), POOL, BN, RELU, conv(96), BN, RELU,
                   {"AdaptiveMaxPool2d": 1}, "Flatten", "Linear"],
    # two stages and a linear classifier on the flattened 7x7 map: where a feature sits matters
    "flat-24-48": [conv(24), POOL, BN, RELU, conv(48), POOL, BN, RELU, "Flatten", "Linear"],
    # a stride-2 first conv instead of conv + pool: cheaper, loses detail 28x28 images cannot spare
    "stride2-24-48": [conv(24, s=2), BN, RELU, conv(48), POOL, BN, RELU, "Flatten", "Linear"],
    "head-24-48": [conv(24), POOL, BN, RELU, conv(48), POOL, BN, RELU, *HEAD],
    "head-16-32": [conv(16), POOL, BN, RELU, conv(32), POOL, BN, RELU, *HEAD],
    "fastcnn": get_entry("fastcnn").layers,  # head-16-48, the registry's own
}


def run(name: str, layers: list, recipe: dict, tmp: Path, threads: int | None) -> dict:
    spec = tmp / f"{name}.json"
    spec.write_text(json.dumps({"name": name, "layers": layers, "train": recipe}))
    with contextlib.redirect_stdout(sys.stderr):
        r = cnnlab.train(model=str(spec), data="fashion-mnist", threads=threads, out=str(tmp / "runs" / name),
                         progress=False)
    res, rows = r.results, r.metrics
    cross = {t: next((float(x["seconds"]) for x in rows if x.get("val_accuracy") not in (None, "")
                      and float(x["val_accuracy"]) >= t), None) for t in (0.91, 0.93)}
    return {"name": name, "macs": totals(create_model(str(spec), (1, 28, 28), 10))["macs"],
            "epochs": res["epochs"], "train_seconds": res["train_seconds"],
            "test_accuracy": res["test_accuracy"], "best_val_accuracy": res["best_val_accuracy"],
            "val_91_s": cross[0.91], "val_93_s": cross[0.93]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", help=f"candidates to run (default all: {', '.join(CANDIDATES)})")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--augment", default=RECIPE["augment"], help="none | flip")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    names = a.only or list(CANDIDATES)
    rows = []
    print(f"{'candidate':<12} {'MMAC':>6} {'ep':>3} {'train s':>8} {'test %':>7} {'val %':>6} "
          f"{'val 91% at':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            recipe = {**RECIPE, "epochs": a.epochs, "augment": a.augment}
            r = run(name, CANDIDATES[name], recipe, Path(tmp), a.threads)
            rows.append(r)
            at = "-" if r["val_91_s"] is None else f"{r['val_91_s']:.1f} s"
            print(f"{name:<12} {r['macs'] / 1e6:6.2f} {r['epochs']:>3} {r['train_seconds']:8.1f} "
                  f"{100 * r['test_accuracy']:7.2f} {100 * r['best_val_accuracy']:6.2f} {at:>11}", flush=True)
    if a.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
