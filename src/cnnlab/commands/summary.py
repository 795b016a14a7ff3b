"""cnnlab summary."""

from __future__ import annotations

import argparse

HELP = "show a model's layers: output shapes, the arithmetic behind them, parameters, multiply-adds"
EXAMPLES = """\
  cnnlab summary lenet5
  cnnlab summary simple-cnn --input 3x32x32
  cnnlab summary examples/models/cnn-model.yaml
  cnnlab summary my_net.yaml --input 1x8x8 --classes 10   # will it fit scikit-learn's 8x8 digits?
  cnnlab summary runs/my-run              # the model a run trained
  cnnlab summary efficientnet-lite0       # a pretrained backbone (layers found with forward hooks)

Every run also writes this table to RUN_DIR/summary.txt."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="NAME|SPEC.yaml|RUN_DIR")
    p.add_argument("--input", metavar="CxHxW",
                   help="input shape, e.g. 3x32x32 (default: the spec's `input:`, a backbone's 3x224x224, "
                        "else 1x28x28)")
    p.add_argument("--classes", type=int,
                   help="number of classes (default: the size of the spec's last Linear, else 10)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if (Path(args.model) / "config.yaml").is_file():
        from ..run import summary  # a run: load its weights (the whole stack)
    else:
        from ..models.summary import summarize as summary  # a name or spec file: the models package alone

    print(summary(args.model, args.input, args.classes))
    return 0
