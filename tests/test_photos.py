"""Real photo folders (issue 15): every kind of file a phone or the web gives, broken files refused by name
or skipped and listed, and the decoded folder cached on disk, reused, and invalidated file by file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
import torch
from helpers import cli
from PIL import ExifTags, Image

import cnnlab
from cnnlab.data import cache, folders, load_data
from cnnlab.errors import UserError

SAMPLES = Path(sklearn.datasets.__file__).parent / "images"  # two real 640x427 JPEG photos scikit-learn ships


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def photo_folder(root: Path, per_class: int = 12) -> Path:
    """<class>/* cut from scikit-learn's sample photos: JPEGs of many sizes, plus one file of each awkward
    kind: EXIF-rotated, greyscale, CMYK, PNG with alpha, palette GIF, 16-bit PNG, truncated, not an image."""
    for name in ("china", "flower"):
        photo = Image.open(SAMPLES / f"{name}.jpg").convert("RGB")
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            w, h = 120 + 23 * i, 100 + 17 * i
            left, top = (37 * i) % (640 - w), (29 * i) % (427 - h)
            photo.crop((left, top, left + w, top + h)).save(root / name / f"{i:02d}.jpg", quality=90)
    china, flower = (Image.open(SAMPLES / f"{n}.jpg").convert("RGB").crop((100, 50, 400, 250))
                     for n in ("china", "flower"))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "turn 90 degrees clockwise to show": a phone held upright
    china.transpose(Image.Transpose.ROTATE_90).save(root / "china" / "upright.png", exif=exif)
    china.save(root / "china" / "as_shot.png")
    china.convert("L").save(root / "china" / "grey.jpg")
    a = np.asarray(china.convert("L"), np.uint16) * 257
    Image.fromarray(a).save(root / "china" / "deep.png")  # 16-bit grey
    flower.convert("CMYK").save(root / "flower" / "print.jpg", quality=95)
    rgba = flower.convert("RGBA")
    alpha = np.where(np.arange(300) < 150, 0, 255).astype(np.uint8)[None].repeat(200, 0)
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(root / "flower" / "cut_out.png")  # the left half transparent
    flower.convert("P", palette=Image.Palette.ADAPTIVE).save(root / "flower" / "web.gif")
    (root / "flower" / "broken.jpg").write_bytes((root / "flower" / "00.jpg").read_bytes()[:300])
    (root / "china" / "notes.jpg").write_text("not a photo")
    return root


def pixels(ds, name: str) -> np.ndarray:
    """(H, W, C) uint8 of the file called `name`, wherever the split put it."""
    for split in (ds.train, ds.test):
        for f, x in zip(split.files, split.x):
            if Path(f).name == name:
                return x.numpy().transpose(1, 2, 0)
    raise KeyError(name)


def test_every_kind_of_photo_loads_as_it_looks(tmp_path):
    ds = load_data(str(photo_folder(tmp_path / "photos")), image_size=64, bad_images="skip")
    assert ds.classes == ["china", "flower"] and ds.input_shape == (3, 64, 64)
    assert len(ds.train) + len(ds.test) == 2 * 12 + 7
    assert sorted(Path(f).name for f, _ in ds.skipped) == ["broken.jpg", "notes.jpg"]
    shot = pixels(ds, "as_shot.png").astype(int)
    # EXIF orientation applied: the stored sideways picture is read upright, pixel for pixel
    assert np.array_equal(pixels(ds, "upright.png"), shot)
    china = Image.open(SAMPLES / "china.jpg").convert("RGB").crop((100, 50, 400, 250))
    luma = np.asarray(china.convert("L").resize((64, 64), Image.Resampling.BILINEAR), int)[..., None]
    grey = pixels(ds, "grey.jpg").astype(int)
    assert (grey == grey[..., :1]).all() and np.abs(grey - luma).mean() < 2  # grey, in all three channels
    assert np.array_equal(pixels(ds, "deep.png"), luma.repeat(3, 2))  # 16 bits, scaled exactly to 8
    flower = np.asarray(Image.open(SAMPLES / "flower.jpg").convert("RGB").crop((100, 50, 400, 250))
                        .resize((64, 64), Image.Resampling.BILINEAR), int)
    assert np.abs(pixels(ds, "print.jpg").astype(int) - flower).mean() < 4  # CMYK -> the same colours
    assert np.abs(pixels(ds, "web.gif").astype(int) - flower).mean() < 8  # a 256-colour palette
    cut = pixels(ds, "cut_out.png").astype(int)
    assert (cut[:, :30] == 255).all() and np.abs(cut[:, 34:] - flower[:, 34:]).mean() < 1  # on white


def test_a_broken_file_stops_training_with_its_name_and_the_way_round(tmp_path):
    folder = photo_folder(tmp_path / "photos")
    r = cli("train", "--data", str(folder), "--image-size", "32", "--epochs", "1",
            "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: {folder / 'china' / 'notes.jpg'}: ")
    assert "; and 1 more file(s) do not decode; " in r.stderr and "--bad-images skip" in r.stderr
    assert not (tmp_path / "r").exists()


def test_skip_trains_without_them_lists_them_and_evaluates(tmp_path, capsys):
    folder = photo_folder(tmp_path / "photos")
    run = cnnlab.train(model="fastcnn", data=str(folder), image_size=32, epochs=1, bad_images="skip",
                       out=str(tmp_path / "r"), progress=False)
    err = capsys.readouterr().err
    assert "skipped 2 image(s) that do not decode (--bad-images skip)" in err
    assert f"{folder / 'flower' / 'broken.jpg'}: " in err and f"{folder / 'china' / 'notes.jpg'}: " in err
    assert run.config["bad_images"] == "skip"
    report = run.evaluate()  # eval reloads the folder the way training did: skipping, not refusing
    assert report["test_samples"] == run.results["test_samples"] == 7  # 20% of the 33 that decode


def count_decodes(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    real = folders.decode_file

    def counting(path, *a, **kw):
        calls.append(Path(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(folders, "decode_file", counting)
    return calls


def test_decoded_once_then_from_the_cache_until_a_file_changes(tmp_path, monkeypatch, user_cache):
    folder = photo_folder(tmp_path / "photos", per_class=6)
    calls = count_decodes(monkeypatch)
    first = load_data(str(folder), image_size=48, bad_images="skip")
    n_files = 2 * 6 + 7 + 2
    assert len(calls) == n_files
    [cached] = (user_cache / "cnnlab" / "images").glob("photos-48-*.npz")
    assert cached == cache.cache_path(folder, "48")

    calls.clear()
    again = load_data(str(folder), image_size=48, bad_images="skip")
    assert calls == []  # nothing decoded, broken files included
    assert torch.equal(again.train.x, first.train.x) and torch.equal(again.test.x, first.test.x)
    assert again.train.files == first.train.files and again.skipped == first.skipped

    changed = folder / "china" / "03.jpg"
    Image.open(SAMPLES / "flower.jpg").crop((0, 0, 200, 150)).save(changed)  # new content, size, mtime
    (folder / "flower" / "new.png").write_bytes((folder / "china" / "as_shot.png").read_bytes())
    (folder / "china" / "05.jpg").unlink()
    calls.clear()
    ds = load_data(str(folder), image_size=48, bad_images="skip")
    assert sorted(calls) == sorted([changed, folder / "flower" / "new.png"])  # only what changed
    names = {Path(f).relative_to(folder).as_posix() for f in ds.train.files + ds.test.files}
    assert "china/05.jpg" not in names and "flower/new.png" in names and len(names) == n_files - 2  # 2 broken
    assert np.array_equal(pixels(ds, "new.png"), pixels(ds, "as_shot.png"))
    fresh = load_data(str(folder), image_size=48, bad_images="skip")  # what a cold decode gives
    calls.clear()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-cache"))
    cold = load_data(str(folder), image_size=48, bad_images="skip")
    assert len(calls) == n_files  # every file again, in an empty cache
    assert torch.equal(cold.train.x, fresh.train.x) and torch.equal(cold.test.x, fresh.test.x)


def test_each_size_has_its_own_cache_and_a_damaged_one_is_rebuilt(tmp_path, monkeypatch):
    folder = photo_folder(tmp_path / "photos", per_class=4)
    calls = count_decodes(monkeypatch)
    a = load_data(str(folder), image_size=24, bad_images="skip")
    calls.clear()
    assert load_data(str(folder), image_size=40, bad_images="skip").input_shape == (3, 40, 40) and calls
    cache.cache_path(folder, "24").write_bytes(b"PK\x03\x04 torn")
    calls.clear()
    b = load_data(str(folder), image_size=24, bad_images="skip")
    assert calls and torch.equal(a.train.x, b.train.x)


def test_one_common_size_is_kept_until_a_file_of_another_size_arrives(tmp_path, monkeypatch):
    root = tmp_path / "same"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 10), (40 * i, 90, 200)).save(root / c / f"{i}.png")
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 8  # stored 10 wide and 20 high, shown turned: 20 wide, like the others
    Image.new("RGB", (10, 20), (0, 0, 0)).save(root / "b" / "turned.png", exif=exif)
    calls = count_decodes(monkeypatch)
    assert load_data(str(root)).input_shape == (3, 10, 20)  # no --image-size: their own size
    assert len(calls) == 7
    Image.new("RGB", (50, 50), (0, 0, 0)).save(root / "a" / "big.png")
    calls.clear()
    assert load_data(str(root)).input_shape == (3, 32, 32)  # sizes differ now: all to 32x32, decoded again
    assert len(calls) == 8


def test_refuse_is_the_default_in_python_too(tmp_path):
    with pytest.raises(UserError, match=r"notes\.jpg: not an image .* 1 more .*--bad-images skip to train"):
        load_data(str(photo_folder(tmp_path / "photos", per_class=2)), image_size=16)
    with pytest.raises(UserError, match="--bad-images maybe: must be one of refuse, skip"):
        load_data(str(tmp_path / "photos"), bad_images="maybe")


def test_a_cache_that_cannot_be_written_only_costs_speed(tmp_path, monkeypatch, capsys):
    folder = photo_folder(tmp_path / "photos", per_class=2)
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    ds = load_data(str(folder), image_size=16, bad_images="skip")
    assert len(ds.train) + len(ds.test) == 2 * 2 + 7
    assert "warning: cannot write the image cache" in capsys.readouterr().err
