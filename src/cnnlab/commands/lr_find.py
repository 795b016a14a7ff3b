"""cnnlab lr-find."""

from __future__ import annotations

import argparse

from ..training.options import DEFAULT_DATA, DEFAULT_MODEL
from ..training.options import add_arguments as add_options

HELP = "learning-rate range test: sweep the rate up over a few hundred steps and suggest one"
EXAMPLES = """\
  cnnlab lr-find --model lenet5 --data fashion-mnist
  cnnlab lr-find --model my_net.yaml --data ./photos --limit 5000 --out lr/
  cnnlab lr-find --model simple-cnn --data cifar10 --optimizer sgd --steps 300
Trains a throw-away copy of the model (nothing is saved but the plot and a CSV) with the model's own
optimiser and batch size, the rate growing from --start-lr to --end-lr; stops when the loss diverges.
The suggestion is the steepest descent of the smoothed loss. Then: cnnlab train --lr <suggestion>."""


LR_FIND_OPTIONS = ("model", "data", "data_dir", "limit", "batch_size", "optimizer", "seed", "device")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_options(p, only=LR_FIND_OPTIONS, defaults={"model": DEFAULT_MODEL, "data": DEFAULT_DATA})
    p.add_argument("--start-lr", type=float, default=1e-6, help="first learning rate (default 1e-6)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last learning rate (default 10)")
    p.add_argument("--steps", type=int, default=200, help="training steps in the sweep (default 200)")
    p.add_argument("--out", metavar="DIR", help="where to write lr_find.png and lr_find.csv "
                                                "(default runs/lr-find-<model>-<data>)")


def run(args: argparse.Namespace) -> int:
    from ..training.lr_find import lr_find
    from ..training.options import TrainConfig

    given = {k: getattr(args, k) for k in LR_FIND_OPTIONS if getattr(args, k) is not None}
    r = lr_find(TrainConfig(**given), start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps,
                out=args.out)
    print(f"suggested learning rate: {r.suggestion:.2g}")
    print(f"  how: {r.how}")
    print(f"  sweep: {r.lrs[0]:.0e} to {r.lrs[-1]:.2g} over {len(r.lrs)} steps; {r.stopped}")
    print(f"  minimum of the smoothed loss at lr {r.min_loss_lr:.2g} (a rate ~10x below it is another rule)")
    print(f"plot: {r.plot}")
    return 0
