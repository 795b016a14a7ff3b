"""Scoring a classifier: logits in large batches, then loss, accuracy, the confusion matrix and per-class
precision, recall and F1.

The confusion matrix is counted here once (a bincount) and everything per class is read off it: the
trainer sums the counts of every rank under DDP, which a library call on one rank's predictions cannot
do, and `tests/test_evaluate.py` checks the numbers against scikit-learn's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """(k, k) int64 counts: rows are the true class, columns the predicted one."""
    return torch.bincount((y.long() * k + pred.long()).reshape(-1).cpu(), minlength=k * k).view(k, k)


def per_class(cm: torch.Tensor, classes: list[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support per class from a confusion matrix; 0 where a ratio is 0/0."""
    cm = cm.double()
    tp, predicted, support = cm.diag(), cm.sum(0), cm.sum(1)

    def ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(b > 0, a / b.clamp_min(1), torch.zeros_like(a))

    p, r = ratio(tp, predicted), ratio(tp, support)
    f = ratio(2 * p * r, p + r)
    return {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                "support": int(support[i])}
            for i, c in enumerate(classes)}


def classification_report(logits: torch.Tensor, y: torch.Tensor, classes: list[str]) -> dict:
    """Test loss/accuracy, per-class precision/recall/F1/support and the confusion matrix (rows = true)."""
    loss, acc = loss_and_accuracy(logits, y)
    cm = confusion_matrix(logits.argmax(1), y, len(classes))
    return {"test_accuracy": acc, "test_loss": loss, "test_samples": len(y),
            "per_class": per_class(cm, classes), "confusion_matrix": cm.tolist()}
