"""Error measures of predicted ratings against held-out ones (as Surprise's ``accuracy`` module)."""

from __future__ import annotations

import numpy as np


def mse(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error of float predictions (n,) against float truth (n,); NaN when n = 0."""
    err = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return float(np.mean(err**2)) if err.size else float("nan")


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared error of float predictions (n,) against float truth (n,)."""
    return float(np.sqrt(mse(pred, truth)))


def metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """MSE, RMSE and MAE of float predictions (n,) against float truth (n,)."""
    err = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    squared = mse(pred, truth)
    return {
        "mse": squared,
        "rmse": float(np.sqrt(squared)),
        "mae": float(np.mean(np.abs(err))) if err.size else squared,
    }
