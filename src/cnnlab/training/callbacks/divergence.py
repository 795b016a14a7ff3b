"""Stop a run whose loss or weights became NaN or infinite, before it overwrites the last good checkpoint."""

from __future__ import annotations

import torch

from ...errors import UserError
from .base import Callback


def finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


class DivergenceGuard(Callback):
    """Checks the loss where it is read and the weights before they are validated or saved."""

    def on_loss(self, t, loss: float, bad_anywhere: bool) -> None:
        if bad_anywhere:
            raise self.diverged(t, f"the loss became {loss}")

    def on_validation_start(self, t) -> None:
        self._check_weights(t)

    def on_checkpoint(self, t) -> None:
        self._check_weights(t)  # never let NaN weights replace the last good ones

    def _check_weights(self, t) -> None:
        if not finite(t.model):
            raise self.diverged(t, "the weights became NaN/Inf")

    @staticmethod
    def diverged(t, what: str) -> UserError:
        path = t.out / "checkpoints" / "last.pt"
        kept = (f"the last good checkpoint (step {t.saved_step}) is kept in {path}"
                if t.saved_step is not None
                else "no checkpoint had been written yet")
        return UserError(f"training diverged: {what} at step {t.state.global_step} "
                         f"(epoch {t.state.epoch + 1}); {kept}; start a new run with a lower --lr "
                         f"(now {t.cfg.lr})")
