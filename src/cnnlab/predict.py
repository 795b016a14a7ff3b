"""Prediction on the user's own image files, in the JSON shape DESIGN.md gives."""

from __future__ import annotations

from pathlib import Path

import torch

from .preprocess import open_image, prepare
from .weights import ModelMeta


@torch.inference_mode()
def predict_tensor(model: torch.nn.Module, meta: ModelMeta, x: torch.Tensor, top_k: int = 3) -> list[dict]:
    """Normalised inputs (N, C, H, W) -> one {label, probability, top_k} per image."""
    model.eval()
    device = next(model.parameters()).device
    probs = torch.softmax(model(x.to(device)).float(), dim=1).cpu()
    k = max(1, min(top_k, probs.shape[1]))
    p, i = probs.topk(k, dim=1)
    out = []
    for pr, ix in zip(p.tolist(), i.tolist()):
        top = [{"label": meta.classes[c], "probability": round(v, 6)} for v, c in zip(pr, ix)]
        out.append({"label": top[0]["label"], "probability": top[0]["probability"], "top_k": top})
    return out


def predict_images(model: torch.nn.Module, meta: ModelMeta, images: list, names: list[str],
                   top_k: int = 3) -> list[dict]:
    """Decoded PIL images -> predictions with their file names, in one batch."""
    x = torch.stack([prepare(img, meta) for img in images])
    return [{"file": n, **r} for n, r in zip(names, predict_tensor(model, meta, x, top_k))]


def predict_files(model: torch.nn.Module, meta: ModelMeta, paths: list[str | Path], top_k: int = 3,
                  batch_size: int = 256) -> list[dict]:
    """Predict image files; every file is decoded first so a bad one fails before any output."""
    out = []
    for i in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[i:i + batch_size]]
        out += predict_images(model, meta, [open_image(p) for p in chunk], chunk, top_k)
    return out
