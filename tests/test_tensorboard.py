"""TensorBoardLogger writes real event files: read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnlab import create_model
from cnnlab.training.callbacks.tensorboard import SCALAR_TAGS, TensorBoardLogger, filter_grid

ROWS = [  # as the trainer logs them: metrics.csv rows; the first point has no validation yet
    {"step": 10, "train_loss": 2.1, "val_loss": None, "val_accuracy": None, "lr": 0.001},
    {"step": 20, "train_loss": 1.5, "val_loss": 1.4, "val_accuracy": 0.55, "lr": 0.001},
    {"step": 30, "train_loss": 1.1, "val_loss": 1.2, "val_accuracy": 0.61, "lr": 0.0005},
]


def test_scalars_filters_and_confusion_matrix_are_in_the_event_file(tmp_path):
    torch.manual_seed(0)
    model = create_model("lenet5", (1, 28, 28), 3)
    classes = ["cat", "dog", "bird"]
    cm = [[5, 1, 0], [2, 7, 1], [0, 0, 9]]
    with TensorBoardLogger(tmp_path / "tb") as tb:
        for r in ROWS:
            tb.scalars(r["step"], r)
        tb.epoch(30, model, cm, classes)
        tb.epoch(60, model, None, classes)  # no confusion matrix this time: filters only
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))

    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert (set(tags["scalars"]) == set(SCALAR_TAGS.values())
            == {"loss/train", "loss/val", "accuracy/val", "lr"})
    for key, tag in SCALAR_TAGS.items():
        expected = [(r["step"], r[key]) for r in ROWS if r[key] is not None]
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in expected]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in expected], rtol=1e-6)

    assert set(tags["images"]) == {"filters/conv1", "confusion_matrix"}
    filt = acc.Images("filters/conv1")
    assert [e.step for e in filt] == [30, 60]
    grid = filter_grid(model.conv1)  # 6 filters of 5x5, each weight drawn 8x8 px, 2 px padding
    assert grid.shape == (3, 2 + 40 + 2, 2 + 6 * 42)
    img = np.asarray(Image.open(io.BytesIO(filt[0].encoded_image_string)))
    assert img.shape[:2] == (filt[0].height, filt[0].width) == tuple(grid.shape[1:])
    # Zero weight is mid-grey; the strongest weight of the layer is black or white.
    w = model.conv1.weight.detach()
    o, _, i, j = np.unravel_index(int(w.abs().argmax()), w.shape)
    px = grid[0, 2 + 8 * i + 3, 2 + 42 * o + 8 * j + 3].item()
    assert px == pytest.approx(0.0 if w.flatten()[w.abs().argmax()] < 0 else 1.0, abs=1e-6)
    (cm_img,) = acc.Images("confusion_matrix")
    assert cm_img.step == 30 and cm_img.width > 400 and cm_img.height > 400


def test_a_resumed_run_hides_the_steps_it_replays(tmp_path):
    # killed after logging steps 1-10, resumed from the checkpoint at step 6: steps 7-10 run again
    with TensorBoardLogger(tmp_path / "tb") as tb:
        for step in range(1, 11):
            tb.scalars(step, {"train_loss": 1.0})
    with TensorBoardLogger(tmp_path / "tb", purge_step=7) as tb:
        for step in range(7, 13):
            tb.scalars(step, {"train_loss": 2.0})
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    got = [(e.step, e.value) for e in acc.Scalars("loss/train")]
    assert got == [(s, 1.0) for s in range(1, 7)] + [(s, 2.0) for s in range(7, 13)]
