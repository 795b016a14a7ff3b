"""A real two-class photo folder, made offline from the photographs scikit-image ships: grass vs gravel.

    python tests/photo_set.py OUT_DIR [--train 120] [--test 60] [--seed 0]

scikit-image's `grass.png` and `gravel.png` are 512x512 greyscale photographs of a lawn and of a gravel
path. Every sample is a crop of one of them: a random size (12 to 40 pixels a side, aspect 3:4 to 4:3),
a random place, rescaled by 0.7-1.6 and saved as a JPEG of quality 60-95 (one in eight as PNG), so the
folder has files of many sizes and encodings like a user's photos. Training crops come from the top
60% of each photograph and test crops from the bottom 40%: no test pixel was ever seen in training.
Small crops of two grainy grey textures are not easy: a logistic regression on frozen ImageNet features
gets a few percent of them wrong (docs/photos.md has the figures).

Layout: OUT_DIR/train/<class>/*.jpg and OUT_DIR/test/<class>/*.jpg, the layout `cnnlab train --data`
reads. The same seed writes the same files.

The builder lives beside the notebooks (examples/notebooks/offline_data.py, `grass_and_gravel`), which
build the same folder for a reader; this module is the tests' and the benchmarks' way in, and the CLI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "notebooks"))

from offline_data import grass_and_gravel as build  # noqa: E402

__all__ = ["build"]

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--train", type=int, default=120, help="training images per class")
    p.add_argument("--test", type=int, default=60, help="test images per class")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(build(a.out, a.train, a.test, a.seed))
