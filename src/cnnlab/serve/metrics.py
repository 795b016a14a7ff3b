"""`GET /metrics` in Prometheus' text format, from prometheus-client.

    cnnlab_requests_total{handler, status}   requests answered, by route and HTTP status
    cnnlab_request_seconds{handler}          latency histogram, from the first byte the app sees to the last
    cnnlab_batch_size                        images per forward pass (micro-batches and /predict/batch)
    cnnlab_queue_depth                       images waiting for the inference thread (summed over workers)
    cnnlab_requests_in_progress              requests being handled (summed over workers)

With `--workers N` every worker writes its numbers to files in one shared folder (prometheus-client's
multiprocess mode, `PROMETHEUS_MULTIPROC_DIR`, set by serve/launch.py) and whichever worker answers
/metrics adds them all up: counts and histograms cover the whole server, not the one worker that answered.
In one process each app has its own registry, so several apps in one Python process (tests, a notebook)
never clash.
"""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import FastAPI, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)  # seconds: fine where this server's answers fall (1-50 ms)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Label values for the routes, so an unknown path (a scanner's) cannot create a new series each time.
HANDLERS = {"/predict", "/predict/batch", "/health", "/model", "/examples", "/metrics", "/", "/docs",
            "/openapi.json"}


def handler_of(path: str) -> str:
    if path in HANDLERS:
        return path
    if path.startswith("/examples/"):
        return "/examples/{index}.png"
    if path.startswith("/static/"):
        return "/static"
    return "other"


class Metrics:
    """The server's metric objects, in their own registry (or the multiprocess folder's files)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cnnlab_requests", "HTTP requests answered, by route and status",
                                ["handler", "status"], registry=r)
        self.latency = Histogram("cnnlab_request_seconds", "Time to answer a request, by route", ["handler"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("cnnlab_batch_size", "Images per forward pass", buckets=BATCH_BUCKETS,
                                    registry=r)
        self.queue_depth = Gauge("cnnlab_queue_depth", "Images waiting for the inference thread",
                                 multiprocess_mode="livesum", registry=r)
        self.in_progress = Gauge("cnnlab_requests_in_progress", "Requests being handled",
                                 multiprocess_mode="livesum", registry=r)
        # The labelled children, looked up once each: `labels()` takes a lock and builds a key every call.
        self._counted: dict[tuple[str, int], Any] = {}
        self._timed: dict[str, Any] = {}

    def observe(self, path: str, status: int, seconds: float) -> None:
        """One request answered: count it by route and status, and time it."""
        handler = handler_of(path)
        counter = self._counted.get((handler, status))
        if counter is None:
            counter = self._counted[handler, status] = self.requests.labels(handler, str(status))
        timer = self._timed.get(handler)
        if timer is None:
            timer = self._timed[handler] = self.latency.labels(handler)
        counter.inc()
        timer.observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text /metrics answers, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = self.registry
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """This worker is stopping: drop its live gauges from the shared folder."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


class MetricsMiddleware:
    """Counts and times every HTTP request, the fast path's included (pure ASGI: no per-request objects)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering
        m = self.metrics

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        m.in_progress.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            m.in_progress.dec()
            m.observe(scope["path"], status, time.perf_counter() - start)


def add_metrics_route(app: FastAPI, metrics: Metrics) -> None:
    @app.get("/metrics", tags=["model"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    def prometheus_metrics() -> Response:
        """Request counts by status, latency and batch-size histograms, queue depth (Prometheus format)."""
        body, ctype = metrics.exposition()
        return Response(body, media_type=ctype)
