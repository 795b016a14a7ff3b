"""metrics.csv, rewritten (atomically) at every validation point: a kill never leaves half a file."""

from __future__ import annotations

from ..rundir import write_metrics
from .base import Callback


class MetricsCSV(Callback):
    def on_validation_end(self, t, row: dict) -> None:
        if t.dist.is_writer:
            write_metrics(t.out / "metrics.csv", t.state.rows)
