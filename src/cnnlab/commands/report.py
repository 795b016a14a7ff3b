"""cnnlab report."""

from __future__ import annotations

import argparse

HELP = "write one self-contained report.html for a run (opens from disk, images inside)"
EXAMPLES = """\
  cnnlab report runs/lenet5-fashion-mnist-20261122-101500
  cnnlab report runs/my-run --out my-run.html
Config, data and split, model summary, curves, confusion matrix, per-class table, mistakes, filters,
feature maps, saliency/Grad-CAM and one convolution by hand. Missing pictures are drawn first.
`cnnlab train --report` writes the same page at the end of training."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="FILE", help="where to write the page (default RUN_DIR/report.html)")


def run(args: argparse.Namespace) -> int:
    from ..run import Run
    from ..viz.report import write_report

    print(write_report(Run(args.run_dir), args.out))
    return 0
