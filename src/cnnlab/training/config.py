"""A training run's configuration resolved: the options (options.py) filled from a YAML file, the model's
own defaults and the built-in ones, then checked, every value against its declared check.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..models import BACKBONES, TRAIN_DEFAULTS, get_entry
from .options import (
    DEFAULT_BACKBONE,
    DEFAULT_MODEL,
    SHORT_BUDGET_MODEL,
    SHORT_BUDGET_SECONDS,
    TrainConfig,
    field_names,
    flag,
)

__all__ = ["TrainConfig", "default_model", "load_config_file", "resolve", "validate"]

HEAD_EPOCHS = 20  # --head-epochs' default: a linear head on cached features converges by then, in seconds


def load_config_file(path: str | Path) -> dict:
    """A YAML file of TrainConfig fields (dashes or underscores), e.g. a run's own config.yaml."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config {path}: no such file")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]}); "
                        "fix the syntax") from None
    if not isinstance(d, dict):
        raise UserError(f"--config {path}: expected a mapping of option: value")
    d = {k.replace("-", "_"): v for k, v in d.items()}
    unknown = sorted(set(d) - set(field_names()))
    if unknown:
        raise UserError(f"--config {path}: unknown option(s) {', '.join(unknown)}; "
                        f"known: {', '.join(field_names())}")
    return d


def resolve(cfg: TrainConfig, source: str | None = None) -> TrainConfig:
    """Fill every None the model may set with the model's default, then the built-in one, and check it all.

    `source`: where to read the model from when not `cfg.model` (a resumed run's copy of its spec file)."""
    default_model(cfg)
    entry = get_entry(source or cfg.model)
    if cfg.pretrained and not entry.backbone:
        raise UserError(f"--pretrained: {cfg.model} has no pretrained weights; fine-tune one of "
                        f"{', '.join(BACKBONES)} (--pretrained alone takes {DEFAULT_BACKBONE}), or drop "
                        "--pretrained to train it from scratch")
    if entry.backbone and not cfg.pretrained:
        raise UserError(f"--model {cfg.model} is an ImageNet backbone: add --pretrained to fine-tune it")
    for k, v in TRAIN_DEFAULTS.items():
        if k == "epochs" and cfg.time is not None:
            continue  # a time budget sizes the schedule; --epochs given beside it only caps it
        if getattr(cfg, k) is None:
            setattr(cfg, k, entry.defaults.get(k, v))
    if cfg.pretrained:  # the backbone's own resolution, stored in config.yaml so eval and serve decode alike
        cfg.image_size = cfg.image_size or BACKBONES[entry.backbone].size
        cfg.head_epochs = HEAD_EPOCHS if cfg.head_epochs is None else cfg.head_epochs
    validate(cfg)
    return cfg


def default_model(cfg: TrainConfig) -> TrainConfig:
    """--model left out: fastcnn (fastcnn-small for a budget under 45 s), or with --pretrained (or
    --weights, which implies it) the offline backbone."""
    if cfg.weights:
        cfg.pretrained = True
    if cfg.model is None:
        short = cfg.budget_seconds is not None and cfg.budget_seconds < SHORT_BUDGET_SECONDS
        cfg.model = DEFAULT_BACKBONE if cfg.pretrained else SHORT_BUDGET_MODEL if short else DEFAULT_MODEL
    return cfg


def _fail(name: str, value: Any, fix: str) -> UserError:
    return UserError(f"{flag(name)} {value!r}: {fix}")


def validate(cfg: TrainConfig) -> None:
    """Each value against its field's choices and check, then the combinations that cannot work."""
    for f in fields(TrainConfig):
        value, choices, check = getattr(cfg, f.name), f.metadata["choices"], f.metadata["check"]
        if choices and value not in choices and not (value is None and f.name in TRAIN_DEFAULTS):
            raise _fail(f.name, value, f"choose one of {', '.join(choices)}")
        if check and not check[0](value):
            raise _fail(f.name, value, check[1])
    if cfg.engine == "numpy" and cfg.device not in ("auto", "cpu"):
        raise UserError(f"--engine numpy runs on the CPU only; drop --device {cfg.device}")
    if cfg.engine == "numpy" and cfg.pretrained:
        raise UserError("--engine numpy trains layer-list models only, not a pretrained backbone: drop "
                        "--engine numpy (or --pretrained)")
    if cfg.engine == "numpy" and cfg.class_weights != "none":
        raise UserError("--engine numpy computes the plain cross-entropy: drop --class-weights "
                        f"{cfg.class_weights} (or --engine numpy)")
    if cfg.engine == "numpy" and (cfg.precision == "bf16" or cfg.compile):
        raise UserError(f"--engine numpy computes in float32 NumPy; "
                        f"drop {'--compile' if cfg.compile else '--precision bf16'}")
    if cfg.out is not None and Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise UserError(f"--out {cfg.out} is a file, not a directory: choose another --out")
