"""Evaluation: logits in large batches, then accuracy, loss, per-class metrics, confusion matrix."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


@torch.inference_mode()
def infer(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits (N, K) for normalised inputs x (N, C, H, W), in large batches, model in eval mode."""
    was_training = model.training
    model.eval()
    out = [model(x[i: i + batch_size]).float() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    if len(y) == 0:
        return float("nan"), float("nan")
    loss = F.cross_entropy(logits, y.to(logits.device)).item()
    acc = (logits.argmax(1).cpu() == y.cpu()).float().mean().item()
    return loss, acc


def classification_report(logits: torch.Tensor, y: torch.Tensor, classes: list[str]) -> dict:
    """Test loss/accuracy, per-class precision/recall/F1/support and the confusion matrix (rows = true)."""
    loss, acc = loss_and_accuracy(logits, y)
    pred = logits.argmax(1).cpu().numpy()
    true = y.cpu().numpy()
    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(true, pred, labels=labels, zero_division=0)
    return {
        "test_accuracy": acc,
        "test_loss": loss,
        "test_samples": len(true),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(s[i])} for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(true, pred, labels=labels).tolist(),
    }
