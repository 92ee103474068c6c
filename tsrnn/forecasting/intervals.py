"""Calibration on held-out windows: conformal interval widths and shrinkage to naive."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["conformal_quantile", "naive_shrinkage"]


def naive_shrinkage(last: np.ndarray, pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per-step weight w in [0, 1] minimising ||actual - last - w (pred - last)||^2.

    Parameters
    ----------
    last : (n,) last observed values; pred, actual : (n, horizon).
    """
    change = pred - last[:, None]
    moved = actual - last[:, None]
    denom = np.sum(change * change, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(denom > 0, np.sum(change * moved, axis=0) / denom, 0.0)
    return np.clip(w, 0.0, 1.0)


def conformal_quantile(residuals: np.ndarray, coverage: float) -> np.ndarray:
    """Per-step split-conformal half-width: the ceil((n+1) coverage)-th smallest residual.

    Infinite when there are too few residuals for the requested coverage.
    """
    n = residuals.shape[0]
    rank = int(math.ceil((n + 1) * coverage))
    if rank > n:
        return np.full(residuals.shape[1], np.inf)
    return np.sort(residuals, axis=0)[rank - 1]
