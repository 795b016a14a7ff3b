"""cnnlab: from "what is a convolution" to a trained, inspected, exported and served CNN classifier."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Lazy: `import cnnlab` (and every CLI call) stays cheap; torch's training stack loads on first use.
_EXPORTS = {
    "TrainConfig": "config", "UserError": "errors", "Run": "run", "load_run": "run", "build_model": "spec",
    "create_model": "models", "list_models": "models", "train": "trainer",
}
__all__ = ["Run", "TrainConfig", "UserError", "build_model", "create_model", "list_models", "load_run", "train"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
