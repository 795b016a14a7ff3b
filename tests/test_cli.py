"""The command line as a user meets it: help, listings, eval, the seed recipe on MNIST-format files."""

from __future__ import annotations

import json

import pytest
from helpers import cli

from cnnlab.cli import _modules


@pytest.mark.parametrize("command", [m.replace("_", "-") for m in _modules()])
def test_every_command_has_help_with_examples(command):
    r = cli(command, "--help")
    assert r.returncode == 0, r.stderr
    assert "examples:" in r.stdout and "cnnlab" in r.stdout.split("examples:")[1]


def test_top_level_help_lists_commands():
    r = cli("--help")
    assert r.returncode == 0
    for name in ("train", "eval", "predict", "summary", "datasets"):
        assert name in r.stdout


def test_unknown_option_is_one_line_exit_2():
    r = cli("train", "--epocs", "3")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error:") and "--epocs" in r.stderr


def test_datasets_lists_what_is_here(fashion_dir, mnist_dir):
    r = cli("datasets", "--data-dir", str(mnist_dir.parent))
    assert r.returncode == 0, r.stderr
    lines = r.stdout
    assert "fashion-mnist" in lines and str(fashion_dir) in lines  # Debian's package, found offline
    assert "digits" in lines and "cifar10" in lines and "missing" in lines


def test_models_lists_the_seed_models():
    r = cli("models")
    assert r.returncode == 0
    for name in ("mnist-classifier", "simple-cnn", "cnn-model", "lenet5", "fastcnn"):
        assert name in r.stdout


def test_eval_reproduces_training_results(fashion_run):
    r = cli("eval", str(fashion_run.path), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["test_accuracy"] == pytest.approx(fashion_run.results["test_accuracy"], abs=1e-9)
    assert rep["test_samples"] == 10_000
    cm = rep["confusion_matrix"]
    assert sum(map(sum, cm)) == 10_000 and len(cm) == 10
    assert set(rep["per_class"]) == set(fashion_run.meta.classes)
    text = cli("eval", str(fashion_run.path))
    assert "test accuracy" in text.stdout and "Ankle boot" in text.stdout


def test_eval_refuses_data_of_another_shape(fashion_run):
    r = cli("eval", str(fashion_run.path), "--data", "digits")
    assert r.returncode == 2 and "1x8x8" in r.stderr and "1x28x28" in r.stderr


def test_seed_000_recipe_on_mnist_format_files(mnist_dir, tmp_path):
    """Seed 000: MNISTClassifier, SGD lr 0.01 momentum 0.5, batch 128, on MNIST IDX files found via
    --data-dir."""
    out = tmp_path / "seed000"
    r = cli("train", "--model", "mnist-classifier", "--data", "mnist", "--data-dir", str(mnist_dir),
            "--epochs", "8", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"results in {out}" in r.stdout and "test accuracy" in r.stdout
    cfg = (out / "config.yaml").read_text()
    assert ("optimizer: sgd" in cfg and "lr: 0.01" in cfg and "momentum: 0.5" in cfg
            and "batch_size: 128" in cfg)
    res = json.loads((out / "results.json").read_text())
    assert res["params"] == 8_490  # Conv 1→10 k5, Conv 10→20 k5, Linear 320→10, as the seed builds it
    assert res["test_accuracy"] > 0.85, res["test_accuracy"]  # 92% measured (2,700 images, 8 epochs)
    for png in ("loss.png", "accuracy.png", "confusion_matrix.png"):
        assert (out / "plots" / png).stat().st_size > 10_000
