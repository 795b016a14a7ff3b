"""Stopping a run safely: a signal becomes a flag the trainer checks after each step.

Ctrl-C or SIGTERM (a scheduler's) lets the running step finish, the trainer writes a checkpoint and raises
`Interrupted`, whose message says how to resume. A second Ctrl-C stops at once, without saving.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path


class Interrupted(Exception):
    """Ctrl-C / SIGTERM: the state was saved in `run_dir`; the message says how to resume."""

    def __init__(self, message: str, run_dir: Path | None = None):
        super().__init__(message)
        self.run_dir = run_dir


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked after each step, so the step finishes and state is saved."""

    def __init__(self, escalate: bool = True):
        self.signal: int | None = None
        # under torchrun a Ctrl-C reaches a rank twice (terminal + agent): no escalation
        self.escalate = escalate
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None and self.escalate:  # second Ctrl-C: stop now, without saving
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
