"""The recipe's parts: one learning-rate function equal to torch's own schedulers, one optimiser table."""

from __future__ import annotations

import pytest
import torch

from cnnlab import textbook
from cnnlab.textbook import optim as textbook_optim
from cnnlab.training.options import TrainConfig
from cnnlab.training.recipe import OPTIMIZERS, lr_at, make_optimizer


def _torch_lrs(make_sched, steps: int, lr: float) -> list[float]:
    """The rate each step uses under a torch scheduler, stepped as training steps it."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = make_sched(opt)
    out = []
    for _ in range(steps + 1):  # + 1: the rate after the last step, which metrics.csv records
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("total", [8, 9, 40, 235, 4700])
def test_onecycle_is_torchs_onecycle_at_every_step(total):
    cfg = TrainConfig(lr=0.008, schedule="onecycle")
    want = _torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.008, total_steps=total, pct_start=0.25, anneal_strategy="linear", cycle_momentum=False),
        total - 1, 0.008)  # OneCycleLR refuses a step past total_steps - 1 ... then one more read
    got = [lr_at(cfg, s, total) for s in range(total)]
    assert got == pytest.approx(want, rel=1e-12, abs=0)


@pytest.mark.parametrize("total", [5, 37, 1000])
def test_cosine_is_torchs_cosine_at_every_step(total):
    cfg = TrainConfig(lr=0.05, schedule="cosine")
    want = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total), total, 0.05)
    got = [lr_at(cfg, s, total) for s in range(total + 1)]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-15)  # torch's recursive form rounds differently


def test_constant_and_short_onecycle_keep_the_given_rate():
    assert {lr_at(TrainConfig(lr=0.01, schedule="constant"), s, 100) for s in range(100)} == {0.01}
    assert {lr_at(TrainConfig(lr=0.01, schedule="onecycle"), s, 7) for s in range(7)} == {0.01}  # < 8 steps


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_one_optimiser_table_for_both_engines(name):
    cfg = TrainConfig(optimizer=name, lr=0.02, momentum=0.5, weight_decay=1e-3)
    model = torch.nn.Linear(3, 2)
    t = make_optimizer(cfg, model.parameters())
    n = make_optimizer(cfg, textbook.from_torch(model).parameters(), library=textbook_optim)
    assert type(t).__name__ == type(n).__name__ == OPTIMIZERS[name][0]
    assert t.param_groups[0]["lr"] == n.lr == 0.02
    assert t.param_groups[0]["weight_decay"] == n.weight_decay == 1e-3
    if name == "sgd":
        assert t.param_groups[0]["momentum"] == n.momentum == 0.5
