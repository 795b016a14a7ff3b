"""The learning-rate range test (Smith 2015, "Cyclical Learning Rates"; fastai's `lr_find`).

Train a throw-away copy of the model for a few hundred steps while the learning rate grows
exponentially from tiny to huge, and record the loss. Too small a rate: the loss barely moves. Too
large: it explodes. The suggestion is where the smoothed loss falls fastest per decade of learning rate
(the steepest descent), a rate that still learns quickly before instability sets in.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import channel_stats, load_data, normalize
from ..errors import UserError
from ..files import atomic_write_text
from ..models import ModelMeta, create_model
from ..viz.lr_find import plot_lr_find
from .config import resolve
from .options import TrainConfig
from .recipe import make_optimizer, split_indices
from .runtime import pick_device

HOW = ("steepest descent: the learning rate where the smoothed loss falls fastest per decade "
       "(most negative d loss / d log10 lr), looked for between the start of the sweep and the loss minimum")


@dataclass
class LRFindResult:
    lrs: list[float]  # learning rate used at each step
    losses: list[float]  # raw training loss of each step's batch
    smoothed: list[float]  # centred moving average of the loss (no lag, unlike a running average)
    suggestion: float  # the learning rate to use
    suggestion_step: int
    min_loss_lr: float  # where the smoothed loss was lowest (a rate ~10x below it is the other common rule)
    how: str  # how the suggestion was chosen, in words
    stopped: str  # why the sweep ended
    plot: Path | None = None


def lr_range_test(model: nn.Module, x: torch.Tensor, y: torch.Tensor, make_optimizer, start_lr: float = 1e-6,
                  end_lr: float = 10.0, steps: int = 200, batch_size: int = 128, diverge: float = 4.0,
                  seed: int = 0) -> LRFindResult:
    """Sweep the learning rate exponentially over `steps` batches on a deep copy of `model` (left untouched).

    `make_optimizer(params, lr)` builds the optimiser; x are normalised inputs (N, C, H, W) on the model's
    device, y their labels. The sweep stops early when the smoothed loss exceeds `diverge` x its minimum.
    """
    if not 0 < start_lr < end_lr:
        raise UserError(f"--start-lr {start_lr} / --end-lr {end_lr}: need 0 < start < end, e.g. 1e-6 and 10")
    if steps < 20:
        raise UserError(f"--steps {steps}: the range test needs at least 20 steps (a few hundred is usual)")
    net = copy.deepcopy(model).train()
    opt = make_optimizer(net.parameters(), start_lr)
    gen = torch.Generator().manual_seed(seed)
    perm, pos = torch.randperm(len(x), generator=gen), 0
    lrs, losses = [], []
    avg, best, stopped = 0.0, math.inf, f"reached the end of the sweep ({end_lr:g})"
    for i in range(steps):
        lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
        for g in opt.param_groups:
            g["lr"] = lr
        if pos + batch_size > len(perm):  # a new epoch over the data: reshuffle
            perm, pos = torch.randperm(len(x), generator=gen), 0
        idx = perm[pos:pos + batch_size].to(x.device)
        pos += batch_size
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        if not math.isfinite(value):
            stopped = f"the loss became {value} at lr {lr:.2g}"
            break
        # Divergence is judged online on a running average (bias-corrected: it starts at 0); it lags, which
        # is harmless for stopping but would shift the suggestion, so that uses a centred average below.
        avg = 0.9 * avg + 0.1 * value
        sm = avg / (1 - 0.9 ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        best = min(best, sm)
        if i >= 10 and sm > diverge * best:
            stopped = f"diverged at lr {lr:.2g} (smoothed loss > {diverge:g}x its minimum)"
            break
    if len(lrs) < 10:
        raise UserError(f"the loss diverged within {len(lrs)} steps of the sweep ({stopped}); "
                        "lower --start-lr")
    smoothed = smooth(losses)
    step, min_step = suggest(lrs, smoothed)
    return LRFindResult(lrs, losses, smoothed, lrs[step], step, lrs[min_step], HOW, stopped)


def smooth(losses: list[float], width: int | None = None) -> list[float]:
    """Centred moving average over `width` steps (default ~1/25 of the sweep, odd), shrinking at the ends."""
    n = len(losses)
    width = width or max(5, n // 25) | 1
    kernel = np.ones(width)
    total = np.convolve(losses, kernel, mode="same")
    count = np.convolve(np.ones(n), kernel, mode="same")
    return (total / count).tolist()


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[int, int]:
    """(steepest-descent step, minimum-loss step) on the smoothed curve."""
    s = np.asarray(smoothed)
    slope = np.gradient(s, np.log10(lrs))  # d loss / d log10(lr)
    min_step = int(s.argmin())
    skip = min(5, len(s) // 10)  # the very first steps are averaged over fewer batches: noisier
    lo, hi = skip, max(min_step, skip + 1)
    return lo + int(slope[lo:hi].argmin()), min_step


def lr_find(config: TrainConfig | None = None, *, start_lr: float = 1e-6, end_lr: float = 10.0,
            steps: int = 200, out: str | Path | None = None, **overrides) -> LRFindResult:
    """Range test for a model on a data set, prepared exactly as `cnnlab train` prepares them.

    `config` (or TrainConfig fields as keyword arguments) names the model, data, optimiser, batch size,
    --limit and seed; the plot and a CSV go to `out` (default runs/lr-find-<model>-<data>)."""
    cfg = resolve(replace(config or TrainConfig(), **overrides))
    dev = pick_device(cfg.device)
    ds = load_data(cfg.data, cfg.data_dir, image_size=cfg.image_size)
    train_idx, _ = split_indices(ds, cfg)  # the same stratified split (and --limit subset) training would use
    mean, std = channel_stats(ds.train.x[train_idx])
    meta = ModelMeta(spec={}, input_shape=ds.input_shape, classes=list(ds.classes), mean=mean, std=std)
    x = normalize(ds.train.x[train_idx].float().div_(255), meta).to(dev)
    y = ds.train.y[train_idx].to(dev)
    torch.manual_seed(cfg.seed)
    net = create_model(cfg.model, ds.input_shape, len(ds.classes)).to(dev)
    result = lr_range_test(net, x, y, lambda params, lr: make_optimizer(replace(cfg, lr=lr), params),
                           start_lr, end_lr, steps, min(cfg.batch_size, len(x)), seed=cfg.seed)
    data_name = Path(ds.name.rstrip("/")).name
    out_dir = Path(out) if out is not None else Path("runs") / f"lr-find-{Path(cfg.model).stem}-{data_name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(result, out_dir / "lr_find.csv")
    result.plot = plot_lr_find(result, out_dir / "lr_find.png",
                               title=f"{Path(cfg.model).stem} on {data_name}, {cfg.optimizer}, "
                                     f"batch {cfg.batch_size}")
    return result


def _write_csv(r: LRFindResult, path: Path) -> None:
    rows = ["step,lr,loss,smoothed_loss"] + [f"{i},{lr:.6e},{lo:.6f},{s:.6f}"
                                             for i, (lr, lo, s)
                                             in enumerate(zip(r.lrs, r.losses, r.smoothed))]
    atomic_write_text(path, "\n".join(rows) + "\n")
