"""DDP for real: `torchrun --nproc-per-node 2` (gloo, 127.0.0.1) against a one-process run of the same global
batch; only rank 0 writes the run directory; a 2-rank run stopped by SIGTERM resumes under torchrun.

lenet5 has no BatchNorm, so two ranks computing halves of each batch give the one-process gradient;
SGD (not Adam) keeps float rounding differences at rounding size instead of amplifying near-zero ones.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_resume import metrics_but_seconds, wait_for_new_checkpoint, write_fashion_slice

import cnnlab

TORCHRUN = Path(sys.executable).with_name("torchrun")
# 999 samples at batch 64: 15 full batches split 32/32 and a last one of 39 split 19/20.
OPTS = {"model": "lenet5", "epochs": 2, "batch_size": 64, "limit": 999, "optimizer": "sgd", "lr": 0.05,
        "momentum": 0.9, "eval_every": 5, "checkpoint_every": 4, "threads": 1, "seed": 1,
        "precision": "fp32"}  # bf16 rounds each rank's half-batch sums differently from the whole batch's

# Installed in every process of the torchrun (PYTHONPATH): logs each write-like file operation under
# the run directory, per rank. cnnlab writes every file through os.open/os.replace (atomic_write), so
# this sees them all, whatever library fills the file.
AUDIT = """
import os, sys
_run, _log = os.environ.get("AUDIT_RUN"), os.environ.get("AUDIT_LOG")
if _run and _log and os.environ.get("RANK") is not None:
    _out = open(f"{_log}.rank{os.environ['RANK']}", "a", buffering=1)
    _run = os.path.realpath(_run)
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def _inside(p):
        try:
            return os.path.realpath(os.fsdecode(p)).startswith(_run)
        except (TypeError, ValueError):
            return False

    def _hook(event, args):
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            mode, flags = args[1], args[2]
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITE)
            if writes and _inside(args[0]):
                _out.write(f"{event} {os.fsdecode(args[0])}\\n")
        elif (event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree")
              and _inside(args[0])):
            _out.write(f"{event} {os.fsdecode(args[0])}\\n")

    sys.addaudithook(_hook)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [str(TORCHRUN), "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "-m", "cnnlab", "train", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def flags(data: Path, out: Path) -> list[str]:
    args = ["--data", str(data), "--out", str(out)]
    for k, v in OPTS.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


@pytest.fixture(scope="module")
def data(tmp_path_factory, fashion_dir) -> Path:
    return write_fashion_slice(fashion_dir, tmp_path_factory.mktemp("data") / "fashion-slice", 3000, 500)


@pytest.fixture(scope="module")
def single(tmp_path_factory, data):
    """The one-process run every 2-process run must match."""
    return cnnlab.train(data=str(data), out=str(tmp_path_factory.mktemp("single") / "run"), progress=False,
                        **OPTS)


def assert_matches_single(run: Path, single: Path) -> None:
    for name in ("best.safetensors", "last.safetensors"):
        a, b = load_file(run / name), load_file(single / name)
        for k in b:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-6, msg=f"{name}: {k}")
    ma, mb = metrics_but_seconds(run), metrics_but_seconds(single)
    assert [r[:2] for r in ma] == [r[:2] for r in mb]  # the same log points
    for ra, rb in zip(ma[1:], mb[1:]):
        for col, (a, b) in enumerate(zip(ra[2:5], rb[2:5]), 2):  # train_loss, val_loss, val_accuracy
            assert float(a) == pytest.approx(float(b), abs=2e-5), (ma[0][col], ra, rb)
    res, ref = cnnlab.load_run(run).results, cnnlab.load_run(single).results
    assert res["processes"] == 2 and ref["processes"] == 1
    assert res["test_accuracy"] == pytest.approx(ref["test_accuracy"], abs=2e-3)
    assert (res["steps"], res["epochs"], res["best_step"]) == (ref["steps"], ref["epochs"], ref["best_step"])


def test_two_ranks_equal_one_process_and_only_rank_0_writes(data, single, tmp_path):
    out = tmp_path / "run"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "audit"
    proc = torchrun(*flags(data, out),
                    env={"PYTHONPATH": str(hooks), "AUDIT_RUN": str(out), "AUDIT_LOG": str(log)})
    stdout, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert stdout.count("test accuracy") == 1  # rank 1 prints nothing
    assert_matches_single(out, single.path)
    rank0 = Path(f"{log}.rank0").read_text().splitlines()
    assert any(line == f"os.rename {out}/metrics.csv" or line.startswith(f"os.rename {out}/.metrics.csv")
               for line in rank0), rank0[:5]  # the hook sees rank 0's writes...
    assert any("checkpoints/.last.pt" in line for line in rank0)
    # ...and none of rank 1's
    assert not Path(f"{log}.rank1").exists() or Path(f"{log}.rank1").read_text() == ""


def test_a_two_rank_run_stopped_by_sigterm_resumes_under_torchrun(data, single, tmp_path):
    out = tmp_path / "run"
    proc = torchrun(*flags(data, out))
    assert wait_for_new_checkpoint(proc, out / "checkpoints" / "last.pt", 0, timeout=300)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # as a cluster scheduler does; torchrun passes it to both ranks
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert f"resume with `cnnlab train --resume {out}`" in err
    assert err.count("interrupted: stopped at step") == 1  # rank 0 says it, not every rank
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert len(state["ranks"]) == 2 and state["state"]["global_step"] < single.results["steps"]
    assert not (out / "results.json").exists()
    proc = torchrun("--resume", str(out))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert_matches_single(out, single.path)
