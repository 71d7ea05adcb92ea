"""Raw photon counts -> model input: the float reference of the IP's input normalisation."""

from __future__ import annotations

import numpy as np

from ..spec import BACKGROUND_RULES


def check_background_rule(rule) -> str:
    if rule not in BACKGROUND_RULES:
        raise ValueError(f"background rule must be one of {BACKGROUND_RULES}, not {rule!r}")
    return rule


def background_sum(counts: np.ndarray, *, bg_bins: int, rule: str) -> np.ndarray:
    """Sum of the `bg_bins` background bins of each pixel (..., T) -> (...): the bins the `rule`
    picks (see BACKGROUND_RULES); divided by bg_bins it is the background estimate. Integer counts
    give an exact integer sum, as the IP's accumulators hold it."""
    head = counts[..., :bg_bins].sum(axis=-1)
    if check_background_rule(rule) == "head":
        return head
    return np.minimum(head, counts[..., -bg_bins:].sum(axis=-1))


def validate_counts(counts, *, n_bins: int) -> np.ndarray:
    """Check raw counts of shape (..., n_bins): finite, non-negative and integer-valued.

    Returns `counts` as an array. Raises ValueError naming the problem.
    """
    counts = _check_array(counts)
    if counts.shape[-1] != n_bins:
        raise ValueError(
            f"counts has {counts.shape[-1]} time bins, the model expects {n_bins}")
    if counts.dtype.kind == "f" and not np.array_equal(counts, np.round(counts)):
        bad = np.flatnonzero(counts != np.round(counts))[0]
        raise ValueError(
            f"counts must be integer photon counts, found {counts.flat[bad].item()!r} "
            f"at flat index {bad}")
    return counts


def normalize_tpsf(counts, *, bg_bins: int, background: str = "head") -> np.ndarray:
    """Model input from counts (..., T): minus background, clipped at 0, divided by the peak.

    The background is the mean of `bg_bins` bins of each pixel, the first ones or (rule 'ends') the
    first or last ones, whichever are fewer (`background_sum`). Pixels with nothing left
    above the background give all zeros (never NaN). Returns float32 of the same shape.
    """
    counts = _check_array(counts)
    n_bins = counts.shape[-1]
    if not isinstance(bg_bins, (int, np.integer)) or isinstance(bg_bins, bool) or not (
            1 <= bg_bins < n_bins):
        raise ValueError(f"bg_bins must be an int in [1, {n_bins - 1}], not {bg_bins!r}")
    tpsf = counts.astype(np.float32)
    level = background_sum(tpsf, bg_bins=bg_bins, rule=background)[..., None] / np.float32(bg_bins)
    tpsf -= level
    np.maximum(tpsf, 0.0, out=tpsf)
    peak = tpsf.max(axis=-1, keepdims=True)
    # empty pixels divide by inf and stay 0 instead of 0/0
    tpsf /= np.where(peak > 0, peak, np.float32(np.inf))
    return tpsf


def _check_array(counts) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim < 1:
        raise ValueError(f"counts must have a time axis (shape (..., T)), got a scalar {counts!r}")
    if counts.dtype.kind not in "uif":
        raise ValueError(f"counts must be numeric, not dtype {counts.dtype}")
    if counts.dtype.kind == "f":
        finite = np.isfinite(counts)
        if not finite.all():
            bad = np.flatnonzero(~finite)[0]
            raise ValueError(
                f"counts holds {(~finite).sum()} NaN/inf value(s), first "
                f"{counts.flat[bad].item()!r} at flat index {bad}")
    if counts.dtype.kind != "u" and counts.size and counts.min() < 0:
        bad = int(np.argmin(counts))
        raise ValueError(
            f"counts must be non-negative, found {counts.flat[bad].item()!r} at flat index {bad}")
    return counts
