"""The NumPy engine against torch autograd: same weights, float64, every output and every gradient.

micrograd's test style: build the torch layer, copy it with `from_torch`, run both forward and backward
on the same input and upstream gradient, compare. Then the notes' own claims, one test each.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab import textbook as ne
from cnnlab.errors import UserError
from cnnlab.textbook import optim as no

RTOL, ATOL = 1e-7, 1e-10  # float64 throughout; only summation order differs between the engines
FAST = settings(max_examples=20, deadline=None, database=None)


def close(actual: np.ndarray, expected: torch.Tensor | np.ndarray, what: str = "") -> None:
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def compare(module: nn.Module, x: np.ndarray, seed: int = 0, target: np.ndarray | None = None) -> ne.Layer:
    """Run `module` (float64) and its engine copy on x; compare output, input grad and every param grad.

    The upstream gradient is random, or that of cross-entropy against `target` when given.
    """
    module = module.double()
    net = ne.from_torch(module)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    y = net.forward(x)
    close(y, yt, "forward")
    if target is None:
        g = np.random.default_rng(seed).standard_normal(yt.shape)
        yt.backward(torch.tensor(g))
    else:
        loss_t = F.cross_entropy(yt, torch.tensor(target))
        loss_t.backward()
        loss, g = ne.cross_entropy(y, target)
        np.testing.assert_allclose(loss, loss_t.item(), rtol=RTOL)
    close(net.backward(g), xt.grad, "input grad")
    torch_grads = {name: p.grad for name, p in module.named_parameters()}
    ours = {name: grad for name, _, grad in net.named_parameters()}
    assert ours.keys() == torch_grads.keys()
    for name, grad in ours.items():
        close(grad, torch_grads[name], f"grad of {name}")
    return net


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


# --- single layers, property-based -------------------------------------------------------------------

def _input_size(draw, k: tuple[int, int], d: tuple[int, int], pad_total: tuple[int, int]) -> tuple[int, int]:
    """An odd-or-even (H, W) that still holds one dilated kernel once padded by pad_total."""
    sizes = zip(k, d, pad_total, strict=True)
    return tuple(draw(st.integers(max(1, di * (ki - 1) + 1 - pi), 9)) for ki, di, pi in sizes)


SAME_EVEN = "ignore:Using padding='same' with even kernel"  # torch's note that it copies the input


@pytest.mark.filterwarnings(SAME_EVEN)
@settings(max_examples=40, deadline=None, database=None)
@given(st.data())
def test_conv2d_matches_torch(data: st.DataObject) -> None:
    draw = data.draw
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    padding = {"int": draw(st.integers(0, 2)), "tuple": (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
               "same": "same", "valid": "valid"}[kind]
    s = (1, 1) if kind == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))  # torch's rule
    pad = ne.Conv2d(1, 1, k, s, padding, d).pad  # ((top, bottom), (left, right))
    h, w = _input_size(draw, k, d, (sum(pad[0]), sum(pad[1])))
    conv = nn.Conv2d(draw(st.integers(1, 3)), draw(st.integers(1, 4)), k, s, padding, d,
                     bias=draw(st.booleans()))
    compare(conv, randn(draw(st.integers(1, 3)), conv.in_channels, h, w, seed=draw(st.integers(0, 99))))


@pytest.mark.filterwarnings(SAME_EVEN)
@pytest.mark.parametrize("k, d", [((4, 2), (1, 2)), ((3, 3), (2, 1)), (2, 1)])
def test_conv2d_same_padding_with_even_kernels_matches_torch(k: tuple | int, d: tuple | int) -> None:
    # an odd total padding: torch puts the extra row/column at the bottom/right
    compare(nn.Conv2d(2, 3, k, padding="same", dilation=d), randn(2, 2, 7, 6))


@settings(max_examples=40, deadline=None, database=None)
@given(st.data())
def test_pools_match_torch(data: st.DataObject) -> None:
    draw = data.draw
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))  # torch: at most k/2
    kind = draw(st.sampled_from(["max", "avg", "lp"]))
    dilation = (1, 1)
    if kind == "max":
        dilation = (draw(st.integers(1, 2)),) * 2
        pool: nn.Module = nn.MaxPool2d(k, stride, padding, dilation=dilation)
    elif kind == "avg":
        pool = nn.AvgPool2d(k, stride, padding)
    else:
        pool = nn.LPPool2d(draw(st.sampled_from([1.0, 2.0, 3.0, 1.5])), k, stride)  # LPPool has no padding
        padding = (0, 0)
    h, w = _input_size(draw, k, dilation, (2 * padding[0], 2 * padding[1]))
    x = randn(draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w, seed=draw(st.integers(0, 99)))
    if kind == "lp":
        x = np.abs(x) + 0.1  # x^p with fractional p needs x > 0, in torch as here
    # A dilated max window can fall entirely in the padding: torch then outputs -inf and routes that
    # window's gradient to an arbitrary element; no real network does this, so such draws are not compared.
    assume(bool(torch.isfinite(pool(torch.from_numpy(x))).all()))
    compare(pool, x)


@FAST
@given(st.integers(1, 5), st.integers(1, 7), st.integers(1, 6), st.booleans(), st.booleans())
def test_linear_matches_torch(n: int, fan_in: int, fan_out: int, bias: bool, extra_dim: bool) -> None:
    x = randn(n, 2, fan_in) if extra_dim else randn(n, fan_in)  # torch's Linear takes (*, in)
    compare(nn.Linear(fan_in, fan_out, bias=bias), x)


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.Flatten(), nn.Flatten(2),
                                   nn.Dropout(0.0), nn.Dropout(0.7).eval()], ids=repr)
def test_elementwise_and_reshape_layers_match_torch(layer: nn.Module) -> None:
    compare(layer, randn(3, 2, 4, 5))


@pytest.mark.parametrize("size", [1, 2, (3, 1), (None, 2), 3], ids=str)
def test_adaptive_avg_pool_matches_torch(size: int | tuple) -> None:
    compare(nn.AdaptiveAvgPool2d(size), randn(2, 3, 6, 7))  # 7 -> 2 or 3: windows that overlap


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_matches_torch_including_running_stats(train: bool) -> None:
    bn = nn.BatchNorm2d(3).double().train(train)
    with torch.no_grad():  # non-trivial γ, β and running stats so every term is exercised
        bn.weight.uniform_(0.5, 2), bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    net = compare(bn, randn(4, 3, 5, 5) * 2 + 1)
    for key, value in bn.state_dict().items():  # forward updated them identically
        close(net.state_dict()[key], value, key)


def test_dropout_in_training_keeps_the_mean_and_routes_gradient_through_the_mask() -> None:
    drop = ne.Dropout(0.3, rng=np.random.default_rng(1))
    x = np.ones((200, 500))
    y = drop.forward(x)
    kept = y != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7)
    np.testing.assert_allclose(drop.backward(np.ones_like(x)), y)  # ∂y/∂x = mask/(1-p)
    again = ne.Dropout(0.3, rng=np.random.default_rng(1)).forward(x)
    np.testing.assert_array_equal(again, y)  # the explicit generator makes it reproducible
    np.testing.assert_array_equal(drop.eval().forward(x), x)


class Block(nn.Module):
    """The residual block shape from_torch recognises: body(x) + (proj(x) if proj else x)."""

    def __init__(self, body: nn.Sequential, proj: nn.Conv2d | None = None) -> None:
        super().__init__()
        self.body, self.proj = body, proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (self.proj(x) if self.proj is not None else x)


@pytest.mark.parametrize("proj", [False, True])
def test_residual_matches_torch(proj: bool) -> None:
    c_out = 6 if proj else 4  # a projection is what lets the block change the channel count
    body = nn.Sequential(nn.Conv2d(4, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
    compare(Block(body, nn.Conv2d(4, c_out, 1) if proj else None), randn(2, 4, 6, 6))


# --- whole networks: the four seed models and one with every other layer -----------------------------

def seed_models() -> dict[str, tuple[nn.Sequential, tuple[int, ...]]]:
    return {
        "mnist-classifier": (nn.Sequential(
            nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(10, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(320, 10)), (1, 28, 28)),
        "simple-cnn": (nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
            nn.Linear(16 * 16 * 16, 10)), (3, 32, 32)),
        "cnn-model": (nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(800, 10)), (1, 28, 28)),
        "lenet5": (nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
            nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(), nn.Linear(120, 84), nn.Tanh(),
            nn.Linear(84, 10)), (1, 28, 28)),
        "resnet-ish": (nn.Sequential(
            nn.Conv2d(3, 8, 3, padding="same"), nn.BatchNorm2d(8), nn.ReLU(),
            Block(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                nn.Conv2d(8, 8, 3, padding=1))),
            Block(nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.Sigmoid()),
                  nn.Conv2d(8, 16, 1, stride=2)),
            nn.LPPool2d(2, 2), nn.Dropout(0.0), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)),
            (3, 12, 12)),
    }


@pytest.mark.parametrize("name", list(seed_models()))
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_seed_networks_match_torch_on_cross_entropy(name: str, train: bool) -> None:
    torch.manual_seed(0)
    model, shape = seed_models()[name]
    model.train(train)
    compare(model, randn(3, *shape), target=np.array([0, 7, 3]))


def test_state_dict_uses_torch_keys_and_round_trips() -> None:
    model = seed_models()["resnet-ish"][0]
    model(torch.randn(2, 3, 12, 12))  # move BatchNorm's running stats away from their initial values
    net = ne.from_torch(model, dtype=np.float32)
    ours, theirs = net.state_dict(), model.state_dict()
    assert list(ours) == list(theirs)  # same keys, same order: "3.body.0.weight", "4.proj.bias", ...
    for key in theirs:
        assert ours[key].shape == tuple(theirs[key].shape) and ours[key].dtype == theirs[key].numpy().dtype
        np.testing.assert_array_equal(ours[key], theirs[key].numpy())
    # engine -> torch: the engine's state dict loads strictly into a freshly initialised torch model
    fresh = seed_models()["resnet-ish"][0]
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()}, strict=True)
    fresh.eval(), model.eval()
    x = torch.randn(2, 3, 12, 12)
    torch.testing.assert_close(fresh(x), model(x))
    np.testing.assert_allclose(net.eval().forward(x.numpy()), model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(KeyError, match="missing"):
        net.load_state_dict({k: v for k, v in ours.items() if k != "0.bias"})


def test_from_torch_converts_a_spec_built_model_with_named_layers_and_residuals() -> None:
    from cnnlab.models import build_model  # an nn.Sequential subclass with children "conv1", "res1", ...

    torch.manual_seed(0)
    spec = {"layers": [{"Conv2d": {"out_channels": 8, "kernel_size": 3, "padding": 1}}, "BatchNorm2d", "ReLU",
                       {"Residual": [{"Conv2d": {"out_channels": 16, "kernel_size": 3, "stride": 2,
                                                 "padding": 1}}, "ReLU"]},
                       {"AdaptiveAvgPool2d": 1}, "Flatten", "Linear"]}
    model = build_model(spec, (3, 10, 10), num_classes=5)
    net = compare(model, randn(4, 3, 10, 10), target=np.array([0, 1, 4, 2]))
    assert list(net.state_dict()) == list(model.state_dict())  # "conv1.weight", "res1.proj.weight", ...


def test_from_torch_refuses_what_it_cannot_run() -> None:
    with pytest.raises(UserError, match="GELU"):
        ne.from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU()))
    with pytest.raises(UserError, match="groups=1"):
        ne.from_torch(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)))


# --- optimisers against torch.optim ------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs", [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-2}),  # seed 001's SGD, plus decay
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "nesterov": True}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 1e-2}),
    ("AdamW", {"lr": 0.01}),
], ids=["sgd-momentum-wd", "sgd-dampening", "sgd-nesterov", "adam-wd", "adamw"])
def test_optimisers_follow_torch_for_several_steps(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = seed_models()["lenet5"][0].double()
    net = ne.from_torch(model)
    torch_opt = getattr(torch.optim, name)(model.parameters(), **kwargs)
    ours = getattr(no, name)(net.parameters(), **kwargs)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, t = rng.standard_normal((4, 1, 28, 28)), rng.integers(0, 10, 4)
        torch_opt.zero_grad()
        F.cross_entropy(model(torch.tensor(x)), torch.tensor(t)).backward()
        torch_opt.step()
        ours.zero_grad()
        net.backward(ne.cross_entropy(net.forward(x), t)[1])
        ours.step()
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(net.state_dict()[key], value.numpy(), rtol=1e-6, atol=1e-9, err_msg=key)


# --- the notes' own claims ---------------------------------------------------------------------------

def test_true_convolution_is_the_double_sum_of_the_notes() -> None:
    image, kernel = randn(5, 6), randn(3, 2, seed=1)
    s = np.zeros((5 + 3 - 1, 6 + 2 - 1))
    for i in range(s.shape[0]):  # S(i,j) = Σ_m Σ_n I(m,n) K(i-m, j-n), literally
        for j in range(s.shape[1]):
            s[i, j] = sum(image[m, n] * kernel[i - m, j - n] for m in range(5) for n in range(6)
                          if 0 <= i - m < 3 and 0 <= j - n < 2)
    np.testing.assert_allclose(ne.true_convolution(image, kernel, "full"), s)
    np.testing.assert_allclose(ne.true_convolution(image, kernel, "valid"), s[2:5, 1:6])


def test_torch_conv2d_is_cross_correlation_not_convolution() -> None:
    image, kernel = randn(7, 8), randn(3, 3, seed=1)  # a random kernel is not symmetric
    torch_out = F.conv2d(torch.tensor(image)[None, None], torch.tensor(kernel)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(torch_out, ne.true_convolution(image, kernel[::-1, ::-1], "valid"))
    assert not np.allclose(torch_out, ne.true_convolution(image, kernel, "valid"))


def test_conv_input_gradient_is_full_convolution_with_the_kernel() -> None:
    conv = ne.Conv2d(1, 1, 3, bias=False, dtype=np.float64)
    kernel = conv.params["weight"][0, 0] = randn(3, 3)
    x, g = randn(1, 1, 7, 8), randn(1, 1, 5, 6, seed=1)
    conv.forward(x)
    # backward of a cross-correlation = the textbook (flipped-kernel) convolution of grad_out, 'full' size
    np.testing.assert_allclose(conv.backward(g)[0, 0], ne.true_convolution(g[0, 0], kernel, "full"))


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_padding_half_the_kernel_keeps_the_size(k: int) -> None:
    p = (k - 1) // 2
    assert ne.output_size(13, k, 1, p) == 13
    assert ne.Conv2d(2, 3, k, padding=p).forward(randn(1, 2, 13, 10)).shape == (1, 3, 13, 10)


@settings(max_examples=60, deadline=None, database=None)
@given(st.integers(1, 20), st.integers(1, 5), st.integers(1, 4), st.integers(0, 3), st.integers(1, 3))
def test_output_size_formula_matches_torch(n: int, k: int, s: int, p: int, d: int) -> None:
    expected = ne.output_size(n, k, s, p, d)
    try:
        out = F.conv2d(torch.zeros(1, 1, n, 1), torch.zeros(1, 1, k, 1), stride=s, padding=(p, 0), dilation=d)
    except RuntimeError:  # torch refuses exactly when the formula gives no output
        assert expected < 1
        return
    assert out.shape[2] == expected


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_delta_is_softmax_minus_onehot(smoothing: float) -> None:
    z, t = randn(6, 5), np.array([0, 4, 2, 2, 1, 3])
    zt = torch.tensor(z, requires_grad=True)
    loss_t = F.cross_entropy(zt, torch.tensor(t), label_smoothing=smoothing)
    loss_t.backward()
    loss, dz = ne.cross_entropy(z, t, label_smoothing=smoothing)
    np.testing.assert_allclose(loss, loss_t.item(), rtol=RTOL)
    close(dz, zt.grad)
    if smoothing == 0:  # seed 001: δ = y - t, and torch's mean reduction divides it by N
        np.testing.assert_allclose(zt.grad.numpy() * 6, ne.softmax(z) - np.eye(5)[t], rtol=RTOL, atol=ATOL)


@FAST
@given(st.integers(1, 5), st.integers(1, 9), st.floats(-1e3, 1e3))
def test_softmax_sums_to_one_and_ignores_a_shift(n: int, k: int, shift: float) -> None:
    z = randn(n, k) * 10
    p = ne.softmax(z)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(-1), 1.0)
    np.testing.assert_allclose(ne.softmax(z + shift), p, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p, torch.softmax(torch.tensor(z), -1).numpy(), rtol=RTOL, atol=ATOL)


def test_max_pooling_picks_the_max_of_each_region() -> None:
    x = np.array([[1, 3, 2, 0],
                  [4, 2, 1, 5],
                  [0, 9, 7, 6],
                  [8, 1, 2, 3]], dtype=float)[None, None]
    pool = ne.MaxPool2d(2)
    np.testing.assert_array_equal(pool.forward(x)[0, 0], [[4, 5], [9, 7]])
    grad = pool.backward(np.ones((1, 1, 2, 2)))[0, 0]  # gradient goes only to each region's winner
    np.testing.assert_array_equal(grad, (x[0, 0] == [[4, 4, 5, 5]] * 2 + [[9, 9, 7, 7]] * 2) * 1.0)


def test_float32_stays_float32() -> None:
    net = ne.from_torch(seed_models()["lenet5"][0])
    y = net.forward(randn(2, 1, 28, 28).astype(np.float32))
    assert y.dtype == np.float32
    assert net.backward(ne.cross_entropy(y, np.array([1, 2]))[1]).dtype == np.float32


def test_the_engine_alone_learns_real_digits() -> None:
    """End to end with no torch at all: a small CNN trained on scikit-learn's 8x8 digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[:256] / 16.0).astype(np.float32)[:, None]  # (256, 1, 8, 8)
    t = digits.target[:256]
    rng = np.random.default_rng(0)
    net = ne.Sequential(ne.Conv2d(1, 8, 3, padding=1, rng=rng), ne.ReLU(), ne.MaxPool2d(2), ne.Flatten(),
                        ne.Linear(8 * 4 * 4, 10, rng=rng))
    opt = no.SGD(net.parameters(), lr=0.1, momentum=0.9)
    first, _ = ne.cross_entropy(net.forward(x), t)
    for step in range(60):
        batch = slice(step % 4 * 64, step % 4 * 64 + 64)
        opt.zero_grad()
        net.backward(ne.cross_entropy(net.forward(x[batch]), t[batch])[1])
        opt.step()
    last, _ = ne.cross_entropy(net.forward(x), t)
    accuracy = (net.forward(x).argmax(1) == t).mean()
    assert last < first / 4 and accuracy > 0.9, (first, last, accuracy)
