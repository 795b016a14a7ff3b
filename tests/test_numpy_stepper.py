"""`cnnlab train --engine numpy`: the textbook engine trains through the same trainer and run directory."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import cli

import cnnlab
from cnnlab.textbook import optim as numpy_optim


@pytest.fixture(scope="module")
def twin_runs(tmp_path_factory, fashion_dir):
    """lenet5 on the same 2,000 real Fashion-MNIST images, once per engine, same seed and batches."""
    root = tmp_path_factory.mktemp("engines")
    kw = {"model": "lenet5", "data": "fashion-mnist", "epochs": 2, "limit": 2000, "threads": 1,
          "progress": False}
    # the torch side in float32, as the NumPy engine computes (bf16 autocast would be the bigger difference)
    return (cnnlab.train(engine="torch", precision="fp32", out=str(root / "torch"), **kw),
            cnnlab.train(engine="numpy", out=str(root / "numpy"), **kw))


def test_numpy_engine_matches_torch_engine(twin_runs):
    t, n = twin_runs
    # Same init, data order and formulas: float32 rounding is the only difference.
    assert abs(t.results["test_accuracy"] - n.results["test_accuracy"]) < 0.01
    assert n.results["test_accuracy"] > 0.6
    wt, wn = t.model.state_dict(), n.model.state_dict()
    for k in wt:
        np.testing.assert_allclose(wn[k].numpy(), wt[k].numpy(), atol=2e-3, err_msg=k)
    assert "engine: numpy" in (n.path / "config.yaml").read_text()


def test_numpy_run_works_with_eval_predict_inspect(twin_runs, tmp_path):
    n = twin_runs[1]
    r = cli("eval", str(n.path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["test_accuracy"] == pytest.approx(n.results["test_accuracy"], abs=1e-6)
    from PIL import Image

    from cnnlab.data import load_data

    x = load_data("fashion-mnist").test.x[0, 0].numpy()
    Image.fromarray(x).save(tmp_path / "item.png")
    r = cli("predict", str(n.path), str(tmp_path / "item.png"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["label"] in n.meta.classes
    r = cli("inspect", str(n.path), "--out", str(tmp_path / "inspect"))
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "inspect").glob("filters_*.png"))


@pytest.mark.parametrize("cls", [numpy_optim.SGD, numpy_optim.Adam, numpy_optim.AdamW])
def test_optimizer_state_round_trip_continues_identically(cls):
    """A resumed optimiser (state_dict -> load_state_dict) takes exactly the steps the original would."""
    rng = np.random.default_rng(0)
    kw = {"momentum": 0.9} if cls is numpy_optim.SGD else {}

    def make():
        p = rng.normal(size=(3, 4)).astype(np.float32)
        return p, np.zeros_like(p)

    p, g = make()
    a = cls([(p, g)], lr=0.1, **kw)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(6)]
    for gr in grads[:3]:
        g[...] = gr
        a.step()
    p2, g2 = p.copy(), np.zeros_like(p)
    b = cls([(p2, g2)], lr=0.1, **kw)
    b.load_state_dict(a.state_dict())
    for gr in grads[3:]:
        g[...] = gr
        a.step()
        g2[...] = gr
        b.step()
    np.testing.assert_array_equal(p, p2)


@pytest.mark.parametrize(("flags", "named"), [(["--device", "cuda"], "--device cuda"),
                                              (["--precision", "bf16"], "--precision bf16"),
                                              (["--compile"], "--compile")])
def test_numpy_engine_refuses_what_it_cannot_do(flags, named):
    r = cli("train", "--engine", "numpy", *flags, "--epochs", "1")
    assert r.returncode == 2 and "--engine numpy" in r.stderr and named in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
