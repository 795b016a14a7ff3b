"""cnnlab: from "what is a convolution" to a trained, inspected, exported and served CNN classifier."""

from __future__ import annotations

import functools
import importlib

# Lazy: `import cnnlab` (and every CLI call) stays cheap; torch's training stack loads on first use.
_EXPORTS = {
    "TrainConfig": "training.options", "UserError": "errors", "Run": "run", "load_run": "run", "train": "run",
    "summary": "run", "build_model": "models", "create_model": "models", "list_models": "models",
}
__all__ = ["Run", "TrainConfig", "UserError", "build_model", "create_model", "list_models", "load_run",
           "summary", "train"]


@functools.cache
def _version() -> str:
    """pyproject.toml's version, the one place it is written (read on first use: importlib.metadata
    takes 40 ms to import, as long as the rest of `cnnlab --help`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cnnlab")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        return _version()
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
