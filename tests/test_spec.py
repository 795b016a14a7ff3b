"""Spec files: the seed networks written as layer lists build exactly the seeds' code; PyTorch's arguments
pass through; the shape formula is PyTorch's; mistakes exit 2 with one line that teaches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers import cli
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.errors import UserError
from cnnlab.models import build_model, create_model, get_entry, load_spec
from cnnlab.models.shapes import window

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "models"


# --- the seeds' own classes, copied from the notes (Variable and super(Cls, self) aside) -----------------

class MNISTClassifier(nn.Module):  # seed 000
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(in_channels=1, out_channels=10, kernel_size=5)
        self.c2 = nn.Conv2d(in_channels=10, out_channels=20, kernel_size=5)
        self.d1 = nn.Linear(in_features=320, out_features=10)  # "figured this out from the error"
        self.max_pooling = nn.MaxPool2d(kernel_size=2)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.max_pooling(self.c1(x)))
        x = self.relu(self.max_pooling(self.c2(x)))
        return self.d1(x.view(x.size(0), -1))


class SimpleCNN(nn.Module):  # seed 001
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc = nn.Linear(16 * 16 * 16, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        return self.fc(x.view(x.size(0), -1))


class CNNModel(nn.Module):  # seed 002
    def __init__(self):
        super().__init__()
        self.cnn1 = nn.Conv2d(in_channels=1, out_channels=16, kernel_size=3, stride=1, padding=0)
        self.relu1 = nn.ReLU()
        self.maxpool1 = nn.MaxPool2d(kernel_size=2)
        self.cnn2 = nn.Conv2d(in_channels=16, out_channels=32, kernel_size=3, stride=1, padding=0)
        self.relu2 = nn.ReLU()
        self.maxpool2 = nn.MaxPool2d(kernel_size=2)
        self.fc1 = nn.Linear(32 * 5 * 5, 10)

    def forward(self, x):
        out = self.maxpool1(self.relu1(self.cnn1(x)))  # nx16x13x13
        out = self.maxpool2(self.relu2(self.cnn2(out)))  # nx32x5x5
        return self.fc1(out.view(out.size(0), -1))  # nx800 -> nx10


class LeNet5(nn.Module):  # seed 002's exercise, as its layer list describes it
    def __init__(self, n_classes=10):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.conv3, self.pool = nn.Conv2d(16, 120, 5), nn.AvgPool2d(2)
        self.fc1, self.fc2, self.tanh = nn.Linear(120, 84), nn.Linear(84, n_classes), nn.Tanh()

    def forward(self, x):
        x = self.pool(self.tanh(self.conv1(x)))
        x = self.pool(self.tanh(self.conv2(x)))
        x = self.tanh(self.conv3(x)).flatten(1)
        return self.fc2(self.tanh(self.fc1(x)))


class MoreLayers(nn.Module):  # seed 000's exercise, "implement more CNN layers"
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()) for i, o in
            ((1, 32), (32, 64), (64, 128)))
        self.pool, self.gap = nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1)
        self.drop, self.fc = nn.Dropout(0.2), nn.Linear(128, 10)

    def forward(self, x):
        x = self.pool(self.blocks[0](x))
        x = self.pool(self.blocks[1](x))
        return self.fc(self.drop(self.gap(self.blocks[2](x)).flatten(1)))


SEEDS = [  # spec file, registered name, seed class, input, parameters
    ("mnist-classifier.yaml", "mnist-classifier", MNISTClassifier, (1, 28, 28), 8_490),
    ("simple-cnn.yaml", "simple-cnn", SimpleCNN, (3, 32, 32), 41_418),
    ("cnn-model.yaml", "cnn-model", CNNModel, (1, 28, 28), 12_810),
    ("lenet5.yaml", "lenet5", LeNet5, (1, 28, 28), 61_706),
    ("more-layers.yaml", "deeper-cnn", MoreLayers, (1, 28, 28), 94_410),
]


def call_order(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The leaf modules in the order a forward pass calls them (Flatten left out: the seeds use .view)."""
    called: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: called.append(m)) for m in model.modules()
             if not list(m.children()) and not isinstance(m, nn.Flatten)]
    model(x)
    for h in hooks:
        h.remove()
    return called


def described(mods: list[nn.Module]) -> list[str]:
    return [f"{type(m).__name__}({m.extra_repr()})" for m in mods]


@pytest.mark.parametrize("file, name, seed_cls, shape, n_params", SEEDS, ids=[s[1] for s in SEEDS])
def test_seed_spec_file_builds_the_registered_model_and_the_seeds_code(file, name, seed_cls, shape, n_params):
    torch.manual_seed(0)
    spec_model = create_model(str(EXAMPLES / file), shape, 10).eval()
    registered = create_model(name, shape, 10).eval()
    seed = seed_cls().eval()
    x = torch.randn(4, *shape)
    ours = call_order(spec_model, x)
    assert described(ours) == described(call_order(registered, x))
    assert described(ours) == described(call_order(seed, x))  # same layers, same arguments, same order
    counts = {sum(p.numel() for p in m.parameters()) for m in (spec_model, registered, seed)}
    assert counts == {n_params}
    registered.load_state_dict(spec_model.state_dict())  # same names and sizes
    for mine, theirs in zip((m for m in ours if m.state_dict()),
                            (m for m in call_order(seed, x) if m.state_dict())):
        theirs.load_state_dict(mine.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(spec_model(x), registered(x), rtol=0, atol=0)
        torch.testing.assert_close(spec_model(x), seed(x))
    assert load_spec(EXAMPLES / file)["train"] == get_entry(name).defaults  # trains like the named model


class TinyResNet(nn.Module):  # examples/models/residual.yaml written by hand, ResNet style
    def __init__(self):
        super().__init__()
        def conv_bn(i, o, s=1):
            return [nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o)]
        self.stem = nn.Sequential(*conv_bn(1, 16), nn.ReLU())
        self.body1 = nn.Sequential(*conv_bn(16, 16), nn.ReLU(), *conv_bn(16, 16))
        self.body2 = nn.Sequential(*conv_bn(16, 32, 2), nn.ReLU(), *conv_bn(32, 32))
        self.proj2 = nn.Conv2d(16, 32, 1, stride=2, bias=False)  # the shortcut when the shape changes
        self.relu, self.head = nn.ReLU(), nn.Linear(32, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.relu(self.body1(x) + x)
        x = self.relu(self.body2(x) + self.proj2(x))
        return self.head(x.mean((2, 3)))


def test_residual_example_is_a_resnet():
    torch.manual_seed(0)
    ours, theirs, x = (build_model(load_spec(EXAMPLES / "residual.yaml")), TinyResNet(),
                       torch.randn(3, 1, 28, 28))
    with_weights = [m for m in call_order(ours, x) if m.state_dict()]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) == 19_642
    for mine, other in zip(with_weights, [m for m in call_order(theirs, x) if m.state_dict()], strict=True):
        other.load_state_dict(mine.state_dict())
    ours.train(), theirs.train()  # batch statistics: the same in both
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_shape_comments_in_the_examples_are_what_is_built(path: Path):
    """`# n x 16 x 26 x 26` beside a top-level layer is its output shape (the seed-002 habit, kept honest)."""
    spec = load_spec(path)
    model = build_model(spec)
    outputs = {i.index: i.out_shape for i in model.info}
    index, checked = 0, 0
    for line in path.read_text().splitlines():
        if line.startswith("  - "):  # a top-level layer (residual bodies are indented further)
            index += 1
        m = re.search(r"# .*?n x ([\d x]+\d)", line)
        if m:
            shape = tuple(int(v) for v in m.group(1).split(" x "))
            assert (outputs[str(index)] if index else tuple(model.input_shape)) == shape, line
            checked += 1
    assert checked >= 3


def test_every_example_builds_and_the_json_one_uses_every_layer():
    for path in EXAMPLES.iterdir():
        assert build_model(load_spec(path)).num_classes == 10
    spec = load_spec(EXAMPLES / "every-layer.json")
    types = {i.type for i in build_model(spec).info}
    assert types >= {"Conv2d", "MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d", "BatchNorm2d",
                     "Dropout", "ReLU", "Tanh", "Sigmoid", "GELU", "Flatten", "Linear", "Residual"}


# --- PyTorch's own arguments pass straight through -----------------------------------------------------

ARGS = [  # a spec entry, and the module PyTorch builds from the same words (the input has 2 channels)
    ({"Conv2d": {"out_channels": 4, "kernel_size": 3, "padding": "same", "padding_mode": "reflect"}},
     nn.Conv2d(2, 4, 3, padding="same", padding_mode="reflect")),
    ({"Conv2d": {"out_channels": 4, "kernel_size": [3, 5], "stride": 2, "padding": "valid", "dilation": 2,
                 "groups": 2, "bias": False}},
     nn.Conv2d(2, 4, (3, 5), stride=2, padding="valid", dilation=2, groups=2, bias=False)),
    ({"Conv2d": {"in_channels": 2, "out_channels": 6, "kernel_size": 4, "padding": [1, 2],
                 "padding_mode": "circular"}},
     nn.Conv2d(2, 6, 4, padding=(1, 2), padding_mode="circular")),
    ({"MaxPool2d": {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True}},
     nn.MaxPool2d(3, 2, 1, 2, ceil_mode=True)),
    ({"AvgPool2d": {"kernel_size": 2, "ceil_mode": True, "count_include_pad": False, "divisor_override": 3}},
     nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False, divisor_override=3)),
    ({"LPPool2d": {"norm_type": 3, "kernel_size": 2, "stride": 1, "ceil_mode": True}},
     nn.LPPool2d(3, 2, 1, True)),
    ({"LPPool2d": {"norm_type": 2, "kernel_size": [2, 3]}}, nn.LPPool2d(2, (2, 3))),
    ({"AdaptiveAvgPool2d": [3, None]}, nn.AdaptiveAvgPool2d((3, None))),
    ({"AdaptiveMaxPool2d": 2}, nn.AdaptiveMaxPool2d(2)),
    ({"BatchNorm2d": {"eps": 0.001, "momentum": 0.01, "affine": False}},
     nn.BatchNorm2d(2, 0.001, 0.01, affine=False)),
    ({"Dropout": 0.25}, nn.Dropout(0.25)),
    ({"Dropout2d": {"p": 0.1}}, nn.Dropout2d(0.1)),
    ("ReLU", nn.ReLU()),
    ({"LeakyReLU": 0.2}, nn.LeakyReLU(0.2)),
    ("Tanh", nn.Tanh()),
    ("Sigmoid", nn.Sigmoid()),
    ({"GELU": {"approximate": "tanh"}}, nn.GELU("tanh")),
    ("SiLU", nn.SiLU()),
]


@pytest.mark.parametrize("entry, expected", ARGS, ids=[str(a[0])[:60] for a in ARGS])
def test_pytorch_arguments_build_the_same_module(entry, expected):
    model = build_model({"layers": [entry, "Flatten", "Linear"]}, (2, 9, 11), num_classes=3)
    assert repr(model[0]) == repr(expected)
    assert model.info[0].out_shape == tuple(expected.eval()(torch.randn(1, 2, 9, 11)).shape[1:])
    assert model(torch.randn(2, 2, 9, 11)).shape == (2, 3)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 24), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3),
       d=st.integers(1, 3), ceil=st.booleans())
def test_window_formula_is_pytorchs(n, k, s, p, d, ceil):
    x = torch.zeros(1, 1, n, n)
    out, text = window(n, k, s, p, d, ceil)
    assert text.startswith(f"{n} → ") and text.split(" = ")[-1].split()[0] == str(out)
    if not ceil:  # convolutions always round down
        try:
            assert torch.nn.functional.conv2d(x, torch.ones(1, 1, k, k), stride=s, padding=p, dilation=d
                                              ).shape[-1] == out
        except RuntimeError:
            assert out < 1
    if p <= k // 2:  # what PyTorch allows for pooling
        try:
            assert torch.nn.functional.max_pool2d(x, k, s, p, d, ceil_mode=ceil).shape[-1] == out
        except RuntimeError:
            assert out < 1


def test_spec_without_input_takes_the_datas_shape_and_classes():
    spec = {"layers": [{"Conv2d": {"out_channels": 4, "kernel_size": 3}}, "ReLU", {"AdaptiveAvgPool2d": 1},
                       "Flatten", "Linear"]}
    for shape, classes in (((1, 8, 8), 10), ((3, 32, 32), 7)):
        model = build_model(spec, shape, classes)
        assert model[0].in_channels == shape[0] and model(torch.randn(2, *shape)).shape == (2, classes)
    with pytest.raises(UserError, match="no 'input: CxHxW'"):
        build_model(spec)


# --- errors that teach: exit 2, one line, the layer, the shape, the arithmetic, the fix ------------------

def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


CONV = "  - Conv2d: {out_channels: 8, kernel_size: 3}\n"
CLI_ERRORS = [  # (file, content, extra args, words the one line must contain)
    ("big_kernel.yaml", ("input: 1x28x28\nlayers:\n  - Conv2d: {out_channels: 8, kernel_size: 30}\n"
                         "  - Flatten\n  - Linear\n"), [],
     ["layer 1 (Conv2d)", "1x28x28", "28 → (28 − 30 + 2·0)/1 + 1 = -1", "kernel_size <= 28"]),
    ("pool_to_zero.yaml",
     "input: 1x28x28\nlayers:\n" + CONV + "  - MaxPool2d: 2\n" * 5 + "  - Flatten\n  - Linear\n",
     [], ["layer 6 (MaxPool2d)", "8x1x1", "1 → ⌊(1 − 2 + 2·0)/2⌋ + 1 = 0", "remove this pooling layer"]),
    ("unknown.yaml", "layers:\n  - Conv2D: {out_channels: 8, kernel_size: 3}\n  - Flatten\n  - Linear\n", [],
     ["layer 1", "unknown layer 'Conv2D'", "did you mean Conv2d?"]),
    ("typo.yaml", "layers:\n  - Conv2d: {out_channels: 8, kernal_size: 3}\n  - Flatten\n  - Linear\n", [],
     ["layer 1 (Conv2d)", "unknown argument 'kernal_size'", "did you mean kernel_size?"]),
    ("wrong_type.yaml",
     'layers:\n  - Conv2d: {out_channels: 8, kernel_size: "big"}\n  - Flatten\n  - Linear\n', [],
     ["layer 1 (Conv2d)", "kernel_size must be a whole number", "'big'"]),
    ("broken.yaml", "input: 1x28x28\nlayers:\n  - Conv2d: {out_channels: 8, kernel_size: 3\n  - Flatten\n",
     [], ["not valid YAML at line 3", "never closed"]),
    ("empty.yaml", "input: 1x28x28\nlayers: []\n", [], ["'layers' is empty", "- Flatten"]),
    ("linear_first.yaml", "input: 1x28x28\nlayers:\n" + CONV + "  - Linear: 100\n  - Flatten\n  - Linear\n",
     [], ["layer 2 (Linear)", "8x26x26", "add `- Flatten` before it", "8·26·26 = 5408"]),
    ("five_outputs.yaml", "input: 1x28x28\nlayers:\n" + CONV + "  - Flatten\n  - Linear: 5\n",
     ["--classes", "10"], ["layer 3 (Linear)", "5 outputs", "10 classes", "`- Linear` with no size"]),
]


@pytest.mark.parametrize("name, text, extra, words", CLI_ERRORS, ids=[c[0] for c in CLI_ERRORS])
def test_spec_mistakes_exit_2_with_one_line_that_teaches(tmp_path, name, text, extra, words):
    r = cli("summary", str(write(tmp_path, name, text)), *extra)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: {tmp_path / name}")
    for w in words:
        assert w in r.stderr
    assert r.stdout == ""


MORE_ERRORS = [  # the same in-process (cnnlab.cli.main is what `python -m cnnlab` runs)
    ("  - Flatten\n  - Linear\n  - Softmax\n", ["layer 3", "leave Softmax out", "CrossEntropyLoss"]),
    ("  - Flatten\n  - Dense: 10\n", ["layer 2", "did you mean Linear"]),
    ("  - Conv2d(1, 16, 3)\n  - Flatten\n  - Linear\n",
     ["is Python", "`- Conv2d: {out_channels: 16, kernel_size: 3}`"]),
    ("  - Conv2d:\n    out_channels: 16\n    kernel_size: 3\n  - Flatten\n  - Linear\n",
     ["not indented under it", "`- Conv2d: {out_channels: 16, kernel_size: 3}`"]),
    ("  - Conv2d: {in_channels: 3, out_channels: 8, kernel_size: 3}\n  - Flatten\n  - Linear\n",
     ["layer 1 (Conv2d) says in_channels: 3 but gets 1x28x28 (1 channel)", "drop in_channels"]),
    (("  - Conv2d: {out_channels: 16, kernel_size: 3}\n  - MaxPool2d: 2\n"
      "  - Conv2d: {out_channels: 32, kernel_size: 3}\n"
     "  - MaxPool2d: 2\n  - Flatten\n  - Linear: {in_features: 320, out_features: 10}\n"),
     ["layer 6 (Linear) says in_features: 320 but gets 800 features"]),
    ("  - Flatten\n  - Linear\n  - ReLU\n  - Linear\n",
     ["layer 2 (Linear) needs out_features", "only the last Linear"]),
    ("  - Flatten\n  - Conv2d: {out_channels: 8, kernel_size: 3}\n  - Linear\n",
     ["layer 2 (Conv2d) needs a CxHxW input but gets the flat 784", "before the Flatten"]),
    (CONV + "  - Conv2d: {out_channels: 6, kernel_size: 3, groups: 4}\n  - Flatten\n  - Linear\n",
     ["layer 2 (Conv2d): groups 4 must divide", "in_channels 8", "8x26x26", "groups: 2"]),
    ("  - Conv2d: {out_channels: 8, kernel_size: 3, stride: 2, padding: same}\n  - Flatten\n  - Linear\n",
     ["padding 'same' works only with stride 1", "padding: 1", "14 rows"]),
    ("  - Flatten\n  - Dropout: 50\n  - Linear\n", ["layer 2 (Dropout): p must be a probability", "not 50"]),
    ("\t- Flatten\n", ["line 4", "indent with spaces, not tabs"]),
    ("  - Residual:\n      - Conv2d: {out_channels: 8, kernel_size: 3}\n  - Flatten\n  - Linear\n",
     ["layer 1 (Residual): the body turns 1x28x28 into 8x26x26", "halve them with stride 2"]),
    ("  - Conv2d: {out_channels: 8, kernel_size: 3, activation: relu}\n  - Flatten\n  - Linear\n",
     ["unknown argument 'activation'", "add `- ReLU` after this one"]),
    ("  - Flatten\n  - Linear: [120, 84]\n",
     ["layer 2 (Linear): a list gives one argument", "`- Linear: 84`"]),
]


@pytest.mark.parametrize("layers, words", MORE_ERRORS, ids=[w[0] for _, w in MORE_ERRORS])
def test_more_mistakes_are_explained(tmp_path, capsys, layers, words):
    from cnnlab.cli import main

    path = write(tmp_path, "net.yaml", "# my first CNN\ninput: 1x28x28\nlayers:\n" + layers)
    assert main(["summary", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}"), err
    for w in words:
        assert w in err


def test_json_and_top_level_mistakes(tmp_path):
    with pytest.raises(UserError, match=r"not valid JSON at line 1, column \d+: .*trailing commas"):
        load_spec(write(tmp_path, "a.json", '{"layers": ["Flatten", "Linear",]}'))
    with pytest.raises(UserError, match="unknown key 'layer'; did you mean layers?"):
        load_spec(write(tmp_path, "b.yaml", "layer:\n  - Flatten\n"))
    with pytest.raises(UserError, match="input '28x28' is not a shape: write it as CxHxW"):
        load_spec(write(tmp_path, "c.yaml", "input: 28x28\nlayers: [Flatten, Linear]\n"))
    with pytest.raises(UserError, match="'train' takes the model's default"):
        load_spec(write(tmp_path, "d.yaml", "layers: [Flatten, Linear]\ntrain: {lr: 0.1, epoch: 3}\n"))
    with pytest.raises(UserError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")


# --- a saved model needs no spec file: the spec is in the weights' metadata ------------------------------

def test_run_rebuilds_after_its_spec_file_is_deleted(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    import cnnlab
    from cnnlab.data import load_data

    spec = write(tmp_path, "my_net.yaml",
                 "layers:\n  - Conv2d: {out_channels: 8, kernel_size: 3, padding: 1}\n"
                 "  - ReLU\n  - MaxPool2d: 2\n  - Residual:\n"
                 "      - Conv2d: {out_channels: 8, kernel_size: 3, padding: 1}\n"
                 "  - Flatten\n  - Linear\ntrain: {lr: 0.01}\n")
    run = cnnlab.train(model=str(spec), data="digits", epochs=1, limit=300, out=str(tmp_path / "run"),
                       progress=False)
    # an 8x8 test image, drawn larger as a user's file would be
    digit = load_data("digits").test.x[0, 0].numpy()
    png = tmp_path / "digit.png"
    Image.fromarray(np.kron(digit, np.ones((8, 8), dtype=np.uint8))).save(png)
    before = run.predict([png])[0]
    spec.unlink()

    r = cli("eval", str(run.path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["test_accuracy"] == pytest.approx(run.results["test_accuracy"], abs=1e-9)
    r = cli("predict", str(run.path), str(png), "--json")
    assert r.returncode == 0, r.stderr
    after = json.loads(r.stdout)[0]
    assert (after["label"] == before["label"]
            and after["probability"] == pytest.approx(before["probability"], abs=1e-6))
    model, meta = cnnlab.load_run(run.path).load()
    assert meta.spec["name"] == "my_net" and [i.type for i in model.info][3:5] == ["Residual", "Conv2d"]
