"""`cnnlab serve` in a process of its own, for scripts and tests that talk to it over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_process(run_dir: str | Path, *, log: str | Path | None = None, env: dict | None = None,
                  timeout: float = 120) -> Iterator[str]:
    """Start `python -m cnnlab serve RUN_DIR` on a free loopback port; yield its URL once /health answers.

    Its output goes to `log` (a temporary file if None: a pipe nobody reads would fill and block it).
    The server is stopped on exit. RuntimeError, with the server's log, if it exits or does not answer
    within `timeout` seconds.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="cnnlab-serve-") as tmp:
        log_path = Path(log) if log is not None else Path(tmp) / "serve.log"
        with open(log_path, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", str(run_dir),
                                     "--port", str(port)],
                                    stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:  # urllib, not httpx: this module must work with the package's own dependencies
                    with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:  # refused while it starts; urllib's URLError is an OSError
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"cnnlab serve did not come up at {url}; "
                                       f"its log:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
