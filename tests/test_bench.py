"""`cnnlab bench --quick --json` on a slice of real Fashion-MNIST: every figure present and sane
(no timings judged)."""

from __future__ import annotations

import json

import pytest
from datafiles import write_idx
from helpers import cli

from cnnlab.bench import first_crossing, format_report
from cnnlab.data import load_data
from cnnlab.models import create_model, totals

MODELS = ("mnist-classifier", "lenet5", "fastcnn")


@pytest.fixture(scope="module")
def tiny_fashion(tmp_path_factory, fashion_dir):
    """768 training and 300 test images of the real data, as IDX files in a folder named for Fashion-MNIST."""
    ds = load_data(str(fashion_dir))
    return write_idx(tmp_path_factory.mktemp("bench") / "fashion-tiny", ds.train.x[:768], ds.train.y[:768],
                     ds.test.x[:300], ds.test.y[:300])


@pytest.fixture(scope="module")
def bench(tiny_fashion):
    r = cli("bench", "--quick", "--json", "--data", str(tiny_fashion), "--threads", "1", timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # stdout is the JSON alone: progress goes to stderr


def _fraction(v) -> bool:
    return isinstance(v, float) and 0.0 <= v <= 1.0


def test_bench_json_has_every_figure(bench):
    m = bench["machine"]
    assert m["cpus"] >= 1 and m["torch"] and m["cpu"]
    assert bench["threads"] == 1 and bench["quick"] is True
    assert bench["matmul_gflops"]["fp32"] > 0
    assert bench["train_precision"] in ("fp32", "bf16")
    assert bench["data"] == {"name": bench["data"]["name"], "train_images": 768, "full_train_images": 768,
                             "test_images": 300}
    assert [row["model"] for row in bench["epochs"]] == list(MODELS)
    for row in bench["epochs"]:
        # MACs are the summary's own count: the floor is computed from the same model that is timed
        assert row["macs"] == totals(create_model(row["model"], (1, 28, 28), 10))["macs"]
        for side in ("seed", "cnnlab"):
            s = row[side]
            assert s["epoch_seconds"] > 0 and s["images_per_s"] > 0
            assert _fraction(s["test_accuracy"])
        # the seed loop's DataLoader alone is a part of its epoch
        assert 0 < row["seed"]["data_pipeline_seconds"]
        assert row["speedup"] > 0
        assert row["speedup"] == pytest.approx(row["seed"]["epoch_seconds"] / row["cnnlab"]["epoch_seconds"],
                                               rel=0.02)
        assert row["floor_epoch_seconds"] > 0 and row["cnnlab_over_floor"] > 0
        # the floor is training FLOPs (3 passes x 2 FLOPs per multiply-add) over the measured peak
        peak = bench["matmul_gflops"]["bf16" if bench["train_precision"] == "bf16" else "fp32"]
        assert row["floor_epoch_seconds"] == pytest.approx(768 * 6 * row["macs"] / (peak * 1e9), rel=0.02)


def test_bench_trains_both_loops_for_real(bench):
    # 6 steps on 768 images: both loops must beat chance (10 %) on the held-out test images
    for row in bench["epochs"]:
        if row["model"] != "mnist-classifier":  # SGD at lr 0.01 barely moves in 6 steps; 2 of 3 must learn
            assert row["seed"]["test_accuracy"] > 0.2 and row["cnnlab"]["test_accuracy"] > 0.2, row


def test_bench_time_to_accuracy_and_inference(bench):
    t = bench["time_to_accuracy"]
    short = t["runs"]["5s"]  # --quick: one short budget on the slice, so the short-budget default model
    assert short["model"] == "fastcnn-small" and bench["inference"]["model"] == "fastcnn-small"
    assert short["epochs"] > 0 and short["train_seconds"] > 0 and _fraction(short["test_accuracy"])
    assert short["command"] == "cnnlab train --time 5s" and short["device"]
    assert short["used_seconds"] > 0  # tests/test_time_budget.py checks that budgets hold
    for mark, seconds in short["val_crossings"].items():
        assert mark in ("0.91", "0.93") and (seconds is None or 0 < seconds <= short["train_seconds"] + 1)
    inf = bench["inference"]
    for sfx in ("", "_fast"):  # as served, and in the training form
        assert inf["batch1_images_per_s" + sfx] > 0 and inf["batch1024_images_per_s" + sfx] > 0
        assert 0 < inf["batch1_p50_ms" + sfx] <= inf["batch1_p90_ms" + sfx]


def test_bench_text_report_names_every_model(bench):
    text = format_report(bench)
    for name in MODELS:
        assert name in text
    assert "floor s" in text and "on a time budget" in text and "batch 1024" in text
    assert bench["machine"]["cpu"] in text.splitlines()[0]  # the CPU named, with the flags that matter
    assert all(f in text.splitlines()[0] for f in bench["machine"]["cpu_flags"])


def test_first_crossing_reads_metrics_rows():
    rows = [{"seconds": 1.0, "val_accuracy": 0.5}, {"seconds": 2.5, "val_accuracy": ""},
            {"seconds": 3.0, "val_accuracy": 0.912}, {"seconds": 4.0, "val_accuracy": 0.95}]
    assert first_crossing(rows, 0.91) == 3.0
    assert first_crossing(rows, 0.93) == 4.0
    assert first_crossing(rows, 0.99) is None


def test_bench_refuses_bad_input(tmp_path):
    r = cli("bench", "--quick", "--models", "lenet5,nosuch")
    assert r.returncode == 2 and "nosuch" in r.stderr and "Traceback" not in r.stderr
    small = write_idx(tmp_path / "few", [[[0] * 28] * 28] * 20, [0, 1] * 10, [[[0] * 28] * 28] * 4,
                      [0, 1] * 2)
    r = cli("bench", "--quick", "--data", str(small), "--models", "lenet5")
    assert r.returncode == 2 and "only 20 training images" in r.stderr and str(small) in r.stderr, r.stderr


def test_peers_train_for_real_and_stop_at_their_cap(tiny_fashion, tmp_path):
    """Each peer recipe learns (above chance after an epoch on 768 images) and stops at its cap."""
    from cnnlab.bench.peers import KerasConvnet, PytorchExamples, time_to_target
    from cnnlab.bench.seed_loop import SeedLoop, torchvision_root

    ds = load_data(str(tiny_fashion))
    root = torchvision_root(ds, tmp_path / "tv", 768, 300).parent.parent
    peers = [PytorchExamples(root, 0), SeedLoop("lenet5", root, 0.286, 0.353, 0),
             KerasConvnet(ds.train.x[:, 0].numpy(), ds.train.y.numpy(), ds.test.x[:, 0].numpy(),
                          ds.test.y.numpy(), 0)]
    for peer in peers:
        r = time_to_target(peer, 0.999, cap_seconds=0.01, log=lambda s: None)  # unreachable: the cap stops it
        assert not r["reached"] and r["seconds"] is None and r["epochs"] == 1, r
        assert 0.25 < r["history"][0]["test_accuracy"] <= 1.0, (peer.name, r)
    keras_model = peers[-1].model  # the keras-io recipe, layer for layer
    assert [type(layer).__name__ for layer in keras_model.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense"]
    assert keras_model.count_params() == 34_826  # keras-io's summary of the example
