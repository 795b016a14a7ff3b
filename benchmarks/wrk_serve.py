"""`cnnlab serve` under wrk (a compiled load generator) at 1 and 16 connections: the table of docs/serving.md.

    python benchmarks/wrk_serve.py runs/fashion-run                        # starts `cnnlab serve` itself
    python benchmarks/wrk_serve.py runs/fashion-run --serve-args "--workers 2 --backend onnxruntime"
    python benchmarks/wrk_serve.py --url http://127.0.0.1:8000             # a server already running
    python benchmarks/wrk_serve.py runs/fashion-run --duration 30 --json

Each connection count gets a 5 s warm-up and then `wrk -t1 -cN -d<duration>s --latency` posting one PNG
to /predict with benchmarks/wrk_predict.lua. The PNG is load_test.py's 280x280 drawing of a 7 (954 bytes,
the image issue 18 measured with), or `--png example` for the served run's first test image
(GET /examples/0.png), or `--png FILE`.
Prints requests/s, p50 and p99 latency, errors, the mean batch size (from /metrics), the CPU and the load
average; exits 1 if any request was not answered 200. wrk and the server share the machine's cores:
run it on an otherwise idle machine (`apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    lines = info.splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    flags = next((line for line in lines if line.startswith("flags")), "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    return f"{len(os.sched_getaffinity(0))} vCPUs, {model}" + (f" ({isa})" if isa else "")


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    """wrk --latency output -> requests/s, p50/p90/p99 ms, requests, errors."""
    pct = {int(p): _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": pct[50], "p90_ms": pct[90], "p99_ms": pct[99], "requests": reqs,
            "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)}


def wrk(url: str, png: Path, connections: int, seconds: int) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
           "-s", str(HERE / "wrk_predict.lua"), f"{url}/predict"]
    out = subprocess.run(cmd, env={**os.environ, "PNG": str(png)}, capture_output=True, text=True, check=True)
    return parse_wrk(out.stdout)


def batches(url: str) -> tuple[float, float]:
    """(forward passes, images) so far, from /metrics; (0, 0) from a server without it (an older one)."""
    try:
        text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    except OSError:
        return 0.0, 0.0
    get = {name: float(v) for name, v in re.findall(r"^(cnnlab_batch_size_(?:count|sum)) (\S+)$", text, re.M)}
    return get.get("cnnlab_batch_size_count", 0.0), get.get("cnnlab_batch_size_sum", 0.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", help="run directory to serve (omit with --url)")
    p.add_argument("--url", help="load this running server instead of starting one")
    p.add_argument("--serve-args", default="", help='extra `cnnlab serve` options, e.g. "--workers 2"')
    p.add_argument("--connections", default="1,16", help="comma-separated connection counts (default 1,16)")
    p.add_argument("--duration", type=int, default=15, help="seconds per measurement (default 15)")
    p.add_argument("--png", default="drawn", help="the image to post: drawn (default: a 954-byte 280x280 "
                                                 "drawing of a 7), example (the run's /examples/0.png), "
                                                 "or a file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    if not args.url and not args.run_dir:
        p.error("give RUN_DIR (a server is started) or --url of a running server")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cnnlab-wrk-")))
        url = args.url.rstrip("/") if args.url else None
        if url is None:
            from cnnlab.serve.process import start_serve, stop

            proc, url = start_serve(args.run_dir, tmp / "serve.log", shlex.split(args.serve_args),
                                    env={"OMP_NUM_THREADS": "1"})
            stack.callback(stop, proc)
        png = tmp / "image.png"
        if args.png == "drawn":
            sys.path.insert(0, str(HERE))
            from load_test import drawn_seven  # the same image as the Python load test

            png.write_bytes(drawn_seven())
        elif args.png == "example":
            png.write_bytes(urllib.request.urlopen(f"{url}/examples/0.png", timeout=30).read())
        else:
            png = Path(args.png)
        rows = []
        for n in (int(c) for c in args.connections.split(",")):
            wrk(url, png, n, 5)  # warm-up: kernels built, connections and caches in place
            before = batches(url)
            row = {"connections": n, **wrk(url, png, n, args.duration)}
            after = batches(url)
            passes = after[0] - before[0]
            row["mean_batch"] = round((after[1] - before[1]) / passes, 2) if passes else None
            rows.append(row)
        png_bytes = png.stat().st_size
    res = {"cpu": cpu(), "load_average_at_end": round(os.getloadavg()[0], 2), "png_bytes": png_bytes,
           "serve_args": args.serve_args, "python": platform.python_version(), "rows": rows}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['cpu']}; Python {res['python']}; load average {res['load_average_at_end']} at the end")
        where = f"the server at {args.url}" if args.url else f"cnnlab serve RUN {args.serve_args}".rstrip()
        print(f"POST /predict, {res['png_bytes']}-byte PNG, {where}")
        print("| connections | requests/s | p50 | p90 | p99 | mean batch | errors |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['connections']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.2f} ms "
                  f"| {r['p90_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['mean_batch']} | {r['errors']} |")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
