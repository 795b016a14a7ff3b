"""Helpers for tests: run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys


def cli(*args: str, timeout: float = 300, env: dict | None = None, cwd: str | None = None):
    """Run `python -m cnnlab ARGS` as a user would; returns CompletedProcess (text)."""
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=cwd, check=False)
