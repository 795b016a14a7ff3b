"""The layer vocabulary is one table: building, the shape arithmetic and the NumPy engine all read it."""

from __future__ import annotations

import pytest
import torch
import yaml

from cnnlab import textbook
from cnnlab.models import build_model
from cnnlab.models.layers import CONV, FOLLOWERS, LAYERS, POOL, name_of
from cnnlab.textbook.interop import _FROM_TORCH


def test_the_numpy_engine_implements_names_of_the_vocabulary():
    assert set(_FROM_TORCH) <= set(LAYERS)


def test_roles_give_the_groups_the_inspector_and_the_page_use():
    assert CONV == ("Conv2d",)
    assert set(POOL) == {"MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"}
    assert {"BatchNorm2d", "ReLU", "Tanh", "Dropout2d"} <= set(FOLLOWERS) and "Conv2d" not in FOLLOWERS


@pytest.mark.parametrize("name", [n for n, t in LAYERS.items() if t.torch is not None])
def test_every_layer_builds_and_is_named_back(name):
    t = LAYERS[name]
    spatial = t.takes != "flat"
    layers = [{name: yaml.safe_load(t.example)}] if t.example else [name]
    if name == "Linear":
        layers = ["Flatten", {"Linear": 5}]
    spec = {"layers": ([] if spatial else ["Flatten"]) + layers + (["Flatten"] if spatial else [])
            + ["Linear"]}
    model = build_model(spec, (3, 8, 8), 4)
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 4)
    assert any(name_of(m) == name for m in model.modules())


def test_name_of_knows_subclasses_and_nothing_else():
    class MyConv(torch.nn.Conv2d):
        pass

    assert name_of(MyConv(1, 1, 1)) == "Conv2d"
    assert name_of(torch.nn.Identity()) is None
    assert textbook.from_torch(torch.nn.Sequential(MyConv(1, 1, 1))) is not None
