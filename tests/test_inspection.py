"""Inspection and mistakes on lenet5 trained on real Fashion-MNIST: every picture's numbers checked."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnlab import build_model
from cnnlab.cli import main
from cnnlab.data import normalize
from cnnlab.models import layers_of
from cnnlab.models.evaluate import infer
from cnnlab.models.layers import CONV, POOL
from cnnlab.viz.attribution import attributions, gradcam_layer
from cnnlab.viz.conv_arithmetic import conv_arithmetic
from cnnlab.viz.feature_maps import feature_map_figure, feature_maps
from cnnlab.viz.filters import filter_figure, filter_tiles
from cnnlab.viz.inspect import save_inspection
from cnnlab.viz.mistakes import find_mistakes


@pytest.fixture(scope="module")
def test_set(fashion_run):
    return fashion_run.test_set()


def _x(run, test, i: int) -> torch.Tensor:
    return normalize(test.x[i].float().div(255), run.meta)


def test_filter_grids_hold_every_filter_of_every_conv_layer(fashion_run):
    model = fashion_run.model
    convs = layers_of(model, CONV)
    assert [i.name for i, _ in convs] == ["conv1", "conv2", "conv3"]
    for n, (info, conv) in enumerate(convs):
        tiles, _, pick = filter_tiles(conv, first=n == 0)
        w = conv.weight.detach().numpy()
        assert tiles.shape[0] == conv.out_channels
        if pick is None:  # conv1 (1 input channel) and conv2 (6x16): every weight is drawn as it is
            np.testing.assert_array_equal(tiles, w)
        else:  # conv3 (120 filters x 16 channels): each filter's slice with the largest L2 norm
            assert info.name == "conv3" and tiles.shape == (120, 1, 5, 5)
            norms = np.sqrt((w ** 2).sum((2, 3)))
            np.testing.assert_array_equal(pick, norms.argmax(1))
            np.testing.assert_array_equal(tiles[:, 0], w[np.arange(120), pick])
        fig = filter_figure(info, conv, first=n == 0)
        labels = [t.get_text() for ax in fig.axes if ax.get_gid() == "filters" for t in ax.get_xticklabels()]
        assert sum(lab.startswith("#") for lab in labels) == conv.out_channels  # one labelled tile per filter
        assert info.name in fig.get_suptitle()


def test_feature_map_shapes_are_the_summary_shapes(fashion_run, test_set):
    model = fashion_run.model
    x = _x(fashion_run, test_set, 0)
    maps = feature_maps(model, x)
    expected = [(i.name, i.out_shape) for i in model.info if i.type in CONV + POOL]
    assert [(i.name, tuple(m.shape)) for i, m in maps] == expected
    assert [n for n, _ in expected] == ["conv1", "avgpool1", "conv2", "avgpool2", "conv3"]
    with torch.no_grad():  # the hooked map is the layer's real output
        torch.testing.assert_close(maps[0][1], model.conv1(x[None])[0])
        torch.testing.assert_close(maps[1][1], model.avgpool1(model.tanh1(model.conv1(x[None])))[0])
    info, fmap = maps[2]
    fig = feature_map_figure(info, fmap, test_set.x[0].float().div(255).numpy(), "test image #0")
    assert "conv2" in fig.get_suptitle() and "output 16x10x10" in fig.get_suptitle()
    shown = [t.get_text() for ax in fig.axes if ax.get_gid() == "feature-maps" for t in ax.get_xticklabels()]
    assert [s for s in shown if s] == [f"ch {k}" for k in range(16)]


def test_conv_arithmetic_equals_the_real_activation(fashion_run, test_set):
    model = fashion_run.model
    x = _x(fashion_run, test_set, 0)
    with torch.no_grad():
        real = model.conv1(x[None])[0]
    a = conv_arithmetic(model, x)  # default: the strongest response
    assert (a.out_channel, *a.out_pos) == np.unravel_index(int(real.argmax()), real.shape)
    assert a.value == pytest.approx(float(real.max()), abs=1e-5)
    # Corners hit lenet5's padding of 2: the patch then holds zeros outside the image.
    for o, pos in [(0, (0, 0)), (5, (27, 27)), (3, (13, 9))]:
        a = conv_arithmetic(model, x, o, pos)
        assert a.patch.shape == a.kernel.shape == (1, 5, 5)
        assert a.value == pytest.approx(float(real[o, pos[0], pos[1]]), abs=1e-5)
        assert a.total == pytest.approx(float(a.products.sum()), abs=1e-12)
        assert a.bias == pytest.approx(float(model.conv1.bias[o].detach()))
    corner = conv_arithmetic(model, x, 0, (0, 0))
    assert corner.in_origin == (-2, -2) and (corner.patch[0, :2] == 0).all()


def test_conv_arithmetic_with_stride_padding_and_colour():
    torch.manual_seed(0)
    spec = {"layers": [{"BatchNorm2d": None}, {"Conv2d": {"out_channels": 4, "kernel_size": 3, "stride": 2,
                                                         "padding": 1}}, "Flatten", "Linear"]}
    model = build_model(spec, (3, 9, 9), 2).eval()
    model.bn1.running_mean.fill_(0.3)  # the conv's input is the BatchNorm's output, not the image
    x = torch.randn(3, 9, 9)
    with torch.no_grad():
        real = model.conv1(model.bn1(x[None]))[0]
    for o in range(4):
        for i, j in [(0, 0), (2, 3), (4, 4)]:
            a = conv_arithmetic(model, x, o, (i, j))
            assert a.patch.shape == (3, 3, 3)
            assert a.value == pytest.approx(float(real[o, i, j]), abs=1e-5)


def test_saliency_and_gradcam_are_captum_on_the_right_layer(fashion_run, test_set):
    model = fashion_run.model
    x = _x(fashion_run, test_set, 0)
    info, layer = gradcam_layer(model)
    assert info.name == "conv2"  # conv3's output is 1x1: a Grad-CAM of one value would be flat
    for target in (int(test_set.y[0]), 3):
        maps = attributions(model, x, target)
        for m in maps.values():
            assert m.shape == (28, 28) and np.isfinite(m).all() and (m >= 0).all() and m.max() > 0
        # Saliency by hand: |d score / d pixel|, max over channels.
        inp = x[None].clone().requires_grad_(True)
        model(inp)[0, target].backward()
        np.testing.assert_allclose(maps["saliency"], inp.grad[0].abs().amax(0).numpy(), rtol=1e-5, atol=1e-7)
        # Grad-CAM by hand: ReLU(Σ_k mean(dS/dA_k) A_k) at conv2, upsampled bilinearly to 28x28.
        acts: list[torch.Tensor] = []
        h = layer.register_forward_hook(lambda _m, _i, out, acts=acts: acts.append(out))
        out = model(x[None])
        h.remove()
        grads = torch.autograd.grad(out[0, target], acts[0])[0]
        cam = F.relu((grads.mean((2, 3), keepdim=True) * acts[0]).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=(28, 28), mode="bilinear")[0, 0].detach().numpy()
        np.testing.assert_allclose(maps["gradcam"], cam, rtol=1e-4, atol=1e-6)


def test_mistakes_csv_is_every_misclassified_test_image_by_loss(fashion_run, test_set, tmp_path, capsys):
    assert main(["mistakes", str(fashion_run.path), "--out", str(tmp_path), "--top", "16"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "mistakes.csv").open()))
    assert f"{len(rows)} of 10000 test images misclassified" in out
    assert out.split()[-2:] == [str(tmp_path / "mistakes.png"), str(tmp_path / "mistakes.csv")]
    logits = infer(fashion_run.model, normalize(test_set.x.float().div(255), fashion_run.meta))
    pred, y = logits.argmax(1), test_set.y
    loss = F.cross_entropy(logits, y, reduction="none")
    wrong = set(torch.nonzero(pred != y).flatten().tolist())
    assert {int(r["index"]) for r in rows} == wrong and len(rows) == len(wrong)
    losses = [float(r["loss"]) for r in rows]
    assert losses == sorted(losses, reverse=True)
    classes = fashion_run.meta.classes
    for r in rows[:50]:
        i = int(r["index"])
        assert float(r["loss"]) == pytest.approx(float(loss[i]), abs=1e-5)
        assert r["true"] == classes[int(y[i])] and r["predicted"] == classes[int(pred[i])] != r["true"]
        assert float(r["probability"]) == pytest.approx(float(torch.softmax(logits[i], 0).max()), abs=1e-5)
    # Per-class accuracy and confused pairs agree with the confusion matrix that training wrote.
    m = find_mistakes(logits, y, classes)
    cm = np.array(fashion_run.results["confusion_matrix"])
    for k, c in enumerate(classes):
        assert m.per_class_accuracy[c] == pytest.approx(cm[k, k] / cm[k].sum())
    off = cm - np.diag(np.diag(cm))
    t, p = np.unravel_index(off.argmax(), off.shape)
    assert m.pairs[0] == (classes[t], classes[p], int(off.max()))
    assert sum(n for _, _, n in m.pairs) == len(rows)
    assert m.accuracy == pytest.approx(fashion_run.results["test_accuracy"])
    assert Image.open(tmp_path / "mistakes.png").size[0] > 1000


def test_inspect_command_writes_and_prints_every_picture(fashion_run, tmp_path, capsys):
    assert main(["inspect", str(fashion_run.path), "--out", str(tmp_path / "insp"), "--index", "7"]) == 0
    printed = capsys.readouterr().out.split()
    names = {p.rsplit("/", 1)[-1] for p in printed}
    assert names == {"filters_conv1.png", "filters_conv2.png", "filters_conv3.png", "feature_maps_conv1.png",
                     "feature_maps_avgpool1.png", "feature_maps_conv2.png", "feature_maps_avgpool2.png",
                     "feature_maps_conv3.png", "attribution.png", "conv_arithmetic.png"}
    for p in printed:
        w, h = Image.open(p).size
        assert w >= 400 and h >= 200


def test_inspect_own_image_and_one_layer(fashion_run, test_set, tmp_path):
    # A "photo": test image #3 (trousers) dark-on-light and 4x larger, prepared as `cnnlab predict` does.
    img = 255 - test_set.x[3, 0].numpy()
    Image.fromarray(img).resize((112, 112)).save(tmp_path / "trousers.png")
    paths = save_inspection(fashion_run, tmp_path / "out", image=tmp_path / "trousers.png", layer="conv2")
    assert [p.name for p in paths] == ["filters_conv2.png", "feature_maps_conv2.png"]


def test_inspect_bad_input_is_one_error_line(fashion_run, tmp_path, capsys):
    assert main(["inspect", str(fashion_run.path), "--layer", "conv9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --layer conv9") and "conv1, avgpool1, conv2, avgpool2, conv3" in err
    assert main(["inspect", str(fashion_run.path), "--image", str(tmp_path / "nope.png")]) == 2
    assert "nope.png" in capsys.readouterr().err
    assert main(["inspect", str(fashion_run.path), "--index", "10000"]) == 2
    assert main(["mistakes", str(tmp_path)]) == 2  # not a run directory
    assert "not a cnnlab run directory" in capsys.readouterr().err
