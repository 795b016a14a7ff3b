"""What the HTTP layer serves: one loaded model, its facts, and the CLI's own prediction path.

Routes stay thin: they read the request, call a `ModelService` method in the threadpool, and return
its dict. Decoding, preprocessing and inference are the same functions `cnnlab predict` calls
(`data.open_image`, `predict.predict_images` / `predict_tensor`), so a PNG posted here and the same
file given to the CLI get the same answer to the last digit.
"""

from __future__ import annotations

import io
import threading
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
from ..predict import predict_images, predict_tensor
from ..run import open_model
from .features import feature_maps


class Settings(BaseModel):
    """Server settings: one place, validated, set from `cnnlab serve` flags or by hand in Python."""

    max_upload_mb: float = Field(10.0, gt=0, description="request bodies above this many MB get 413")
    max_batch: int = Field(64, ge=1, description="most files in one /predict/batch request")
    max_side: int = Field(4096, ge=28, description="most rows or columns in a JSON pixel array")
    top_k: int = Field(3, ge=1, description="classes listed per image when ?top_k= is not given")
    threads: int = Field(1, ge=1, description="torch intra-op threads; requests already run in parallel")
    examples: int = Field(12, ge=0, description="test images offered by /examples")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


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


class ModelService:
    """One model loaded for serving. Stateless at inference, so requests run in parallel threads.

    No lock around the forward pass: the model is in eval mode (BatchNorm reads its running stats,
    never writes them) and `feature_maps` calls the layers directly (a backbone's hooks keep to their own
    request's thread).
    """

    def __init__(self, path: str | Path, settings: Settings | None = None):
        self.path = Path(path)
        self.settings = settings or Settings()
        self.model, self.meta, run = open_model(self.path)
        if run is None:  # a .safetensors file: what its metadata holds
            self.results, self.config = dict(self.meta.extra), {"data": self.meta.data}
        else:
            self.results, self.config = run.results, run.config
        self.model.eval()
        self._examples: list[tuple[str, np.ndarray]] | None = None
        self._examples_note = ""
        self._examples_lock = threading.Lock()  # the data set is loaded once, by the first request

    @property
    def name(self) -> str:
        return str(self.results.get("model") or self.config.get("model")
                   or self.meta.spec.get("name", "model"))

    def info(self) -> dict:
        """GET /model: what the page shows and a client needs to prepare inputs."""
        m = self.meta
        return {
            "name": self.name, "data": m.data, "style": m.style, "draw": m.style == "mnist",
            "classes": m.classes, "input_shape": list(m.input_shape), "mean": m.mean, "std": m.std,
            "params": sum(p.numel() for p in self.model.parameters()),
            "test_accuracy": self.results.get("test_accuracy", m.extra.get("test_accuracy")),
            "metrics": self.results, "summary": format_summary(self.model, title=self.name),
        }

    def predict(self, images: list[Image.Image], names: list[str], top_k: int,
                explain: bool = False) -> list[dict]:
        """Decoded images -> `cnnlab predict --json` objects; `explain` adds the model input and feature
        maps."""
        if not explain:
            return predict_images(self.model, self.meta, images, names, top_k)
        out = []
        for img, name in zip(images, names):
            px = to_model_pixels(img, self.meta)  # (C, H, W) in [0, 1]: `prepare` in two steps, to show px
            x = normalize(px, self.meta)[None]  # (1, C, H, W)
            r = {"file": name, **predict_tensor(self.model, self.meta, x, top_k)[0]}
            r["input"] = _layout(px)
            r["feature_maps"] = feature_maps(self.model, x)
            out.append(r)
        return out

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
