"""What the user watches: a progress bar per epoch (in a terminal or a notebook), else one line per epoch.

In a Jupyter kernel the bar is tqdm's notebook widget when ipywidgets is installed (the `[notebooks]` extra),
else tqdm's text bar. Not `tqdm.auto`: without ipywidgets it warns ("IProgress not found") on import.
"""

from __future__ import annotations

import importlib.util
import sys

from tqdm.std import tqdm as text_bar

from .base import Callback


def in_notebook() -> bool:
    return "ipykernel" in sys.modules


def bar_class() -> type:
    """tqdm's notebook widget in a Jupyter kernel that has ipywidgets, else its text bar."""
    if in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as widget_bar

        return widget_bar
    return text_bar


class Progress(Callback):
    def __init__(self, show: bool | None):
        """`show`: a bar (True), epoch lines (False), or a bar only on a terminal or in a notebook (None)."""
        self.show = show if show is not None else (sys.stderr.isatty() or in_notebook())
        self.bar = None

    def on_epoch_start(self, t, epoch: int) -> None:
        self.bar = bar_class()(total=t.steps_per_epoch, initial=t.state.step_in_epoch,
                               desc=f"epoch {epoch + 1}/{t.epochs}", unit="step",
                               disable=not (self.show and t.dist.is_writer), leave=True, dynamic_ncols=True)

    def on_step_end(self, t) -> None:
        s = t.state
        if self.show and (s.step_in_epoch - 1) % 20 == 0:
            self.bar.set_postfix(loss=f"{s.loss_sum / max(s.loss_count, 1):.4f}", refresh=False)
            # a time budget sizes the schedule while it runs: the epoch count can change
            self.bar.set_description(f"epoch {s.epoch + 1}/{t.epochs}", refresh=False)
        self.bar.update(1)

    def on_validation_end(self, t, row: dict) -> None:
        if self.show and self.bar is not None and row["val_accuracy"] is not None:
            self.bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_acc=f"{100 * row['val_accuracy']:.2f}%")

    def on_epoch_end(self, t, epoch: int) -> None:
        if t.dist.is_writer and not self.show:
            r = t.state.rows[-1]
            va = "" if r["val_accuracy"] is None else (f"  val_loss {r['val_loss']:.4f}  "
                                                       f"val_acc {100 * r['val_accuracy']:.2f}%")
            print(f"epoch {epoch + 1}/{t.epochs}  train_loss {r['train_loss']:.4f}{va}  "
                  f"{r['seconds']:.1f}s", flush=True)

    def on_checkpoint(self, t) -> None:
        # the epoch's end (its bar is complete), or an interrupt (a notebook bar closed short turns red)
        if t.state.step_in_epoch == 0 or t.stop.signal is not None:
            self._close()

    def on_fit_end(self, t) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
