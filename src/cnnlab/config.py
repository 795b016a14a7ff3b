"""Training configuration: one typed dataclass, filled from defaults, the model, a YAML file and flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .models import DEFAULT_MODEL, get_entry


@dataclass
class TrainConfig:
    model: str = DEFAULT_MODEL  # registered name or path of a .yaml/.json spec
    data: str = "fashion-mnist"  # data set name or directory
    data_dir: str | None = None  # where named data sets are looked for first (also $CNNLAB_DATA)
    epochs: int | None = None  # None: the model's default
    batch_size: int | None = None  # global batch size (split across ranks under torchrun)
    lr: float | None = None  # peak learning rate for one-cycle, the constant one otherwise
    optimizer: str | None = None  # sgd | adam | adamw
    momentum: float | None = None  # SGD only
    weight_decay: float | None = None
    schedule: str | None = None  # constant | onecycle | cosine
    label_smoothing: float | None = None
    augment: str | None = None  # none | flip | auto (flip where it suits the data: not digits)
    val_split: float = 0.1  # fraction of the training set held out, stratified
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int | None = None  # CPU intra-op threads; None: chosen by measurement (engine.py)
    out: str | None = None  # run directory; default runs/<model>-<data>-<time>
    limit: int | None = None  # use only N training samples (stratified), for quick runs
    image_size: int | None = None  # resize image folders to this size
    eval_every: int | None = None  # steps between validation points in an epoch (+ its end); None: twice per epoch
    checkpoint_every: int | None = None  # steps between checkpoints (always at each epoch's end)
    patience: int | None = None  # early stopping: epochs without a better val accuracy
    engine: str = "torch"  # torch | numpy (the textbook engine)
    precision: str = "auto"  # auto (bf16 autocast where the hardware has it, engine.amp_dtype) | fp32 | bf16
    compile: bool = False  # torch.compile the model for training (pays on GPUs; slower for small CPU nets)
    report: bool = False  # write report.html at the end
    tensorboard: bool = False  # log to RUN_DIR/tensorboard

    def to_dict(self) -> dict:
        return asdict(self)


CHOICES = {
    "optimizer": ("sgd", "adam", "adamw"),
    "schedule": ("constant", "onecycle", "cosine"),
    "augment": ("none", "flip", "auto"),
    "device": ("auto", "cpu", "cuda", "mps"),
    "engine": ("torch", "numpy"),
    "precision": ("auto", "fp32", "bf16"),
}
BUILTIN_DEFAULTS = {"epochs": 5, "batch_size": 128, "lr": 0.001, "optimizer": "adam", "momentum": 0.9, "weight_decay": 0.0,
                        "schedule": "constant", "label_smoothing": 0.0, "augment": "none"}


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def load_config_file(path: str | Path) -> dict:
    """A YAML file of TrainConfig fields (dashes or underscores), e.g. a run's own config.yaml."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config {path}: no such file")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]}); fix the syntax") from None
    if not isinstance(d, dict):
        raise UserError(f"--config {path}: expected a mapping of option: value")
    d = {k.replace("-", "_"): v for k, v in d.items()}
    unknown = sorted(set(d) - set(field_names()))
    if unknown:
        raise UserError(f"--config {path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(field_names())}")
    return d


def resolve(cfg: TrainConfig, source: str | None = None) -> TrainConfig:
    """Fill every None with the model's default, then the built-in one, and check every value.

    `source`: where to read the model from when not `cfg.model` (a resumed run's copy of its spec file)."""
    entry = get_entry(source or cfg.model)
    for k, v in BUILTIN_DEFAULTS.items():
        if getattr(cfg, k) is None:
            setattr(cfg, k, entry.defaults.get(k, v))
    validate(cfg)
    return cfg


def _check(ok: bool, option: str, value: Any, fix: str) -> None:
    if not ok:
        raise UserError(f"--{option.replace('_', '-')} {value!r}: {fix}")


def validate(cfg: TrainConfig) -> None:
    for name, allowed in CHOICES.items():
        v = getattr(cfg, name)
        _check(v in allowed, name, v, f"choose one of {', '.join(allowed)}")
    for name in ("epochs", "batch_size"):
        v = getattr(cfg, name)
        _check(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name, v, "must be a whole number >= 1")
    _check(isinstance(cfg.lr, (int, float)) and 0 < cfg.lr < 100, "lr", cfg.lr, "must be a number > 0, e.g. 0.001")
    _check(0 <= cfg.momentum < 1, "momentum", cfg.momentum, "must be in [0, 1)")
    _check(cfg.weight_decay >= 0, "weight_decay", cfg.weight_decay, "must be >= 0")
    _check(0 <= cfg.label_smoothing < 1, "label_smoothing", cfg.label_smoothing, "must be in [0, 1)")
    _check(0 <= cfg.val_split < 1, "val_split", cfg.val_split, "must be a fraction in [0, 1), e.g. 0.1")
    for name in ("limit", "eval_every", "checkpoint_every", "patience", "threads", "image_size"):
        v = getattr(cfg, name)
        _check(v is None or (isinstance(v, int) and v >= 1), name, v, "must be a whole number >= 1")
    if cfg.engine == "numpy" and cfg.device not in ("auto", "cpu"):
        raise UserError(f"--engine numpy runs on the CPU only; drop --device {cfg.device}")
    if cfg.engine == "numpy" and (cfg.precision == "bf16" or cfg.compile):
        flag = "--compile" if cfg.compile else "--precision bf16"
        raise UserError(f"--engine numpy computes in float32 NumPy; drop {flag}")
    if cfg.out is not None and Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise UserError(f"--out {cfg.out} is a file, not a directory: choose another --out")
