"""Readiness and draining: what /health reports, and what SIGTERM does.

Ready: uvicorn accepts connections only after the app's startup, and the model is loaded and warmed up in
`create_app` before that, so a /health that answers 200 means predictions are served at full speed.
(With `--workers N` the parent holds the listening socket from the start; a connection made while the
workers load waits in the socket's backlog, it is not refused.)

Draining, on SIGTERM: /health answers 503 `{"status": "draining"}` at once, so a load balancer that
probes it stops sending new work; the server keeps answering everything for `drain_s` seconds
(`--drain-seconds`, default 0); then uvicorn's graceful shutdown stops accepting connections, finishes
every request already in flight (at most `GRACE_S` more), and the process exits. A second SIGTERM, or
Ctrl-C (SIGINT, untouched), skips the drain wait.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

log = logging.getLogger("uvicorn.error")
GRACE_S = 30  # uvicorn's timeout_graceful_shutdown: longest wait for in-flight requests after the drain


class Lifecycle:
    def __init__(self, drain_s: float = 0.0):
        self.drain_s = drain_s
        self.draining = False

    def install(self) -> Callable[[], None]:
        """Put the drain in front of uvicorn's SIGTERM handler; returns what undoes it.

        Called at the app's startup, when uvicorn has installed its handlers (it does that before loading
        the app, in every worker). Only the main thread may handle signals: in a thread (serve_in_thread,
        TestClient) there is nothing to chain, and a test calls `drain()` instead.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return lambda: None

        def on_sigterm(sig: int, frame: object) -> None:
            if self.draining:  # the second SIGTERM: stop draining now
                previous(sig, frame)
                return
            self.drain(lambda: previous(sig, frame))

        signal.signal(signal.SIGTERM, on_sigterm)
        return lambda: signal.signal(signal.SIGTERM, previous)

    def drain(self, then: Callable[[], None] | None = None) -> None:
        """Report draining from now on; after `drain_s` seconds call `then` (uvicorn's own shutdown)."""
        self.draining = True
        log.info("draining: /health answers 503; shutting down in %g s", self.drain_s)
        if then is None:
            return
        if self.drain_s > 0:
            # uvicorn's handler only sets a flag that its loop polls: safe to call from a timer thread
            timer = threading.Timer(self.drain_s, then)
            timer.daemon = True
            timer.start()
        else:
            then()
