"""Serving a trained run over HTTP: a prediction API and the draw-a-digit page (see docs/serving.md)."""

from .app import create_app, serve_in_thread
from .launch import serve
from .service import ModelService
from .settings import Settings

__all__ = ["ModelService", "Settings", "create_app", "serve", "serve_in_thread"]
