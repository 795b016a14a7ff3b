"""Export: the ONNX file runs in ONNX Runtime and the TorchScript file in torch.jit, on real Fashion-MNIST
test images, giving PyTorch's logits (within 1e-4) and classes at batch 64 and batch 1."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from datafiles import fashion_test_images
from helpers import cli

from cnnlab.cli import main
from cnnlab.data import normalize
from cnnlab.export import export_onnx, export_torchscript
from cnnlab.models import ModelMeta


@pytest.fixture(scope="module")
def batch(fashion_dir, fashion_run):
    """64 real test images normalised like the run's training data, their labels, and PyTorch's logits."""
    x, y = fashion_test_images(fashion_dir, 64)
    xn = normalize(torch.from_numpy(x).float()[:, None] / 255, fashion_run.meta)  # (64, 1, 28, 28)
    with torch.inference_mode():
        ref = fashion_run.model.eval()(xn).numpy()
    return xn, y, ref


def assert_matches(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-4
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_onnx_in_onnxruntime_matches_pytorch_at_any_batch_size(fashion_run, batch, tmp_path):
    xn, y, ref = batch
    path = export_onnx(fashion_run, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    assert inp.shape == ["batch", 1, 28, 28]  # the batch axis is symbolic, the rest fixed
    got = sess.run(None, {inp.name: xn.numpy()})[0]
    assert_matches(got, ref)
    assert_matches(sess.run(None, {inp.name: xn[:1].numpy()})[0], ref[:1])  # batch 1: the axis is dynamic
    # The exported model classifies real clothes as the trained one does (test accuracy ~0.66 after 2 epochs).
    assert (got.argmax(1) == y).mean() > 0.5


def test_onnx_metadata_carries_the_preprocessing(fashion_run, tmp_path):
    path = export_onnx(fashion_run, tmp_path / "m.onnx")
    props = ort.InferenceSession(str(path),
                                 providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    meta = fashion_run.meta
    assert json.loads(props["mean"]) == meta.mean and json.loads(props["std"]) == meta.std
    assert 0.2 < meta.mean[0] < 0.35 and 0.3 < meta.std[0] < 0.4  # Fashion-MNIST's own statistics
    assert json.loads(props["classes"])[:2] == ["T-shirt/top", "Trouser"]
    assert json.loads(props["classes"]) == meta.classes
    assert json.loads(props["input_shape"]) == [1, 28, 28]
    assert props["style"] == "fit"
    assert ModelMeta.from_json(props["cnnlab"]) == meta


def test_torchscript_in_torch_jit_matches_pytorch(fashion_run, batch, tmp_path):
    xn, _, ref = batch
    path = export_torchscript(fashion_run, tmp_path / "m.pt")
    extra = {"cnnlab.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        module = torch.jit.load(str(path), _extra_files=extra)
    with torch.inference_mode():
        assert_matches(module(xn).numpy(), ref)
        assert_matches(module(xn[:1]).numpy(), ref[:1])
    meta = ModelMeta.from_json(extra["cnnlab.json"])
    assert (meta == fashion_run.meta and meta.mean == fashion_run.meta.mean
            and meta.classes[-1] == "Ankle boot")


def test_export_from_a_weights_file_writes_beside_it(fashion_run, batch, tmp_path):
    weights = tmp_path / "best.safetensors"
    shutil.copy(fashion_run.path / "best.safetensors", weights)
    path = export_onnx(weights)
    assert path == tmp_path / "model.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_matches(sess.run(None, {"input": batch[0].numpy()})[0], batch[2])


def test_cli_export_onnx_and_torchscript(fashion_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(fashion_run.path, run_dir)  # the session's run stays as other tests expect it
    r = cli("export", str(run_dir))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == str(run_dir / "model.onnx") and (run_dir / "model.onnx").is_file()
    assert lines[1].startswith("check: ONNX Runtime vs PyTorch on 8 fashion-mnist test images: max |diff| ")
    assert float(lines[1].split("max |diff| ")[1].split(",")[0]) < 1e-4
    assert lines[1].endswith("same class 8/8")

    out = tmp_path / "deploy" / "fashion.pt"
    out.parent.mkdir()
    # in-process: faster
    assert main(["export", str(run_dir), "--format", "torchscript", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(out) and out.stat().st_size > 200_000  # 61,706 float32 weights
    assert lines[1].startswith("check: torch.jit vs PyTorch") and lines[1].endswith("same class 8/8")


@pytest.mark.parametrize("args, names", [
    (["{tmp}"], ["{tmp}", "not a cnnlab run directory"]),
    (["{tmp}/missing"], ["{tmp}/missing", "no such run directory"]),
    (["{run}", "--format", "tflite"], ["--format", "tflite", "onnx", "torchscript"]),
    (["{run}", "--out", "{tmp}/no/such/dir/m.onnx"], ["--out", "does not exist"]),
])
def test_export_bad_input_is_one_error_line(fashion_run, tmp_path, capsys, args, names):
    fill = {"tmp": str(tmp_path), "run": str(fashion_run.path)}
    rc = run_main(["export", *(a.format(**fill) for a in args)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert all(n.format(**fill) in err for n in names)
    assert not list(tmp_path.rglob("*.onnx"))


def run_main(argv: list[str]) -> int:
    """The CLI in this process (argparse errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code
