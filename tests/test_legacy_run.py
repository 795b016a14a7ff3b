"""Runs written by cnnlab 0.1.0 still load: eval, predict, export and --resume on a committed fixture.

tests/fixtures/legacy-0.1.0/ was written by cnnlab 0.1.0 (commit 38111cf) with its own
make_fixture.py: a tiny spec-file model trained on scikit-learn's digits, once to the end
(`finished/`) and once killed right after its second checkpoint (`killed/`, mid-epoch). `expected/`
holds what 0.1.0 answered: `eval --json`, `predict --json` on six PNGs, and the weights after it
resumed the killed run itself. The spec file the runs were trained from is gone (an absolute /tmp
path in their config.yaml), as it would be on a user's machine: they must rebuild from what they hold.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import cli
from PIL import Image
from safetensors.torch import load_file

import cnnlab
from cnnlab.data import normalize

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-0.1.0"


@pytest.fixture
def legacy(tmp_path) -> Path:
    """A writable copy of the fixture (eval writes a plot into the run, resume writes everything)."""
    dst = tmp_path / "legacy"
    shutil.copytree(FIXTURE, dst)
    return dst


def test_eval_matches_what_0_1_0_reported(legacy):
    r = cli("eval", "finished", "--json", cwd=str(legacy))
    assert r.returncode == 0, r.stderr
    got, want = json.loads(r.stdout), json.loads((legacy / "expected" / "eval.json").read_text())
    assert got["test_samples"] == want["test_samples"] == 360
    assert got["confusion_matrix"] == want["confusion_matrix"]
    assert got["test_accuracy"] == pytest.approx(want["test_accuracy"], abs=1e-9)
    assert got["test_loss"] == pytest.approx(want["test_loss"], abs=1e-5)


def test_predict_on_a_0_1_0_run(legacy):
    """The preprocessing a 0.1.0 run saved (style "mnist", 1x8x8) drives today's preparation: its own test
    digits saved as 8x8 PNGs get exactly the classes the model gives their tensors. 0.1.0's answers on the
    64x64 PNGs (expected/predict.json) came from the lossy preparation issue 15 replaced, so only the shape
    of today's answers to them is compared."""
    run = cnnlab.load_run(legacy / "finished")
    ts = run.test_set()
    with torch.inference_mode():
        pred = run.model(normalize(ts.x.float() / 255, run.meta)).argmax(1)
    tensor_classes = [run.meta.classes[i] for i in pred]
    own = legacy / "own"
    own.mkdir()
    for i, a in enumerate(ts.x[:60].numpy()):
        Image.fromarray(a[0]).save(own / f"{i:03d}.png")
    images = sorted(str(p.relative_to(legacy)) for p in (legacy / "expected" / "images").glob("*.png"))
    r = cli("predict", "finished", *images, *sorted(str(p.relative_to(legacy)) for p in own.glob("*.png")),
            "--json", "--top-k", "3", cwd=str(legacy))
    assert r.returncode == 0, r.stderr
    got, want = json.loads(r.stdout), json.loads((legacy / "expected" / "predict.json").read_text())
    assert [g["file"] for g in got[:6]] == [w["file"] for w in want]
    assert [g["label"] for g in got[6:]] == tensor_classes[:60]
    for g in got:
        assert [t["label"] for t in g["top_k"]][0] == g["label"] and len(g["top_k"]) == 3


def test_export_onnx_of_a_0_1_0_run(legacy, tmp_path):
    out = tmp_path / "legacy.onnx"
    r = cli("export", str(legacy / "finished"), "--format", "onnx", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "same class 8/8" in r.stdout
    import onnxruntime as ort

    run = cnnlab.load_run(legacy / "finished")
    x = torch.randn(5, *run.meta.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = run.model(x).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()})[0]
    assert abs(got - ref).max() < 1e-4


def test_resume_a_run_killed_under_0_1_0(legacy):
    run_dir = legacy / "killed"
    r = cli("train", "--resume", str(run_dir))
    assert r.returncode == 0, r.stdout + r.stderr
    got = load_file(str(run_dir / "last.safetensors"))
    want = load_file(str(legacy / "expected" / "resumed_last.safetensors"))
    assert got.keys() == want.keys()
    for k in want:  # float32 on one thread: equal up to the CPU's own rounding (CI may run on another kind)
        torch.testing.assert_close(got[k], want[k], atol=1e-4, rtol=1e-4)
    results = json.loads((run_dir / "results.json").read_text())
    expected = json.loads((legacy / "expected" / "resumed_results.json").read_text())
    assert results["epochs"] == expected["epochs"] == 4
    assert results["steps"] == expected["steps"]
    assert abs(results["test_accuracy"] - expected["test_accuracy"]) <= 2 / 360  # at most two digits differ


def test_load_run_in_python(legacy):
    run = cnnlab.load_run(legacy / "finished")
    assert run.finished and run.results["epochs"] == 4
    assert run.meta.input_shape == (1, 8, 8) and run.meta.classes == [str(i) for i in range(10)]
    assert len(run.metrics) == 8  # twice per epoch
    assert run.model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
