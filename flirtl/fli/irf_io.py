"""Measured instrument responses: read from file, check, normalise to unit sum."""

from __future__ import annotations

import os

import numpy as np


def load_irf(path, *, n_bins: int) -> np.ndarray:
    """A measured IRF of `n_bins` samples from a .npy or .csv file (one row or one column).

    Returns float64 of shape (n_bins,) with unit sum. Raises FileNotFoundError for a missing file
    and ValueError naming the file and the problem for anything else.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IRF file {path!r} does not exist")
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension == ".npy":
            irf = np.load(path, allow_pickle=False)
        elif extension == ".csv":
            irf = np.loadtxt(path, delimiter=",", ndmin=2)
        else:
            raise ValueError(f"IRF file {path!r} must be .npy or .csv, not {extension!r}")
    except ValueError as error:
        if str(error).startswith("IRF file"):
            raise
        raise ValueError(f"IRF file {path!r} could not be read: {error}") from error
    irf = np.asarray(irf)
    if irf.ndim == 2 and 1 in irf.shape:
        irf = irf.ravel()  # one row or one column
    if irf.ndim != 1:
        raise ValueError(
            f"IRF file {path!r} must hold one row or one column, not an array of shape {irf.shape}")
    return check_irf(irf, n_bins=n_bins, source=f"IRF file {path!r}")


def check_irf(irf, *, n_bins: int, source: str = "irf") -> np.ndarray:
    """Check an IRF of shape (n_bins,) or (N, n_bins) and normalise each to unit sum (float64).

    It must be numeric, finite, non-negative and not all zero; `source` names it in errors.
    """
    irf = np.asarray(irf)
    if irf.dtype.kind not in "uif":
        raise ValueError(f"{source} must be numeric, not dtype {irf.dtype}")
    if irf.ndim not in (1, 2) or irf.shape[-1] != n_bins:
        raise ValueError(
            f"{source} has shape {irf.shape}; expected ({n_bins},) or (N, {n_bins}): "
            f"one sample per time bin")
    irf = irf.astype(np.float64)
    if not np.isfinite(irf).all():
        index = _first(~np.isfinite(irf))
        raise ValueError(f"{source} holds NaN or inf, first {irf[index].item()!r} at index {index}")
    if (irf < 0).any():
        index = _first(irf < 0)
        raise ValueError(
            f"{source} must be non-negative, found {irf[index].item()!r} at index {index} "
            f"(subtract its background and clip at 0 first)")
    peak = irf.max(axis=-1, keepdims=True)
    if (peak <= 0).any():
        where = f" in row {_first(peak[:, 0] <= 0)[0]}" if irf.ndim == 2 else ""
        raise ValueError(f"{source} is all zero{where}")
    irf = irf / peak  # first to the peak: a sum of samples near the float maximum would overflow
    return irf / irf.sum(axis=-1, keepdims=True)


def _first(mask: np.ndarray) -> tuple[int, ...]:
    """Index of the first True in `mask`, as a tuple of ints."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


def stand_in_irf(counts: np.ndarray, *, dt: float, fwhm: float) -> np.ndarray:
    """A stand-in IRF (unit sum) for a file that comes without its own: a Gaussian of `fwhm` ns
    centred at the steepest rise of the image's summed decay (where the IRF under a decay peaks, to
    within a fraction of its width), sampled at the bin centres of the file's time axis."""
    summed = np.asarray(counts).reshape(-1, np.shape(counts)[-1]).sum(axis=0, dtype=np.float64)
    centre = (np.argmax(np.diff(summed)) + 1.0) * dt
    t = (np.arange(summed.size) + 0.5) * dt
    irf = np.exp(-0.5 * ((t - centre) / (fwhm / 2.3548)) ** 2)
    return irf / irf.sum()
