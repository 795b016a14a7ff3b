"""Scoring: one confusion matrix, and per-class precision/recall/F1 read off it, equal to scikit-learn's."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_recall_fscore_support

from cnnlab.models.evaluate import classification_report, confusion_matrix


@pytest.mark.parametrize("seed", range(5))
def test_report_matches_scikit_learn(seed):
    g = torch.Generator().manual_seed(seed)
    k = 6
    y = torch.randint(0, k - 1, (300,), generator=g)  # class 5 never occurs: its recall is 0/0
    logits = torch.randn(300, k, generator=g) + 2.0 * torch.nn.functional.one_hot(y, k)
    logits[:, 4] -= 9  # class 4 is never predicted: its precision is 0/0
    rep = classification_report(logits, y, [f"c{i}" for i in range(k)])
    pred = logits.argmax(1).numpy()
    assert rep["confusion_matrix"] == sk_confusion(y.numpy(), pred, labels=list(range(k))).tolist()
    p, r, f, s = precision_recall_fscore_support(y.numpy(), pred, labels=list(range(k)), zero_division=0)
    for i in range(k):
        m = rep["per_class"][f"c{i}"]
        assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((p[i], r[i], f[i]), abs=1e-12)
        assert m["support"] == s[i]
    assert rep["test_accuracy"] == pytest.approx(float((pred == y.numpy()).mean()))


def test_confusion_matrix_rows_are_the_truth():
    cm = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 2]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
