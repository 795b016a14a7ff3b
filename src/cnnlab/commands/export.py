"""cnnlab export."""

from __future__ import annotations

import argparse

HELP = "save a trained model as ONNX or TorchScript, with its preprocessing in the file's metadata"
EXAMPLES = """\
  cnnlab export runs/my-run                          # -> runs/my-run/model.onnx
  cnnlab export runs/my-run --format torchscript     # -> runs/my-run/model.pt
  cnnlab export runs/my-run/best.safetensors --out /srv/models/fashion.onnx

Both take the normalised input (N, C, H, W) float32 with any batch size N and return logits.
The file records mean, std, input shape, preprocessing style and class names (ONNX: metadata_props;
TorchScript: extra file cnnlab.json). After writing, the file is run (ONNX Runtime / torch.jit) on
a few test images and compared with PyTorch; see docs/deploy.md."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a .safetensors file cnnlab wrote)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="default onnx")
    p.add_argument("--out", metavar="FILE", help="where to write (default RUN_DIR/model.onnx or model.pt)")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..export import check_export, export

    path = export(args.run_dir, args.format, args.out)
    print(path)
    from ..run import open_model

    run = open_model(args.run_dir)[2]
    data_dir = run.config.get("data_dir") if run is not None else None
    c = check_export(path, args.run_dir, data_dir=data_dir, fmt=args.format)
    engine = "ONNX Runtime" if args.format == "onnx" else "torch.jit"
    line = (f"check: {engine} vs PyTorch on {c['source']}: max |diff| {c['max_abs_diff']:.2g}, "
            f"same class {c['same_class']}/{c['n']}")
    # Float reordering gives ~1e-6 on logits; anything near 1e-3 means the exported graph is wrong (a bug).
    ok = c["max_abs_diff"] < 1e-3 and c["same_class"] == c["n"]
    print(line if ok else f"{line}: MISMATCH", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
