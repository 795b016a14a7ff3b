"""--time: the schedule is sized to a wall-clock budget and the run ends on time, schedule complete, also
when the machine gets slower halfway and when the run is interrupted and resumed."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import cnnlab
from cnnlab.errors import UserError
from cnnlab.training import options
from cnnlab.training.callbacks import time_budget
from cnnlab.training.options import parse_duration
from cnnlab.training.stopping import Interrupted

OPTS = {"model": "deeper-cnn", "data": "digits", "progress": False, "threads": 1}


def test_durations():
    texts = ("20s", "90s", "2m", "1h", "1m30s", "45")
    assert [parse_duration(t) for t in texts] == [20, 90, 120, 3600, 90, 45]
    assert parse_duration("soon") is None and parse_duration("0s") is None
    with pytest.raises(UserError, match="--time 'soon': give a duration such as 20s"):
        cnnlab.train(time="soon", **OPTS)


def _check_on_time(run, budget: float) -> None:
    tb = run.results["time_budget"]
    assert tb["seconds"] == budget
    assert 0.9 * budget <= tb["used_seconds"] <= 1.1 * budget, tb
    assert tb["epochs"] > 1 and tb["steps"] == run.results["steps"]
    rows = run.metrics
    # the one-cycle schedule ran to its end: the last rate is the floor, lr / 25 / 1e4 (to within a step)
    assert rows[-1]["lr"] < 1e-3 * run.config["lr"] and rows[-1]["step"] == tb["steps"]


def test_a_run_ends_on_time_with_its_schedule_complete(tmp_path):
    start = time.monotonic()
    run = cnnlab.train(time="10s", out=str(tmp_path / "run"), started_at=start, **OPTS)
    _check_on_time(run, 10.0)
    assert run.config["time"] == "10s" and run.config["epochs"] is None  # config.yaml re-runs the same budget


def test_it_holds_the_budget_when_the_machine_gets_slower_halfway(tmp_path, monkeypatch):
    real = time_budget.TimeBudget.on_step_end

    def slower(self, t):  # from half the budget on, every step takes 15 ms more: as if another job started
        if self.elapsed(t) > 0.5 * self.seconds:
            time.sleep(0.015)
        real(self, t)

    monkeypatch.setattr(time_budget.TimeBudget, "on_step_end", slower)
    run = cnnlab.train(time="10s", out=str(tmp_path / "run"), started_at=time.monotonic(), **OPTS)
    _check_on_time(run, 10.0)


def test_resume_spends_what_is_left_of_the_budget(tmp_path):
    out = tmp_path / "run"
    timer = threading.Timer(5.0, os.kill, (os.getpid(), signal.SIGINT))  # Ctrl-C at half time
    timer.start()
    with pytest.raises(Interrupted):
        cnnlab.train(time="10s", out=str(out), started_at=time.monotonic(), **OPTS)
    timer.join()
    run = cnnlab.train(resume=out, progress=False, started_at=time.monotonic())
    _check_on_time(run, 10.0)  # the two sessions together


def test_epochs_cap_the_budget(tmp_path):
    run = cnnlab.train(time="60s", epochs=1, out=str(tmp_path / "run"), **OPTS)
    assert run.results["epochs"] == 1 and run.results["time_budget"]["epochs"] == 1.0
    assert run.results["time_budget"]["used_seconds"] < 30


def test_the_option_is_declared_once():
    assert options.TrainConfig().time is None
