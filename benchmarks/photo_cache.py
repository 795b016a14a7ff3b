"""How long loading a photo folder takes: decoding every file, then from the on-disk cache.

    .venv/bin/python benchmarks/photo_cache.py                      # 2 x 120 JPEGs, 224 px
    .venv/bin/python benchmarks/photo_cache.py --folder my_photos/ --image-size 96

Without --folder, writes 2 classes x --per-class JPEGs cut from scikit-learn's two sample photos at
random sizes (400-2000 pixels on the longer side, like a mix of web images and phone photos), then times
`cnnlab.data.load_data` three times in an empty user cache: cold (every file decoded), warm (nothing
changed: the cache), and after one file changed (that file decoded again). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import sklearn.datasets
from PIL import Image


def write_folder(root: Path, per_class: int) -> Path:
    rng = np.random.default_rng(0)
    for name in ("china", "flower"):
        photo = Image.open(Path(sklearn.datasets.__file__).parent / "images" / f"{name}.jpg").convert("RGB")
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            w, h = int(rng.integers(200, 640)), int(rng.integers(150, 427))
            left, top = int(rng.integers(0, 641 - w)), int(rng.integers(0, 428 - h))
            side = int(rng.integers(400, 2001))
            size = (side, round(side * h / w)) if w >= h else (round(side * w / h), side)
            photo.crop((left, top, left + w, top + h)).resize(size, Image.Resampling.BICUBIC).save(
                root / name / f"{i:04d}.jpg", quality=90)
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", help="a photo folder of your own (default: one written from sample photos)")
    p.add_argument("--per-class", type=int, default=120)
    p.add_argument("--image-size", type=int, default=224)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # an empty cache, removed afterwards
        from cnnlab.data import load_data

        folder = Path(args.folder) if args.folder else write_folder(Path(tmp) / "photos", args.per_class)
        rows = []
        for what in ("cold: every file decoded", "warm: nothing changed", "one file changed"):
            if what == "one file changed":
                f = next(folder.rglob("*.jpg"))
                os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000_000))
            start = time.perf_counter()
            ds = load_data(str(folder), image_size=args.image_size, bad_images="skip")
            rows.append((what, time.perf_counter() - start))
        n = len(ds.train) + len(ds.test)
    print(f"\n{n} images of {folder if args.folder else 'sample photos'}, --image-size {args.image_size}\n")
    print("| load | seconds |")
    print("|---|---|")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
