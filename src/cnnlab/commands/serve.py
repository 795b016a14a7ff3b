"""cnnlab serve."""

from __future__ import annotations

import argparse

HELP = "serve a trained run: prediction API (POST /predict), /metrics, and a draw-a-digit web page"
EXAMPLES = """\
  cnnlab serve runs/mnist-run                  then open http://127.0.0.1:8000/
  cnnlab serve runs/fashion-run --port 8080
  cnnlab serve runs/fashion-run --workers 2 --backend onnxruntime
  curl -F file=@digit.png http://127.0.0.1:8000/predict
Requests that arrive together share one forward pass (up to --max-batch; a lone request never waits).
The API is documented at /docs (OpenAPI JSON at /openapi.json) and in docs/serving.md; /metrics is for
Prometheus. Binds to 127.0.0.1 (this machine only) unless --host says otherwise. SIGTERM finishes the
requests in flight, then exits."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a .safetensors file cnnlab wrote)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="who runs the forward pass (default torch); onnxruntime serves the run's ONNX "
                        "export, made on the fly and cached")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes, each with the model loaded once (default 1)")
    p.add_argument("--max-batch", type=int, default=64,
                   help="most images in one forward pass, and files in one /predict/batch request "
                        "(default 64)")
    p.add_argument("--batch-wait-ms", type=float, default=2.0,
                   help="how long a batch may wait for requests already being received (default 2)")
    p.add_argument("--max-upload-mb", type=float, default=10.0,
                   help="refuse request bodies larger than this with 413 (default 10)")
    p.add_argument("--client-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="a client must send a request's head, then its body, within this time each "
                        "(default 10); slower ones are cut off, a late body with 408")
    p.add_argument("--drain-seconds", type=float, default=0.0, metavar="SECONDS",
                   help="after SIGTERM, keep serving this long while /health says 503 draining (default 0)")
    p.add_argument("--top-k", type=int, default=3, help="classes listed per image when ?top_k= is absent")
    p.add_argument("--access-log", action="store_true", help="log every request (off: it costs throughput)")


def _check_port(host: str, port: int) -> None:
    """Fail with one line before loading anything if the address is taken (uvicorn would log and exit 1)."""
    import socket

    from ..errors import UserError

    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: must be 0-65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise UserError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); "
                            "pick another port with --port") from None


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ..errors import UserError
    from ..serve import Settings, serve

    try:
        settings = Settings(backend=args.backend, max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
                            max_upload_mb=args.max_upload_mb, client_timeout=args.client_timeout,
                            drain_seconds=args.drain_seconds, top_k=args.top_k)
    except ValidationError as e:
        err = e.errors()[0]
        raise UserError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be 1 or more")
    _check_port(args.host, args.port)
    shown = f"[{args.host}]" if ":" in args.host else args.host

    def banner(served) -> None:
        acc = served.test_accuracy
        print(f"serving {served.name} ({served.meta.data}"
              + (f", test accuracy {100 * acc:.2f}%" if acc is not None else "")
              + f"; {settings.backend}, {args.workers} worker{'s' if args.workers > 1 else ''})")
        print(f"open http://{shown}:{args.port}/   API docs: http://{shown}:{args.port}/docs   "
              "Ctrl-C stops", flush=True)

    serve(args.run_dir, settings, args.host, args.port, args.workers, args.access_log, banner)
    return 0
