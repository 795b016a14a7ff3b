"""Test-time flip augmentation: one definition of a prediction, the same in every place that makes one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import cli

import cnnlab
from cnnlab.data import load_data, normalize
from cnnlab.export import check_export, export_onnx, run_exported
from cnnlab.models import FlipAverage, predictor
from cnnlab.models.evaluate import infer
from cnnlab.predict import predict_tensor


def test_flip_average_is_the_mean_of_the_logits_for_image_and_mirror_image():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    x = torch.randn(5, 1, 6, 7)
    want = (net(x) + net(x.flip(3))) / 2
    assert torch.allclose(FlipAverage(net)(x), want)
    assert predictor(net, "none") is net
    with pytest.raises(ValueError, match="flip"):
        predictor(net, "rotate")


@pytest.fixture(scope="module")
def flip_run(tmp_path_factory, fashion_dir):
    out = tmp_path_factory.mktemp("runs") / "tta"
    return cnnlab.train(model="fastcnn-small", data="fashion-mnist", epochs=1, limit=3000, augment="flip",
                        out=str(out), progress=False)


def test_a_run_trained_on_flips_predicts_from_both_and_every_reader_agrees(flip_run, tmp_path):
    assert flip_run.meta.tta == "flip" and flip_run.config["tta"] == "auto"
    test = load_data("fashion-mnist").test
    x = normalize(test.x[:500].float().div(255), flip_run.meta)
    plain = infer(flip_run.model, x)
    both = infer(FlipAverage(flip_run.model), x)
    assert not torch.allclose(plain, both)  # the mirror image changes the logits
    # the test report is the flip-averaged accuracy
    full = normalize(test.x.float().div(255), flip_run.meta)
    acc = (infer(FlipAverage(flip_run.model), full).argmax(1) == test.y).float().mean().item()
    assert flip_run.results["test_accuracy"] == pytest.approx(acc, abs=1e-6)
    # predict, the ONNX export in ONNX Runtime: the same probabilities
    probs = torch.softmax(both, 1)
    got = predict_tensor(flip_run.model, flip_run.meta, x[:20], top_k=1)
    assert [g["label"] for g in got] == [flip_run.meta.classes[i] for i in probs[:20].argmax(1)]
    assert np.allclose([g["probability"] for g in got], probs[:20].max(1).values.numpy(), atol=1e-5)
    onnx = run_exported(export_onnx(flip_run, tmp_path / "m.onnx"), x[:20])
    assert np.allclose(torch.softmax(torch.from_numpy(onnx), 1).numpy(), probs[:20].numpy(), atol=1e-4)
    check = check_export(tmp_path / "m.onnx", flip_run)  # what `cnnlab export` prints after exporting
    assert check["max_abs_diff"] < 1e-4 and check["same_class"] == check["n"]
    # `cnnlab eval` reports what training reported
    r = cli("eval", str(flip_run.path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["test_accuracy"] == pytest.approx(acc, abs=1e-6)


def test_tta_none_keeps_one_forward_pass(flip_run, tmp_path):
    run = cnnlab.train(model="fastcnn-small", data="fashion-mnist", epochs=1, limit=1000, augment="flip",
                       tta="none", out=str(tmp_path / "r"), progress=False)
    assert run.meta.tta == "none"
