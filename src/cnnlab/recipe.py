"""A training recipe's parts, from a resolved TrainConfig: which samples, optimiser, schedule, augmentation.

The trainer and `cnnlab lr-find` share them, so a range test sees the samples and optimiser training
will use (it steps in float32; training may use bf16 autocast, engine.amp_dtype).
"""

from __future__ import annotations

import torch

from .config import TrainConfig
from .data import DataSet, stratified_split, stratified_subset
from .errors import UserError


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


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_schedule(cfg: TrainConfig, opt: torch.optim.Optimizer, total_steps: int):
    """The per-step learning-rate schedule, or None for a constant rate."""
    if cfg.schedule == "onecycle" and total_steps >= 8:  # shorter runs leave one-cycle no warm-up phase
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.25,
                                                   anneal_strategy="linear", cycle_momentum=False)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return None


def augment_kind(cfg: TrainConfig, style: str) -> str:
    """"none" or "flip"; `auto` picks by the data's style."""
    if cfg.augment != "auto":
        return cfg.augment
    # Mirrored digits are other glyphs; mirrored clothes and photos are still the same class.
    return "none" if style == "mnist" else "flip"
