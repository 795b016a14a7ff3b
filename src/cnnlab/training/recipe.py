"""A training recipe's parts, from a resolved TrainConfig: which samples, the optimiser, the learning rate at
each step, and the augmentation. The trainer and `cnnlab lr-find` share them, so a range test sees the
samples and optimiser training will use.
"""

from __future__ import annotations

import math

import torch

from ..data import DataSet, stratified_split, stratified_subset
from ..errors import UserError
from .options import LONG_BUDGET_SECONDS, TrainConfig


def split_indices(data: DataSet, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified, seeded train/validation indices, then the stratified --limit subset of the train part."""
    y = data.train.y
    if cfg.val_split > 0:
        train_idx, val_idx = stratified_split(y, cfg.val_split, cfg.seed)
    else:
        train_idx, val_idx = torch.arange(len(y)), torch.arange(0)
    if cfg.limit is not None and cfg.limit < len(train_idx):
        if cfg.limit < len(data.classes):
            raise UserError(f"--limit {cfg.limit}: need at least one sample per class ({len(data.classes)})")
        train_idx = train_idx[stratified_subset(y[train_idx], cfg.limit, cfg.seed)]
    return train_idx, val_idx


# --optimizer -> (class name, the TrainConfig fields it takes). torch.optim and cnnlab.textbook.optim use the
# same class names and arguments, so one table serves both engines.
OPTIMIZERS = {"sgd": ("SGD", ("lr", "momentum", "weight_decay")),
              "adam": ("Adam", ("lr", "weight_decay")),
              "adamw": ("AdamW", ("lr", "weight_decay"))}


def make_optimizer(cfg: TrainConfig, params, library=torch.optim):
    """The optimiser `cfg` names, from `library` (torch.optim, or cnnlab.textbook.optim for --engine
    numpy)."""
    cls, args = OPTIMIZERS[cfg.optimizer]
    return getattr(library, cls)(params, **{a: getattr(cfg, a) for a in args})


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate for training step `step` (0-based) of `total_steps`.

    Numerically torch's schedulers: onecycle is OneCycleLR(max_lr=lr, pct_start=0.25, linear annealing,
    no momentum cycling): lr/25 rising to lr over the first quarter, then down to lr/25/1e4. cosine is
    CosineAnnealingLR(T_max=total_steps) in its closed form. Written as a function of the step (not a
    scheduler object stepping a torch optimiser) so that both engines follow one schedule, a resumed run
    needs only its step count, and a time budget can resize the schedule; tests/test_recipe.py checks
    every step against torch's own schedulers.
    """
    if cfg.schedule == "onecycle" and total_steps >= 8:  # shorter runs leave one-cycle no warm-up phase
        initial = cfg.lr / 25.0
        floor = initial / 1e4
        warm_end = float(0.25 * total_steps) - 1
        if step <= warm_end:
            return (cfg.lr - initial) * ((step - 0.0) / (warm_end - 0.0)) + initial
        return (floor - cfg.lr) * ((step - warm_end) / (total_steps - 1 - warm_end)) + cfg.lr
    if cfg.schedule == "cosine":
        return cfg.lr * (1 + math.cos(math.pi * step / total_steps)) / 2
    return cfg.lr


def augment_kind(cfg: TrainConfig, style: str) -> str:
    """"none", "flip", "shift", "flip-shift" or "photo"; `auto` picks by the data's style, and photo for a
    pretrained backbone."""
    if cfg.augment != "auto":
        return cfg.augment
    # Mirrored digits are other glyphs; mirrored clothes and photos are still the same class. Shifts pay
    # only in long runs (Fashion-MNIST, fastcnn: 93.60 % vs 93.37 % at --time 5m, 92.46 % vs 92.92 % at 2m).
    if style == "mnist":
        return "none"
    if cfg.pretrained:
        return "photo"
    return "flip-shift" if (cfg.budget_seconds or 0) >= LONG_BUDGET_SECONDS else "flip"


def tta_kind(cfg: TrainConfig, augment: str) -> str:
    """"none" or "flip": `auto` predicts from image and mirror image when training showed mirror images
    (measured on Fashion-MNIST; fine-tuned photo backbones keep one pass)."""
    if cfg.tta != "auto":
        return cfg.tta
    return "flip" if augment in ("flip", "flip-shift") else "none"


# Discriminative learning rates (fastai's `slice(lr / 100, lr)`): the head trains at --lr, the backbone's
# layer groups at rates spaced geometrically down to lr / LR_MULT for the earliest: its generic edge and
# texture detectors need the least change.
LR_MULT = 100


def parameter_groups(model: torch.nn.Module) -> list:
    """The optimiser's parameter groups: one per layer group of a pretrained backbone, each with the factor
    `lr_scale` that the stepper applies to the step's learning rate; all parameters at once otherwise."""
    groups = model.layer_groups() if hasattr(model, "layer_groups") else None
    if groups is None:
        return list(model.parameters())
    n = len(groups)
    return [{"params": g, "lr_scale": LR_MULT ** (-(n - 1 - i) / (n - 1))} for i, g in enumerate(groups)]


def class_weights(y: torch.Tensor, num_classes: int, kind: str) -> torch.Tensor | None:
    """--class-weights auto: each class's loss weighted by N / (K · n_class) over the training split (as
    scikit-learn's class_weight="balanced"), so every class counts as much in total; None for "none"."""
    if kind == "none":
        return None
    counts = torch.bincount(y.cpu(), minlength=num_classes).double().clamp_min(1)
    return (counts.sum() / (num_classes * counts)).float()
