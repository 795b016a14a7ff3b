"""`cnnlab summary`: every row's shape is what PyTorch computes, the counts are PyTorch's, the CLI prints
them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import cli
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.models import build_model, create_model, format_summary, list_models, load_spec, totals

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "models"
MODELS = [(e.name, shape) for e in list_models() for shape in ((1, 28, 28), (3, 32, 32))] + \
         [(str(p), None) for p in sorted(EXAMPLES.iterdir())]


def build(name: str, shape):
    return create_model(name, shape, 10) if shape else build_model(load_spec(name))


def hooked_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple]:
    """Each named module's real output shape (per image), recorded by forward hooks."""
    seen: dict[str, tuple] = {}

    def record(name: str):
        return lambda m, i, out: seen.__setitem__(name, tuple(out.shape[1:]))

    # a residual's body/proj: not rows of their own
    hooks = [m.register_forward_hook(record(path.rsplit(".", 1)[-1])) for path, m in model.named_modules()
             if path and not path.endswith((".body", ".proj"))]
    model.eval()(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("name, shape", MODELS, ids=[f"{Path(n).name}-{s}" for n, s in MODELS])
def test_every_row_matches_pytorch(name, shape):
    model = build(name, shape)
    x = torch.randn(2, *model.input_shape)
    real = hooked_shapes(model, x)
    assert [i.name for i in model.info] and set(real) == {i.name for i in model.info}
    for row in model.info:
        assert row.out_shape == real[row.name], f"{row.index} {row.name} {row.arithmetic}"
        if row.type in ("Conv2d", "MaxPool2d", "AvgPool2d", "LPPool2d") and "'same'" not in row.arithmetic:
            assert row.arithmetic.split(" = ")[-1].split()[0] == str(row.out_shape[-1])  # "... + 1 = 24"
    t = totals(model)
    assert t["params"] == sum(p.numel() for p in model.parameters()) == sum(i.params for i in model.info)
    with FlopCounterMode(display=False) as flops:  # PyTorch counts 2 FLOPs per multiply-add
        model(torch.randn(1, *model.input_shape))
    assert t["macs"] == flops.get_total_flops() // 2
    assert t["activations"] == sum(math.prod(s) for s in real.values())


def test_conv_macs_follow_the_formula():
    model = build_model({"layers": [{"Conv2d": {"out_channels": 12, "kernel_size": [3, 5], "stride": 2,
                                                "groups": 3}},
                                    "Flatten", "Linear"]}, (6, 20, 21), num_classes=4)
    conv = model.info[0]
    assert conv.out_shape == (12, 9, 9)
    # each of the 12·9·9 outputs sums over kernel 3x5 and in_channels/groups = 2 channels
    assert conv.macs == 12 * 9 * 9 * (3 * 5 * 2) == 29_160
    assert conv.params == 12 * 2 * 3 * 5 + 12
    assert model.info[2].macs == 12 * 9 * 9 * 4


def test_residual_rows_count_the_projection_once():
    model = build_model(load_spec(EXAMPLES / "residual.yaml"))
    rows = {i.index: i for i in model.info}
    assert rows["6"].type == "Residual" and rows["6"].params == 16 * 32  # 1x1 projection, no bias
    assert rows["6"].macs == 16 * 32 * 14 * 14 and "stride 2" in rows["6"].arithmetic
    assert rows["4"].params == 0 and rows["4"].arithmetic == "x + body(x)"
    assert [i.index for i in model.info][3:9] == ["4", "4.1", "4.2", "4.3", "4.4", "4.5"]


LENET_LINES = [
    "lenet5  (input 1x28x28, 10 classes)",
    " #  layer     type       output    how the shape follows           params     MACs",
    " 1  conv1     Conv2d     6x28x28   28 → (28 − 5 + 2·2)/1 + 1 = 28     156  117.60k",
    " 3  avgpool1  AvgPool2d  6x14x14   28 → (28 − 2 + 2·0)/2 + 1 = 14       0        -",
    " 4  conv2     Conv2d     16x10x10  14 → (14 − 5 + 2·0)/1 + 1 = 10   2,416  240.00k",
    " 7  conv3     Conv2d     120x1x1   5 → (5 − 5 + 2·0)/1 + 1 = 1     48,120   48.00k",
    " 9  flatten1  Flatten    120       120·1·1 = 120                        0        -",
    "10  fc1       Linear     84        120 → 84                        10,164   10.08k",
    "12  fc2       Linear     10        84 → 10                            850      840",
    "parameters:                     61,706  (241.0 KiB as float32)",
    "multiply-adds per image:       416,520  (416.52k)",
]


def test_cli_summary_of_lenet5():
    r = cli("summary", "lenet5")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for line in LENET_LINES:
        assert line in lines, line
    assert any(li.startswith("activations per image:          14,722  (57.5 KiB") for li in lines)


def test_cli_summary_of_simple_cnn_defaults_to_the_cifar_shape_it_was_written_for():
    r = cli("summary", "simple-cnn")
    assert r.returncode == 0, r.stderr
    assert "simple-cnn  (input 3x32x32, 10 classes)" in r.stdout
    assert "16·16·16 = 4096" in r.stdout  # seed 001's Linear(16 * 16 * 16, 10)


def test_cli_summary_of_a_spec_with_another_input(tmp_path):
    r = cli("summary", str(EXAMPLES / "simple-cnn.yaml"), "--input", "1x28x28", "--classes", "3")
    assert r.returncode == 0, r.stderr
    assert "simple-cnn  (input 1x28x28, 3 classes)" in r.stdout
    assert "16·14·14 = 3136" in r.stdout and "3136 → 3" in r.stdout  # 16·16·16 only fits CIFAR's 32x32
    bad = cli("summary", "lenet5", "--input", "28x28")
    assert (bad.returncode == 2 and "--input '28x28' is not a shape" in bad.stderr
            and bad.stderr.count("\n") == 1)


def test_summary_txt_in_a_run_is_the_models_table(tmp_path):
    import cnnlab

    run = cnnlab.train(model=str(EXAMPLES / "simple-cnn.yaml"), data="digits", epochs=1, limit=200,
                       out=str(tmp_path / "run"), progress=False)
    text = (run.path / "summary.txt").read_text()
    model, _ = run.load()
    # the same table, built for the data's 1x8x8 (not the spec's 3x32x32)
    assert format_summary(model) in text
    assert "16x8x8  8 → (8 − 3 + 2·1)/1 + 1 = 8" in text and "16·4·4 = 256" in text
    assert f"{run.results['params']:,}" in text
    r = cli("summary", str(run.path))
    assert r.returncode == 0 and "as trained in" in r.stdout and "input 1x8x8, 10 classes" in r.stdout
