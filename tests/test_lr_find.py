"""The learning-rate range test on real Fashion-MNIST: the sweep, its stop, and where it points."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab import create_model
from cnnlab.cli import main
from cnnlab.errors import UserError
from cnnlab.training.lr_find import lr_find, lr_range_test, smooth, suggest


def test_suggestion_is_the_steepest_descent_of_a_known_curve():
    lrs = np.logspace(-6, 1, 141)
    loss = 2.0 - np.tanh(2 * (np.log10(lrs) + 3))  # falls fastest exactly at lr = 1e-3
    loss[np.log10(lrs) > -0.5] += 50 * (np.log10(lrs[np.log10(lrs) > -0.5]) + 0.5)  # then explodes
    step, min_step = suggest(lrs.tolist(), loss.tolist())
    assert lrs[step] == pytest.approx(1e-3, rel=0.05)
    assert lrs[min_step] == pytest.approx(10 ** -0.5, rel=0.15)
    # The centred average does not shift a curve (a running average would, by its lag).
    step_s, _ = suggest(lrs.tolist(), smooth(loss.tolist()))
    assert step_s == step


def test_range_test_on_fashion_mnist(fashion_dir, tmp_path):
    r = lr_find(model="lenet5", data="fashion-mnist", data_dir=str(fashion_dir), limit=2000, steps=80,
                out=tmp_path)
    lrs = np.array(r.lrs)
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, (10.0 / 1e-6) ** (1 / 79), rtol=1e-9)  # exponential sweep
    assert lrs[0] == pytest.approx(1e-6)
    # Adam with a rate of 10 diverges: the sweep stops before its end, and says so.
    assert len(lrs) < 80 and "diverged" in r.stopped
    s = r.smoothed
    assert max(s[len(s) // 2:]) > 4 * min(s) - 1e-9 or "loss became" in r.stopped
    # The suggestion lies inside the swept range, on the descending part, before the minimum.
    i = r.suggestion_step
    assert lrs[0] < r.suggestion == lrs[i] < lrs[-1]
    assert r.suggestion < r.min_loss_lr
    assert s[max(0, i - 3)] > s[i] > s[i + 3]
    assert min(s) < 0.75 * s[0]  # the model did learn during the sweep
    # For lenet5 with Adam the answer is the well-known ~1e-3 (the model's default is 0.001).
    assert 1e-4 < r.suggestion < 1e-2
    rows = list(csv.DictReader((tmp_path / "lr_find.csv").open()))
    assert len(rows) == len(lrs) and float(rows[i]["lr"]) == pytest.approx(r.suggestion, rel=1e-5)
    assert r.plot == tmp_path / "lr_find.png" and Image.open(r.plot).size[0] >= 800


def test_range_test_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = create_model("mnist-classifier", (1, 28, 28), 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
    r = lr_range_test(model, x, y, lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9), steps=30,
                      batch_size=64)
    assert len(r.lrs) >= 10
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    with pytest.raises(UserError, match="--steps 5"):
        lr_range_test(model, x, y, lambda p, lr: torch.optim.SGD(p, lr=lr), steps=5)
    with pytest.raises(UserError, match="--start-lr"):
        lr_range_test(model, x, y, lambda p, lr: torch.optim.SGD(p, lr=lr), start_lr=1.0, end_lr=0.1)


def test_lr_find_command(fashion_dir, tmp_path, capsys):
    # In-process: the same parser and command as `cnnlab lr-find`, without paying torch's import again.
    assert main(["lr-find", "--model", "mnist-classifier", "--data", "fashion-mnist",
                 "--data-dir", str(fashion_dir), "--limit", "1000", "--steps", "40",
                 "--out", str(tmp_path)]) == 0
    stdout = capsys.readouterr().out
    first = stdout.splitlines()[0]
    assert first.startswith("suggested learning rate: ")
    lr = float(first.split(": ")[1])
    assert 1e-6 < lr < 10
    assert "steepest descent" in stdout
    assert stdout.strip().endswith(f"plot: {tmp_path / 'lr_find.png'}")
    assert (tmp_path / "lr_find.png").is_file()
    assert main(["lr-find", "--model", "nope", "--data", "fashion-mnist"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown model 'nope'")
