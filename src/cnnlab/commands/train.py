"""cnnlab train."""

from __future__ import annotations

import argparse

HELP = "train a model (default: cnnlab's fastcnn on Fashion-MNIST, offline) into a run directory"
EXAMPLES = """\
  cnnlab train                                      # fastcnn on fashion-mnist, defaults
  cnnlab train --epochs 2 --augment none            # the quick recipe: >= 91 % in ~20 s on one CPU thread
  cnnlab train --model lenet5 --epochs 5            # seed 002's exercise (Adam, tanh)
  cnnlab train --model mnist-classifier --data mnist --data-dir ~/mnist   # seed 000's recipe
  cnnlab train --model my_net.yaml --data ./photos --limit 2000
  cnnlab train --config runs/old/config.yaml --seed 1
  cnnlab train --resume runs/fastcnn-fashion-mnist-20261122-101500
  torchrun --nproc-per-node 4 -m cnnlab train --model deeper-cnn --batch-size 512   # DDP on 4 GPUs/processes
  # two machines with 8 GPUs each: run this on both; the run directory must be on a shared filesystem
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST0:29500 -m cnnlab train --out /shared/big

A run is checkpointed at every epoch's end and every --checkpoint-every steps; Ctrl-C saves and exits,
and --resume continues it exactly (docs/robustness.md). --batch-size is the global batch under torchrun.

Options left out take the model's own defaults (`cnnlab models` lists them): the seed models use
their seed's optimiser and learning rate; simple-cnn uses batch 32 (lr 0.008) instead of seed 001's
batch 4, which makes an epoch 8x longer for the same accuracy."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name (see `cnnlab models`) or a .yaml/.json spec file")
    p.add_argument("--data", help="data set name (fashion-mnist, mnist, cifar10, digits) or a directory")
    p.add_argument("--data-dir", help="where named data sets are looked for first (also $CNNLAB_DATA)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--lr", type=float, help="learning rate (the peak one for --schedule onecycle)")
    p.add_argument("--optimizer", help="sgd | adam | adamw")
    p.add_argument("--momentum", type=float, help="SGD momentum")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", help="constant | onecycle | cosine")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--augment", help="none | flip | auto (flip where mirrored images keep their class)")
    p.add_argument("--val-split", type=float, help="validation fraction, stratified (default 0.1)")
    p.add_argument("--seed", type=int, help="random seed (default 0); a CPU run repeats exactly")
    p.add_argument("--device", help="auto | cpu | cuda | mps (default auto)")
    p.add_argument("--threads", type=int, help="CPU threads (default: chosen by measurement, see docs)")
    p.add_argument("--out", help="run directory (default runs/<model>-<data>-<time>)")
    p.add_argument("--config", help="YAML file of these options (e.g. a run's config.yaml); flags override it")
    p.add_argument("--limit", type=int, help="train on N samples only (stratified), for quick runs")
    p.add_argument("--image-size", type=int, help="resize image folders to this size")
    p.add_argument("--eval-every", type=int, help="steps between validation points within an epoch, plus one at its end (default: twice per epoch)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (always at epoch ends)")
    p.add_argument("--patience", type=int, help="early stopping after N epochs without improvement")
    p.add_argument("--engine", help="torch (default) | numpy (the textbook NumPy engine)")
    p.add_argument("--precision", help="auto (default: bf16 where the hardware has it natively) | fp32 | bf16")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the model (pays on GPUs; measured slower for small nets on CPU)")
    p.add_argument("--report", action="store_true", default=None, help="write report.html at the end")
    p.add_argument("--tensorboard", action="store_true", default=None, help="log to RUN_DIR/tensorboard")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")


def run(args: argparse.Namespace) -> int:
    from ..config import TrainConfig, field_names, load_config_file
    from ..errors import UserError
    from ..trainer import train

    given = {k: v for k, v in vars(args).items() if k in field_names() and v is not None}
    if args.resume:
        if given or args.config:
            flags = ", ".join("--" + k.replace("_", "-") for k in given) or "--config"
            raise UserError(f"--resume continues the run with its saved config.yaml; drop {flags}")
        run_ = train(resume=args.resume)
    else:
        base = load_config_file(args.config) if args.config else {}
        if args.config and "out" in base and "out" not in given:
            base.pop("out")  # re-running a run's config must not write into that run
        run_ = train(TrainConfig(**{**base, **given}))
    if run_ is None:  # a non-zero rank under torchrun
        return 0
    r = run_.results
    print(f"test accuracy {100 * r['test_accuracy']:.2f}%  (test loss {r['test_loss']:.4f}, "
          f"{r['epochs']} epoch(s), {r['train_seconds']:.1f}s training, {r['threads']} thread(s), {r['precision']})")
    print(f"results in {run_.path}/  (results.json, metrics.csv, plots/, best.safetensors)")
    print(f"next: cnnlab eval {run_.path}  |  cnnlab inspect {run_.path}  |  cnnlab serve {run_.path}")
    return 0
