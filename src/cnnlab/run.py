"""A run as a Python object, for notebooks and every command: `cnnlab.train(...)` returns one, and
`cnnlab.load_run(path)` opens one from disk (finished or not).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
import yaml

from .data import load_data, normalize
from .data.channels import with_channels
from .errors import UserError
from .models import ModelMeta, fmt_shape, load_weights, read_meta
from .models.evaluate import classification_report, infer
from .predict import predict_files
from .training import TrainConfig
from .training import train as _train
from .training.rundir import read_metrics
from .viz.plots import curves_figure
from .viz.report import write_report


@dataclass
class TestSet:
    """A run's test split as training loaded it."""

    x: torch.Tensor  # (N, C, H, W) uint8, as stored
    y: torch.Tensor  # (N,) int64
    classes: list[str]
    files: list[str] | None  # source path per image for image folders, else None
    name: str


class Run:
    """A run directory: its config, metrics, results and model."""

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

    def load(self, device: str = "cpu") -> tuple[torch.nn.Module, ModelMeta]:
        """(model, meta) rebuilt from the weights file alone."""
        return load_weights(self.weights_path, device)

    @cached_property
    def model(self) -> torch.nn.Module:
        return self.load()[0]

    @cached_property
    def meta(self) -> ModelMeta:
        return read_meta(self.weights_path)

    def test_set(self) -> TestSet:
        """The run's own test split, loaded the way training loaded it."""
        cfg, meta = self.config, self.meta
        ds = load_data(cfg["data"], cfg.get("data_dir"), image_size=cfg.get("image_size"))
        if ds.input_shape[0] == 1 and meta.spec.get("backbone"):  # grey photos: repeated, as training did
            ds.test.x = with_channels(ds.test.x, meta.input_shape[0])
        if tuple(ds.test.x.shape[1:]) != tuple(meta.input_shape):
            raise UserError(f"{self.path}: the test images of {cfg['data']} are "
                            f"{fmt_shape(tuple(ds.test.x.shape[1:]))}, "
                            f"the model takes {fmt_shape(meta.input_shape)}; was the data set changed since "
                            "training?")
        return TestSet(ds.test.x, ds.test.y, list(meta.classes), ds.test.files, ds.name)

    def evaluate(self, data: str | None = None, data_dir: str | None = None) -> dict:
        """Test metrics on the run's own test split or another data set (see `evaluate_run`)."""
        return evaluate_run(self, data, data_dir)

    def plot(self):
        """Loss and accuracy vs iteration, as a matplotlib figure (shows inline in notebooks)."""
        return curves_figure(self.metrics, title=Path(self.config.get("model", "")).stem)

    def predict(self, images: list[str | Path], top_k: int = 3) -> list[dict]:
        return predict_files(self.model, self.meta, images, top_k)


def load_run(path: str | Path) -> Run:
    return Run(path)


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          progress: bool | None = None, **overrides) -> Run | None:
    """Train a model; returns the finished Run (None on ranks other than 0 under torchrun).

    Keyword arguments are TrainConfig fields (`cnnlab train --help` lists them):

    >>> run = cnnlab.train(model="lenet5", data="fashion-mnist", epochs=1, limit=5000)
    >>> run.results["test_accuracy"]
    """
    path = _train(config, resume=resume, progress=progress, **overrides)
    if path is None:
        return None
    run = Run(path)
    if run.config.get("report"):
        write_report(run)
    return run


def open_model(path: str | Path) -> tuple[torch.nn.Module, ModelMeta, Run | None]:
    """(model on the CPU in eval mode, meta, the Run or None) from a run directory or a .safetensors file
    cnnlab wrote: what `predict`, `export` and `serve` accept."""
    src = Path(path)
    if src.suffix == ".safetensors":
        model, meta = load_weights(src)
        return model, meta, None
    if not src.is_dir():
        raise UserError(f"{src}: not a cnnlab run directory (no such run directory); give the folder "
                        "`cnnlab train` printed (or a .safetensors file cnnlab wrote)")
    run = Run(src)
    model, meta = run.load()
    return model, meta, run


def evaluate_run(run: Run, data: str | None = None, data_dir: str | None = None,
                 batch_size: int = 1024) -> dict:
    """Test a run's best weights on its own test split (or another data set of the same shape)."""
    model, meta = run.load()
    name = data or run.config.get("data")
    own_dir = None if data is not None else run.config.get("data_dir")
    # An image folder is resized to the model's input; named and IDX sets must already match it.
    ds = load_data(name, data_dir or own_dir, image_size=meta.input_shape[1] if Path(name).is_dir() else None)
    if ds.input_shape[0] == 1 and meta.spec.get("backbone"):  # grey photos: repeated, as training did
        ds.test.x = with_channels(ds.test.x, meta.input_shape[0])
    if tuple(ds.test.x.shape[1:]) != tuple(meta.input_shape):
        raise UserError(f"--data {name}: images are {fmt_shape(tuple(ds.test.x.shape[1:]))} but the model "
                        f"takes {fmt_shape(meta.input_shape)}; evaluate on data of the same shape")
    if len(ds.classes) != len(meta.classes):
        raise UserError(f"--data {name}: {len(ds.classes)} classes, the model has {len(meta.classes)}")
    x = normalize(ds.test.x.float().div_(255), meta)
    report = classification_report(infer(model, x, batch_size), ds.test.y, meta.classes)
    report["data"] = ds.name
    report["model"] = run.config.get("model")
    return report
