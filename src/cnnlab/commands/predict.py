"""cnnlab predict."""

from __future__ import annotations

import argparse

HELP = ("classify your own image files or whole folders (PNG/JPEG, any size, colour or grey) "
        "with a trained run")
EXAMPLES = """\
  cnnlab predict runs/mnist-run photo_of_a_7.jpg
  cnnlab predict runs/mnist-run a.png b.png --top-k 3 --json
  cnnlab predict runs/my-run photos/ > predictions.jsonl          # a whole folder, recursively
  cnnlab predict runs/my-run photos/ --format csv > predictions.csv

Files named on the command line: every one is read before anything is printed; one that is
missing or not an image stops the command (exit 2, naming it). Default output: one line per
image; --json prints one JSON list of {file, label, probability, top_k: [{label, probability}]}.

Folders: image files (.png, .jpg, .webp and the other suffixes Pillow reads; hidden files and folders
skipped) are read recursively in sorted order and predicted in batches (--batch-size), so
memory stays flat for any number of files. Output is streamed as it is produced: JSON lines by
default (one object per line; --json means this too), or --format csv|json|text. A file in a
folder that cannot be read is reported on stderr and skipped; the command goes on and exits 0,
printing the count of predicted and skipped files on stderr at the end (a batch job over 50,000
photos should not die at the 49,000th because one is truncated). A progress bar goes to stderr
when it is a terminal (--progress forces it).

Images are prepared exactly like the training data. One already at the model's input size (a test
image saved as PNG) is taken as it is; others are cleaned and framed (digits: grey, ink bright on
dark, light and noise removed, fitted in 20x20, centred by centre of mass in 28x28)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a .safetensors file cnnlab wrote)")
    p.add_argument("images", metavar="IMAGE|DIR", nargs="+", help="image files and/or folders of images")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to list per image (default 3)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="files: one JSON list, an object per image; folders: JSON lines (see below)")
    out.add_argument("--format", choices=["text", "json", "jsonl", "csv"],
                     help="output format (default: text for files, jsonl for folders)")
    p.add_argument("--batch-size", type=int, default=256, help="images decoded and run at once (default 256)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr for folders (default: when stderr is a terminal)")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..errors import UserError
    from ..predict import predict_files, write_predictions
    from ..run import open_model

    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}: must be >= 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be >= 1")
    model, meta, _ = open_model(args.run_dir)
    if not any(Path(p).is_dir() for p in args.images):
        results = predict_files(model, meta, args.images, args.top_k, args.batch_size)
        write_predictions(results, args.format or ("json" if args.json else "text"), sys.stdout, args.top_k)
        return 0
    return _predict_folders(model, meta, args)


def _predict_folders(model, meta, args: argparse.Namespace) -> int:
    """Stream predictions for folders (and any files named beside them)."""
    import sys
    from pathlib import Path

    from tqdm.auto import tqdm

    from ..data import IMAGE_EXTS, open_image
    from ..errors import UserError
    from ..predict import count_images, predict_folder, write_predictions

    for f in (p for p in args.images if not Path(p).is_dir()):
        open_image(f)  # files named explicitly stay strict: fail before the first line of output
    if count_images(args.images) == 0:
        raise UserError(f"{', '.join(args.images)}: no image files found (looked for {', '.join(IMAGE_EXTS)} "
                        "recursively)")
    skipped = 0

    def report(path: str, message: str) -> None:
        nonlocal skipped
        skipped += 1
        tqdm.write(f"warning: skipped {message}", file=sys.stderr)

    stream = predict_folder(model, meta, args.images, args.top_k, args.batch_size, on_error=report,
                            progress=args.progress)
    n = write_predictions(stream, args.format or "jsonl", sys.stdout, args.top_k)
    if n == 0:
        raise UserError(f"{', '.join(args.images)}: none of the {skipped} image files could be read "
                        "(see above)")
    files = "file" if skipped == 1 else "files"
    print(f"predicted {n} images"
          + (f"; skipped {skipped} unreadable {files} (listed above)" if skipped else ""),
          file=sys.stderr)
    return 0
