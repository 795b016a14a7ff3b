"""Where a training run stands: everything the loop changes, in one typed object that a checkpoint saves."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # steps done in the current epoch (a checkpoint can be mid-epoch)
    global_step: int = 0  # steps done in all
    # the best validation point so far; None without a validation split
    best_val_accuracy: float | None = None
    best_train_loss: float | None = None  # without a validation split the lowest training loss picks the best
    best_val_loss: float | None = None  # the best point's validation loss
    best_step: int = 0  # global step of best.safetensors
    bad_epochs: int = 0  # epochs in a row without a better validation point (early stopping)
    early_stopped: bool = False
    loss_sum: float = 0.0  # this rank's training loss summed since the last validation point ...
    loss_count: int = 0  # ... over this many steps
    rows: list[dict] = field(default_factory=list)  # metrics.csv, one row per validation point
    train_seconds: float = 0.0  # wall time of training steps and validation, over every session of the run
    budget_elapsed: float = 0.0  # --time: the budget used up to the last checkpoint, set-up included
    # CPU threads the run started with: a resumed run keeps them (float rounding); 0: the adaptive policy
    threads: int = 1
    precision: str = "fp32"  # "fp32" or "bf16": a resumed run keeps it too

    def state_dict(self) -> dict:
        return copy.deepcopy(asdict(self))

    def load_state_dict(self, d: dict) -> None:
        """From a checkpoint; also reads those of cnnlab 0.1.0, whose best_val_accuracy held -1 before the
        first validation point and minus the training loss when there was no validation split."""
        d = dict(d)
        if "best_train_loss" not in d:
            best = d.get("best_val_accuracy", -1.0)
            d["best_val_accuracy"] = best if best >= 0 else None
            d["best_train_loss"] = -best if best < 0 and best != -1.0 else None
        known = {f.name for f in fields(self)}
        for k, v in copy.deepcopy(d).items():
            if k in known:
                setattr(self, k, v)
