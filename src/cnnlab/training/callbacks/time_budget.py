"""--time: size the schedule to a wall-clock budget, and keep sizing it as the machine's speed changes.

The budget counts from the start of `cnnlab train` (or the `cnnlab.train()` call) to results.json: data
loading, every step, validation point and checkpoint, and the final test and plots. Every few steps the
callback measures the recent seconds per step (over a window long enough to hold a validation point),
and sets the schedule's length (`t.total_steps`) so that the steps left, plus a reserve for the final
test, end at the deadline. The learning rate is a function of the step and that length (recipe.lr_at),
so the one-cycle warm-up and annealing stretch or shrink with it, and the run ends on time with its
schedule complete, not cut off. A resumed run continues with what is left of its budget.
"""

from __future__ import annotations

import math
import sys
import time

from tqdm.auto import tqdm

from ..distributed import broadcast
from .base import Callback

REPLAN_EVERY = 10  # steps between plans; the same steps on every rank (a plan is broadcast from rank 0)
FINISH_SECONDS = 1.2  # the plots, weights and results.json at the end: 0.5-0.8 s measured on an idle machine


class TimeBudget(Callback):
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.max_steps: int | None = None  # --epochs given beside --time caps the schedule
        self.before = 0.0  # budget used by earlier sessions of a resumed run
        self.marks: list[tuple[int, float]] = []  # (global step, time) at each plan of this session
        self.val_seconds_per_sample: float | None = None  # measured at validation points
        self._val_start = 0.0
        self.announced = False

    def elapsed(self, t) -> float:
        """Budget used: by earlier sessions up to their last checkpoint, and by this one."""
        return self.before + time.monotonic() - t.started_at

    def on_fit_start(self, t) -> None:
        self.before = t.state.budget_elapsed
        self.max_steps = t.cfg.epochs * t.steps_per_epoch if t.cfg.epochs else None
        # Until the first plan, a long provisional schedule: the one-cycle warm-up starts at its lowest rate.
        t.total_steps = self.max_steps or t.state.global_step + 100 * t.steps_per_epoch
        self.marks = [(t.state.global_step, time.monotonic())]

    def on_step_end(self, t) -> None:
        done = t.state.global_step - self.marks[0][0]
        if done in (3, 6) or t.state.global_step % REPLAN_EVERY == 0:
            self.plan(t)

    def on_validation_start(self, t) -> None:
        self._val_start = time.monotonic()

    def on_validation_end(self, t, row: dict) -> None:
        n = max(len(t.data.y_val), 1)
        self.val_seconds_per_sample = (time.monotonic() - self._val_start) / n
        if not self.announced and t.dist.is_writer:
            self.announced = True
            steps = f"{t.total_steps:,} steps of {t.cfg.batch_size}"
            plan = f"{t.total_steps / t.steps_per_epoch:.1f} epochs ({steps})"
            tqdm.write(f"time budget {self.seconds:g}s: {plan} at {1e3 * self.rate(t):.1f} ms a step",
                       file=sys.stdout)

    def on_checkpoint(self, t) -> None:
        t.state.budget_elapsed = self.elapsed(t)  # what a resumed run has already used

    def rate(self, t) -> float:
        """Recent seconds per step, over the last quarter of this session's steps and at least a validation
        period, so that validation and checkpoints are paid for in the average."""
        step, now = t.state.global_step, time.monotonic()
        first = self.marks[1] if len(self.marks) > 2 else self.marks[0]  # the first steps build kernels
        window = max(t.eval_every, (step - first[0]) // 4)
        start = next((m for m in reversed(self.marks) if m[0] <= step - window), first)
        return (now - start[1]) / max(step - start[0], 1)

    def plan(self, t) -> None:
        rate = self.rate(t)
        self.marks.append((t.state.global_step, time.monotonic()))
        # Until a validation point is timed: a forward pass costs about a third of a training step (two
        # passes with test-time flips).
        passes = 2 if t.meta.tta == "flip" else 1
        per_sample = self.val_seconds_per_sample or rate / t.cfg.batch_size / 3 * passes
        # The last step's validation point, then the final test (and loading the best weights for it).
        reserve = FINISH_SECONDS + per_sample * (len(t.data.y_val) + 1.5 * t.data.test_samples)
        left = self.seconds - self.elapsed(t) - reserve
        total = t.state.global_step + max(1, math.floor(left / rate))
        if self.max_steps:
            total = min(total, self.max_steps)
        t.total_steps = max(int(broadcast(total, t.dist.world)), t.state.global_step + 1)
