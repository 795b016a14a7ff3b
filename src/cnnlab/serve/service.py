"""What the HTTP layer serves: one loaded model, its facts, and the CLI's own preparation path.

Routes stay thin: they read the request and hand the image to the service's `Batcher`, which prepares it
with the functions `cnnlab predict` calls (`data.open_image`, `data.prepare`'s two steps), runs one pass for
the requests that arrived together and formats the answer with `predict.answers`. A PNG posted alone gets
exactly the object the CLI prints for the same file.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import HTTPException
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from ..data import load_data, normalize, open_image, to_model_pixels
from ..errors import BrokenImage, ImageError, ImageTooLarge, NotAnImage, UserError
from ..models import fmt_shape, format_summary
from ..run import open_model
from .backends import load_backend, warm_up
from .batcher import Batcher
from .features import feature_maps
from .settings import Settings


class PixelsIn(BaseModel):
    """The JSON body of POST /predict: an image as numbers, rows first, 0-255."""

    model_config = ConfigDict(extra="forbid")
    pixels: list[Any] = Field(  # shape and values are checked by `pixels_to_image`, in one clear message
        description="H x W grey, or H x W x 3 (RGB) / H x W x 4 (RGBA), values 0-255",
        examples=[[[0, 0, 0], [0, 255, 0], [0, 0, 0]]])
    name: str = Field("pixels", description="echoed back as `file` in the answer")


def validation_detail(errors: list[dict]) -> str:
    """Pydantic's error list -> one line for `{"detail": ...}`: where, what, and how many more."""
    if not errors:
        return "invalid request"
    e = errors[0]
    loc = [str(p) for p in e.get("loc", ())]
    where = ".".join(loc[1:] if loc[:1] == ["body"] and len(loc) > 1 else loc) or "body"
    msg = e.get("msg", "invalid")
    if e.get("type") == "missing" and loc[:1] == ["body"]:
        msg += f"; send it as a multipart/form-data field named {loc[-1]!r}"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {msg}{more}"


# Why an image cannot be used -> the HTTP status that says so.
IMAGE_STATUS: dict[type[ImageError], int] = {NotAnImage: 415, ImageTooLarge: 413, BrokenImage: 400}


def decode_upload(data: bytes, name: str) -> Image.Image:
    """Uploaded bytes -> a decoded image, or an HTTPException whose detail names the file."""
    try:
        return open_image(data, name)
    except ImageError as e:
        raise HTTPException(IMAGE_STATUS.get(type(e), 400), str(e)) from None


def pixels_to_image(body: PixelsIn, max_side: int) -> Image.Image:
    """A validated JSON pixel array -> a PIL image, so it goes down the same path as a file."""
    try:
        a = np.asarray(body.pixels, dtype=np.float32)
    except (ValueError, TypeError) as e:
        what = ("rows are not all the same length" if "inhomogeneous" in str(e)
                else f"every value must be a number ({str(e)[:60]})")
        raise HTTPException(422, f"pixels: {what}; send a rectangular H x W or H x W x C array "
                                 "of 0-255") from None
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise HTTPException(422, f"pixels: shape {fmt_shape(a.shape)} is not an image; send "
                                 "H x W (grey) or H x W x 3 / H x W x 4 (RGB / RGBA)")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise HTTPException(422, "pixels: the array is empty")
    if max(a.shape[:2]) > max_side:
        raise HTTPException(413, f"pixels: {a.shape[0]}x{a.shape[1]} is larger than {max_side} pixels a "
                                 "side; scale it down or upload a file")
    if not np.isfinite(a).all():
        raise HTTPException(422, "pixels: values must be numbers 0-255 (got null, NaN or infinity)")
    if a.min() < 0 or a.max() > 255:
        raise HTTPException(422, f"pixels: values must be 0-255 (got {a.min():g} to {a.max():g})")
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[a.shape[2] if a.ndim == 3 else 2]
    return Image.fromarray(a.round().astype(np.uint8), mode=mode)


def _layout(px: np.ndarray) -> list:
    """(C, H, W) in [0, 1] -> nested lists in image layout: (H, W) grey or (H, W, C), 4 decimals."""
    a = px[0] if px.shape[0] == 1 else px.transpose(1, 2, 0)
    return np.round(a, 4).tolist()


class Served:
    """What is served, without serving it: the model and the facts about it (and the start-up banner's)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.model, self.meta, run = open_model(self.path)
        if run is None:  # a .safetensors file: what its metadata holds
            self.results, self.config = dict(self.meta.extra), {"data": self.meta.data}
        else:
            self.results, self.config = run.results, run.config
        self.model.eval()

    @property
    def name(self) -> str:
        return str(self.results.get("model") or self.config.get("model")
                   or self.meta.spec.get("name", "model"))

    @property
    def test_accuracy(self) -> float | None:
        return self.results.get("test_accuracy", self.meta.extra.get("test_accuracy"))


class ModelService(Served):
    """One model loaded for serving: its facts, its backend and the batcher in front of it.

    `model` (eval mode, the layout it was saved in) serves the feature maps of `explain`, which call its
    layers in turn; predictions go through `backend` (serve/backends.py) one batch at a time.
    """

    def __init__(self, path: str | Path, settings: Settings | None = None,
                 on_batch: Callable[[int], None] | None = None,
                 on_queue: Callable[[int], None] | None = None):
        super().__init__(path)
        self.settings = settings or Settings()
        self.backend = load_backend(self.settings.backend, self.model, self.path, self.settings.threads,
                                    self.meta.tta)
        warm_up(self.backend, tuple(self.meta.input_shape), (1, min(16, self.settings.max_batch)))
        self.batcher = Batcher(self.backend, self.meta, self.settings.max_batch,
                               self.settings.batch_wait_ms / 1000, on_batch=on_batch, on_queue=on_queue)
        self._examples: list[tuple[str, np.ndarray]] | None = None
        self._examples_note = ""
        self._examples_lock = threading.Lock()  # the data set is loaded once, by the first request

    def info(self) -> dict:
        """GET /model: what the page shows and a client needs to prepare inputs."""
        m = self.meta
        return {
            "name": self.name, "data": m.data, "style": m.style, "draw": m.style == "mnist",
            "classes": m.classes, "input_shape": list(m.input_shape), "mean": m.mean, "std": m.std,
            "params": sum(p.numel() for p in self.model.parameters()),
            "test_accuracy": self.test_accuracy,
            "metrics": self.results, "summary": format_summary(self.model, title=self.name),
            "serving": {"backend": self.backend.name, "max_batch": self.settings.max_batch,
                        "batch_wait_ms": self.settings.batch_wait_ms, "pid": os.getpid()},
        }

    def prepare_upload(self, data: bytes, name: str) -> np.ndarray:
        """Uploaded bytes -> (C, H, W) model pixels in [0, 1]; an HTTPException names the file if unusable."""
        return self.prepare_image(decode_upload(data, name), name)

    def prepare_image(self, image: Image.Image, name: str = "pixels") -> np.ndarray:
        try:
            return to_model_pixels(image, self.meta)
        except (OSError, ValueError) as e:  # decoded, but Pillow cannot convert it: still the file's fault,
            # as `cnnlab predict` says for a file on its command line (predict._load)
            raise HTTPException(400, f"{name}: not usable as an image ({type(e).__name__}: {str(e)[:80]})") \
                from None

    def explain(self, image: Image.Image) -> tuple[np.ndarray, dict]:
        """A decoded image -> its (C, H, W) model pixels, and what the page draws: those pixels and the
        feature maps of each conv block."""
        px = to_model_pixels(image, self.meta)  # (C, H, W) in [0, 1]: `prepare` in two steps, to show px
        x = normalize(px, self.meta)[None]  # (1, C, H, W)
        return px, {"input": _layout(px), "feature_maps": feature_maps(self.model, x)}

    def examples(self) -> dict:
        """A few real test images of the run's data set, one class after another (loaded on first use)."""
        with self._examples_lock:
            if self._examples is None:
                self._examples = self._load_examples()
        items = [{"id": i, "label": label, "url": f"/examples/{i}.png"}
                 for i, (label, _) in enumerate(self._examples)]
        return {"data": self.meta.data, "examples": items, "note": self._examples_note}

    def example_png(self, i: int) -> bytes:
        self.examples()
        if not 0 <= i < len(self._examples or []):
            raise HTTPException(404, f"example {i}: there are {len(self._examples or [])} examples "
                                     "(see /examples)")
        a = self._examples[i][1]  # (C, H, W) uint8
        img = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    def _load_examples(self) -> list[tuple[str, np.ndarray]]:
        n = self.settings.examples
        data = self.config.get("data") or self.meta.data
        if n == 0 or not data:
            return []
        try:
            # The training run's own data arguments, so examples look exactly like its test split.
            ds = load_data(data, self.config.get("data_dir"), download=False,
                           image_size=self.config.get("image_size"))
        except UserError as e:
            self._examples_note = f"no examples: {e}"
            return []
        y = ds.test.y.numpy()
        # Round-robin over classes so a dozen examples show as many classes as possible.
        per_class = [np.flatnonzero(y == c).tolist() for c in range(len(ds.classes))]
        picked: list[int] = []
        while len(picked) < n and any(per_class):
            for idx in per_class:
                if idx and len(picked) < n:
                    picked.append(idx.pop(0))
        x = ds.test.x[picked].numpy()
        return [(ds.classes[int(y[i])], x[k]) for k, i in enumerate(picked)]


def set_threads(n: int) -> None:
    """Each request runs in its own threadpool thread: more intra-op threads would oversubscribe the cores."""
    torch.set_num_threads(n)
