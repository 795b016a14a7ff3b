"""The hooks a callback may implement; each is a no-op here. The trainer calls them in list order."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..trainer import Trainer


class Callback:
    def on_fit_start(self, t: Trainer) -> None:
        """Before the first step of this session (a resumed run calls it again)."""

    def should_stop(self, t: Trainer) -> bool:
        """Asked before each epoch: True ends training there."""
        return False

    def on_epoch_start(self, t: Trainer, epoch: int) -> None:
        """Before the epoch's first step (its first remaining one, after a mid-epoch resume)."""

    def on_loss(self, t: Trainer, loss: float, bad_anywhere: bool) -> None:
        """The training loss summed since the last read; `bad_anywhere`: not finite on some rank."""

    def on_step_end(self, t: Trainer) -> None:
        """After every step."""

    def on_validation_start(self, t: Trainer) -> None:
        """Before a validation point is scored."""

    def on_validation_end(self, t: Trainer, row: dict) -> None:
        """A validation point's metrics.csv row, already in t.state.rows."""

    def on_epoch_end(self, t: Trainer, epoch: int) -> None:
        """After the epoch's last step and its validation point; t.state.epoch is already epoch + 1."""

    def on_checkpoint(self, t: Trainer) -> None:
        """A checkpoint point: every --checkpoint-every steps, each epoch's end, and on Ctrl-C."""

    def on_fit_end(self, t: Trainer) -> None:
        """When training ends, also by an error or an interruption."""
