"""Training: options and config, the recipe, the loop and its callbacks, checkpoints and the run directory.

    options.py   every option declared once            config.py    a config resolved and checked
    launch.py    train(): options -> finished run       trainer.py   the loop
    state.py     where a run stands (checkpointed)      steppers.py  torch or NumPy computes a step
    callbacks/   validation rows, best weights, checkpoints, early stopping, divergence, metrics.csv,
                 TensorBoard, progress                   validation.py  a validation point
    recipe.py    split, optimiser, lr schedule          augment.py   batched flips
    runtime.py   device, threads, precision             distributed.py  torchrun / DDP helpers
    checkpoint.py  checkpoint files                     rundir.py    the run directory and its lock
    stopping.py  Ctrl-C / SIGTERM                        finish.py    test, results.json, plots
    lr_find.py   the learning-rate range test
"""

from __future__ import annotations

import importlib

# Lazy, like cnnlab's own __init__: the CLI reads options.py to build its parser without loading torch.
_EXPORTS = {"TrainConfig": "options", "train": "launch"}
__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'cnnlab.training' has no attribute {name!r}")
