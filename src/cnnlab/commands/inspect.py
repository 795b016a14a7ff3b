"""cnnlab inspect."""

from __future__ import annotations

import argparse

HELP = "draw a trained model's filters, feature maps, saliency/Grad-CAM and one convolution by hand"
EXAMPLES = """\
  cnnlab inspect runs/lenet5-fashion-mnist-20261122-101500
  cnnlab inspect runs/my-run --image my_shoe.jpg          # feature maps and Grad-CAM for your own image
  cnnlab inspect runs/my-run --index 42 --layer conv2     # test image #42, one layer only
PNGs go to RUN_DIR/inspect/ (or --out DIR); their paths are printed. docs/inspect.md explains each."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--image", metavar="IMG", help="your own image (prepared like `cnnlab predict`); "
                                                   "default: a test image")
    p.add_argument("--index", type=int, default=0,
                   help="which test image when no --image is given (default 0)")
    p.add_argument("--layer", metavar="NAME", help="only this conv/pool layer's filters and feature maps "
                                                   "(names as in `cnnlab summary`, e.g. conv1)")
    p.add_argument("--out", metavar="DIR", help="where to write the PNGs (default RUN_DIR/inspect)")


def run(args: argparse.Namespace) -> int:
    from ..run import Run
    from ..viz.inspect import save_inspection

    for path in save_inspection(Run(args.run_dir), args.out, image=args.image, index=args.index,
                                layer=args.layer):
        print(path)
    return 0
