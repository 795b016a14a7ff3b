"""Saved models: safetensors weights with everything needed to rebuild and feed the model in metadata.

A `.safetensors` file holds only tensors and a string->string metadata map, so loading one can
never run code (unlike a pickle). cnnlab stores its `ModelMeta` as JSON under the key "cnnlab".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ..errors import UserError
from ..files import atomic_write
from .build import channels_last
from .registry import model_from_spec


@dataclass
class ModelMeta:
    """What a saved model needs beside its weights: architecture, input, classes, preprocessing."""

    spec: dict  # {"name", "layers": [...]} or {"name", "backbone"}: rebuilds the architecture
    input_shape: tuple[int, int, int]  # (C, H, W) the model was trained on
    classes: list[str]  # class names, index = model output
    mean: list[float]  # per-channel normalisation, computed on the training split, in [0, 1] units
    std: list[float]
    style: str = "resize"  # how user images are turned into inputs: "mnist", "fit" or "resize"
    data: str = ""  # data set the model was trained on
    extra: dict = field(default_factory=dict)  # e.g. test accuracy, for the web page
    tta: str = "none"  # test-time augmentation every prediction uses: "none" or "flip" (models/tta.py)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        d = json.loads(text)
        d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)


def save_weights(model: torch.nn.Module, meta: ModelMeta, path: str | Path) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in _unwrap(model).state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"cnnlab": meta.to_json()}))


def read_meta(path: str | Path) -> ModelMeta:
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("cnnlab")
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable safetensors file ({e}); point at a run directory "
                        "or a .safetensors file that cnnlab wrote") from None
    if raw is None:
        raise UserError(f"{path} has no cnnlab metadata: it was not written by cnnlab, so its architecture "
                        "is unknown")
    return ModelMeta.from_json(raw)


def load_weights(path: str | Path, device: str = "cpu") -> tuple[nn.Module, ModelMeta]:
    """Rebuild a model from a safetensors file alone (no pickle, no code from the file)."""
    meta = read_meta(path)
    # Built outside inference mode even when called inside it (e.g. a lazily loaded Run.model): parameters
    # made there would be inference tensors, and saliency/Grad-CAM could never backpropagate through them.
    with torch.inference_mode(False):
        model = model_from_spec(meta.spec, meta.input_shape, len(meta.classes))
        model.load_state_dict(load_file(str(path), device="cpu"))
        return channels_last(model.to(device)).eval(), meta


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
