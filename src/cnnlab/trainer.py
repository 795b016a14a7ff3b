"""Training: the whole data set as tensors in memory, shuffled by index, checkpointed for exact resume.

`train()` is the Python API behind `cnnlab train`. Under `torchrun` it trains with DDP: every rank
draws the same global batch, computes the loss on its slice of it, and gradients are averaged, so a
global batch means the same at any world size; only rank 0 writes the run directory.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import rundir
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, load_config_file, resolve
from .data import channel_stats, load_data
from .distributed import agree, all_gather, broadcast, init_dist, reduce_sum, shard
from .engine import amp_dtype, autocast, check_compile, choose_threads, flip_batch, pick_device, prepare_model
from .errors import UserError
from .evaluate import classification_report, infer
from .models import create_model, get_entry
from .preprocess import normalize
from .recipe import augment_kind, make_optimizer, make_schedule, split_indices
from .run import Run
from .stopping import Interrupted, StopFlag
from .summary import format_summary
from .weights import ModelMeta, save_weights


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None, progress: bool | None = None,
          **overrides) -> Run:
    """Train a model; returns the finished `Run` (None on ranks other than 0). Keyword arguments are TrainConfig fields.

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
        # Read (safely) before the data: a corrupt or malicious checkpoint is refused within a second.
        # None: killed before its first checkpoint, so the run starts over in the same directory.
        ckpt_path = run_path / "checkpoints" / "last.pt"
        ckpt = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    else:
        ckpt = None
        cfg = replace(config) if config is not None else TrainConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise UserError(f"unknown training option {k!r}")
            setattr(cfg, k, v)
    source = cfg.model  # where the layers are read from: on resume, the run's own copy of a spec file
    copy = rundir.spec_copy(Path(cfg.out), cfg.model) if resume is not None else None
    if copy is not None and copy.is_file():  # the spec the run started with, even if edited or deleted since
        source = str(copy)
    cfg = resolve(cfg, source)
    if resume is None and cfg.out:
        rundir.check_new(Path(cfg.out))  # read-only, and before minutes of data loading
    device = pick_device(cfg.device)
    if cfg.compile:
        check_compile(device)  # before minutes of data loading and before the run directory exists
    rank, world, owns_group = init_dist(device)
    try:
        return _train(cfg, source, resume is not None, ckpt, rank, world, device, progress)
    finally:
        if owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(cfg: TrainConfig, source: str, resuming: bool, ckpt: dict | None, rank: int, world: int,
           device: torch.device, progress: bool | None) -> Run:
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and object collectives use the current device
    if cfg.engine == "numpy" and world > 1:
        raise UserError("--engine numpy trains in one process; run it without torchrun")

    # --- data: decoded once, split, normalised once (all before anything is written) ---
    data = load_data(cfg.data, cfg.data_dir, image_size=cfg.image_size)
    train_idx, val_idx = split_indices(data, cfg)
    mean, std = channel_stats(data.train.x[train_idx])
    entry_model = create_model(source, data.input_shape, len(data.classes))  # validates the spec early
    meta = ModelMeta(spec=entry_model.spec, input_shape=data.input_shape, classes=list(data.classes),
                     mean=mean, std=std, style=data.style, data=data.name)

    def prep(x_u8: torch.Tensor) -> torch.Tensor:
        return normalize(x_u8.float().div_(255), meta).to(device)

    xtr, ytr = prep(data.train.x[train_idx]), data.train.y[train_idx].to(device)
    xval, yval = prep(data.train.x[val_idx]), data.train.y[val_idx].to(device)
    if len(xtr) < 2:
        raise UserError(f"--data {cfg.data}: only {len(xtr)} training sample(s) after the split; need more data")

    # --- run directory: checked read-only first, then locked, then written (rank 0 only) ---
    out = Path(cfg.out) if cfg.out else rundir.default_run_dir(cfg.model, data.name)
    out = Path(broadcast(str(out), world))  # a timestamped default name must be the same on every rank
    cfg.out = str(out)
    is_writer = rank == 0
    with ExitStack() as stack:
        err = None
        if is_writer:
            try:
                if not resuming:
                    rundir.check_new(out)  # a finished run is refused before even its lock file is touched
                stack.enter_context(rundir.RunLock(out))
                if resuming:
                    rundir.remove_stale_temps(out)  # a SIGKILL mid-write leaves one; the old file is intact
                    rundir.make_subdirs(out)
                else:
                    rundir.prepare_new(out)
            except UserError as e:
                err = str(e)
        err = broadcast(err, world)  # every rank stops with rank 0's message rather than hang in a collective
        if err:
            raise UserError(err)
        stop = stack.enter_context(StopFlag(escalate=world == 1))
        # Thread count changes float summation order: a resumed run keeps the one it started with.
        saved_threads = ckpt["state"].get("threads") if ckpt else None
        torch.set_num_threads(saved_threads or choose_threads(cfg.threads))
        tb = None
        if cfg.tensorboard and is_writer:
            from .tensorboard import TensorBoardLogger

            # steps after the checkpoint are replayed (all of them when resumed before the first one)
            purge = ckpt["state"]["global_step"] + 1 if ckpt else (1 if resuming else None)
            tb = stack.enter_context(TensorBoardLogger(out / "tensorboard", purge_step=purge))
        try:
            return _fit(cfg, source, data, meta, (train_idx, val_idx), xtr, ytr, xval, yval, device, out, rank,
                        world, ckpt, stop, progress, tb)
        except OSError as e:  # ENOSPC, EIO, a read-only disk: the atomic writes left every earlier file intact
            raise UserError(f"{out}: cannot write the run directory ({e.strerror or e}); free disk space or fix "
                            f"permissions, then continue with `cnnlab train --resume {out}`") from None


def _finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def _fit(cfg, source, data, meta, split, xtr, ytr, xval, yval, device, out: Path, rank, world, ck, stop,
         progress, tb) -> Run:
    is_writer = rank == 0
    torch.manual_seed(cfg.seed)
    model = prepare_model(create_model(source, data.input_shape, len(data.classes)).to(device), device)
    # bf16 autocast where the hardware computes it natively (engine.amp_dtype); not for --engine numpy.
    # Like the thread count, a resumed run keeps the precision it started in (fp32 before it was recorded).
    amp = None if cfg.engine == "numpy" else amp_dtype(device, cfg.precision)
    if ck is not None and cfg.engine != "numpy":
        amp = torch.bfloat16 if ck["state"].get("precision", "fp32") == "bf16" else None
    amp = torch.bfloat16 if broadcast("bf16" if amp else "fp32", world) == "bf16" else None  # rank 0's, on every rank
    B = cfg.batch_size
    steps_per_epoch = len(xtr) // B + (1 if len(xtr) % B >= 2 else 0)  # drop a last batch of 1 (BatchNorm)
    total_steps = steps_per_epoch * cfg.epochs
    opt = make_optimizer(cfg, model.parameters())
    sched = make_schedule(cfg, opt, total_steps)
    eval_every = cfg.eval_every or max(10, math.ceil(steps_per_epoch / 2))  # each pass ~5 % of an epoch
    aug = augment_kind(cfg, data.style)
    train_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:  # the compiled wrapper shares the model's parameters; checkpoints save the plain model
        train_model = torch.compile(train_model)

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_val_accuracy": -1.0, "best_step": 0,
             "bad_epochs": 0, "early_stopped": False, "loss_sum": 0.0, "loss_count": 0, "rows": [],
             "train_seconds": 0.0, "threads": torch.get_num_threads(), "precision": "bf16" if amp else "fp32"}
    ckpt_path = out / "checkpoints" / "last.pt"
    saved_step = [None]  # global step of the newest checkpoint on disk, for the divergence message
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
        state.update(ck["state"])
        per_rank = ck.get("ranks") or []  # under DDP: each rank's own generators and running loss sum
        mine = per_rank[rank] if len(per_rank) == world else None
        set_rng_state(mine["rng"] if mine else ck["rng"])
        if per_rank:  # resumed at another world size, every rank takes the mean: the ranks' average is kept
            state["loss_sum"] = mine["loss_sum"] if mine else sum(p["loss_sum"] for p in per_rank) / len(per_rank)
        saved_step[0] = state["global_step"]
    elif is_writer:
        rundir.write_yaml(out / "config.yaml", cfg.to_dict())
        copy = rundir.spec_copy(out, cfg.model)
        if copy is not None:  # from `source`: a run resumed before its first checkpoint keeps its own copy
            rundir.write_yaml(copy, get_entry(source).as_spec_file())
        rundir.write_json(out / "split.json", {
            "val_split": cfg.val_split, "seed": cfg.seed, "limit": cfg.limit, "stratified": True,
            "train_indices": split[0].tolist(), "val_indices": split[1].tolist()})
        (out / "summary.txt").write_text(format_summary(model, title=f"{cfg.model} on {data.name}") + "\n")
    stepper = None
    if cfg.engine == "numpy":  # the NumPy engine does the steps; the torch model is synced at save points
        from .numpy_train import NumpyStepper

        stepper = NumpyStepper(model, cfg, cfg.seed)
        stepper.load_from(model, ck.get("numpy_optimizer") if ck is not None else None)

    def diverged(what: str) -> UserError:
        kept = (f"the last good checkpoint (step {saved_step[0]}) is kept in {ckpt_path}" if saved_step[0]
                is not None else "no checkpoint had been written yet")
        return UserError(f"training diverged: {what} at step {state['global_step']} (epoch {state['epoch'] + 1}); "
                         f"{kept}; start a new run with a lower --lr (now {cfg.lr})")

    def checkpoint():
        if not _finite(model):  # never let NaN weights replace the last good ones
            raise diverged("the weights became NaN/Inf")
        ranks = all_gather({"rng": rng_state(), "loss_sum": state["loss_sum"]}, world)  # what differs by rank
        if is_writer:
            save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict() if sched is not None else {},
                             "rng": ranks[0]["rng"], "ranks": ranks if world > 1 else [], "state": dict(state),
                             "numpy_optimizer": stepper.optimizer_state() if stepper is not None else {}},
                            ckpt_path)
            save_weights(model, meta, out / "last.safetensors")
        saved_step[0] = state["global_step"]

    def evaluate_point(epoch_float: float):
        if not _finite(model):
            raise diverged("the weights became NaN/Inf")
        loss_mean = reduce_sum([state["loss_sum"] / max(state["loss_count"], 1)], world, device)[0] / world
        vloss = vacc = None
        if len(yval):  # each rank scores its shard of the validation set; the sums are reduced
            xs, ys = shard(xval, rank, world), shard(yval, rank, world)
            with autocast(device, amp):
                logits = infer(model, xs) if len(ys) else None
            part = [0.0, 0.0] if logits is None else [F.cross_entropy(logits, ys, reduction="sum").item(),
                                                      (logits.argmax(1) == ys).sum().item()]
            total, correct = reduce_sum(part, world, device)
            vloss, vacc = total / len(yval), correct / len(yval)
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
        if tb is not None:
            tb.scalars(state["global_step"], row)
        return row

    show = is_writer and (progress if progress is not None else (sys.stderr.isatty() or _in_notebook()))
    t0 = time.perf_counter()
    model.train()
    loss_acc = torch.zeros((), device=device)  # summed on device: no .item() sync per step
    n_acc = 0
    for epoch in range(state["epoch"], cfg.epochs):
        # Checked at the top, so a run resumed from the checkpoint at an epoch's end stops here too.
        if cfg.patience and state["bad_epochs"] >= cfg.patience:
            state["early_stopped"] = True
            if is_writer:
                print(f"early stopping: no better validation accuracy for {cfg.patience} epoch(s)", flush=True)
            break
        perm = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        bar = tqdm(total=steps_per_epoch, initial=state["step_in_epoch"], desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="step", disable=not show, leave=True, dynamic_ncols=True)
        for s in range(state["step_in_epoch"], steps_per_epoch):
            idx = perm[s * B:(s + 1) * B].to(device)
            xb, yb = xtr[idx], ytr[idx]  # the global batch, the same on every rank
            if aug == "flip":
                xb = flip_batch(xb, torch.Generator().manual_seed(cfg.seed * 7_919 + state["global_step"]))
            if stepper is not None:
                loss = torch.tensor(stepper.step(xb, yb, opt.param_groups[0]["lr"]))
            else:
                with autocast(device, amp):
                    loss = _batch_loss(train_model, xb, yb, rank, world, cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if sched is not None:
                sched.step()
            loss_acc += loss.detach()
            n_acc += 1
            state["global_step"] += 1
            state["step_in_epoch"] = s + 1
            last = s + 1 == steps_per_epoch
            # counted within the epoch, so that twice per epoch means two points, not a third one a step
            # after the epoch's end when the epoch length is not a multiple of eval_every
            at_eval = (s + 1) % eval_every == 0 or last
            at_ckpt = bool(cfg.checkpoint_every) and state["global_step"] % cfg.checkpoint_every == 0
            stopping = False
            if device.type == "cpu" or world > 1 or at_eval or at_ckpt or stop.signal is not None:
                lv = loss_acc.item()  # on CPU this costs nothing: there is no async queue to drain
                # All ranks must agree, or one would leave while the others wait in an all-reduce.
                stopping, bad = agree([stop.signal is not None, not math.isfinite(lv)], world, device)
                if bad:
                    raise diverged(f"the loss became {lv}")
                state["loss_sum"] += lv
                state["loss_count"] += n_acc
                loss_acc.zero_()
                n_acc = 0
            if stepper is not None and (at_eval or at_ckpt or last or stopping):
                stepper.sync_to(model)
            if show and s % 20 == 0:
                bar.set_postfix(loss=f"{state['loss_sum'] / max(state['loss_count'], 1):.4f}", refresh=False)
            bar.update(1)
            if at_eval:
                row = evaluate_point(epoch + (s + 1) / steps_per_epoch)
                if show and row["val_accuracy"] is not None:
                    bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_acc=f"{100 * row['val_accuracy']:.2f}%")
            if last:
                state["epoch"], state["step_in_epoch"] = epoch + 1, 0
                improved = state["best_step"] > state["global_step"] - steps_per_epoch
                state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
                if is_writer and not show:
                    _print_epoch(state["rows"][-1], epoch, cfg.epochs)
                if cfg.tensorboard:  # every rank: the validation confusion matrix is reduced over them
                    cm = _val_confusion(model, xval, yval, rank, world, device, len(data.classes))
                    if tb is not None:
                        tb.epoch(state["global_step"], model, cm, list(data.classes))
            if at_ckpt or last or stopping:
                state["train_seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint()
            if stopping:
                bar.close()
                raise Interrupted(f"stopped at step {state['global_step']} (epoch {epoch + 1}); the state is "
                                  f"saved: resume with `cnnlab train --resume {out}`")
        bar.close()
    state["train_seconds"] += time.perf_counter() - t0
    return _finish(cfg, data, meta, model, out, state, device, is_writer, len(xtr), world)


def _batch_loss(model, xb, yb, rank: int, world: int, smoothing: float) -> torch.Tensor:
    """This process's loss on the global batch (xb, yb).

    One process: the batch mean. Under DDP, which averages gradients over ranks, each rank sums the
    loss over its slice and scales by world/B: (1/world) Σ_r (world/B) Σ_{i in r} ∇l_i = (1/B) Σ_i ∇l_i,
    the single-process gradient exactly (up to float rounding), even when slices differ in size.
    """
    if world == 1:
        return F.cross_entropy(model(xb), yb, label_smoothing=smoothing)
    n = len(yb)
    xs, ys, scale = shard(xb, rank, world), shard(yb, rank, world), world / n
    if len(ys) == 0:  # a last batch smaller than the world: join the all-reduce with weight 0
        xs, ys, scale = xb[:1], yb[:1], 0.0
    return F.cross_entropy(model(xs), ys, label_smoothing=smoothing, reduction="sum") * scale


def _val_confusion(model, xval, yval, rank: int, world: int, device, k: int) -> list[list[int]] | None:
    """The validation confusion matrix (rows = true class), each rank counting its shard."""
    if not len(yval):
        return None
    xs, ys = shard(xval, rank, world), shard(yval, rank, world)
    counts = [0] * (k * k)
    if len(ys):
        pred = infer(model, xs).argmax(1)
        counts = torch.bincount((ys * k + pred).cpu(), minlength=k * k).tolist()
    counts = reduce_sum(counts, world, device)
    return [[int(c) for c in counts[i * k:(i + 1) * k]] for i in range(k)]


def _print_epoch(r: dict, epoch: int, epochs: int) -> None:
    va = "" if r["val_accuracy"] is None else f"  val_loss {r['val_loss']:.4f}  val_acc {100 * r['val_accuracy']:.2f}%"
    print(f"epoch {epoch + 1}/{epochs}  train_loss {r['train_loss']:.4f}{va}  {r['seconds']:.1f}s", flush=True)


def _finish(cfg, data, meta, model, out: Path, state, device, is_writer, n_train: int, world: int) -> Run:
    """Test the best weights, write results, plots and the final weights; results.json goes last."""
    from .weights import load_weights

    if not is_writer:
        return None  # type: ignore[return-value]
    best_path = out / "best.safetensors"
    best = load_weights(best_path, device=str(device))[0] if best_path.exists() else model
    xte = normalize(data.test.x.float().div_(255), meta).to(device)
    report = classification_report(infer(best, xte), data.test.y, data.classes)
    results = {
        "test_accuracy": report["test_accuracy"], "test_loss": report["test_loss"],
        "best_val_accuracy": round(state["best_val_accuracy"], 6) if state["best_val_accuracy"] >= 0 else None,
        "best_step": state["best_step"], "epochs": state["epoch"], "steps": state["global_step"],
        "early_stopped": state["early_stopped"],
        "train_seconds": round(state["train_seconds"], 3), "params": sum(p.numel() for p in model.parameters()),
        "model": cfg.model, "data": data.name, "classes": data.classes, "device": str(device),
        "processes": world, "threads": state["threads"], "precision": state["precision"], "train_samples": n_train, "test_samples": report["test_samples"],
        "per_class": report["per_class"], "confusion_matrix": report["confusion_matrix"],
    }
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

