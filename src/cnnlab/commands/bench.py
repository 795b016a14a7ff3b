"""cnnlab bench."""

from __future__ import annotations

import argparse

from ..training.options import DEFAULT_DATA
from ..training.options import add_arguments as add_options

BENCH_OPTIONS = ("data", "data_dir", "threads", "seed")  # the training options both loops share

HELP = "time cnnlab against the seeds' DataLoader loop and the Keras and pytorch/examples recipes, in one run"
EXAMPLES = """\
  cnnlab bench                        # an epoch per model against the seeds' loop; --time 20s and 2m (~8 min)
  cnnlab bench --quick                # smoke run on 2,048 images, times scaled to a full epoch (~1 min)
  cnnlab bench --seed-epochs 1,5      # + the seeds' loop for 1 and 5 epochs: cnnlab's time to its accuracy
  cnnlab bench --peers                # + Keras, pytorch/examples and the seeds' loop to 91% (up to an hour)
  cnnlab bench --models lenet5 --no-accuracy --json > bench.json
  cnnlab bench --threads 2            # force the thread count (default: measured, see docs/benchmarks.md)

Every loop trains on the same IDX files at the same thread count, in this one process, so their ratios
are fair even on a busy machine. The first line names the CPU and its flags (avx2, avx512f, avx512_bf16,
amx): figures depend on them. docs/benchmarks.md has full runs."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_options(p, only=BENCH_OPTIONS, defaults={"data": DEFAULT_DATA})
    p.add_argument("--models", default="mnist-classifier,lenet5,fastcnn",
                   help="comma-separated model names (default: mnist-classifier,lenet5,fastcnn)")
    p.add_argument("--quick", action="store_true", help="a fast smoke run: a slice of the data, times scaled")
    p.add_argument("--limit", type=int,
                   help="training images per timed epoch (default all; 2048 with --quick)")
    p.add_argument("--no-accuracy", action="store_true", help="skip the budget runs and inference")
    p.add_argument("--budgets", default="20s,2m",
                   help="--time budgets of the default recipe (default 20s,2m)")
    p.add_argument("--seed-epochs", default="", metavar="N,M",
                   help="also run the seeds' loop for these epochs and time cnnlab to the same accuracy")
    p.add_argument("--peers", action="store_true",
                   help="also time Keras's and pytorch/examples' recipes and the seeds' loop to 91%%")
    p.add_argument("--peer-cap", default="15m", metavar="DURATION",
                   help="training time each peer gets to reach 91%% (default 15m)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def run(args: argparse.Namespace) -> int:
    import json

    from ..bench import BenchOptions, format_report, run_bench
    from ..errors import UserError
    from ..models import get_entry
    from ..training.options import TrainConfig, parse_duration

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not models:
        raise UserError("--models: give at least one model name, e.g. --models lenet5")
    for m in models:
        get_entry(m)  # an unknown name fails here, before any timing
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be a whole number >= 1")
    config = TrainConfig(**{k: getattr(args, k) for k in BENCH_OPTIONS if getattr(args, k) is not None})
    budgets = tuple(b.strip() for b in args.budgets.split(",") if b.strip())
    for b in (*budgets, args.peer_cap):
        if parse_duration(b) is None:
            raise UserError(f"--budgets/--peer-cap {b!r}: give durations such as 20s, 2m or 1h")
    try:
        seed_epochs = tuple(int(n) for n in args.seed_epochs.split(",") if n.strip())
    except ValueError:
        raise UserError(f"--seed-epochs {args.seed_epochs!r}: give whole numbers, e.g. 1,5") from None
    opts = BenchOptions(config=config, models=models, quick=args.quick, limit=args.limit,
                        accuracy=not args.no_accuracy, budgets=budgets, seed_epochs=seed_epochs,
                        peers=args.peers, peer_cap=parse_duration(args.peer_cap))
    result = run_bench(opts)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
