"""A finished (or unfinished) run directory, as a Python object for notebooks and the other commands."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import torch
import yaml

from .errors import UserError
from .rundir import read_metrics


class Run:
    """`cnnlab.train(...)` returns one; `cnnlab.load_run(path)` opens one from disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "config.yaml").is_file():
            raise UserError(f"{self.path} is not a cnnlab run directory (no config.yaml); "
                            "give the folder `cnnlab train` printed")

    def __repr__(self) -> str:
        acc = self.results.get("test_accuracy")
        return f"Run({str(self.path)!r}, test_accuracy={acc if acc is None else round(acc, 4)})"

    @cached_property
    def config(self) -> dict:
        return yaml.safe_load((self.path / "config.yaml").read_text())

    @property
    def results(self) -> dict:
        p = self.path / "results.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    @property
    def finished(self) -> bool:
        return (self.path / "results.json").is_file()

    @property
    def metrics(self) -> list[dict]:
        return read_metrics(self.path / "metrics.csv")

    @property
    def weights_path(self) -> Path:
        for name in ("best.safetensors", "last.safetensors"):
            if (self.path / name).is_file():
                return self.path / name
        raise UserError(f"{self.path} has no weights yet (best.safetensors); let training reach a "
                        "validation point, or resume it with `cnnlab train --resume`")

    def load(self, device: str = "cpu"):
        """(model, meta) rebuilt from the weights file alone."""
        from .weights import load_weights

        return load_weights(self.weights_path, device)

    @cached_property
    def model(self) -> torch.nn.Module:
        return self.load()[0]

    @cached_property
    def meta(self):
        from .weights import read_meta

        return read_meta(self.weights_path)

    def evaluate(self, data: str | None = None, data_dir: str | None = None) -> dict:
        """Test metrics on the run's own test split or another data set (see `evaluate_run`)."""
        return evaluate_run(self, data, data_dir)

    def plot(self):
        """Loss and accuracy vs iteration, as a matplotlib figure (shows inline in notebooks)."""
        from .plots import curves_figure

        return curves_figure(self.metrics, title=Path(self.config.get("model", "")).stem)

    def predict(self, images: list[str | Path], top_k: int = 3) -> list[dict]:
        from .predict import predict_files

        return predict_files(self.model, self.meta, images, top_k)


def load_run(path: str | Path) -> Run:
    return Run(path)


def evaluate_run(run: Run, data: str | None = None, data_dir: str | None = None, batch_size: int = 1024) -> dict:
    """Test a run's best weights on its own test split (or another data set of the same shape)."""
    from .data import load_data
    from .evaluate import classification_report, infer
    from .preprocess import normalize

    model, meta = run.load()
    name = data or run.config.get("data")
    own_dir = None if data is not None else run.config.get("data_dir")
    # An image folder is resized to the model's input; named and IDX sets must already match it.
    ds = load_data(name, data_dir or own_dir, image_size=meta.input_shape[1] if Path(name).is_dir() else None)
    if tuple(ds.input_shape) != tuple(meta.input_shape):
        raise UserError(f"--data {name}: images are {'x'.join(map(str, ds.input_shape))} but the model takes "
                        f"{'x'.join(map(str, meta.input_shape))}; evaluate on data of the same shape")
    if len(ds.classes) != len(meta.classes):
        raise UserError(f"--data {name}: {len(ds.classes)} classes, the model has {len(meta.classes)}")
    x = normalize(ds.test.x.float().div_(255), meta)
    report = classification_report(infer(model, x, batch_size), ds.test.y, meta.classes)
    report["data"] = ds.name
    report["model"] = run.config.get("model")
    return report

