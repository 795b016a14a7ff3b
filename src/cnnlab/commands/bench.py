"""cnnlab bench."""

from __future__ import annotations

import argparse

from ..training.options import DEFAULT_DATA
from ..training.options import add_arguments as add_options

BENCH_OPTIONS = ("data", "data_dir", "threads", "seed")  # the training options both loops share

HELP = "time the seeds' DataLoader loop against cnnlab's trainer in one run, with the FLOP floor"
EXAMPLES = """\
  cnnlab bench                        # full run: one epoch per model, time to accuracy, inference (~6 min)
  cnnlab bench --quick                # smoke run on 2,048 images, times scaled to a full epoch (~1 min)
  cnnlab bench --models lenet5 --no-accuracy --json > bench.json
  cnnlab bench --threads 2            # force the thread count (default: measured, see docs/benchmarks.md)

Both loops train the same model from the same initial weights on the same IDX files at the same thread
count, in this one process, so their ratio is fair even on a busy machine; docs/benchmarks.md has a run."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_options(p, only=BENCH_OPTIONS, defaults={"data": DEFAULT_DATA})
    p.add_argument("--models", default="mnist-classifier,lenet5,fastcnn",
                   help="comma-separated model names (default: mnist-classifier,lenet5,fastcnn)")
    p.add_argument("--quick", action="store_true", help="a fast smoke run: a slice of the data, times scaled")
    p.add_argument("--limit", type=int,
                   help="training images per timed epoch (default all; 2048 with --quick)")
    p.add_argument("--no-accuracy", action="store_true", help="skip time-to-accuracy and inference")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def run(args: argparse.Namespace) -> int:
    import json

    from ..bench import BenchOptions, format_report, run_bench
    from ..errors import UserError
    from ..models import get_entry
    from ..training.options import TrainConfig

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not models:
        raise UserError("--models: give at least one model name, e.g. --models lenet5")
    for m in models:
        get_entry(m)  # an unknown name fails here, before any timing
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be a whole number >= 1")
    config = TrainConfig(**{k: getattr(args, k) for k in BENCH_OPTIONS if getattr(args, k) is not None})
    opts = BenchOptions(config=config, models=models, quick=args.quick, limit=args.limit,
                        accuracy=not args.no_accuracy)
    result = run_bench(opts)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
