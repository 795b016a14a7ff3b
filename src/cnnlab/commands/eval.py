"""cnnlab eval."""

from __future__ import annotations

import argparse
import json

HELP = "test a trained run: accuracy, loss, per-class precision/recall/F1, confusion matrix"
EXAMPLES = """\
  cnnlab eval runs/lenet5-fashion-mnist-20261122-101500
  cnnlab eval runs/my-run --json
  cnnlab eval runs/mnist-run --data ./other-mnist-format-dir"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", help="evaluate on this data set instead of the run's own test split")
    p.add_argument("--data-dir", help="where named data sets are looked for first")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..run import Run, evaluate_run
    from ..viz.plots import save_confusion

    r = Run(args.run_dir)
    rep = evaluate_run(r, args.data, args.data_dir)
    name = Path(str(rep["data"]).rstrip("/")).name
    png = save_confusion(rep["confusion_matrix"], list(rep["per_class"]), r.path / "plots" /
                         f"confusion_matrix_eval_{name}.png",
                         title=f"{Path(str(rep['model'])).stem} on {name}")
    if args.json:
        print(json.dumps({**rep, "confusion_matrix_png": str(png)}))
        return 0
    print(f"{rep['model']} on {rep['data']} ({rep['test_samples']} test images)")
    print(f"test accuracy {100 * rep['test_accuracy']:.2f}%   test loss {rep['test_loss']:.4f}\n")
    w = max(len(c) for c in rep["per_class"]) + 2
    print(f"{'class':<{w}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for c, m in rep["per_class"].items():
        print(f"{c:<{w}}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>9}")
    print(f"\nconfusion matrix: {png}")
    return 0
