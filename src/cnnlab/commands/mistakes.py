"""cnnlab mistakes."""

from __future__ import annotations

import argparse

HELP = "the test images a model gets wrong, worst first; most-confused pairs; per-class accuracy"
EXAMPLES = """\
  cnnlab mistakes runs/lenet5-fashion-mnist-20261122-101500
  cnnlab mistakes runs/my-run --top 48 --out mistakes/
Writes mistakes.png (gallery, highest loss first) and mistakes.csv (every misclassified test image:
index, file, true, predicted, probability, true_probability, loss) to RUN_DIR/inspect/ or --out."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--top", type=int, default=24, help="how many mistakes the gallery shows (default 24)")
    p.add_argument("--out", metavar="DIR", help="where to write the files (default RUN_DIR/inspect)")


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..run import Run
    from ..viz.mistakes import save_mistakes

    if args.top < 1:
        raise UserError(f"--top {args.top}: must be >= 1")
    m, paths = save_mistakes(Run(args.run_dir), args.out, top=args.top)
    print(f"{len(m.rows)} of {m.total} test images misclassified (accuracy {100 * m.accuracy:.2f}%)")
    print("most-confused pairs (true -> predicted):")
    for t, p, n in m.pairs[:5]:
        print(f"  {t} -> {p}: {n}")
    worst = sorted(m.per_class_accuracy.items(), key=lambda kv: kv[1])[:3]
    print("lowest per-class accuracy: " + ", ".join(f"{c} {100 * a:.1f}%" for c, a in worst))
    for path in paths:
        print(path)
    return 0
