"""Every model runs: each registered one forward and backward at three input sizes (timm's test_models), and
spec files written as a new user writes them -- mistakes included -- are built, summarised and trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cnnlab
from cnnlab.errors import UserError
from cnnlab.models import create_model, format_summary, list_models, load_spec, totals

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8)]
CASES = [(e.name, s) for e in list_models() for s in SHAPES]


@pytest.mark.parametrize("name, shape", CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
def test_forward_backward(name, shape):
    torch.manual_seed(0)
    classes = 7  # not 10, so a hard-coded class count would show
    try:
        model = create_model(name, shape, classes)
    except UserError as e:  # too small for this architecture: allowed at 8x8 only, and explained
        msg = str(e)
        assert shape == (1, 8, 8), msg
        assert "\n" not in msg and f"model '{name}', layer " in msg and "→" in msg and "too small" in msg
        return
    x = torch.randn(3, *shape, requires_grad=True)
    out = model.train()(x)
    assert out.shape == (3, classes) and torch.isfinite(out).all()
    out.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads) and x.grad.abs().sum() > 0
    with torch.no_grad():
        assert model.eval()(x[:1]).shape == (1, classes)  # BatchNorm in eval mode takes a single image


def test_which_seed_models_fit_8x8_digits():
    """The seeds' networks were made for 28x28 and 32x32; on scikit-learn's 8x8 digits the error says
    where."""
    fits = {}
    for name in ("mnist-classifier", "simple-cnn", "cnn-model", "lenet5"):
        try:
            fits[name] = totals(create_model(name, (1, 8, 8), 10))["params"]
        except UserError as e:
            fits[name] = str(e)
    assert fits["simple-cnn"] == 16 * 9 + 16 + 16 * 4 * 4 * 10 + 10
    assert "layer 4 (Conv2d) gets 10x2x2" in fits["mnist-classifier"] and "2 → (2 − 5 + 2·0)/1 + 1 = -2" in \
        fits["mnist-classifier"]
    assert "layer 6 (MaxPool2d) gets 32x1x1" in fits["cnn-model"]
    assert "layer 4 (Conv2d) gets 6x4x4" in fits["lenet5"] and "use kernel_size <= 4" in fits["lenet5"]


# --- spec files as a new user writes them, for scikit-learn's 8x8 digits (bundled, 1,797 images) ----------

USER_SPECS = {  # name: (what the user wrote, the error's key words or None, the fix)
    "first_cnn.yaml": ("""\
# my first CNN, for the 8x8 digits
layers:
  - Conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
  - ReLU
  - MaxPool2d: 2
  - Flatten
  - Linear: 32
  - ReLU
  - Linear
train: {lr: 0.01}
""", None, None),
    "lenet_on_digits.yaml": ("""\
# LeNet-5 from the lecture, pointed at the digits
layers:
  - Conv2d: {out_channels: 6, kernel_size: 5, padding: 2}
  - Tanh
  - AvgPool2d: 2
  - Conv2d: {out_channels: 16, kernel_size: 5}
  - Tanh
  - AvgPool2d: 2
  - Flatten
  - Linear: 84
  - Tanh
  - Linear
""", ["layer 4 (Conv2d) gets 6x4x4", "4 → (4 − 5 + 2·0)/1 + 1 = 0", "padding: 1"],
        ("kernel_size: 5}", "kernel_size: 5, padding: 1}")),  # the second conv; the first has padding 2
    "keras_habits.yaml": ("""\
layers:
  - Conv2d: {filters: 16, kernel_size: 3, padding: same}
  - BatchNorm2d
  - ReLU
  - Flatten
  - Dropout: 0.25
  - Linear
""", ["layer 1 (Conv2d): unknown argument 'filters'", "did you mean out_channels?"],
     ("filters", "out_channels")),
    "seed_habit.yaml": ("""\
layers:
  - Conv2d: {in_channels: 1, out_channels: 10, kernel_size: 3}
  - MaxPool2d: 2
  - ReLU
  - Flatten
  - Linear: {in_features: 320, out_features: 10}
""", ["layer 5 (Linear) says in_features: 320 but gets 90 features", "drop in_features"],
        ("{in_features: 320, out_features: 10}", "{out_features: 10}")),
    "gelu_resnet.json": ("""\
{"layers": [
  {"Conv2d": {"out_channels": 16, "kernel_size": 3, "padding": "same", "bias": false}},
  {"BatchNorm2d": null},
  "GELU",
  {"Residual": [{"Conv2d": {"out_channels": 32, "kernel_size": 3, "stride": 2, "padding": 1}}, "GELU",
                {"Conv2d": {"out_channels": 32, "kernel_size": 3, "padding": 1}}]},
  {"LPPool2d": {"norm_type": 2, "kernel_size": 2}},
  "Flatten",
  "Linear",
  "Softmax"
]}
""", ["layer 8: leave Softmax out"], (',\n  "Softmax"', "")),
    "typo_in_pool.yaml": ("""\
layers:
  - Conv2d: {out_channels: 12, kernel_size: 3}
  - ReLU
  - MaxPool2d: {kernel_size: 2, stide: 2}
  - Flatten
  - Linear
""", ["layer 3 (MaxPool2d): unknown argument 'stide'", "did you mean stride?"], ("stide", "stride")),
}


@pytest.mark.parametrize("name", USER_SPECS)
def test_user_written_spec_is_explained_then_trains(tmp_path: Path, name: str):
    text, words, fix = USER_SPECS[name]
    path = tmp_path / name
    path.write_text(text)
    if words:  # the mistake: one line that names the layer and says what to change
        with pytest.raises(UserError) as e:
            cnnlab.train(model=str(path), data="digits", epochs=1, limit=300, out=str(tmp_path / "bad"),
                         progress=False)
        assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)
        assert not (tmp_path / "bad").exists()  # nothing written for a spec that cannot build
        path.write_text(text.replace(*fix))
    model = create_model(str(path), (1, 8, 8), 10)
    table = format_summary(model)
    assert table.splitlines()[2].split() == ["input", "1x8x8"] and table.count("\n") > len(model.info)
    run = cnnlab.train(model=str(path), data="digits", epochs=1, limit=300, out=str(tmp_path / "run"),
                       progress=False)
    assert run.results["params"] == totals(model)["params"] and run.results["steps"] >= 3
    assert 0 <= run.results["test_accuracy"] <= 1 and torch.isfinite(torch.tensor(run.results["test_loss"]))
    assert format_summary(run.load()[0]) in (run.path / "summary.txt").read_text()
    assert load_spec(path)["name"] == path.stem
