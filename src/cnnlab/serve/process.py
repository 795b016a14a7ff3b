"""`cnnlab serve` in a process of its own, for scripts and tests that talk to it over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(run_dir: str | Path, log_path: str | Path, args: Sequence[str] = (), env: dict | None = None,
                timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """Start `python -m cnnlab serve RUN_DIR --port P ARGS...` on a free loopback port; return the process
    and its URL once /health answers 200. The caller stops it. RuntimeError, with the server's log, if it
    exits or does not answer within `timeout` seconds."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(log_path)
    with open(log_path, "w") as out:  # a file, not a pipe: a pipe nobody reads would fill and block it
        cmd = [sys.executable, "-m", "cnnlab", "serve", str(run_dir), "--port", str(port), *args]
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    while True:
        try:  # urllib, not httpx: this module must work with the package's own dependencies
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:  # refused while it starts; urllib's URLError is an OSError
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"cnnlab serve did not come up at {url}; its log:\n{log_path.read_text()}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM (a graceful shutdown), then SIGKILL if it has not exited within `timeout`; its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextmanager
def serve_process(run_dir: str | Path, *, args: Sequence[str] = (), log: str | Path | None = None,
                  env: dict | None = None, timeout: float = 120) -> Iterator[str]:
    """`cnnlab serve RUN_DIR ARGS...` in its own process for the duration of the block; yields its URL.

    Its output goes to `log` (a temporary file if None). The server is stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="cnnlab-serve-") as tmp:
        log = log if log is not None else Path(tmp) / "serve.log"
        proc, url = start_serve(run_dir, log, args, env, timeout)
        try:
            yield url
        finally:
            stop(proc)
