"""Training: the whole data set as tensors in memory, shuffled by index, checkpointed for exact resume.

`train()` is the Python API behind `cnnlab train`. Under `torchrun` it trains with DDP: each rank takes
its slice of every global batch, gradients are averaged, only rank 0 writes the run directory.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import rundir
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, load_config_file, resolve
from .data import channel_stats, load_data, stratified_split, stratified_subset
from .engine import choose_threads, flip_batch, pick_device
from .errors import UserError
from .evaluate import classification_report, infer, loss_and_accuracy
from .models import create_model
from .preprocess import normalize
from .run import Run
from .summary import format_summary
from .weights import ModelMeta, save_weights


class Interrupted(Exception):
    """Ctrl-C / SIGTERM: the state was saved; the message says how to resume."""


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def _make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _make_schedule(cfg: TrainConfig, opt, total_steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.25,
                                                   anneal_strategy="linear", cycle_momentum=False)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return None


def _dist() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1); starts the process group once."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def _augment_kind(cfg: TrainConfig, style: str) -> str:
    if cfg.augment != "auto":
        return cfg.augment
    # Mirrored digits are other glyphs; mirrored clothes and photos are still the same class.
    return "none" if style == "mnist" else "flip"


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked after each step, so the step finishes and state is saved."""

    def __init__(self):
        self.signal: int | None = None
        self._old = {}

    def __enter__(self):
        if threading_main():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None, progress: bool | None = None,
          **overrides) -> Run:
    """Train a model; returns the finished `Run`. Keyword arguments are TrainConfig fields.

    >>> run = cnnlab.train(model="lenet5", data="fashion-mnist", epochs=1, limit=5000)
    >>> run.results["test_accuracy"]
    """
    if resume is not None:
        run_path = Path(resume)
        if not (run_path / "config.yaml").is_file():
            raise UserError(f"--resume {run_path}: not a cnnlab run directory (no config.yaml)")
        if rundir.is_finished(run_path):
            raise UserError(f"--resume {run_path}: that run already finished; start a new one with --out")
        cfg = TrainConfig(**load_config_file(run_path / "config.yaml"))
        cfg.out = str(run_path)
    else:
        cfg = replace(config) if config is not None else TrainConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise UserError(f"unknown training option {k!r}")
            setattr(cfg, k, v)
    cfg = resolve(cfg)
    rank, world = _dist()
    if cfg.batch_size % world:
        raise UserError(f"--batch-size {cfg.batch_size} must divide evenly over {world} processes")
    torch.set_num_threads(choose_threads(cfg.threads))
    device = pick_device(cfg.device)
    if cfg.engine == "numpy":
        from .numpy_train import check_numpy_config

        check_numpy_config(cfg)

    # --- data: decoded once, split, normalised once (all before anything is written) ---
    data = load_data(cfg.data, cfg.data_dir, image_size=cfg.image_size)
    train_idx, val_idx = _split(data, cfg)
    mean, std = channel_stats(data.train.x[train_idx])
    entry_model = create_model(cfg.model, data.input_shape, len(data.classes))  # validates the spec early
    meta = ModelMeta(spec=entry_model.spec, input_shape=data.input_shape, classes=list(data.classes),
                     mean=mean, std=std, style=data.style, data=data.name)

    def prep(x_u8: torch.Tensor) -> torch.Tensor:
        return normalize(x_u8.float().div_(255), meta).to(device)

    xtr, ytr = prep(data.train.x[train_idx]), data.train.y[train_idx].to(device)
    xval, yval = prep(data.train.x[val_idx]), data.train.y[val_idx].to(device)
    if len(xtr) < 2:
        raise UserError(f"--data {cfg.data}: only {len(xtr)} training sample(s) after the split; need more data")

    # --- run directory ---
    out = Path(cfg.out) if cfg.out else rundir.default_run_dir(cfg.model, data.name)
    cfg.out = str(out)
    is_writer = rank == 0
    if is_writer:
        if resume is None:
            rundir.prepare_new(out)
        lock = rundir.RunLock(out)
    else:
        lock = nullcontext()
    with lock, _StopFlag() as stop:
        return _fit(cfg, data, meta, (train_idx, val_idx), xtr, ytr, xval, yval, device, out, rank, world,
                    is_writer, resume is not None, stop, progress)


def _fit(cfg, data, meta, split, xtr, ytr, xval, yval, device, out: Path, rank, world, is_writer, resuming, stop,
         progress) -> Run:
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, data.input_shape, len(data.classes)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    B = cfg.batch_size
    steps_per_epoch = len(xtr) // B + (1 if len(xtr) % B >= 2 else 0)  # drop a last batch of 1 (BatchNorm)
    total_steps = steps_per_epoch * cfg.epochs
    opt = _make_optimizer(cfg, model.parameters())
    sched = _make_schedule(cfg, opt, total_steps)
    eval_every = cfg.eval_every or max(10, math.ceil(steps_per_epoch / 5))
    aug = _augment_kind(cfg, data.style)
    train_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_val_accuracy": -1.0, "best_step": 0,
             "bad_epochs": 0, "loss_sum": 0.0, "loss_count": 0, "rows": [], "train_seconds": 0.0}
    ckpt_path = out / "checkpoints" / "last.pt"
    if resuming:
        ck = load_checkpoint(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
        set_rng_state(ck["rng"])
        state.update(ck["state"])
    elif is_writer:
        rundir.write_yaml(out / "config.yaml", cfg.to_dict())
        rundir.write_json(out / "split.json", {
            "val_split": cfg.val_split, "seed": cfg.seed, "limit": cfg.limit, "stratified": True,
            "train_indices": split[0].tolist(), "val_indices": split[1].tolist()})
        (out / "summary.txt").write_text(format_summary(model, title=f"{cfg.model} on {data.name}") + "\n")

    def checkpoint():
        if not is_writer:
            return
        save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict() if sched is not None else {},
                         "rng": rng_state(), "state": dict(state)}, ckpt_path)
        save_weights(model, meta, out / "last.safetensors")

    def evaluate_point(epoch_float: float):
        loss_mean = state["loss_sum"] / max(state["loss_count"], 1)
        if world > 1:
            import torch.distributed as dist

            t = torch.tensor([loss_mean], dtype=torch.float64, device=device)
            dist.all_reduce(t)
            loss_mean = t.item() / world
        vloss, vacc = loss_and_accuracy(infer(model, xval), yval) if len(yval) else (None, None)
        row = {"step": state["global_step"], "epoch": round(epoch_float, 4), "train_loss": round(loss_mean, 6),
               "val_loss": None if vloss is None else round(vloss, 6),
               "val_accuracy": None if vacc is None else round(vacc, 6),
               "lr": opt.param_groups[0]["lr"], "seconds": round(state["train_seconds"] + time.perf_counter() - t0, 3)}
        state["rows"].append(row)
        state["loss_sum"], state["loss_count"] = 0.0, 0
        score = vacc if vacc is not None else -loss_mean
        if score > state["best_val_accuracy"]:
            state["best_val_accuracy"], state["best_step"] = score, state["global_step"]
            if is_writer:
                save_weights(model, meta, out / "best.safetensors")
        if is_writer:
            rundir.write_metrics(out / "metrics.csv", state["rows"])
        return row

    show = is_writer and (progress if progress is not None else (sys.stderr.isatty() or _in_notebook()))
    t0 = time.perf_counter()
    model.train()
    loss_acc = torch.zeros((), device=device)  # summed on device: no .item() sync per step
    n_acc = 0
    for epoch in range(state["epoch"], cfg.epochs):
        perm = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        bar = tqdm(total=steps_per_epoch, initial=state["step_in_epoch"], desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="step", disable=not show, leave=True, dynamic_ncols=True)
        for s in range(state["step_in_epoch"], steps_per_epoch):
            idx = perm[s * B:(s + 1) * B]
            if world > 1:
                idx = idx.chunk(world)[rank] if len(idx) >= world else idx
            idx = idx.to(device)
            xb, yb = xtr[idx], ytr[idx]
            if aug == "flip":
                xb = flip_batch(xb, torch.Generator().manual_seed(cfg.seed * 7_919 + state["global_step"]))
            logits = train_model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            # Under DDP each rank's mean is over its slice; gradients are averaged over ranks -> global mean.
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            loss_acc += loss.detach()
            n_acc += 1
            state["global_step"] += 1
            state["step_in_epoch"] = s + 1
            at_eval = state["global_step"] % eval_every == 0 or s + 1 == steps_per_epoch
            at_ckpt = cfg.checkpoint_every and state["global_step"] % cfg.checkpoint_every == 0
            if device.type == "cpu" or at_eval or at_ckpt or stop.signal:
                lv = loss_acc.item()  # on CPU this costs nothing: there is no async queue to drain
                if not math.isfinite(lv):
                    raise UserError(f"training diverged: the loss became {lv} at step {state['global_step']} "
                                    f"(epoch {epoch + 1}); lower --lr (now {cfg.lr}). The last good checkpoint "
                                    f"is kept in {out / 'checkpoints'}")
                state["loss_sum"] += lv
                state["loss_count"] += n_acc
                loss_acc.zero_()
                n_acc = 0
            if show and s % 20 == 0:
                bar.set_postfix(loss=f"{state['loss_sum'] / max(state['loss_count'], 1):.4f}", refresh=False)
            bar.update(1)
            if at_eval:
                row = evaluate_point(epoch + (s + 1) / steps_per_epoch)
                if show and row["val_accuracy"] is not None:
                    bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_acc=f"{100 * row['val_accuracy']:.2f}%")
            if s + 1 == steps_per_epoch:
                state["epoch"], state["step_in_epoch"] = epoch + 1, 0
                rows = [r for r in state["rows"] if r["epoch"] > epoch]
                improved = state["best_step"] > state["global_step"] - steps_per_epoch
                state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
                if is_writer and not show:
                    r = rows[-1]
                    va = "" if r["val_accuracy"] is None else f"  val_loss {r['val_loss']:.4f}  " \
                                                              f"val_acc {100 * r['val_accuracy']:.2f}%"
                    print(f"epoch {epoch + 1}/{cfg.epochs}  train_loss {r['train_loss']:.4f}{va}  "
                          f"{r['seconds']:.1f}s", flush=True)
            if at_ckpt or s + 1 == steps_per_epoch or stop.signal:
                state["train_seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint()
            if stop.signal:
                bar.close()
                raise Interrupted(f"stopped at step {state['global_step']} (epoch {epoch + 1}); the state is "
                                  f"saved: resume with `cnnlab train --resume {out}`")
        bar.close()
        if cfg.patience and state["bad_epochs"] >= cfg.patience:
            if is_writer:
                print(f"early stopping: no better validation accuracy for {cfg.patience} epoch(s)", flush=True)
            break
    state["train_seconds"] += time.perf_counter() - t0
    return _finish(cfg, data, meta, model, out, state, device, is_writer, len(xtr))


def _split(data, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
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


def _finish(cfg, data, meta, model, out: Path, state, device, is_writer, n_train: int) -> Run:
    """Test the best weights, write results, plots and the final weights; results.json goes last."""
    from .weights import load_weights

    best_path = out / "best.safetensors"
    if is_writer and best_path.exists():
        best, _ = load_weights(best_path, device=str(device))
    else:
        best = model
    xte = normalize(data.test.x.float().div_(255), meta).to(device)
    report = classification_report(infer(best, xte), data.test.y, data.classes)
    results = {
        "test_accuracy": report["test_accuracy"], "test_loss": report["test_loss"],
        "best_val_accuracy": state["best_val_accuracy"] if state["best_val_accuracy"] >= 0 else None,
        "best_step": state["best_step"], "epochs": state["epoch"], "steps": state["global_step"],
        "train_seconds": round(state["train_seconds"], 3), "params": sum(p.numel() for p in model.parameters()),
        "model": cfg.model, "data": data.name, "classes": data.classes, "device": str(device),
        "train_samples": n_train, "test_samples": report["test_samples"],
        "per_class": report["per_class"], "confusion_matrix": report["confusion_matrix"],
    }
    if not is_writer:
        return None  # type: ignore[return-value]
    meta.extra = {"test_accuracy": results["test_accuracy"]}
    save_weights(model, meta, out / "last.safetensors")
    save_weights(best, meta, best_path)
    from .plots import save_confusion, save_curves

    save_curves(state["rows"], out / "plots", title=Path(cfg.model).stem)
    save_confusion(results["confusion_matrix"], data.classes, out / "plots" / "confusion_matrix.png",
                   title=Path(cfg.model).stem)
    rundir.write_json(out / "results.json", results)
    run = Run(out)
    if cfg.report:
        from .report import write_report

        write_report(run)
    return run
