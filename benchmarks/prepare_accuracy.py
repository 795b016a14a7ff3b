"""Does preparing an image cost accuracy? Test images as PNG files and as photographs, against their tensors.

    .venv/bin/python benchmarks/prepare_accuracy.py                         # synthetic MNIST-format digits
    .venv/bin/python benchmarks/prepare_accuracy.py --data mnist --epochs 2 # real MNIST, where it is present
    .venv/bin/python benchmarks/prepare_accuracy.py --run runs/fashion-lenet5 --limit 10000

Trains a model on --data (or takes --run), then scores its test images three ways, all through
`cnnlab.predict.predict_files`, the code `cnnlab predict` and the server run:

- tensor: the test split as the model is evaluated on it (`cnnlab eval`);
- png:    each test image saved as a PNG file, prepared by `data.prepare`; `agree` is the share that gets
          the tensor's class;
- photo:  (digit models) each test digit photographed as tests/photos.py renders it -- enlarged 8-13x,
          off-centre, dark ink on unevenly lit paper, blurred, noisy, JPEG.

Prints one Markdown table row per way. Then, for digit models, two facts about photos alone: how close
a digit framed like MNIST comes back from its photo (mean |difference| over 200 digits, pixels in
[0, 1]), and the milliseconds `open_image` + `to_model_pixels` take per photo at 512x384 and at 4000x3000
(12 MP). Accuracy does not depend on the machine's load; the seconds do: time on an idle machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cnnlab
from cnnlab.data import normalize, open_image, to_model_pixels
from cnnlab.predict import predict_files

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from datafiles import mnist_like_digits, write_idx  # noqa: E402 -- the test suite's own data writers
from photos import photograph  # noqa: E402


def synthetic_mnist(root: Path, n_train: int, n_test: int) -> Path:
    """MNIST-format IDX files of synthetic digits (tests/datafiles.py): real MNIST is not offline."""
    xtr, ytr = mnist_like_digits(n_train, seed=1)
    xte, yte = mnist_like_digits(n_test, seed=2)
    return write_idx(root / "mnist-synthetic", xtr, ytr, xte, yte, gz=True)


def score(run: cnnlab.Run, limit: int, photos: bool, work: Path) -> list[tuple[str, float, float, float]]:
    """(way, accuracy, agreement with the tensor's class, seconds) for each way the images go in."""
    ts = run.test_set()
    x, y = ts.x[:limit], ts.y[:limit]
    model, meta = run.model, run.meta
    start = time.perf_counter()
    with torch.inference_mode():
        ref = torch.cat([model(normalize(x[i:i + 1000].float() / 255, meta)).argmax(1)
                         for i in range(0, len(x), 1000)])
    rows = [("tensor", float((ref == y).float().mean()), 1.0, time.perf_counter() - start)]
    ways = {"png": lambda i, a: _png(work / f"{i:05d}.png", a)}
    if photos:
        ways["photo"] = lambda i, a: _jpeg(work / f"{i:05d}.jpg", photograph(a[0], seed=i))
    for way, write in ways.items():
        files = [write(i, a) for i, a in enumerate(x.numpy())]
        start = time.perf_counter()
        got = [meta.classes.index(r["label"]) for r in predict_files(model, meta, files)]
        seconds = time.perf_counter() - start
        got_t = torch.tensor(got)
        rows.append((way, float((got_t == y).float().mean()), float((got_t == ref).float().mean()), seconds))
    return rows


def round_trip(meta, n: int = 200) -> tuple[float, float]:
    """Mean and worst mean |difference| between a digit framed like MNIST and its photo, prepared."""
    x, _ = mnist_like_digits(n, seed=9)
    diffs = []
    for i, a in enumerate(x):
        scan = Image.fromarray(a).resize((280, 280), Image.Resampling.BICUBIC)  # a clean, large scan
        digit = to_model_pixels(scan, meta)[0]  # framed as MNIST frames digits: 20-pixel box, by mass
        photo = open_image(photograph(np.rint(digit * 255).astype(np.uint8), seed=i))
        diffs.append(float(np.abs(to_model_pixels(photo, meta)[0] - digit).mean()))
    return float(np.mean(diffs)), float(np.max(diffs))


def prepare_ms(meta, size: tuple[int, int], n: int = 20) -> float:
    """Milliseconds to decode and prepare one JPEG photo of `size` (W, H)."""
    x, _ = mnist_like_digits(n, seed=9)
    photos = [photograph(a, seed=i, size=size) for i, a in enumerate(x)]
    start = time.perf_counter()
    for jpeg in photos:
        to_model_pixels(open_image(jpeg), meta)
    return (time.perf_counter() - start) / n * 1000


def _png(path: Path, a: np.ndarray) -> Path:
    Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(path)
    return path


def _jpeg(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="a trained run to score (default: train one on --data)")
    p.add_argument("--data", help="data set to train on (default: synthetic MNIST-format digits)")
    p.add_argument("--model", default="fastcnn")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train", type=int, default=10_000, help="synthetic digits to train on")
    p.add_argument("--limit", type=int, default=2000, help="test images scored (default 2000)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.run:
            run = cnnlab.load_run(args.run)
        else:
            data = args.data or str(synthetic_mnist(work, args.train, args.limit))
            run = cnnlab.train(model=args.model, data=data, epochs=args.epochs, out=str(work / "run"),
                               progress=False)
        rows = score(run, args.limit, run.meta.style == "mnist", work)
        name, n = f"{run.config.get('model')} on {run.meta.data}", min(args.limit, len(run.test_set().y))
    print(f"\n{name} (style {run.meta.style}), {n} test images\n")
    print("| images as | accuracy | same class as the tensor | seconds |")
    print("|---|---|---|---|")
    for way, acc, agree, seconds in rows:
        print(f"| {way} | {acc:.2%} | {agree:.2%} | {seconds:.1f} |")
    if run.meta.style == "mnist" and run.meta.input_shape[1:] == (28, 28):
        mean, worst = round_trip(run.meta)
        print(f"\nMNIST-framed digit -> photo -> prepared: mean |difference| {mean:.3f}, worst {worst:.3f}")
        for size in ((512, 384), (4000, 3000)):
            print(f"decode + prepare one {size[0]}x{size[1]} JPEG photo: {prepare_ms(run.meta, size):.0f} ms")


if __name__ == "__main__":
    main()
