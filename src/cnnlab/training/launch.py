"""`train()`: from options to a finished run directory. Reads the config (or a run to resume), loads the data,
opens and locks the run directory, builds the model, its stepper and the callbacks, runs the Trainer, and
finishes the run.

Under `torchrun` it trains with DDP: every rank draws the same global batch, computes the loss on its
slice of it, and gradients are averaged, so a global batch means the same at any world size; only
rank 0 writes the run directory.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed

from ..data import DataSet, channel_stats, load_data, normalize
from ..data.channels import as_colour
from ..errors import UserError
from ..files import write_json, write_yaml
from ..models import (
    BACKBONES,
    ModelMeta,
    channels_last,
    create_model,
    format_summary,
    get_entry,
    imagenet_body_state,
)
from ..viz.augment import augment_figure
from ..viz.figures import save_figure
from . import rundir
from .augment import augment_batch
from .callbacks import (
    BestWeights,
    Callback,
    Checkpointer,
    DivergenceGuard,
    EarlyStopping,
    MetricsCSV,
    Progress,
    TensorBoard,
    ThreadPolicy,
    TimeBudget,
)
from .checkpoint import load_checkpoint, set_rng_state
from .config import default_model, load_config_file, resolve
from .distributed import broadcast, init_dist
from .finetune import HeadFirst
from .finish import finish_run
from .options import TrainConfig
from .recipe import augment_kind, class_weights, split_indices, tta_kind
from .runtime import adaptive_threads, amp_dtype, check_compile, choose_threads, pick_device
from .state import TrainState
from .steppers import NumpyStepper, TorchStepper
from .stopping import StopFlag
from .trainer import Dist, TrainData, Trainer


@dataclass
class Launch:
    """What one session of a run starts from."""

    cfg: TrainConfig  # resolved
    source: str  # where the model's layers are read from: the name, the spec file, or a run's own copy
    ckpt: dict | None  # the checkpoint a resumed run continues from (None: from the start)
    resuming: bool
    progress: bool | None  # a progress bar (True), epoch lines (False), or decide by the terminal (None)
    started_at: float  # time.monotonic() when the user started it: a --time budget counts from there
    adaptive: int | None = None  # the thread count to try besides one (runtime.adaptive_threads), if any
    imagenet: dict | None = None  # a pretrained backbone's ImageNet weights, for a new run


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          progress: bool | None = None, started_at: float | None = None, **overrides) -> Path | None:
    """Train a model; the finished run's directory, or None on ranks other than 0 under torchrun.

    Keyword arguments are TrainConfig fields; `resume` continues an interrupted run instead.
    `started_at` (time.monotonic()): when the user started it, if before this call (a --time budget)."""
    started_at = time.monotonic() if started_at is None else started_at
    cfg, source, ckpt = configure(config, resume, overrides)
    device = pick_device(cfg.device)
    if cfg.compile:
        check_compile(device)  # before minutes of data loading and before the run directory exists
    rank, world, owns_group = init_dist(device)
    try:
        return _launch(Launch(cfg, source, ckpt, resume is not None, progress, started_at),
                       Dist(rank, world, device))
    finally:
        if owns_group:
            torch.distributed.destroy_process_group()


def configure(config: TrainConfig | None, resume: str | Path | None, overrides: dict
              ) -> tuple[TrainConfig, str, dict | None]:
    """(the resolved config, where to read the model from, the checkpoint to resume from or None)."""
    ckpt = None
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
        cfg = replace(config) if config is not None else TrainConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise UserError(f"unknown training option {k!r}")
            setattr(cfg, k, v)
    source = default_model(cfg).model  # where the layers are read from: on resume, the run's spec copy
    copy = rundir.spec_copy(Path(cfg.out), cfg.model) if resume is not None else None
    if copy is not None and copy.is_file():  # the spec the run started with, even if edited or deleted since
        source = str(copy)
    cfg = resolve(cfg, source)
    if resume is None and cfg.out:
        rundir.check_new(Path(cfg.out))  # read-only, and before minutes of data loading
    return cfg, source, ckpt


def _launch(launch: Launch, dist: Dist) -> Path | None:
    cfg, source, ckpt = launch.cfg, launch.source, launch.ckpt
    if dist.device.type == "cuda":
        torch.cuda.set_device(dist.device)  # NCCL and object collectives use the current device
    if cfg.engine == "numpy" and dist.world > 1:
        raise UserError("--engine numpy trains in one process; run it without torchrun")
    # A backbone's ImageNet weights before the data: an offline machine says so within a second, before
    # anything is written. A resumed run has every weight in its checkpoint.
    if cfg.pretrained and ckpt is None:
        launch.imagenet = imagenet_body_state(cfg.model, cfg.weights)
    # --- data: decoded once, split, normalised once (all before anything is written) ---
    data = load_data(cfg.data, cfg.data_dir, image_size=cfg.image_size, bad_images=cfg.bad_images)
    if cfg.pretrained:
        as_colour(data)  # a folder of grey photos, for a backbone that takes RGB
    split = split_indices(data, cfg)
    # A backbone sees images normalised as in its ImageNet training; a new model, as its own data is.
    mean, std = ([list(BACKBONES[cfg.model].mean), list(BACKBONES[cfg.model].std)] if cfg.pretrained
                 else channel_stats(data.train.x[split[0]]))
    entry_model = create_model(source, data.input_shape, len(data.classes))  # checks the spec fits the data
    augment = augment_kind(cfg, data.style)
    meta = ModelMeta(spec=entry_model.spec, input_shape=data.input_shape, classes=list(data.classes),
                     mean=mean, std=std, style=data.style, data=data.name, tta=tta_kind(cfg, augment))
    tensors = _tensors(data, split, meta, dist.device, augment, len(data.test))
    tensors.class_weights = class_weights(tensors.y, len(data.classes), cfg.class_weights)
    if len(tensors.x) < 2:
        raise UserError(f"--data {cfg.data}: only {len(tensors.x)} training sample(s) after the split; "
                        "need more data")
    out = Path(cfg.out) if cfg.out else rundir.default_run_dir(cfg.model, data.name)
    out = Path(broadcast(str(out), dist.world))  # a timestamped default name must be the same on every rank
    cfg.out = str(out)
    with ExitStack() as stack:
        _open_run_dir(out, launch.resuming, dist, stack)
        stop = stack.enter_context(StopFlag(escalate=dist.world == 1))
        # Thread count changes float summation order: a resumed run keeps the one it started with.
        saved_threads = ckpt["state"].get("threads") if ckpt else None
        torch.set_num_threads(saved_threads or choose_threads(cfg.threads))
        if not saved_threads:  # a new run, or one that started under the adaptive policy (threads 0)
            launch.adaptive = adaptive_threads(cfg.threads, dist.device, dist.world, cfg.engine)
        try:
            trainer = _trainer(launch, meta, tensors, dist, out, stop)
            if ckpt is None and dist.is_writer:
                _start_run_dir(trainer, source, split, data)
            try:
                trainer.fit()
            finally:
                trainer.stepper.close()
            if not dist.is_writer:
                return None
            finish_run(trainer, data, len(tensors.x))
            return out
        except OSError as e:
            # ENOSPC, EIO, a read-only disk: the atomic writes left every earlier file intact
            raise UserError(f"{out}: cannot write the run directory ({e.strerror or e}); free disk space or "
                            f"fix permissions, then continue with `cnnlab train --resume {out}`") from None


def _tensors(data: DataSet, split: tuple[torch.Tensor, torch.Tensor], meta: ModelMeta, device: torch.device,
             augment: str, test_samples: int) -> TrainData:
    def prep(x_u8: torch.Tensor) -> torch.Tensor:
        return normalize(x_u8.float().div_(255), meta).to(device)

    train_idx, val_idx = split
    return TrainData(prep(data.train.x[train_idx]), data.train.y[train_idx].to(device),
                     prep(data.train.x[val_idx]), data.train.y[val_idx].to(device), list(data.classes),
                     augment, test_samples=test_samples)


def _open_run_dir(out: Path, resuming: bool, dist: Dist, stack: ExitStack) -> None:
    """Checked read-only first, then locked, then prepared (rank 0); every rank stops with rank 0's error."""
    err = None
    if dist.is_writer:
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
    err = broadcast(err, dist.world)  # rather than let the other ranks hang in a collective
    if err:
        raise UserError(err)


def _trainer(launch: Launch, meta: ModelMeta, tensors: TrainData, dist: Dist, out: Path, stop: StopFlag
             ) -> Trainer:
    cfg, source, ckpt = launch.cfg, launch.source, launch.ckpt
    torch.manual_seed(cfg.seed)
    net = create_model(source, meta.input_shape, len(meta.classes))
    if launch.imagenet is not None:
        net.body.load_state_dict(launch.imagenet)
    model = channels_last(net.to(dist.device))
    # bf16 autocast where the hardware computes it natively (runtime.amp_dtype); not for --engine numpy.
    # Like the thread count, a resumed run keeps the precision it started in (fp32 before it was recorded).
    amp = None if cfg.engine == "numpy" else amp_dtype(dist.device, cfg.precision)
    if ckpt is not None and cfg.engine != "numpy":
        amp = torch.bfloat16 if ckpt["state"].get("precision", "fp32") == "bf16" else None
    amp = torch.bfloat16 if broadcast("bf16" if amp else "fp32", dist.world) == "bf16" else None  # rank 0's
    state = TrainState(threads=0 if launch.adaptive else torch.get_num_threads(),
                       precision="bf16" if amp else "fp32")
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    stepper = (NumpyStepper(model, cfg) if cfg.engine == "numpy"
               else TorchStepper(model, cfg, dist.device, amp, dist.rank, dist.world, tensors.class_weights))
    callbacks = _callbacks(launch, dist, out)
    if cfg.pretrained:  # phase 1 of fine-tuning, before the first step (finetune.py)
        callbacks.insert(0, HeadFirst(cfg.head_epochs, tensors.class_weights))
    trainer = Trainer(cfg, model, meta, stepper, tensors, state, dist, out, stop, callbacks, amp,
                      launch.started_at)
    if ckpt is not None:
        _restore(trainer, ckpt)
    return trainer


def _callbacks(launch: Launch, dist: Dist, out: Path) -> list[Callback]:
    """In the order they run at each hook: the divergence check first, before anything is saved; the time
    budget before the checkpoint, which saves how much of it is used."""
    cfg, ckpt = launch.cfg, launch.ckpt
    callbacks = [DivergenceGuard(), BestWeights(fine_tuning=cfg.pretrained), MetricsCSV(), EarlyStopping(),
                 Progress(launch.progress)]
    if cfg.tensorboard:
        # steps after the checkpoint are replayed (all of them when resumed before the first one)
        purge = ckpt["state"]["global_step"] + 1 if ckpt else (1 if launch.resuming else None)
        callbacks.append(TensorBoard(out / "tensorboard", purge, dist.is_writer))
    if cfg.budget_seconds is not None:
        callbacks.append(TimeBudget(cfg.budget_seconds))
    if launch.adaptive:
        callbacks.append(ThreadPolicy(launch.adaptive))
    return [*callbacks, Checkpointer()]


def _restore(t: Trainer, ckpt: dict) -> None:
    """Continue where the checkpoint stopped: optimiser, state, random generators, this rank's loss sum."""
    t.stepper.load_state_dict(ckpt.get(t.stepper.checkpoint_key) or {})
    t.state.load_state_dict(ckpt["state"])
    per_rank = ckpt.get("ranks") or []  # under DDP: each rank's own generators and running loss sum
    mine = per_rank[t.dist.rank] if len(per_rank) == t.dist.world else None
    set_rng_state(mine["rng"] if mine else ckpt["rng"])
    if per_rank:  # resumed at another world size, every rank takes the mean: the ranks' average is kept
        t.state.loss_sum = mine["loss_sum"] if mine else sum(p["loss_sum"] for p in per_rank) / len(per_rank)
    t.saved_step = t.state.global_step


def _start_run_dir(t: Trainer, source: str, split: tuple[torch.Tensor, torch.Tensor], data: DataSet) -> None:
    """What a new run writes before its first step: config.yaml, its spec copy, split.json, summary.txt."""
    cfg, out = t.cfg, t.out
    write_yaml(out / "config.yaml", cfg.to_dict())
    copy = rundir.spec_copy(out, cfg.model)
    if copy is not None:  # from `source`: a run resumed before its first checkpoint keeps its own copy
        write_yaml(copy, get_entry(source).as_spec_file())
    write_json(out / "split.json", {
        "val_split": cfg.val_split, "seed": cfg.seed, "limit": cfg.limit, "stratified": True,
        "train_indices": split[0].tolist(), "val_indices": split[1].tolist()})
    (out / "summary.txt").write_text(format_summary(t.model, title=f"{cfg.model} on {data.name}") + "\n")
    if t.data.augment != "none":
        _augment_png(t, out / "plots" / "augment.png")


def _augment_png(t: Trainer, path: Path, n: int = 6, draws: int = 5) -> None:
    """plots/augment.png: the first training image of each class (then the next ones) as stored and as
    `draws` training steps augment them, with the trainer's own functions and step-seeded generators."""
    y = t.data.y.cpu()
    per_class = [torch.nonzero(y == c).flatten()[:n].tolist() for c in range(len(t.data.classes))]
    picked = [p[r] for r in range(n) for p in per_class if r < len(p)][:n]
    order = torch.tensor(picked, dtype=torch.long)
    x = t.data.x[order.to(t.data.x.device)]
    mean = torch.tensor(t.meta.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(t.meta.std, device=x.device).view(1, -1, 1, 1)

    def pixels(xn: torch.Tensor):
        return (xn * std + mean).clamp(0, 1).float().cpu().numpy()

    views = []
    for k in range(draws):
        gen = torch.Generator().manual_seed(t.cfg.seed * 7_919 + k)
        views.append(pixels(augment_batch(t.data.augment, x, gen, t.meta.mean, t.meta.std)))
    labels = [t.data.classes[int(c)] for c in y[order]]
    save_figure(augment_figure(pixels(x), views, labels, t.data.augment), path, dpi=90, tight=True)
