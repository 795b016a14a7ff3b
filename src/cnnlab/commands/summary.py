"""cnnlab summary."""

from __future__ import annotations

import argparse

HELP = "show a model's layers: output shapes, the arithmetic behind them, parameters, multiply-adds"
EXAMPLES = """\
  cnnlab summary lenet5
  cnnlab summary simple-cnn --input 3x32x32
  cnnlab summary examples/models/cnn-model.yaml
  cnnlab summary runs/my-run              # the model a run trained"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="NAME|SPEC.yaml|RUN_DIR")
    p.add_argument("--input", help="input shape CxHxW (default: the spec's input, else 1x28x28)")
    p.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..models import get_entry
    from ..spec import build_model, parse_shape
    from ..summary import format_summary

    if Path(args.model).is_dir() and (Path(args.model) / "config.yaml").is_file():
        from ..run import Run

        model, meta = Run(args.model).load()
        print(format_summary(model, title=f"{meta.spec['name']} ({args.model})"))
        return 0
    entry = get_entry(args.model)
    shape = parse_shape(args.input, "--input") if args.input else (
        parse_shape(entry.input) if entry.input else (1, 28, 28))
    if args.classes < 1:
        from ..errors import UserError

        raise UserError(f"--classes {args.classes}: must be >= 1")
    model = build_model(entry.spec, shape, args.classes)
    print(format_summary(model, title=f"{entry.name}  (input {'x'.join(map(str, shape))}, {args.classes} classes)"))
    return 0
