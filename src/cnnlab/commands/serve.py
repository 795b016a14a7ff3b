"""cnnlab serve."""

from __future__ import annotations

import argparse

HELP = "serve a trained run: prediction API (POST /predict) and a draw-a-digit web page"
EXAMPLES = """\
  cnnlab serve runs/mnist-run                  then open http://127.0.0.1:8000/
  cnnlab serve runs/fashion-run --port 8080
  curl -F file=@digit.png http://127.0.0.1:8000/predict
The API is documented at /docs (OpenAPI JSON at /openapi.json) and in docs/serving.md.
Binds to 127.0.0.1 (this machine only) unless --host says otherwise."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a .safetensors file cnnlab wrote)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=10.0,
                   help="refuse request bodies larger than this with 413 (default 10)")
    p.add_argument("--top-k", type=int, default=3, help="classes listed per image when ?top_k= is absent")


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
    import uvicorn
    from pydantic import ValidationError

    from ..errors import UserError
    from ..serve import Settings, create_app

    try:
        settings = Settings(max_upload_mb=args.max_upload_mb, top_k=args.top_k)
    except ValidationError as e:
        err = e.errors()[0]
        raise UserError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None
    _check_port(args.host, args.port)
    app = create_app(args.run_dir, settings)
    service = app.state.service
    acc = service.info()["test_accuracy"]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {service.name} ({service.meta.data}"
          + (f", test accuracy {100 * acc:.2f}%" if acc is not None else "") + ")")
    print(f"open http://{shown}:{args.port}/   API docs: http://{shown}:{args.port}/docs   Ctrl-C stops",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
