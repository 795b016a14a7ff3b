"""The FastAPI app: `create_app(run_dir, settings)` loads the model once and wires the routers.

    uvicorn: `cnnlab serve runs/my-run [--workers N]`                          (serve/launch.py)
    Python:  `with serve_in_thread(create_app("runs/my-run")) as url: ...`   (notebooks, tests)

A request passes, outermost first: the metrics (every request counted and timed), the body limits (size
and time), the fast path for the common `POST /predict`, then FastAPI's routing for everything else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..errors import UserError
from . import routes_model, routes_predict
from .fastpath import FastPredict
from .lifecycle import Lifecycle
from .limits import BodyLimit
from .metrics import Metrics, MetricsMiddleware, add_metrics_route
from .service import ModelService, set_threads, validation_detail
from .settings import Settings

WEB = Path(str(resources.files("cnnlab") / "web"))  # index.html, app.js, style.css


def create_app(run_dir: str | Path, settings: Settings | None = None) -> FastAPI:
    """An app serving the model of `run_dir` (a run directory or a .safetensors file cnnlab wrote)."""
    settings = settings or Settings()
    set_threads(settings.threads)
    metrics = Metrics()
    service = ModelService(run_dir, settings, on_batch=metrics.batch_size.observe,
                           on_queue=metrics.queue_depth.set)
    lifecycle = Lifecycle(settings.drain_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        undo = lifecycle.install()
        try:
            yield
        finally:  # after uvicorn has finished the requests in flight
            undo()
            service.batcher.stop()
            metrics.close()

    app = FastAPI(title="cnnlab", version=__version__, lifespan=lifespan,
                  description=f"Predictions from **{service.name}** trained on {service.meta.data}. "
                              "Errors are JSON `{\"detail\": \"...\"}`.")
    app.state.service = service
    app.state.lifecycle = lifecycle
    app.state.metrics = metrics
    app.include_router(routes_predict.router)
    app.include_router(routes_model.router)
    add_metrics_route(app, metrics)
    # add_middleware puts each new one outside the ones before it.
    app.add_middleware(FastPredict, service=service)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes, timeout_s=settings.client_timeout)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default detail is a list of dicts; clients and the page get one readable line.
        return JSONResponse({"detail": validation_detail(list(exc.errors()))}, status_code=422)

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    return app


@contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run uvicorn in a background thread; yields the base URL (port 0: any free port)."""
    import uvicorn

    timeout = app.state.service.settings.client_timeout if hasattr(app.state, "service") else 10.0
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           http=guarded_http(timeout)))
    thread = threading.Thread(target=server.run, name="cnnlab-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise UserError(f"the server did not start on {host}:{port} (is the port in use?)")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def guarded_http(head_timeout: float) -> Callable[..., Any]:
    """uvicorn's `http=` protocol, closing connections whose request head is late (serve/protocol.py)."""
    from .protocol import HeadDeadlineProtocol

    return partial(HeadDeadlineProtocol, head_timeout=head_timeout)
