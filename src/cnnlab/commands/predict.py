"""cnnlab predict."""

from __future__ import annotations

import argparse
import json

HELP = "classify your own image files (PNG/JPEG, any size, colour or grey) with a trained run"
EXAMPLES = """\
  cnnlab predict runs/mnist-run photo_of_a_7.jpg
  cnnlab predict runs/mnist-run a.png b.png --top-k 3 --json
Images are prepared exactly like the training data (digits: grey, ink bright on dark, cropped,
fitted in 20x20, centred by centre of mass in 28x28)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a .safetensors file cnnlab wrote)")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to list per image (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON list, an object per image")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import UserError
    from ..predict import predict_files
    from ..run import Run
    from ..weights import load_weights

    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}: must be >= 1")
    src = Path(args.run_dir)
    model, meta = load_weights(src) if src.suffix == ".safetensors" else Run(src).load()
    results = predict_files(model, meta, args.images, args.top_k)
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        others = ", ".join(f"{t['label']} {100 * t['probability']:.1f}%" for t in r["top_k"][1:])
        print(f"{r['file']}: {r['label']} ({100 * r['probability']:.1f}%)" + (f"   then {others}" if others else ""))
    return 0
