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

    from ..errors import UserError
    from ..models import (
        build_model,
        create_model,
        fmt_shape,
        format_summary,
        get_entry,
        parse_shape,
        spec_classes,
    )

    if args.classes is not None and args.classes < 1:
        raise UserError(f"--classes {args.classes}: must be a whole number >= 1")
    if Path(args.model).is_dir() and (Path(args.model) / "config.yaml").is_file():
        from ..run import Run

        if args.input or args.classes:
            raise UserError(f"{args.model} is a run: its model has a fixed input and class count; "
                            "drop --input/--classes")
        model, meta = Run(args.model).load()
        print(format_summary(model, title=f"{meta.spec['name']} as trained in {args.model} "
                                          f"(input {fmt_shape(meta.input_shape)}, "
                                          f"{len(meta.classes)} classes)"))
        return 0
    entry = get_entry(args.model)
    shape = parse_shape(args.input, "--input") if args.input else (
        parse_shape(entry.input, f"{args.model}: input") if entry.input else (1, 28, 28))
    if entry.backbone:  # as ImageNet trained it, unless --classes says otherwise
        model = create_model(entry.name, shape, classes := args.classes or 1000)
    else:
        classes = args.classes or spec_classes(entry.spec) or 10
        model = build_model(entry.spec, shape, classes, label=args.model)
    print(format_summary(model, title=f"{entry.name}  (input {fmt_shape(shape)}, {classes} classes)"))
    return 0
