"""`cnnlab serve`: uvicorn with one process, or `--workers N` of them, each with the model loaded once.

One worker: the app is built here and uvicorn runs it in this process. N workers: uvicorn's supervisor
binds the socket and starts N processes; each builds its own app with `worker_app` from the run directory
and settings this process puts in `CNNLAB_SERVE`. Everything that can fail on the user's input (the run,
the port, the ONNX export) is done here first, so a mistake is one `error:` line, not N tracebacks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from .app import create_app, guarded_http
from .backends import onnx_for
from .lifecycle import GRACE_S
from .metrics import MULTIPROC_ENV
from .service import Served
from .settings import Settings

ENV = "CNNLAB_SERVE"  # {"run_dir": ..., "settings": {...}} for the worker processes


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn calls this factory in each)."""
    spec = json.loads(os.environ[ENV])
    return create_app(spec["run_dir"], Settings(**spec["settings"]))


def serve(run_dir: str | Path, settings: Settings, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, access_log: bool = False,
          on_ready: Callable[[Served], None] | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C; `on_ready` gets what is served once it is loaded (for a banner)."""
    import uvicorn

    common = dict(host=host, port=port, log_level="info", access_log=access_log,
                  timeout_graceful_shutdown=GRACE_S, http=guarded_http(settings.client_timeout))
    if workers == 1:
        app = create_app(run_dir, settings)
        if on_ready:
            on_ready(app.state.service)
        # After its graceful shutdown uvicorn raises the signal again under the handler it found; this one
        # makes that a no-op, so a SIGTERM'd server exits 0, as the supervisor of `--workers N` does.
        previous = signal.signal(signal.SIGTERM, lambda sig, frame: None)
        try:
            uvicorn.run(app, **common)
        finally:
            signal.signal(signal.SIGTERM, previous)
        return
    served = Served(run_dir)  # a bad run fails here, once, rather than in every worker
    if settings.backend == "onnxruntime":
        onnx_for(run_dir, served.model)  # exported once, before N workers would each try
    if on_ready:
        on_ready(served)
    own_dir = MULTIPROC_ENV not in os.environ
    metrics_dir = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="cnnlab-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # before the workers start: they read it when they import
    os.environ[ENV] = json.dumps({"run_dir": str(run_dir), "settings": settings.model_dump()})
    try:
        # The supervisor pings each worker and replaces one that does not answer within
        # timeout_worker_healthcheck (default 5 s). A worker starting on a busy 2-core machine spends
        # longer than that importing torch before it can answer, and was replaced again and again.
        uvicorn.run("cnnlab.serve.launch:worker_app", factory=True, workers=workers,
                    timeout_worker_healthcheck=60, **common)
    finally:
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
