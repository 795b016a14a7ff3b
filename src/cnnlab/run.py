"""A run as a Python object, for notebooks and every command: `cnnlab.train(...)` returns one, and
`cnnlab.load_run(path)` opens one from disk (finished or not). `cnnlab.summary(...)` is a model's table.

In a notebook a Run, its results and a summary show as HTML tables, its `plot()` and `show_*()` figures
draw inline, and a kernel interrupt during `train` ends in one line saying how to resume.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml

from .data import load_data, normalize
from .data.channels import with_channels
from .errors import UserError
from .models import (
    ModelMeta,
    fmt_shape,
    load_weights,
    predictor,
    read_meta,
)
from .models.evaluate import classification_report, infer
from .models.summary import Summary, summarize
from .predict import predict_files
from .training import TrainConfig
from .training import train as _train
from .training.rundir import read_metrics
from .training.stopping import Interrupted
from .viz.display import Figures, results_html, run_html, shown_inline
from .viz.inspect import feature_map_figures, filter_figures
from .viz.mistakes import mistakes_figure, mistakes_for_run
from .viz.plots import curves_figure
from .viz.report import write_report

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class TestSet:
    """A run's test split as training loaded it."""

    x: torch.Tensor  # (N, C, H, W) uint8, as stored
    y: torch.Tensor  # (N,) int64
    classes: list[str]
    files: list[str] | None  # source path per image for image folders, else None
    name: str


class Results(dict):
    """results.json as a dict; a notebook shows it as tables."""

    def _repr_html_(self) -> str:
        return results_html(self)


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

    def _repr_html_(self) -> str:
        return run_html(self)

    @cached_property
    def config(self) -> dict:
        return yaml.safe_load((self.path / "config.yaml").read_text())

    @property
    def results(self) -> Results:
        p = self.path / "results.json"
        return Results(json.loads(p.read_text()) if p.is_file() else {})

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
        ds = load_data(cfg["data"], cfg.get("data_dir"), image_size=cfg.get("image_size"),
                       bad_images=cfg.get("bad_images", "refuse"))
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
        return Results(evaluate_run(self, data, data_dir))

    def plot(self) -> Figure:
        """Loss and accuracy vs iteration, as a matplotlib figure (shows inline in notebooks)."""
        return shown_inline(curves_figure(self.metrics, title=Path(self.config.get("model", "")).stem))

    def show_mistakes(self, top: int = 24) -> Figure:
        """The test images the model gets most wrong, per-class accuracy and the most-confused pairs."""
        m, test = mistakes_for_run(self)
        return shown_inline(mistakes_figure(m, test, title=f"{Path(self.config.get('model', '')).stem} on "
                                                          f"{test.name}", top=top))

    def show_filters(self, layer: str | None = None) -> Figures:
        """Every conv layer's filters (or `layer`'s, named as in the summary), one figure each."""
        return Figures(filter_figures(self, layer))

    def show_feature_maps(self, image: int | str | Path = 0, layer: str | None = None) -> Figures:
        """What each conv/pool layer outputs for test image number `image`, or for an image file."""
        if isinstance(image, int):
            return Figures(feature_map_figures(self, index=image, layer=layer))
        return Figures(feature_map_figures(self, image=image, layer=layer))

    def predict(self, images: list[str | Path], top_k: int = 3) -> list[dict]:
        return predict_files(self.model, self.meta, images, top_k)


def load_run(path: str | Path) -> Run:
    return Run(path)


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          progress: bool | None = None, started_at: float | None = None, **overrides) -> Run | None:
    """Train a model; returns the finished Run (None on ranks other than 0 under torchrun).

    Keyword arguments are TrainConfig fields (`cnnlab train --help` lists them):

    >>> run = cnnlab.train(model="lenet5", data="fashion-mnist", epochs=1, limit=5000)
    >>> run.results["test_accuracy"]
    """
    try:
        path = _train(config, resume=resume, progress=progress, started_at=started_at, **overrides)
    except Interrupted as e:
        if _in_ipython() and e.run_dir is not None:
            raise NotebookInterrupted(e.run_dir, str(e)) from None
        raise
    if path is None:
        return None
    run = Run(path)
    if run.config.get("report"):
        write_report(run)
    return run


def _in_ipython() -> bool:
    return "IPython" in sys.modules and sys.modules["IPython"].get_ipython() is not None


class NotebookInterrupted(Interrupted):
    """A kernel interrupt during `cnnlab.train` in IPython: the state is saved; one line says how to resume
    from Python (IPython shows `_render_traceback_` in place of the traceback), and the kernel carries on."""

    def __init__(self, run_dir: Path, message: str):
        first = message.split(";")[0]  # "stopped at step N (epoch E)"
        super().__init__(f"{first}; the state is saved in {run_dir}: resume with "
                         f"cnnlab.train(resume={str(run_dir)!r})", run_dir)

    def _render_traceback_(self) -> list[str]:
        return [f"Interrupted: {self}"]


def summary(model: str | Path, input: str | None = None, classes: int | None = None) -> Summary:
    """A model's layer table (`cnnlab summary`): a named model, a spec file or a run directory.

    `input` ("CxHxW") and `classes` default to the spec's own (else 1x28x28 and its last Linear, else 10);
    a run's model has both fixed. Prints as text; a notebook shows it as an HTML table."""
    if Path(model).is_dir() and (Path(model) / "config.yaml").is_file():
        if input or classes:
            raise UserError(f"{model} is a run: its model has a fixed input and class count; "
                            "drop --input/--classes")
        net, meta = Run(model).load()
        return Summary(net, f"{meta.spec['name']} as trained in {model} "
                            f"(input {fmt_shape(meta.input_shape)}, {len(meta.classes)} classes)")
    return summarize(str(model), input, classes)


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
    ds = load_data(name, data_dir or own_dir, image_size=meta.input_shape[1] if Path(name).is_dir() else None,
                   bad_images=run.config.get("bad_images", "refuse") if data is None else "refuse")
    if ds.input_shape[0] == 1 and meta.spec.get("backbone"):  # grey photos: repeated, as training did
        ds.test.x = with_channels(ds.test.x, meta.input_shape[0])
    if tuple(ds.test.x.shape[1:]) != tuple(meta.input_shape):
        raise UserError(f"--data {name}: images are {fmt_shape(tuple(ds.test.x.shape[1:]))} but the model "
                        f"takes {fmt_shape(meta.input_shape)}; evaluate on data of the same shape")
    if len(ds.classes) != len(meta.classes):
        raise UserError(f"--data {name}: {len(ds.classes)} classes, the model has {len(meta.classes)}")
    x = normalize(ds.test.x.float().div_(255), meta)
    report = classification_report(infer(predictor(model, meta.tta), x, batch_size), ds.test.y, meta.classes)
    report["data"] = ds.name
    report["model"] = run.config.get("model")
    return report
