"""Shared fixtures: real data on disk, and small trained runs reused across test modules."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

FASHION = Path("/usr/share/datasets/fashion-mnist")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

# Tests run on small CNNs: one intra-op thread is fastest on small machines
# (see training.runtime.choose_threads).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The decoded-image cache (data/cache.py) and everything else under the user cache: a fresh folder for this
# session, so the tests never write into the user's ~/.cache and never read what an earlier run left there.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="cnnlab-tests-cache-")


def pytest_configure(config):
    ARTIFACTS.mkdir(exist_ok=True)


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The full Fashion-MNIST IDX files from Debian's dataset-fashion-mnist (make test installs it)."""
    if not any(FASHION.glob("train-images-idx3-ubyte*")):
        pytest.fail("Fashion-MNIST is missing: run `make test` (it installs Debian's dataset-fashion-mnist) "
                    "or `apt-get install dataset-fashion-mnist`")
    return FASHION


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """An MNIST-format directory (exact IDX files) of synthetic handwritten-style digits, not in this repo."""
    from datafiles import mnist_like_digits, write_idx

    xtr, ytr = mnist_like_digits(3000, seed=1)
    xte, yte = mnist_like_digits(600, seed=2)
    return write_idx(tmp_path_factory.mktemp("mnist"), xtr, ytr, xte, yte, gz=True)


@pytest.fixture(scope="session")
def fashion_run(tmp_path_factory, fashion_dir):
    """lenet5 trained briefly on 3,000 real Fashion-MNIST images (about 5 s on 2 cores)."""
    import cnnlab

    out = tmp_path_factory.mktemp("runs") / "fashion-lenet5"
    return cnnlab.train(model="lenet5", data="fashion-mnist", epochs=2, limit=3000, out=str(out),
                        progress=False)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory, mnist_dir):
    """fastcnn trained on the MNIST-format synthetic digits: good enough to read photographed digits."""
    import cnnlab

    out = tmp_path_factory.mktemp("runs") / "mnist-fastcnn"
    return cnnlab.train(model="fastcnn", data=str(mnist_dir), epochs=3, out=str(out), progress=False)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    """A real two-class photo folder (crops of scikit-image's grass and gravel photographs, JPEG and PNG of
    many sizes), 12 training and 6 test photos per class; crops of 64-200 px, so the classes are clear."""
    from photo_set import build

    return build(tmp_path_factory.mktemp("photos") / "grass-gravel", n_train=12, n_test=6, sides=(64, 200))


# The fine-tuning recipe at 96 px (a fifth of 224 px's arithmetic), on one thread: a run takes seconds.
PHOTO_OPTS = {"pretrained": True, "image_size": 96, "epochs": 3, "batch_size": 8, "head_epochs": 10,
              "eval_every": 2, "checkpoint_every": 2, "threads": 1, "seed": 1}


@pytest.fixture(scope="session")
def photo_run(tmp_path_factory, photo_dir):
    """EfficientNet-Lite0 fine-tuned on the photo folder, as in a notebook: cnnlab.train(pretrained=True)."""
    import cnnlab

    out = tmp_path_factory.mktemp("runs") / "photos-lite0"
    return cnnlab.train(data=str(photo_dir), out=str(out), progress=False, **PHOTO_OPTS)
