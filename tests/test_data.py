"""Data sets: every format round-trips from datafiles' writers; lookup order; splits; stats; bad input."""

import gzip
import math
import os
import pickle
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import CIFAR_CLASSES, idx_bytes, mnist_like_digits, write_cifar, write_idx, write_image_folder
from PIL import Image

from cnnlab.data import (
    DIGIT_CLASSES,
    FASHION_CLASSES,
    catalog,
    channel_stats,
    known_datasets,
    load_data,
    stratified_split,
    stratified_subset,
)
from cnnlab.errors import UserError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user cache, no CNNLAB_DATA and an empty system folder, unless a test sets them."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setattr(catalog, "SYSTEM_DIRS", [tmp_path / "system"])


def tiny(n_train=30, n_test=10, shape=(28, 28), seed=0):
    """Random images (N, H, W) uint8 and labels 0..9, every class present."""
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, 256, (n, *shape), dtype=np.uint8) for n in (n_train, n_test)]
    ys = [np.arange(n) % 10 for n in (n_train, n_test)]
    return xs[0], ys[0], xs[1], ys[1]


def check_split(split, x, y, channels=1):
    assert split.x.dtype == torch.uint8 and split.x.is_contiguous() and split.x.shape[1] == channels
    assert split.y.dtype == torch.int64 and len(split) == len(y)
    assert torch.equal(split.x, torch.from_numpy(np.asarray(x)).reshape(split.x.shape))
    assert torch.equal(split.y, torch.as_tensor(y, dtype=torch.int64))


# --- formats ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_idx_round_trip(tmp_path, gz):
    xtr, ytr, xte, yte = tiny()
    write_idx(tmp_path / "d", xtr, ytr, xte, yte, gz=gz)
    ds = load_data(str(tmp_path / "d"))
    check_split(ds.train, xtr, ytr)
    check_split(ds.test, xte, yte)
    assert ds.classes == DIGIT_CLASSES and ds.style == "mnist" and ds.input_shape == (1, 28, 28)
    assert ds.name == str(tmp_path / "d") and ds.source == str(tmp_path / "d") and ds.train.files is None


def test_idx_classes_txt_and_fashion_dir(tmp_path):
    write_idx(tmp_path / "my-fashion", *tiny())
    ds = load_data(str(tmp_path / "my-fashion"))
    assert ds.classes == FASHION_CLASSES and ds.style == "fit"
    (tmp_path / "my-fashion" / "classes.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    assert load_data(str(tmp_path / "my-fashion")).classes == [f"c{i}" for i in range(10)]


def test_cifar_round_trip_python2_format(tmp_path):
    rng = np.random.default_rng(0)
    xtr = rng.integers(0, 256, (25, 3, 32, 32), np.uint8)
    xte = rng.integers(0, 256, (10, 3, 32, 32), np.uint8)
    ytr, yte = np.arange(25) % 10, np.arange(10)[::-1].copy()
    write_cifar(tmp_path, xtr, ytr, xte, yte)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "batches.meta", *(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    assert (tmp_path / "test_batch").read_bytes().startswith(b"\x80\x02}(U\x0bbatch_label")
    ds = load_data(str(tmp_path))
    check_split(ds.train, xtr, ytr, channels=3)
    check_split(ds.test, xte, yte, channels=3)
    assert ds.classes == CIFAR_CLASSES and ds.style == "resize" and ds.input_shape == (3, 32, 32)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_written_by_python3(tmp_path, protocol):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4, 3072), np.uint8)
    for name in ("data_batch_1", "test_batch"):
        batch = {b"data": x, b"labels": [0, 1, 1, 0]}
        (tmp_path / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {b"label_names": [b"no", b"yes"]}
    (tmp_path / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    ds = load_data(str(tmp_path))
    assert ds.classes == ["no", "yes"] and len(ds.train) == 4
    assert torch.equal(ds.test.x.reshape(4, -1), torch.from_numpy(x))


def test_image_folder_train_test(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (12, 9, 7), np.uint8), np.arange(12) % 3
    xt, yt = rng.integers(0, 256, (6, 9, 7), np.uint8), np.arange(6) % 3
    write_image_folder(tmp_path, x, y, ["cat", "dog", "emu"], test_x=xt, test_y=yt)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "dog" / ".DS_Store").write_bytes(b"\0\1")
    ds = load_data(str(tmp_path))
    assert ds.classes == ["cat", "dog", "emu"] and ds.style == "resize" and ds.input_shape == (1, 9, 7)
    assert len(ds.train) == 12 and len(ds.test) == 6
    for split in (ds.train, ds.test):  # every sample matches the file it came from, and its folder
        for img, label, f in zip(split.x, split.y, split.files):
            assert Path(f).parent.name == ds.classes[label]
            assert np.array_equal(img[0].numpy(), np.asarray(Image.open(f)))


def test_image_folder_auto_split_is_stratified_and_fixed(tmp_path):
    x, y = np.zeros((50, 5, 5), np.uint8), np.repeat([0, 1], [20, 30])
    x[:, 0, 0] = np.arange(50)  # each image unique
    write_image_folder(tmp_path / "data", x, y, ["a", "b"])
    ds = load_data(str(tmp_path / "data"))
    assert len(ds.test) == 10 and ds.test.y.bincount().tolist() == [4, 6]
    assert set(ds.train.files).isdisjoint(ds.test.files) and len(set(ds.train.files + ds.test.files)) == 50
    assert load_data(str(tmp_path / "data")).test.files == ds.test.files


def test_image_folder_modes_and_sizes(tmp_path):
    tmp_path = tmp_path / "data"  # beside the user cache the autouse fixture puts in tmp_path/cache
    (tmp_path / "a").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    Image.new("RGBA", (10, 6), (255, 0, 0, 0)).save(tmp_path / "a" / "transparent.png")  # -> white
    Image.new("P", (8, 8), 3).save(tmp_path / "a" / "palette.gif")
    Image.new("CMYK", (5, 5), (0, 255, 255, 0)).save(tmp_path / "b" / "red.jpg")  # 100% M+Y -> red
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "b" / "deep.png")  # 16-bit white
    Image.new("RGB", (3, 3), (9, 9, 9)).save(tmp_path / "b" / "grey_rgb.png")
    ds = load_data(str(tmp_path))
    assert ds.input_shape == (3, 32, 32)  # some colour -> RGB; sizes differ -> 32x32
    x = torch.cat([ds.train.x, ds.test.x])
    files = [Path(f).name for f in ds.train.files + ds.test.files]
    pixel = {f: x[i, :, 16, 16].tolist() for i, f in enumerate(files)}
    assert pixel["transparent.png"] == [255, 255, 255] and pixel["deep.png"] == [255, 255, 255]
    assert pixel["red.jpg"][0] > 200 and max(pixel["red.jpg"][1:]) < 60
    assert pixel["grey_rgb.png"] == [9, 9, 9]
    assert load_data(str(tmp_path), image_size=12).input_shape == (3, 12, 12)


def test_grey_rgb_files_load_as_one_channel(tmp_path):
    tmp_path = tmp_path / "data"
    for c, v in (("dark", 10), ("light", 240)):
        for i in range(3):
            (tmp_path / c).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (6, 6), (v, v, v)).save(tmp_path / c / f"{i}.png")
    ds = load_data(str(tmp_path))
    assert ds.input_shape == (1, 6, 6)
    assert sorted(set(torch.cat([ds.train.x, ds.test.x]).flatten().tolist())) == [10, 240]


def test_image_size_resizes_named_formats(tmp_path):
    write_idx(tmp_path, *tiny())
    ds = load_data(str(tmp_path), image_size=32)
    assert ds.input_shape == (1, 32, 32) and ds.test.x.shape[2:] == (32, 32)
    assert ds.train.x.dtype == torch.uint8


def test_digits():
    ds = load_data("digits")
    assert (len(ds.train), len(ds.test)) == (1437, 360) and ds.input_shape == (1, 8, 8)
    assert ds.classes == DIGIT_CLASSES and ds.style == "mnist" and ds.source == "sklearn"
    assert ds.train.x.dtype == torch.uint8 and int(ds.train.x.max()) == 255
    assert ds.test.y.bincount().min() >= 35  # stratified 20%: 36 or 37 per class
    assert torch.equal(load_data("digits").test.y, ds.test.y)


def test_real_fashion_mnist(monkeypatch, fashion_dir):  # the fixture fails, saying how to install it
    monkeypatch.setattr(catalog, "SYSTEM_DIRS", [fashion_dir.parent])
    start = time.perf_counter()
    ds = load_data("fashion-mnist", download=False)
    seconds = time.perf_counter() - start
    assert (len(ds.train), len(ds.test)) == (60000, 10000) and ds.input_shape == (1, 28, 28)
    assert ds.train.y.bincount().tolist() == [6000] * 10 and ds.test.y.bincount().tolist() == [1000] * 10
    assert ds.classes == FASHION_CLASSES and ds.style == "fit" and ds.source == str(fashion_dir)
    mean, std = channel_stats(ds.train.x)
    assert mean[0] == pytest.approx(0.2860, abs=1e-4) and std[0] == pytest.approx(0.3530, abs=1e-4)
    assert seconds < 3, f"loading Fashion-MNIST took {seconds:.2f} s"


# --- lookup ----------------------------------------------------------------------------------------------

def test_lookup_order(tmp_path, monkeypatch):
    def put(root, n):
        write_idx(root, *tiny(n_train=n))

    put(tmp_path / "system" / "mnist", 10)
    assert len(load_data("mnist", download=False).train) == 10
    put(tmp_path / "cache" / "cnnlab" / "mnist" / "MNIST" / "raw", 20)  # torchvision's layout in the cache
    assert len(load_data("mnist", download=False).train) == 20
    put(tmp_path / "env" / "mnist", 30)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "env"))
    assert len(load_data("mnist", download=False).train) == 30
    put(tmp_path / "arg", 40)  # files directly in --data-dir
    ds = load_data("MNIST", data_dir=str(tmp_path / "arg"), download=False)
    assert len(ds.train) == 40 and ds.name == "mnist" and ds.source == str(tmp_path / "arg")
    rows = {r["name"]: r for r in known_datasets(str(tmp_path / "arg"))}
    assert rows["mnist"]["present"] and rows["mnist"]["path"] == str(tmp_path / "arg")
    assert not rows["cifar10"]["present"] and "--data-dir" in rows["cifar10"]["how"]
    assert rows["digits"]["present"] and set(rows) == {"fashion-mnist", "mnist", "cifar10", "digits"}


def test_torchvision_layouts(tmp_path):
    write_cifar(tmp_path / "root" / "cifar-10-batches-py", *tiny(shape=(3, 32, 32)))
    write_idx(tmp_path / "root" / "FashionMNIST" / "raw", *tiny(), gz=True)
    assert load_data("cifar10", data_dir=str(tmp_path / "root")).input_shape == (3, 32, 32)
    assert load_data("fashion-mnist", data_dir=str(tmp_path / "root")).classes == FASHION_CLASSES
    for given in ("root", "root/FashionMNIST"):  # torchvision's folders given as --data
        ds = load_data(str(tmp_path / given))
        assert ds.style == "fit" and len(ds.train) == 30


class _Offline:
    def __init__(self, root, train, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://..., got URLError")


def test_download_failure_says_how_to_get_it(monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", _Offline)
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist") as err:
        load_data("fashion-mnist")
    assert "downloading it failed (Error downloading" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="not found .*--data-dir"):
        load_data("cifar10", download=False)


def test_download_goes_to_user_cache(tmp_path, monkeypatch):
    import torchvision.datasets

    class FakeMNIST:
        def __init__(self, root, train, download):
            write_idx(Path(root) / "MNIST" / "raw", *tiny(n_train=20), gz=True)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    ds = load_data("mnist")
    assert len(ds.train) == 20 and ds.source == str(tmp_path / "cache" / "cnnlab" / "mnist" / "MNIST" / "raw")


# --- splits and statistics -------------------------------------------------------------------------------

def test_stratified_split_proportions_and_seed():
    y = torch.from_numpy(np.repeat(np.arange(4), [100, 50, 30, 20]))
    keep, held = stratified_split(y, 0.2, seed=5)
    assert keep.dtype == held.dtype == torch.int64
    assert sorted(keep.tolist() + held.tolist()) == list(range(200))
    assert y[held].bincount().tolist() == [20, 10, 6, 4]
    assert torch.equal(stratified_split(y, 0.2, seed=5)[1], held)
    assert not torch.equal(stratified_split(y, 0.2, seed=6)[1], held)


@pytest.mark.parametrize("counts", [[100, 50, 30, 20], [7, 7, 7, 3, 2], [5000, 4000, 3333, 17], [9, 1],
                                    [3, 3]])
def test_splits_draw_exactly_what_sklearns_train_test_split_draws(counts):
    from sklearn.model_selection import train_test_split

    y = np.random.RandomState(len(counts)).permutation(np.repeat(np.arange(len(counts)), counts))
    n = len(y)
    for seed in range(8):
        for fraction in (0.1, 0.2, 0.5):
            n_held = math.ceil(fraction * n)
            stratify = y if min(counts) >= 2 and min(n - n_held, n_held) >= len(counts) else None
            keep, held = train_test_split(np.arange(n), test_size=fraction, random_state=seed,
                                          stratify=stratify)
            ours = stratified_split(torch.from_numpy(y), fraction, seed)
            assert ours[0].tolist() == sorted(keep) and ours[1].tolist() == sorted(held), (seed, fraction)
        size = max(len(counts), n // 3)
        keep, _ = train_test_split(np.arange(n), train_size=size, random_state=seed,
                                   stratify=y if min(counts) >= 2 and n - size >= len(counts) else None)
        assert stratified_subset(torch.from_numpy(y), size, seed).tolist() == sorted(keep), seed


def test_stratified_split_falls_back_when_a_class_is_tiny():
    y = torch.tensor([0] * 9 + [1])  # class 1 has one sample: cannot stratify
    keep, held = stratified_split(y, 0.2, seed=0)
    assert len(held) == 2 and len(keep) == 8
    with pytest.raises(UserError, match="--val-split"):
        stratified_split(y, 1.0, seed=0)


def test_stratified_subset():
    y = torch.from_numpy(np.repeat(np.arange(10), 60))
    idx = stratified_subset(y, 100, seed=0)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100 and y[idx].bincount().tolist() == [10] * 10
    assert torch.equal(idx, stratified_subset(y, 100, seed=0))
    assert len(stratified_subset(y, 3, seed=0)) == 3  # fewer than the classes: unstratified
    assert torch.equal(stratified_subset(y, 10_000, seed=0), torch.arange(600))


def test_channel_stats_match_torch():
    x = torch.randint(0, 256, (7, 3, 5, 4), dtype=torch.uint8)
    mean, std = channel_stats(x)
    f = x.double() / 255
    assert mean == pytest.approx(f.mean((0, 2, 3)).tolist(), abs=1e-12)
    assert std == pytest.approx(f.std((0, 2, 3), unbiased=False).tolist(), abs=1e-12)


def test_mnist_like_digits():
    start = time.perf_counter()
    x, y = mnist_like_digits(2000, seed=3)
    assert time.perf_counter() - start < 4
    assert x.shape == (2000, 28, 28) and x.dtype == np.uint8 and np.bincount(y).tolist() == [200] * 10
    assert np.array_equal(x, mnist_like_digits(2000, seed=3)[0])
    assert 0.08 < x.mean() / 255 < 0.2  # MNIST's mean is 0.1307
    mass = x.astype(float).sum((1, 2))
    cy = (x.sum(2) @ np.arange(28)) / mass
    assert abs(cy.mean() - 13.5) < 0.5  # centred by centre of mass, like MNIST
    # distinct digits: nearest class mean of 1500 samples classifies the other 500 well above chance
    flat = x.reshape(2000, -1).astype(np.float32)
    means = np.stack([flat[:1500][y[:1500] == c].mean(0) for c in range(10)])
    pred = ((flat[1500:, None] - means) ** 2).sum(2).argmin(1)
    assert (pred == y[1500:]).mean() > 0.5


# --- bad input: one table, each a UserError naming the file --------------------------------------------

BAD = {}  # case id: (build(tmp) -> the directory to load, text the message must contain)


def bad(expected):
    def register(build):
        BAD[build.__name__.replace("_", "-")] = (build, expected)
        return build
    return register


def _idx(tmp, gz=False):
    return write_idx(tmp, *tiny(), gz=gz)


def _cifar(tmp):
    return write_cifar(tmp, *tiny(shape=(3, 32, 32)))


def _classes(tmp, names, per_class=2):
    for name in names:
        (tmp / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("L", (4, 4)).save(tmp / name / f"{i}.png")
    return tmp


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@bad("train-images-idx3-ubyte: truncated")
def idx_truncated(t):
    _cut(_idx(t) / "train-images-idx3-ubyte", -100)
    return t


@bad("t10k-labels-idx1-ubyte: has extra bytes")
def idx_extra_bytes(t):
    with open(_idx(t) / "t10k-labels-idx1-ubyte", "ab") as f:
        f.write(b"\0")
    return t


@bad("train-labels-idx1-ubyte: not an IDX labels file (magic number 2051")
def idx_wrong_magic(t):
    (_idx(t) / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((30, 1, 1))))  # an images file
    return t


@bad("t10k-labels-idx1-ubyte: holds 9 labels but t10k-images-idx3-ubyte holds 10 images")
def idx_count_mismatch(t):
    (_idx(t) / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(9)))
    return t


@bad("t10k-labels-idx1-ubyte: label 10 is out of range for 10 classes")
def idx_label_out_of_range(t):
    (_idx(t) / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(10, 10)))
    return t


@bad("train-labels-idx1-ubyte.gz: not a gzip file")
def idx_not_gzip(t):
    (_idx(t, gz=True) / "train-labels-idx1-ubyte.gz").write_bytes(idx_bytes(np.zeros(30)))
    return t


@bad("t10k-images-idx3-ubyte.gz: corrupt or truncated gzip")
def idx_truncated_gzip(t):
    _cut(_idx(t, gz=True) / "t10k-images-idx3-ubyte.gz", 50)
    return t


@bad("t10k-images-idx3-ubyte: only 0 bytes")
def idx_empty_file(t):
    (_idx(t) / "t10k-images-idx3-ubyte").write_bytes(b"")
    return t


@bad("t10k-images-idx3-ubyte.gz: only 0 bytes")
def idx_empty_gz(t):
    (_idx(t, gz=True) / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b""))
    return t


@bad("t10k-images-idx3-ubyte[.gz] is missing")
def idx_missing_file(t):
    (_idx(t) / "t10k-images-idx3-ubyte").unlink()
    return t


@bad("classes.txt: needs at least two class names")
def idx_bad_classes_txt(t):
    (_idx(t) / "classes.txt").write_text("only\n")
    return t


@bad("data_batch_1: refused to unpickle it: it names posix.system")
def cifar_malicious_pickle(t):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {t / 'pwned'}",))

    (_cifar(t) / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    return t


@bad("test_batch: not a CIFAR-10 batch")
def cifar_not_a_batch(t):
    (_cifar(t) / "test_batch").write_bytes(pickle.dumps({b"data": [1, 2]}))
    return t


@bad("batches.meta: not a readable CIFAR-10 batch")
def cifar_garbage(t):
    (_cifar(t) / "batches.meta").write_bytes(b"\x80\x02}(")
    return t


@bad("batches.meta is missing")
def cifar_missing_meta(t):
    (_cifar(t) / "batches.meta").unlink()
    return t


@bad("holds no data set cnnlab recognises: expected IDX files")
def empty_dir(t):
    return t


@bad("has only one class folder (only)")
def one_class(t):
    return _classes(t, ["only"])


@bad("/c holds no images")
def empty_class(t):
    (_classes(t, ["a", "b"]) / "c").mkdir()
    return t


@bad("b/bad.png: not an image Pillow can read")
def corrupt_image(t):
    (_classes(t, ["a", "b"]) / "b" / "bad.png").write_bytes(b"\x89PNG not really")
    return t


@bad("a/cut.jpg: cannot decode this image")
def truncated_image(t):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    Image.fromarray(noise).save(_classes(t, ["a", "b"]) / "a" / "cut.jpg")
    _cut(t / "a" / "cut.jpg", 200)
    return t


@bad("/test: class folders differ from")
def train_test_classes_differ(t):
    _classes(t / "train", ["a", "b"])
    _classes(t / "test", ["a", "c"])
    return t


@bad("/train exists but")
def train_without_test(t):
    _classes(t / "train", ["a", "b"])
    return t


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_clear_user_error(tmp_path, case):
    build, expected = BAD[case]
    root = tmp_path / "data"
    root.mkdir()
    arg = build(root)
    with pytest.raises(UserError) as err:
        load_data(str(arg))
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert str(root) in message  # names the file or folder by its path


@pytest.mark.parametrize("call", ["os.system", "exec", "eval", "subprocess"])
def test_malicious_pickle_runs_nothing(tmp_path, call):
    marker = tmp_path / "pwned"
    payload = {"os.system": (os.system, (f"touch {marker}",)),
               "exec": (exec, (f"open({str(marker)!r}, 'w').close()",)),
               "eval": (eval, (f"__import__('os').system('touch {marker}')",)),
               "subprocess": (subprocess.call, (["touch", str(marker)],))}[call]

    class Evil:
        def __reduce__(self):
            return payload

    _cifar(tmp_path)
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"labels": [0], b"data": [Evil()]}, protocol=2))
    with pytest.raises(UserError, match="data_batch_1: refused to unpickle"):
        load_data(str(tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize("arg, expected", [
    ("imagenet", "--data imagenet: no such directory, and not a known data set (fashion-mnist, mnist"),
    ("/no/such/dir", "--data /no/such/dir: no such directory"),
])
def test_bad_names(arg, expected):
    with pytest.raises(UserError, match=expected.replace("(", r"\(")):
        load_data(arg)


def test_bad_data_dir_and_file_path(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=f"--data {tmp_path / 'f'} is a file"):
        load_data(str(tmp_path / "f"))
    with pytest.raises(UserError, match="--data-dir /no/such is not a directory"):
        load_data("mnist", data_dir="/no/such")
    monkeypatch.setenv("CNNLAB_DATA", "/no/such")
    with pytest.raises(UserError, match="CNNLAB_DATA /no/such is not a directory"):
        load_data("mnist")
