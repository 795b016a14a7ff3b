"""cnnlab train."""

from __future__ import annotations

import argparse

from ..training.options import add_arguments as add_options

HELP = "train a model (default: cnnlab's fastcnn on Fashion-MNIST, offline) into a run directory"
EXAMPLES = """\
  cnnlab train                                      # fastcnn on fashion-mnist, defaults
  cnnlab train --time 2m                            # a wall-clock budget: ~93.5 % on a 2-vCPU laptop-class CPU
  cnnlab train --time 20s                           # fastcnn-small: ~90-91 % (docs/benchmarks.md)
  cnnlab train --model lenet5 --epochs 5            # the LeNet-5 exercise of the slides (Adam, tanh)
  cnnlab train --model mnist-classifier --data mnist --data-dir ~/mnist   # the MNIST notes' recipe
  cnnlab train --model my_net.yaml --data ./photos --limit 2000
  cnnlab train --data ./my_photos --pretrained        # fine-tune ImageNet-pretrained EfficientNet-Lite0, offline
  cnnlab train --data ./my_photos --pretrained --model resnet18 --weights resnet18-f37072fd.pth
  cnnlab train --data ./my_photos --pretrained --class-weights auto   # unbalanced classes
  cnnlab train --config runs/old/config.yaml --seed 1
  cnnlab train --resume runs/fastcnn-fashion-mnist-20261122-101500
  torchrun --nproc-per-node 4 -m cnnlab train --model deeper-cnn --batch-size 512   # DDP on 4 GPUs/processes
  # two machines with 8 GPUs each: run this on both; the run directory must be on a shared filesystem
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST0:29500 -m cnnlab train --out /shared/big

A run is checkpointed at every epoch's end and every --checkpoint-every steps; Ctrl-C saves and exits,
and --resume continues it exactly (docs/robustness.md). --batch-size is the global batch under torchrun.
--pretrained trains the new head on cached backbone features first, then the whole network with lower
learning rates for earlier layers (docs/photos.md).

Options left out take the model's own defaults (`cnnlab models` lists them): the models of the lecture
notes cnnlab grew from (000: MNIST, 001: the maths and CIFAR-10, 002: the slides with LeNet-5) use their
notes' optimiser and learning rate; simple-cnn uses batch 32 (lr 0.008) instead of the maths notes'
batch 4, which makes an epoch 8x longer for the same accuracy."""  # noqa: E501 -- --help prints it as is


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_options(p)  # one flag per TrainConfig field (options.py imports nothing heavy)
    p.add_argument("--config",
                   help="YAML file of these options (e.g. a run's config.yaml); flags override it")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")


def run(args: argparse.Namespace) -> int:
    import time

    started_at = time.monotonic()  # a --time budget counts from here, torch's import included
    from ..errors import UserError
    from ..run import train
    from ..training.config import load_config_file
    from ..training.options import TrainConfig, field_names, flag

    given = {k: v for k, v in vars(args).items() if k in field_names() and v is not None}
    if args.resume:
        if given or args.config:
            raise UserError(f"--resume continues the run with its saved config.yaml; drop "
                            f"{', '.join(flag(k) for k in given) or '--config'}")
        run_ = train(resume=args.resume, started_at=started_at)
    else:
        base = load_config_file(args.config) if args.config else {}
        if args.config and "out" in base and "out" not in given:
            base.pop("out")  # re-running a run's config must not write into that run
        run_ = train(TrainConfig(**{**base, **given}), started_at=started_at)
    if run_ is None:  # a non-zero rank under torchrun
        return 0
    r = run_.results
    tb = r.get("time_budget")
    length = (f"{tb['epochs']} epochs in a {tb['seconds']:g}s budget, {tb['used_seconds']:.1f}s used in all"
              if tb else f"{r['epochs']} epoch(s), {r['train_seconds']:.1f}s training")
    print(f"test accuracy {100 * r['test_accuracy']:.2f}%  (test loss {r['test_loss']:.4f}, {length}, "
          f"{r['threads']} thread(s), {r['precision']})")
    print(f"results in {run_.path}/  (results.json, metrics.csv, plots/, best.safetensors)")
    print(f"next: cnnlab eval {run_.path}  |  cnnlab inspect {run_.path}  |  cnnlab serve {run_.path}")
    return 0
