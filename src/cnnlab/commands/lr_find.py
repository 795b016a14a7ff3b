"""cnnlab lr-find."""

from __future__ import annotations

import argparse

HELP = "learning-rate range test: sweep the rate up over a few hundred steps and suggest one"
EXAMPLES = """\
  cnnlab lr-find --model lenet5 --data fashion-mnist
  cnnlab lr-find --model my_net.yaml --data ./photos --limit 5000 --out lr/
  cnnlab lr-find --model simple-cnn --data cifar10 --optimizer sgd --steps 300
Trains a throw-away copy of the model (nothing is saved but the plot and a CSV) with the model's own
optimiser and batch size, the rate growing from --start-lr to --end-lr; stops when the loss diverges.
The suggestion is the steepest descent of the smoothed loss. Then: cnnlab train --lr <suggestion>."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="fastcnn", help="model name or .yaml/.json spec (default fastcnn)")
    p.add_argument("--data", default="fashion-mnist", help="data set name or directory (default fashion-mnist)")
    p.add_argument("--data-dir", help="where named data sets are looked for first")
    p.add_argument("--limit", type=int, help="use only N training samples (stratified)")
    p.add_argument("--batch-size", type=int, help="default: the model's own")
    p.add_argument("--optimizer", help="sgd | adam | adamw (default: the model's own)")
    p.add_argument("--start-lr", type=float, default=1e-6, help="first learning rate (default 1e-6)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last learning rate (default 10)")
    p.add_argument("--steps", type=int, default=200, help="training steps in the sweep (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--out", metavar="DIR", help="where to write lr_find.png and lr_find.csv "
                                                "(default runs/lr-find-<model>-<data>)")


def run(args: argparse.Namespace) -> int:
    from ..lr_find import lr_find

    r = lr_find(args.model, args.data, args.data_dir, args.limit, args.batch_size, args.optimizer,
                args.start_lr, args.end_lr, args.steps, args.seed, args.device, args.out)
    print(f"suggested learning rate: {r.suggestion:.2g}")
    print(f"  how: {r.how}")
    print(f"  sweep: {r.lrs[0]:.0e} to {r.lrs[-1]:.2g} over {len(r.lrs)} steps; {r.stopped}")
    print(f"  minimum of the smoothed loss at lr {r.min_loss_lr:.2g} (a rate ~10x below it is another rule)")
    print(f"plot: {r.plot}")
    return 0
