"""Bad input, systematically: every malformed file or option a user can hand a command is answered with
exit 2 and exactly one `error:` line naming the culprit -- no traceback -- and nothing is corrupted or lost.

Each case is a real CLI process. Starting Python and importing torch takes seconds on a small machine,
so the processes are forked from one warm server (below) that has imported cnnlab once: each case
still gets its own process, argv, working directory, stdio and exit status, and runs `cnnlab.cli.main`,
exactly what `python -m cnnlab` runs. One case also goes through `python -m cnnlab` to show they agree.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import idx_bytes, write_cifar, write_idx
from helpers import cli
from PIL import Image

import cnnlab

# The forked-case server: one JSON line per case in, one JSON line (exit status) out.
SERVER = r"""
import json, os, sys, time, traceback
import cnnlab.cli
import cnnlab.data, cnnlab.predict, cnnlab.run, cnnlab.training.launch  # the heavy imports, done once
cnnlab.cli.build_parser()  # imports every command module
for line in sys.stdin:
    case = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        rc = 1
        try:
            os.chdir(case["cwd"])
            for fd, name, flags in ((0, os.devnull, os.O_RDONLY),
                                    (1, case["stdout"], os.O_WRONLY | os.O_CREAT),
                                    (2, case["stderr"], os.O_WRONLY | os.O_CREAT)):
                os.dup2(os.open(name, flags, 0o644), fd)
            try:
                exec(case["setup"] or "")
                rc = cnnlab.cli.main(case["argv"])
            except SystemExit as e:  # as the interpreter does it
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                rc = e.code if isinstance(e.code, int) else int(e.code is not None)
            except BaseException:
                traceback.print_exc()
                rc = 1
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(rc)
    deadline = time.monotonic() + case["timeout"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            status = 9
            break
        time.sleep(0.005)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""

# Writes fail as on a full disk: the payload is partly written, then ENOSPC, inside cnnlab's atomic write.
DISK_FULL = """
import errno, os, cnnlab.files, cnnlab.models.weights, cnnlab.training.checkpoint
_real = cnnlab.files.atomic_write
def _full(path, write):
    def write_then_fail(tmp):
        write(tmp)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _real(path, write_then_fail)
cnnlab.files.atomic_write = cnnlab.models.weights.atomic_write = \\
    cnnlab.training.checkpoint.atomic_write = _full
"""


class Server:
    def __init__(self, tmp: Path):
        self.tmp, self.n = tmp, 0
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def run(self, *argv: str, cwd: Path, setup: str | None = None, timeout: float = 120):
        self.n += 1
        out, err = self.tmp / f"{self.n}.out", self.tmp / f"{self.n}.err"
        self.proc.stdin.write(json.dumps({"argv": list(argv), "cwd": str(cwd), "setup": setup,
                                          "timeout": timeout, "stdout": str(out), "stderr": str(err)}) + "\n")
        self.proc.stdin.flush()
        rc = json.loads(self.proc.stdout.readline())["rc"]
        return subprocess.CompletedProcess(argv, rc, out.read_text(), err.read_text())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def tree_hash(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, fashion_run):
    """The workspace: the server, a finished run (hashed, to prove it is never touched) and every bad file."""
    root = tmp_path_factory.mktemp("bad")
    (root / "io").mkdir()
    (root / "cwd").mkdir()
    w = {"root": root, "cwd": root / "cwd", "run": fashion_run.path, "run_hash": tree_hash(fashion_run.path),
         "server": Server(root / "io")}
    make_files(root, fashion_run.path)
    yield w
    w["server"].close()


def tiny_idx(d: Path, gz: bool = False, n: int = 40, size: int = 28) -> Path:
    rng = np.random.default_rng(0)
    return write_idx(d, rng.integers(0, 256, (n, size, size)), np.arange(n) % 10,
                     rng.integers(0, 256, (20, size, size)), np.arange(20) % 10, gz=gz)


def make_files(root: Path, run: Path) -> None:
    """Every malformed input, each in its own place under root."""
    d = root / "data"
    tr_img, tr_lab = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
    for name in ("ok", "truncated", "magic", "count", "dtype", "empty", "dir", "symlink", "range"):
        tiny_idx(d / name)
    p = d / "truncated" / tr_img
    p.write_bytes(p.read_bytes()[:-100])
    p = d / "magic" / tr_lab  # the images' magic number on the labels file
    p.write_bytes(b"\x00\x00\x08\x03" + p.read_bytes()[4:])
    (d / "count" / tr_lab).write_bytes(idx_bytes(np.arange(39) % 10))
    p = d / "dtype" / tr_img  # 0x0D: float32 values, which an image file never holds
    p.write_bytes(b"\x00\x00\x0d\x03" + p.read_bytes()[4:])
    (d / "empty" / tr_img).write_bytes(b"")
    (d / "dir" / tr_img).unlink()
    (d / "dir" / tr_img).mkdir()  # a directory where the file belongs: root reads everything, not this
    (d / "symlink" / tr_img).unlink()
    (d / "symlink" / tr_img).symlink_to(d / "nowhere")
    (d / "range" / tr_lab).write_bytes(idx_bytes(np.full(40, 12)))
    write_idx(d / "size", np.zeros((40, 28, 28)), np.arange(40) % 10, np.zeros((20, 20, 20)),
              np.arange(20) % 10)
    write_cifar(d / "cifar_ok", np.zeros((10, 3, 32, 32)), np.arange(10), np.zeros((10, 3, 32, 32)),
                np.arange(10))
    tiny_idx(d / "notgz", gz=True)
    (d / "notgz" / f"{tr_img}.gz").write_bytes(idx_bytes(np.zeros((40, 28, 28))))
    tiny_idx(d / "badgz", gz=True)
    p = d / "badgz" / f"{tr_img}.gz"
    p.write_bytes(p.read_bytes()[:60])
    write_cifar(d / "cifar", np.zeros((10, 3, 32, 32)), np.arange(10), np.zeros((10, 3, 32, 32)),
                np.arange(10))
    (d / "cifar" / "data_batch_1").write_bytes(pickle.dumps(_Payload(root / "pwned-cifar"), protocol=2))
    (d / "afile").write_text("not a directory")

    f = root / "folders"
    grey = Image.new("L", (8, 8), 128)
    for name, classes in (("one", ["cat"]), ("emptyclass", ["cat", "dog"]), ("nonimg", ["cat", "dog"]),
                          ("corrupt", ["cat", "dog"]), ("zero", ["cat", "dog"])):
        for c in classes:
            (f / name / c).mkdir(parents=True)
            if not (name == "emptyclass" and c == "dog"):
                for i in range(3):
                    grey.save(f / name / c / f"{i}.png")
    (f / "nonimg" / "dog" / "3.png").write_text("this is text, not a PNG")
    png = (f / "corrupt" / "cat" / "0.png").read_bytes()
    (f / "corrupt" / "dog" / "3.png").write_bytes(png[: len(png) // 2])
    (f / "zero" / "dog" / "3.png").write_bytes(b"")
    mixed = [Image.new("L", (8, 8), 90), Image.new("RGB", (8, 8), (200, 10, 10)),
             Image.new("RGBA", (8, 8), (10, 200, 10, 128)), Image.new("P", (8, 8), 3),
             Image.fromarray(np.full((8, 8), 40000, np.uint16)), Image.new("1", (8, 8), 1)]
    for c in ("cat", "dog"):
        (f / "mixed" / c).mkdir(parents=True)
        for i, im in enumerate(mixed):
            im.save(f / "mixed" / c / f"{i}.png")
        Image.new("CMYK", (8, 8), (0, 200, 0, 0)).save(f / "mixed" / c / "cmyk.jpg")

    i = root / "images"
    i.mkdir()
    (i / "text.png").write_text("hello")
    (i / "empty.png").write_bytes(b"")
    Image.new("L", (30, 30), 50).save(i / "ok.png")
    (i / "truncated.png").write_bytes((i / "ok.png").read_bytes()[:40])
    Image.new("1", (10_000, 5_000)).save(i / "bomb.png")  # 50 megapixels in a few kB
    Image.new("L", (1, 1), 200).save(i / "one.png")
    a = np.zeros((20, 5000, 4), np.uint8)
    a[5:15, 100:4900] = (255, 255, 255, 255)
    Image.fromarray(a, "RGBA").save(i / "wide_rgba.png")
    Image.fromarray((np.indices((40, 40)).sum(0) * 800).astype(np.uint16)).save(i / "grey16.png")
    Image.new("CMYK", (30, 30), (0, 255, 0, 0)).save(i / "cmyk.jpg")
    (i / "fake.safetensors").write_text("not tensors")

    s = root / "specs"
    s.mkdir()
    specs = {
        "unknown_layer": "layers:\n  - Conv3x: {out_channels: 4}\n  - Flatten\n  - Linear\n",
        "bad_argument": "layers:\n  - Conv2d: {out_channels: 4, kernal_size: 3}\n  - Flatten\n  - Linear\n",
        "collapse": "input: 1x28x28\nlayers:\n  - Conv2d: {out_channels: 4, kernel_size: 40}\n  - Flatten\n"
                    "  - Linear\n",
        "not_yaml": "layers: [Conv2d: {out_channels: 4\n  - ][\n",
        "a_list": "- Conv2d\n- Linear\n",
        "empty": "",
        "negative": "layers:\n  - Flatten\n  - Linear: -3\n",
    }
    for name, text in specs.items():
        (s / f"{name}.yaml").write_text(text)

    c = root / "configs"
    c.mkdir()
    (c / "not_yaml.yaml").write_text("epochs: [1\n")
    (c / "unknown.yaml").write_text("epochs: 1\nlearning_rate: 0.1\n")

    r = root / "resume"  # unfinished runs (the finished run's config, no results) with bad checkpoints
    for name in ("pickle", "torchzip", "garbage", "noconfig"):
        (r / name / "checkpoints").mkdir(parents=True)
        if name != "noconfig":
            (r / name / "config.yaml").write_text((run / "config.yaml").read_text())
    (r / "pickle" / "checkpoints" / "last.pt").write_bytes(pickle.dumps(_Payload(root / "pwned-pickle")))
    torch.save({"model": {}, "x": _Payload(root / "pwned-zip")}, r / "torchzip" / "checkpoints" / "last.pt")
    (r / "garbage" / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04" + bytes(300))


class _Payload:
    """Unpickling this calls open(marker, "w"): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# (id, argv with {root}/{run} placeholders, what the one error line must name: the file, option or
# field at fault, or for cnnlab's own run-directory checks the reason); exit 2 expected.
T = "train --epochs 1 --model fastcnn --out {root}/outs/{id}"
BAD = [
    # data files
    ("idx truncated", T + " --data {root}/data/truncated", "truncated/train-images-idx3-ubyte"),
    ("idx wrong magic", T + " --data {root}/data/magic", "magic/train-labels-idx1-ubyte"),
    ("idx label/image count mismatch", T + " --data {root}/data/count", "count/train-labels-idx1-ubyte"),
    ("idx wrong dtype", T + " --data {root}/data/dtype", "dtype/train-images-idx3-ubyte"),
    ("idx empty file", T + " --data {root}/data/empty", "empty/train-images-idx3-ubyte"),
    ("idx a directory where the file belongs", T + " --data {root}/data/dir", "train-images-idx3-ubyte"),
    ("idx dangling symlink", T + " --data {root}/data/symlink", "train-images-idx3-ubyte"),
    ("idx label out of range", T + " --data {root}/data/range", "range/train-labels-idx1-ubyte"),
    ("idx test size differs", T + " --data {root}/data/size", "size/t10k-images-idx3-ubyte"),
    ("gz that is not gzip", T + " --data {root}/data/notgz", "notgz/train-images-idx3-ubyte.gz"),
    ("gz truncated", T + " --data {root}/data/badgz", "badgz/train-images-idx3-ubyte.gz"),
    ("cifar batch that runs code", T + " --data {root}/data/cifar", "cifar/data_batch_1"),
    ("data dir does not exist", T + " --data {root}/data/nothing", "data/nothing"),
    ("data is a file", T + " --data {root}/data/afile", "data/afile"),
    # image folders
    ("folder with one class", T + " --data {root}/folders/one", "folders/one"),
    ("folder with an empty class", T + " --data {root}/folders/emptyclass", "emptyclass/dog"),
    ("folder with a non-image", T + " --data {root}/folders/nonimg", "nonimg/dog/3.png"),
    ("folder with a corrupt image", T + " --data {root}/folders/corrupt", "corrupt/dog/3.png"),
    ("folder with a zero-byte image", T + " --data {root}/folders/zero", "zero/dog/3.png"),
    # images to predict
    ("predict a text file", "predict {run} {root}/images/text.png", "images/text.png"),
    ("predict an empty file", "predict {run} {root}/images/empty.png", "images/empty.png"),
    ("predict a missing file", "predict {run} {root}/images/missing.png", "images/missing.png"),
    ("predict a truncated PNG", "predict {run} {root}/images/truncated.png", "images/truncated.png"),
    ("predict a decompression bomb", "predict {run} {root}/images/bomb.png", "images/bomb.png"),
    ("predict with a fake weights file", "predict {root}/images/fake.safetensors {root}/images/ok.png",
     "fake.safetensors"),
    ("predict --top-k 0", "predict {run} {root}/images/ok.png --top-k 0", "--top-k"),
    # specs
    ("spec unknown layer", "summary {root}/specs/unknown_layer.yaml", "Conv3x"),
    ("spec bad argument", "summary {root}/specs/bad_argument.yaml", "kernal_size"),
    ("spec shapes collapse", "summary {root}/specs/collapse.yaml", "Conv2d"),
    ("spec not YAML", "summary {root}/specs/not_yaml.yaml", "not_yaml.yaml"),
    ("spec a list", "summary {root}/specs/a_list.yaml", "a_list.yaml"),
    ("spec empty", "summary {root}/specs/empty.yaml", "empty.yaml"),
    ("spec negative features", "summary {root}/specs/negative.yaml", "Linear"),
    ("train with a bad spec", T.replace("fastcnn", "{root}/specs/collapse.yaml") + " --data {root}/data/ok",
     "Conv2d"),
    # options
    ("negative epochs", "train --epochs -1", "--epochs"),
    ("batch size 0", "train --batch-size 0", "--batch-size"),
    ("val split 1.5", "train --val-split 1.5", "--val-split"),
    ("unknown device", "train --device tpu", "--device"),
    ("unknown optimiser", "train --optimizer rmsprop", "--optimizer"),
    ("absurd lr", "train --lr 1e9", "--lr"),
    ("limit 0", "train --limit 0", "--limit"),
    ("epochs not a number", "train --epochs many", "--epochs"),
    ("unknown model", "train --model resnet9000", "resnet9000"),
    ("--out is a file", "train --out {root}/data/afile", "is a file"),
    ("--out inside a file", T.replace("{root}/outs/{id}", "{root}/data/afile/run") + " --data {root}/data/ok",
     "cannot create the run directory"),
    ("--out where nothing can be made", T.replace("{root}/outs/{id}", "/proc/cnnlab-run") + " --data "
     "{root}/data/ok", "cannot create the run directory"),
    ("--config not YAML", "train --config {root}/configs/not_yaml.yaml", "not valid YAML"),
    ("--config unknown option", "train --config {root}/configs/unknown.yaml", "learning_rate"),
    ("--out a finished run", "train --out {run} --epochs 1", "already holds a finished run"),
    ("--resume a finished run", "train --resume {run}", "already finished"),
    ("--resume not a run", "train --resume {root}/resume/noconfig", "not a cnnlab run directory"),
    ("--resume with other flags", "train --resume {root}/resume/garbage --epochs 3", "drop --epochs"),
    ("--resume a checkpoint that runs code (pickle)", "train --resume {root}/resume/pickle",
     "refused to load"),
    ("--resume a checkpoint that runs code (torch.save)", "train --resume {root}/resume/torchzip",
     "refused to load"),
    ("--resume a corrupt checkpoint", "train --resume {root}/resume/garbage", "not a readable checkpoint"),
    ("eval on data of another shape", "eval {run} --data {root}/data/cifar_ok", "3x28x28"),
    ("eval a folder that is not a run", "eval {root}/images", "not a cnnlab run directory"),
]


def _argv(template: str, ws: dict, case_id: str) -> list[str]:
    cid = case_id.replace(" ", "_").replace("/", "_")
    return template.format(root=ws["root"], run=ws["run"], id=cid).split()


@pytest.mark.parametrize(("case_id", "template", "expect"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_error_line_and_exit_2(ws, case_id, template, expect):
    r = ws["server"].run(*_argv(template, ws, case_id), cwd=ws["cwd"])
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert expect in lines[0], lines[0]


def test_disk_full_is_one_error_line_and_leaves_no_finished_run(ws):
    out = ws["root"] / "outs" / "disk_full"
    r = ws["server"].run("train", "--data", str(ws["root"] / "data" / "ok"),
                         "--epochs", "1", "--out", str(out), cwd=ws["cwd"], setup=DISK_FULL)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "--resume" in lines[0], r.stderr
    assert not (out / "results.json").exists() and not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("image", ["one.png", "wide_rgba.png", "grey16.png", "cmyk.jpg"])
def test_unusual_but_valid_images_are_predicted(ws, image):
    """1x1, 5000x20 RGBA, 16-bit grey and CMYK are images: they get a label, not an error."""
    r = ws["server"].run("predict", str(ws["run"]), str(ws["root"] / "images" / image), "--json",
                         cwd=ws["cwd"])
    assert r.returncode == 0 and r.stderr == "", r.stderr
    [pred] = json.loads(r.stdout)
    assert pred["label"] in json.loads((ws["run"] / "results.json").read_text())["classes"]
    assert 0 < pred["probability"] <= 1


def test_a_folder_of_mixed_image_modes_trains(ws):
    """L, RGB, RGBA, P, 16-bit, 1-bit and CMYK files in one folder are all decoded to RGB, not refused."""
    out = ws["root"] / "valid" / "mixed"
    r = ws["server"].run("train", "--data", str(ws["root"] / "folders" / "mixed"), "--model", "fastcnn",
                         "--epochs", "1", "--val-split", "0", "--out", str(out), cwd=ws["cwd"])
    assert r.returncode == 0, r.stderr
    assert cnnlab.load_run(out).meta.input_shape == (3, 8, 8)


def test_the_warm_server_and_python_m_cnnlab_agree(ws):
    argv = _argv(BAD[0][1], ws, "python_m")
    direct, forked = cli(*argv, cwd=str(ws["cwd"])), ws["server"].run(*argv, cwd=ws["cwd"])
    assert (direct.returncode, direct.stderr) == (forked.returncode, forked.stderr) == (2, forked.stderr)


def test_nothing_was_corrupted_or_lost(ws):
    """Runs after the table: the finished run is byte-identical, no code ran, no bad case looks finished."""
    assert tree_hash(ws["run"]) == ws["run_hash"]
    assert not list(ws["root"].glob("pwned*"))
    assert not list((ws["root"] / "outs").rglob("results.json"))
    assert not list((ws["cwd"]).rglob("results.json"))
