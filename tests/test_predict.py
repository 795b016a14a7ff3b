"""Prediction: the JSON shape DESIGN.md promises, whole folders streamed in batches, bad files named."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datafiles import fashion_test_images
from helpers import cli
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import IMAGE_EXTS
from cnnlab.data.folders import load_folder
from cnnlab.predict import iter_image_files, predict_files, predict_folder, predict_stream

N_FOLDER = 2000


@pytest.fixture(scope="module")
def folder(tmp_path_factory, fashion_dir):
    """2,000 real Fashion-MNIST test images as PNGs in nested folders (c<label>/ and c<label>/deeper/),
    plus files that are not images or are hidden, which a folder run must pass over."""
    x, y = fashion_test_images(fashion_dir, N_FOLDER)
    root = tmp_path_factory.mktemp("photos")
    truth = {}
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / f"c{label}" / ("deeper" if i % 2 else "")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:05d}.png")
        truth[str(d / f"{i:05d}.png")] = int(label)
    (root / "README.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / ".thumbnails").mkdir()
    Image.fromarray(x[0]).save(root / ".thumbnails" / "t.png")
    return root, truth


def out_lines(capsys) -> tuple[list[str], list[str]]:
    cap = capsys.readouterr()
    return cap.out.splitlines(), cap.err.splitlines()


def test_json_is_the_design_shape(fashion_run, folder, capsys):
    files = list(folder[1])[:3]
    assert main(["predict", str(fashion_run.path), *files, "--json", "--top-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["file"] for o in out] == files
    classes = fashion_run.meta.classes
    for o in out:
        assert list(o) == ["file", "label", "probability", "top_k"]
        assert o["label"] in classes and 0 < o["probability"] <= 1
        assert len(o["top_k"]) == 3 and all(list(t) == ["label", "probability"] for t in o["top_k"])
        assert o["top_k"][0] == {"label": o["label"], "probability": o["probability"]}
        probs = [t["probability"] for t in o["top_k"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert len({t["label"] for t in o["top_k"]}) == 3
    # Asking for more classes than exist lists them all, and then the probabilities add up to 1.
    every = predict_files(fashion_run.model, fashion_run.meta, files, top_k=20)
    assert all(len(o["top_k"]) == 10 and abs(sum(t["probability"] for t in o["top_k"]) - 1) < 1e-5
               for o in every)


def test_folder_streams_json_lines_with_a_progress_bar(fashion_run, folder):
    root, truth = folder
    r = cli("predict", str(fashion_run.path), str(root), "--batch-size", "128", "--progress")
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]  # JSON lines: one object per line
    files = [o["file"] for o in out]
    assert len(out) == N_FOLDER and set(files) == set(truth)  # README, .DS_Store, .thumbnails/ passed over
    assert files == [str(p) for p in iter_image_files(root)]  # a stable, sorted order
    # Each prediction belongs to its file: right about as often as the run's test accuracy (~0.66).
    accuracy = np.mean([fashion_run.meta.classes.index(o["label"]) == truth[o["file"]] for o in out])
    assert accuracy > 0.5
    assert "2000/2000" in r.stderr and "img/s" in r.stderr  # tqdm's bar, on stderr
    assert r.stderr.strip().splitlines()[-1] == "predicted 2000 images"


def test_folder_as_csv_and_as_one_json_list(fashion_run, folder, capsys):
    root, truth = folder
    sub = root / "c3"  # the dresses, c3/ and c3/deeper/
    n = sum(1 for f in truth if f.startswith(str(sub) + "/"))
    assert main(["predict", str(fashion_run.path), str(sub), "--format", "csv", "--top-k", "2"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["file", "label", "probability", "label_2", "probability_2"]
    assert len(rows) == n > 150
    assert all(float(r["probability"]) >= float(r["probability_2"]) for r in rows)
    assert np.mean([r["label"] == "Dress" for r in rows]) > 0.4  # predicted for the right files

    assert main(["predict", str(fashion_run.path), str(sub), "--format", "json"]) == 0
    as_list = json.loads(capsys.readouterr().out)
    assert [o["file"] for o in as_list] == [r["file"] for r in rows]
    assert main(["predict", str(fashion_run.path), str(sub), "--json"]) == 0  # for folders: JSON lines
    lines, _ = out_lines(capsys)
    assert [json.loads(line) for line in lines] == as_list


def test_stream_holds_one_batch_at_a_time(fashion_run, folder):
    """Paths are pulled from the iterator a batch at a time: the first results come out after 32 files,
    not 2,000."""
    root, _ = folder
    pulled = 0

    def paths():
        nonlocal pulled
        for p in iter_image_files(root):
            pulled += 1
            yield p

    stream = predict_stream(fashion_run.model, fashion_run.meta, paths(), batch_size=32)
    first = next(stream)
    assert pulled == 32 and first["file"] == str(next(iter_image_files(root)))
    assert 1 + sum(1 for _ in stream) == N_FOLDER and pulled == N_FOLDER


@pytest.fixture
def messy_folder(tmp_path, fashion_dir):
    """5 good images and 3 that only look like images: text, empty, and a truncated PNG."""
    x, _ = fashion_test_images(fashion_dir, 5)
    for i, img in enumerate(x):
        Image.fromarray(img).save(tmp_path / f"good{i}.png")
    (tmp_path / "bad.png").write_text("this is a text file")
    (tmp_path / "empty.jpg").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(x[0]).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:60])
    return tmp_path


def test_unreadable_files_in_a_folder_are_reported_and_skipped(fashion_run, messy_folder, capsys):
    assert main(["predict", str(fashion_run.path), str(messy_folder)]) == 0
    out, err = out_lines(capsys)
    assert (sorted(json.loads(line)["file"] for line in out)
            == [str(messy_folder / f"good{i}.png") for i in range(5)])
    warnings = [e for e in err if e.startswith("warning: skipped ")]
    assert len(warnings) == 3
    for name in ("bad.png", "empty.jpg", "cut.png"):
        assert sum(str(messy_folder / name) in w for w in warnings) == 1
    assert err[-1] == "predicted 5 images; skipped 3 unreadable files (listed above)"


@pytest.mark.parametrize("case", ["text file", "empty file", "missing", "bad file beside a folder",
                                  "empty folder"])
def test_bad_input_is_exit_2_naming_the_file(fashion_run, messy_folder, tmp_path, capsys, case):
    bad = {"text file": messy_folder / "bad.png", "empty file": messy_folder / "empty.jpg",
           "missing": tmp_path / "nope.png", "bad file beside a folder": messy_folder / "cut.png",
           "empty folder": tmp_path / "empty"}[case]
    if case == "empty folder":
        bad.mkdir()
    args = [str(bad)] + ([str(messy_folder)] if case == "bad file beside a folder" else [])
    assert main(["predict", str(fashion_run.path), *args, "--json"]) == 2
    out, err = out_lines(capsys)
    assert out == []  # strict: nothing printed before the error
    assert len(err) == 1 and err[0].startswith(f"error: {bad}")


RSS_PROBE = """
import os, resource, sys
os.cpu_count = lambda: 2  # two decoding threads on any machine, so the bound below does not depend on it
import cnnlab.cli
from cnnlab.run import Run
Run(sys.argv[1]).load()  # torch, the model and the CLI loaded: the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rc = cnnlab.cli.main(["predict", *sys.argv[1:]])
print(rc, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, file=sys.stderr)
"""


def test_memory_stays_flat_on_large_photos(fashion_run, tmp_path):
    """48 photos of 1200x1200 RGB are 207 MB decoded; predicting them (one batch of the default 256) must
    hold only the small model inputs, not the decoded images."""
    a = np.zeros((1200, 1200, 3), np.uint8)
    for i in range(48):
        a[:] = 20
        a[200 + 10 * i: 1000, 300:900] = (180, 160, 140)  # a coat-sized block on a dark floor
        Image.fromarray(a).save(tmp_path / f"{i:03d}.jpg", quality=80)
    r = subprocess.run([sys.executable, "-c", RSS_PROBE, str(fashion_run.path), str(tmp_path)],
                       capture_output=True, text=True, timeout=300, check=False)
    rc, grew_mb = r.stderr.strip().splitlines()[-1].split()
    assert rc == "0", r.stderr
    assert len(r.stdout.splitlines()) == 48
    assert float(grew_mb) < 120, f"peak memory grew {grew_mb} MB while predicting"


def test_predict_folder_takes_every_suffix_training_takes(fashion_run, tmp_path, fashion_dir):
    """One list of image suffixes (data.IMAGE_EXTS): a .pnm that trains is also predicted from a folder."""
    x, _ = fashion_test_images(fashion_dir, 2)
    for cls in ("a", "b"):
        (tmp_path / "pool" / cls).mkdir(parents=True)
        for i, ext in enumerate((".pnm", ".png")):
            fmt = "PPM" if ext == ".pnm" else "PNG"
            Image.fromarray(x[i]).save(tmp_path / "pool" / cls / f"{i}{ext}", format=fmt)
    assert ".pnm" in IMAGE_EXTS
    assert len(load_folder(tmp_path / "pool", None).train) == 4  # training reads the .pnm files
    got = list(predict_folder(fashion_run.model, fashion_run.meta, [tmp_path / "pool"]))
    assert sorted(Path(o["file"]).name for o in got) == ["0.pnm", "0.pnm", "1.png", "1.png"]
    same = predict_files(fashion_run.model, fashion_run.meta, [o["file"] for o in got])
    assert [o["label"] for o in got] == [o["label"] for o in same]
