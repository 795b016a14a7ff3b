"""Never lose a run: real `cnnlab train` processes killed (SIGKILL, Ctrl-C) at random steps and resumed
end bit-identical to an uninterrupted run; divergence, early stopping, a full disk, a second trainer
and a malicious checkpoint are each handled without losing or corrupting anything.

The random kill points come from a seeded generator; set CNNLAB_KILL_SEED to replay a failure.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import cli
from safetensors.torch import load_file

import cnnlab
import cnnlab.files
import cnnlab.training.callbacks.checkpoint
import cnnlab.training.checkpoint
import cnnlab.training.runtime
from cnnlab.errors import UserError
from cnnlab.training.checkpoint import load_checkpoint

# A small CNN with Dropout (so torch's global RNG matters), trained with Adam (optimiser state), a
# one-cycle schedule (scheduler state) and flips (per-step augmentation RNG): everything resume restores.
SPEC = """\
input: 1x28x28
layers:
  - Conv2d: {out_channels: 6, kernel_size: 5, padding: 2}
  - ReLU
  - MaxPool2d: 2
  - Conv2d: {out_channels: 16, kernel_size: 5}
  - ReLU
  - MaxPool2d: 2
  - Flatten
  - Dropout: 0.25
  - Linear: 64
  - ReLU
  - Linear
"""
# threads: 1, as the thread count changes float rounding and is otherwise measured per process.
OPTS = {"epochs": 3, "batch_size": 64, "eval_every": 5, "checkpoint_every": 3, "augment": "flip",
        "schedule": "onecycle", "lr": 0.01, "optimizer": "adam", "seed": 3, "threads": 1}


def write_fashion_slice(src: Path, dst: Path, n_train: int = 3000, n_test: int = 1000) -> Path:
    """The first n_train/n_test real Fashion-MNIST samples as IDX files (read without decoding all 60,000)."""
    dst.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        for kind, item, header in (("images-idx3-ubyte", 784, 16), ("labels-idx1-ubyte", 1, 8)):
            path = next(p for p in (src / f"{part}-{kind}", src / f"{part}-{kind}.gz") if p.exists())
            with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
                head, body = bytearray(f.read(header)), f.read(n * item)
            head[4:8] = n.to_bytes(4, "big")  # the sample count in the header
            (dst / f"{part}-{kind}").write_bytes(bytes(head) + body)
    return dst


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory, fashion_dir) -> Path:
    # "fashion" in the folder name: cnnlab names the classes T-shirt/top, Trouser, ...
    return write_fashion_slice(fashion_dir, tmp_path_factory.mktemp("data") / "fashion-slice")


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("spec") / "dropnet.yaml"
    p.write_text(SPEC)
    return p


@pytest.fixture(scope="module")
def reference(tmp_path_factory, slice_dir, spec_file):
    """The uninterrupted run every interrupted one must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("ref") / "run"
    return cnnlab.train(model=str(spec_file), data=str(slice_dir), out=str(out), progress=False, **OPTS)


def cli_args(slice_dir: Path, spec_file: Path, out: Path) -> list[str]:
    args = ["--model", str(spec_file), "--data", str(slice_dir), "--out", str(out)]
    for k, v in OPTS.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnlab", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def wait_for_new_checkpoint(proc: subprocess.Popen, ckpt: Path, since: float, timeout: float = 240) -> bool:
    """True once a checkpoint newer than `since` is on disk; False if the process ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if mtime(ckpt) > since:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError("no checkpoint appeared in time")


def metrics_but_seconds(run: Path) -> list[list[str]]:
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",")[6] == "seconds"
    return [line.split(",")[:6] for line in lines]


def assert_same_run(run: Path, ref: Path) -> None:
    """Weights bit-identical, metrics identical in every column but wall-clock seconds, same results."""
    for name in ("best.safetensors", "last.safetensors"):
        a, b = load_file(run / name), load_file(ref / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}: {k} differs"
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
    assert metrics_but_seconds(run) == metrics_but_seconds(ref), "metrics.csv differs"
    ra, rb = cnnlab.load_run(run).results, cnnlab.load_run(ref).results
    for k in ("test_accuracy", "test_loss", "best_val_accuracy", "best_step", "epochs", "steps",
              "early_stopped"):
        assert ra[k] == rb[k], k


def wait_for_step(proc: subprocess.Popen, ckpt: Path, target: int, timeout: float = 240) -> bool:
    """True once this process has written a checkpoint at `target` steps or beyond; False if it ended first.

    Only a checkpoint written after the call counts: the one a killed run left may already be past `target`,
    and signalling a resumed process before it is training would hit Python's start-up, not the trainer."""
    seen, end = mtime(ckpt), time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if mtime(ckpt) != seen:
            seen = mtime(ckpt)  # an open file keeps reading the old inode if the checkpoint is replaced
            if torch.load(ckpt, weights_only=True)["state"]["global_step"] >= target:
                return True
        time.sleep(0.01)
    raise AssertionError(f"the run did not reach step {target} in time")


def test_killed_at_random_steps_and_resumed_is_bit_identical(reference, slice_dir, spec_file, tmp_path):
    seed = int(os.environ.get("CNNLAB_KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    out = tmp_path / "run"
    ckpt = out / "checkpoints" / "last.pt"
    total = reference.results["steps"]  # 129: 3 epochs of 43
    # SIGKILL (nothing saved: the work since the last checkpoint is replayed), Ctrl-C (saved at that
    # very step), SIGKILL again: each a random moment after the checkpoint at or past a random step.
    targets = sorted(rng.sample(range(3, total * 4 // 5), 3))
    signals, resumed_at = [signal.SIGKILL, signal.SIGINT, signal.SIGKILL], []
    proc = start(*cli_args(slice_dir, spec_file, out))
    for sig, target in zip(signals, targets):
        if not wait_for_step(proc, ckpt, target):
            break
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:  # it finished before the signal landed: nothing left to resume
            break
        if sig == signal.SIGINT:
            assert proc.returncode == 130, err
            assert f"resume with `cnnlab train --resume {out}`" in err, err
            assert "Traceback" not in err
        else:
            assert proc.returncode == -signal.SIGKILL
        st = torch.load(ckpt, weights_only=True)["state"]
        resumed_at.append((sig.name, st["epoch"], st["step_in_epoch"], st["global_step"]))
        assert not (out / "results.json").exists()
        proc = start("--resume", str(out))
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "test accuracy" in stdout and str(out) in stdout
    context = f"CNNLAB_KILL_SEED={seed}, resumed at (signal, epoch, step in epoch, step): {resumed_at}"
    assert len(resumed_at) == 3, context
    assert any(step_in_epoch for _, _, step_in_epoch, _ in resumed_at), context  # mid-epoch resume
    assert_same_run(out, reference.path)
    assert not list(out.rglob("*.tmp")), "a temp file was left behind"


def test_resume_before_the_first_checkpoint_starts_over(reference, tmp_path):
    out = tmp_path / "run"  # killed after writing its config, before any checkpoint
    out.mkdir()
    (out / "config.yaml").write_text((reference.path / "config.yaml").read_text())
    run = cnnlab.train(resume=out, progress=False)
    assert_same_run(run.path, reference.path)


def test_resume_before_the_first_checkpoint_uses_the_spec_copy(reference, tmp_path):
    # killed after writing config.yaml and spec.yaml, before any checkpoint; then the spec file went away
    spec = tmp_path / "mine" / "dropnet.yaml"
    out = tmp_path / "run"
    out.mkdir()
    config = yaml.safe_load((reference.path / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump({**config, "model": str(spec), "out": str(out)}))
    (out / "spec.yaml").write_text((reference.path / "spec.yaml").read_text())
    run = cnnlab.train(resume=out, progress=False)
    assert_same_run(run.path, reference.path)
    assert (out / "spec.yaml").read_text() == (reference.path / "spec.yaml").read_text()  # kept, not re-read


def test_ctrl_c_saves_and_second_trainer_is_refused(reference, slice_dir, spec_file, tmp_path):
    """A second `cnnlab train` into a run directory in use is refused and writes nothing there."""
    out = tmp_path / "run"
    first = start(*cli_args(slice_dir, spec_file, out))
    assert wait_for_new_checkpoint(first, out / "checkpoints" / "last.pt", 0)
    first.send_signal(signal.SIGSTOP)  # hold it mid-run, its lock held, so the race is decided
    try:
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        second = cli("train", *cli_args(slice_dir, spec_file, out))
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), second.stderr
        assert f"in use by another cnnlab train (pid {first.pid})" in lines[0]
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert_same_run(out, reference.path)


def test_early_stopping_and_threads_survive_a_crash_at_the_epoch_end(slice_dir, tmp_path, monkeypatch):
    # lr 1e-5: validation accuracy stops improving after epoch 1, so patience 1 stops after epoch 2.
    opts = {"model": "lenet5", "data": str(slice_dir), "epochs": 6, "batch_size": 64, "limit": 600,
            "optimizer": "sgd", "lr": 1e-5, "patience": 1, "progress": False}
    launch = sys.modules["cnnlab.training.launch"]
    monkeypatch.setattr(launch, "choose_threads", lambda requested: 2)  # what this machine measured then
    # and it computes bf16 natively
    monkeypatch.setattr(cnnlab.training.runtime, "cpu_has_bf16", lambda: True)
    ref = cnnlab.train(out=str(tmp_path / "ref"), **opts)
    assert ref.results["threads"] == 2 and ref.results["precision"] == "bf16"
    assert ref.results["early_stopped"] and ref.results["epochs"] == 2

    class Crash(BaseException):
        pass

    real_save = cnnlab.training.checkpoint.save_checkpoint

    def save_then_crash(state, path):  # the process dies right after the epoch-2 checkpoint landed
        real_save(state, path)
        if state["state"]["epoch"] == 2 and state["state"]["step_in_epoch"] == 0:
            raise Crash

    monkeypatch.setattr(cnnlab.training.callbacks.checkpoint, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        cnnlab.train(out=str(tmp_path / "run"), **opts)
    monkeypatch.undo()
    monkeypatch.setattr(launch, "choose_threads", lambda requested: 1)  # the machine is busier now
    # and resumes where bf16 is not native
    monkeypatch.setattr(cnnlab.training.runtime, "cpu_has_bf16", lambda: False)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["state"]["bad_epochs"] == 1
    run = cnnlab.train(resume=tmp_path / "run", progress=False)
    assert run.results["early_stopped"] and run.results["epochs"] == 2 and run.results["steps"] == 20
    assert run.results["threads"] == 2  # kept from the checkpoint: a thread count changes float rounding
    assert run.results["precision"] == "bf16"  # so does the precision: kept too
    assert_same_run(run.path, ref.path)


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(slice_dir, tmp_path):
    out = tmp_path / "run"
    r = cli("train", "--model", "cnn-model", "--data", str(slice_dir), "--optimizer", "sgd", "--lr", "50",
            "--momentum", "0.9", "--limit", "1000", "--checkpoint-every", "1", "--eval-every", "1",
            "--out", str(out))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training diverged"), r.stderr
    assert "lower --lr" in lines[0] and "last good checkpoint" in lines[0]
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert f"(step {ck['state']['global_step']})" in lines[0]
    assert ck["state"]["global_step"] >= 1
    saved = [ck["model"], load_file(out / "last.safetensors"), load_file(out / "best.safetensors")]
    for tensors in saved:
        assert all(torch.isfinite(t).all() for t in tensors.values()), "NaN/Inf weights were saved"
    assert not (out / "results.json").exists()


def test_disk_full_mid_run_keeps_the_last_checkpoint_then_resume_finishes(reference, tmp_path, monkeypatch):
    """ENOSPC on the 4th checkpoint write: exit with a clear error, earlier files intact, resume exact."""
    out = tmp_path / "run"
    real = cnnlab.files.atomic_write
    count = {"ckpt": 0}

    def full_disk(path, write):
        if Path(path).name == "last.pt":
            count["ckpt"] += 1
            if count["ckpt"] == 4:
                def write_then_fail(tmp):
                    write(tmp)  # part of the file lands, then the disk is full
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return real(path, write_then_fail)
        return real(path, write)

    monkeypatch.setattr(cnnlab.training.checkpoint, "atomic_write", full_disk)
    with pytest.raises(UserError, match=r"No space left on device.*--resume"):
        cnnlab.train(model=reference.config["model"], data=reference.config["data"], out=str(out),
                     progress=False, **OPTS)
    monkeypatch.undo()
    assert load_checkpoint(out / "checkpoints" / "last.pt")["state"]["global_step"] == 9  # the 3rd, intact
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".last.pt.*"))
    run = cnnlab.train(resume=out, progress=False)
    assert_same_run(run.path, reference.path)


def test_resume_uses_the_runs_own_copy_of_a_deleted_spec_file(reference, tmp_path, monkeypatch):
    spec = tmp_path / "mine" / "dropnet.yaml"  # the reference's spec, in a file of the user's own
    spec.parent.mkdir()
    spec.write_text(Path(reference.config["model"]).read_text())
    out = tmp_path / "run"
    real = cnnlab.training.checkpoint.atomic_write

    def crash_at_third_checkpoint(path, write):
        saved = out / "checkpoints" / "last.pt"
        if (Path(path).name == "last.pt" and saved.exists()
                and load_checkpoint(saved)["state"]["global_step"] >= 6):
            raise KeyboardInterrupt  # as if killed there
        return real(path, write)

    monkeypatch.setattr(cnnlab.training.checkpoint, "atomic_write", crash_at_third_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        cnnlab.train(model=str(spec), data=reference.config["data"], out=str(out), progress=False, **OPTS)
    monkeypatch.undo()
    kept = yaml.safe_load((out / "spec.yaml").read_text())
    assert kept["name"] == "dropnet" and kept["layers"] == yaml.safe_load(spec.read_text())["layers"]
    spec.unlink()  # the user tidied up their spec files before resuming
    run = cnnlab.train(resume=out, progress=False)
    assert_same_run(run.path, reference.path)
    assert run.results["model"] == str(spec)  # the run still names the file it was started from


class _Payload:
    """Unpickling this calls open(marker, "w"): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("fmt", ["pickle", "torch.save"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, fmt):
    marker, path = tmp_path / "pwned", tmp_path / "last.pt"
    payload = {"model": {}, "state": _Payload(marker)}
    if fmt == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    with pytest.raises(UserError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()
    # and a checkpoint of plain tensors and containers loads
    torch.save({"model": {"w": torch.ones(2)}, "state": {"epoch": 1}}, path)
    assert load_checkpoint(path)["state"] == {"epoch": 1}


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    """A write that dies half-way leaves the previous checkpoint byte-identical and no temp file."""
    path = tmp_path / "last.pt"
    cnnlab.training.checkpoint.save_checkpoint({"v": torch.arange(5)}, path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    def dies(obj, f):
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # the user's second Ctrl-C, mid-write

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        cnnlab.training.checkpoint.save_checkpoint({"v": torch.arange(7)}, path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
