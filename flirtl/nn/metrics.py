"""The accuracy figures of flirtl, one definition each, used by training (model cards), `flirtl
eval` and `flirtl calibrate`, so the same model gets the same number under the same name everywhere.

* SFD (the IRF-free decay the network outputs, three channels): per channel, the RMSE over every
  pixel and bin, the **per-pixel R2** (each pixel's curve against its own mean, averaged over
  pixels; curves spanning less than `MIN_SPAN` are left out: an absent component of a
  mono-exponential pixel has no shape to explain) and the mean L2 norm of a pixel's error.
* Lifetimes (tau1, tau2, a, tau_mean): MAE, RMSE and bias (mean signed error) over the finite
  estimates; non-finite ones (a fit that failed) are counted, not dropped silently.
"""

from __future__ import annotations

import numpy as np

PHOTON_BINS = ((50, 200), (200, 1000), (1000, 10000))
LIFETIMES = ("tau1", "tau2", "a", "tau_mean")
CHANNELS = ("total", "short", "long")
#: Smallest peak-to-peak of a true SFD channel whose per-pixel R2 is averaged (peak-normalised SFD).
MIN_SPAN = 0.05


def sfd_scores(pred: np.ndarray, true: np.ndarray) -> dict[str, dict[str, float]]:
    """Per channel of (pixels, T, 3) decays: {"rmse", "r2" (per-pixel, averaged), "l2"}."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    out = {}
    for channel, name in enumerate(CHANNELS):
        error = pred[..., channel] - true[..., channel]
        spread = ((true[..., channel] - true[..., channel].mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        curved = np.ptp(true[..., channel], axis=1) >= MIN_SPAN
        r2 = 1 - (error[curved] ** 2).sum(axis=1) / spread[curved]
        out[name] = {"rmse": float(np.sqrt(np.mean(error ** 2))) if error.size else float("nan"),
                     "r2": float(r2.mean()) if r2.size else float("nan"),
                     "l2": float(np.linalg.norm(error, axis=1).mean()) if error.size else float("nan")}
    return out


def sfd_summary(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """The model card's SFD figures: channel 0's RMSE and per-pixel R2 (as `sfd_scores` gives
    them, so a card and `flirtl eval` agree) and the RMSE over all channels."""
    total = sfd_scores(pred, true)["total"]
    error = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    return {"rmse_ch0": total["rmse"], "r2_ch0": total["r2"], "rmse_all": float(np.sqrt(np.mean(error ** 2)))}


def lifetime_scores(estimate: dict[str, np.ndarray], truth: dict[str, np.ndarray],
                    rows: np.ndarray | None = None, names=LIFETIMES) -> dict[str, dict[str, float]]:
    """{name: {"mae", "rmse", "bias", "nonfinite"}} of each lifetime quantity over `rows`."""
    out = {}
    for name in names:
        est, true = np.asarray(estimate[name], np.float64), np.asarray(truth[name], np.float64)
        if rows is not None:
            est, true = est[rows], true[rows]
        finite = np.isfinite(est)
        error = est[finite] - true[finite]
        out[name] = {"mae": float(np.abs(error).mean()) if error.size else float("nan"),
                     "rmse": float(np.sqrt(np.mean(error ** 2))) if error.size else float("nan"),
                     "bias": float(error.mean()) if error.size else float("nan"),
                     "nonfinite": int((~finite).sum())}
    return out


def photon_bins(photons: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of each `PHOTON_BINS` range, keyed "lo-hi"."""
    return {f"{lo}-{hi}": (photons >= lo) & (photons < hi) for lo, hi in PHOTON_BINS}
