"""Accuracy metrics of SFD and lifetime estimates: one definition of each, for training, model
cards and `flirtl eval`.

Two R2 are in use, under two names, so that no two reports print different numbers under one label:

- `pooled_r2`: one R2 over every pixel and bin of a set, against the set's mean curve value. The
  model card's "R2 ch0 (pooled)" and metrics.json's `r2_ch0`.
- `per_pixel_r2`: the R2 of each pixel's curve against that curve's mean, averaged over pixels, as
  the reference work reports it. `flirtl eval`'s "mean per-pixel R2" and results.json's `r2`.

The pooled R2 is the larger: the spread between pixels counts as explained variance.
"""

from __future__ import annotations

import numpy as np

CHANNELS = ("total", "short", "long")
#: Smallest peak-to-peak of a true SFD channel whose per-pixel R2 is averaged (peak-normalised SFD).
MIN_SPAN = 0.05


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean square error over every element (pixel and bin)."""
    error = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    return float(np.sqrt(np.mean(error ** 2)))


def pooled_r2(pred: np.ndarray, true: np.ndarray) -> float:
    """1 - SSE / SST over every pixel and bin of (N, T) curves, SST about the set's mean value."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    return float(1 - np.sum((pred - true) ** 2) / np.sum((true - true.mean()) ** 2))


def per_pixel_r2(pred: np.ndarray, true: np.ndarray) -> float:
    """The R2 of each pixel's (T,) curve about its own mean, averaged over the pixels of (N, T)
    curves. Curves that span less than `MIN_SPAN` (an absent component of a mono-exponential
    pixel) are left out: their R2 is undefined or meaninglessly large and negative. NaN when no
    curve is left."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    curved = np.ptp(true, axis=1) >= MIN_SPAN
    error, true = pred[curved] - true[curved], true[curved]
    r2 = 1 - (error ** 2).sum(axis=1) / ((true - true.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    return float(r2.mean()) if r2.size else float("nan")


def sfd_scores(pred: np.ndarray, true: np.ndarray) -> dict[str, dict[str, float]]:
    """`flirtl eval`'s SFD scores, per channel: `rmse`, `r2` (`per_pixel_r2`) and `l2` (the norm
    of each pixel's error, averaged over pixels)."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    return {name: {"rmse": rmse(pred[..., channel], true[..., channel]),
                   "r2": per_pixel_r2(pred[..., channel], true[..., channel]),
                   "l2": float(np.linalg.norm(pred[..., channel] - true[..., channel], axis=1).mean())}
            for channel, name in enumerate(CHANNELS)}


def card_sfd_scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """The model card's SFD scores: channel-0 `rmse_ch0` and `r2_ch0` (`pooled_r2`), and
    `rmse_all` over every channel."""
    return {"rmse_ch0": rmse(pred[..., 0], true[..., 0]), "r2_ch0": pooled_r2(pred[..., 0], true[..., 0]),
            "rmse_all": rmse(pred, true)}


def lifetime_error(estimate: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and bias (mean signed error) of a lifetime quantity; non-finite estimates (a fit
    that failed) are counted in `nonfinite`, not dropped silently. NaN errors when no estimate is
    finite."""
    estimate, true = np.asarray(estimate, np.float64), np.asarray(true, np.float64)
    finite = np.isfinite(estimate)
    error = estimate[finite] - true[finite]
    nan = float("nan")
    return {"mae": float(np.abs(error).mean()) if error.size else nan,
            "rmse": float(np.sqrt(np.mean(error ** 2))) if error.size else nan,
            "bias": float(error.mean()) if error.size else nan,
            "nonfinite": int((~finite).sum())}
