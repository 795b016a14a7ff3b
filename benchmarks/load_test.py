"""Bounded load test of `cnnlab serve`: N requests from C concurrent clients over loopback.

    python benchmarks/load_test.py runs/mnist-run                  # starts `cnnlab serve` on a free port
    python benchmarks/load_test.py --url http://127.0.0.1:8000     # an already running server
    python benchmarks/load_test.py runs/mnist-run --explain        # what the web page asks for

Each request POSTs a 280x280 PNG of a drawn 7 (what the drawing page sends) to /predict. Prints
p50/p90/p99/max latency, throughput and errors, with the machine; exits 1 if any request failed.
The clients run in this process, on the same cores as the server: figures are for the pair.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

from cnnlab.serve.process import serve_process


def drawn_seven(size: int = 280, width: int = 23) -> bytes:
    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).line([(0.3 * size, 0.2 * size), (0.72 * size, 0.2 * size), (0.42 * size, 0.82 * size)],
                            fill=255, width=width, joint="curve")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, torch {torch.__version__}; load average {load:.2f} at start")


def load(url: str, requests: int, clients: int, explain: bool, png: bytes) -> dict:
    """Fire `requests` POSTs from `clients` threads, each with its own keep-alive connection."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    next_i = iter(range(requests))
    params = {"explain": 1, "top_k": 10} if explain else {}

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while True:
                with lock:
                    if next(next_i, None) is None:
                        return
                t = time.perf_counter()
                try:
                    status = c.post("/predict", params=params,
                                    files={"file": ("seven.png", png, "image/png")}).status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                dt = time.perf_counter() - t
                with lock:
                    latencies.append(dt)
                    statuses[status] += 1

    with httpx.Client(base_url=url, timeout=60) as c:  # warm up: first-request costs are not load
        for _ in range(20):
            c.post("/predict", params=params, files={"file": ("seven.png", png, "image/png")})
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = sorted(1000 * x for x in latencies)
    pct = statistics.quantiles(ms, n=100, method="inclusive")
    return {"requests": requests, "clients": clients, "explain": explain, "png_bytes": len(png),
            "p50_ms": round(pct[49], 1), "p90_ms": round(pct[89], 1), "p99_ms": round(pct[98], 1),
            "max_ms": round(ms[-1], 1), "mean_ms": round(statistics.fmean(ms), 1),
            "throughput_rps": round(requests / wall, 1), "seconds": round(wall, 2),
            "errors": sum(n for s, n in statuses.items() if s != 200),
            "server_errors": sum(n for s, n in statuses.items() if not isinstance(s, int) or s >= 500),
            "statuses": {str(k): v for k, v in statuses.items()}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", help="run directory to serve (omit with --url)")
    p.add_argument("--url", help="test this running server instead of starting one")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--explain", action="store_true", help="ask for input and feature maps, as the page does")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args()
    if not args.url and not args.run_dir:
        p.error("give RUN_DIR (a server is started) or --url of a running server")
    where = machine()
    png = drawn_seven()
    if args.url:
        res = load(args.url.rstrip("/"), args.requests, args.concurrency, args.explain, png)
    else:
        try:
            with serve_process(args.run_dir) as url:
                res = load(url, args.requests, args.concurrency, args.explain, png)
        except RuntimeError as e:  # the server did not come up: its log says why
            raise SystemExit(str(e)) from None
    res["machine"] = where
    if args.json:
        print(json.dumps(res))
    else:
        what = "POST /predict?explain=1&top_k=10" if args.explain else "POST /predict"
        print(f"machine: {where}")
        print(f"{res['requests']} requests, {res['clients']} concurrent clients, {what} "
              f"({res['png_bytes']:,}-byte PNG)")
        print(f"latency ms: p50 {res['p50_ms']}  p90 {res['p90_ms']}  p99 {res['p99_ms']}  "
              f"max {res['max_ms']}  mean {res['mean_ms']}")
        print(f"throughput: {res['throughput_rps']} requests/s over {res['seconds']} s")
        print(f"errors: {res['errors']} (server errors {res['server_errors']}); statuses {res['statuses']}")
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
