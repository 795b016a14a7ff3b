"""Early stopping (--patience N): stop after N epochs in a row without a better validation point."""

from __future__ import annotations

from .base import Callback


class EarlyStopping(Callback):
    def on_epoch_end(self, t, epoch: int) -> None:
        improved = t.state.best_step > t.state.global_step - t.steps_per_epoch
        t.state.bad_epochs = 0 if improved else t.state.bad_epochs + 1

    def should_stop(self, t) -> bool:
        patience = t.cfg.patience
        if not patience or t.state.bad_epochs < patience:
            return False
        t.state.early_stopped = True
        if t.dist.is_writer:
            print(f"early stopping: no better validation accuracy for {patience} epoch(s)", flush=True)
        return True
