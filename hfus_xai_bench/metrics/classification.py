"""Classification quality of the evaluated checkpoint (PROTOCOL §4): accuracy + weighted P / R / F1.

"Classification of the evaluated checkpoint on the same images: accuracy and weighted precision /
recall / F1, so a map is always read next to how good the model is." Semantics of scikit-learn's
``precision_recall_fscore_support(average="weighted", zero_division=0)``, in numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..constants import NUM_CLASSES
from ..errors import HfusError


def _labels(x: Any, name: str, num_classes: int) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x).reshape(-1)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise HfusError(f"{name}: expected integer class indices, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        raise HfusError(f"{name}: class indices must be in 0..{num_classes - 1}")
    return a.astype(np.int64)


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; rows = true class, columns = predicted class."""
    t = _labels(y_true, "y_true", num_classes)
    p = _labels(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise HfusError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def classification_report(y_true: Any, y_pred: Any, num_classes: int = NUM_CLASSES) -> dict[str, Any]:
    """Accuracy and support-weighted precision / recall / F1 as fractions in [0, 1] (zero_division=0).

    Per class c: precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2·TP/(2·TP+FP+FN), each 0 when its
    denominator is 0; the weighted value is Σ_c support_c · value_c / Σ_c support_c (support = true
    count). Returns ``accuracy``, ``precision``, ``recall``, ``f1``, ``n``, ``support`` (list) and
    ``confusion`` (nested list, rows = true class). An empty input gives zeros.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    n = float(cm.sum())

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        out = np.zeros_like(num)
        np.divide(num, den, out=out, where=den > 0)
        return out

    precision = ratio(tp, predicted)
    recall = ratio(tp, support)
    f1 = ratio(2 * tp, predicted + support)

    def weighted(v: np.ndarray) -> float:
        return float((v * support).sum() / n) if n else 0.0

    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "precision": weighted(precision),
        "recall": weighted(recall),
        "f1": weighted(f1),
        "n": int(n),
        "support": [int(s) for s in support],
        "confusion": cm.tolist(),
    }
