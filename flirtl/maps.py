"""Lifetime maps as pictures and a one-page summary: what `flirtl infer` writes beside its .npz.

An image (H, W) result becomes a page of maps (intensity, mean lifetime, tau1, tau2, fraction a),
each with a colour bar, plus a histogram of the mean lifetime; a pixel list (N,) becomes the
histograms alone. Pixels with too few photons to mean anything are masked (grey), not coloured
as lifetimes: their outputs are noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .extras import require
from .files import atomic_write
from .fli.preprocess import background_sum

#: Pixels below this many photons (background-subtracted sum) are masked in the maps.
MIN_PHOTONS = 50
QUANTITIES = (("tau_mean", "mean lifetime (ns)"), ("tau1", "tau1, short (ns)"),
              ("tau2", "tau2, long (ns)"), ("a", "a, short-component fraction"))


def signal_photons(counts: np.ndarray, bg_bins: int, background: str = "head") -> np.ndarray:
    """Photons above the background (the model's rule, `fli.preprocess.background_sum`) per pixel."""
    counts = np.asarray(counts, np.float64)
    level = background_sum(counts, bg_bins=bg_bins, rule=background)[..., None] / bg_bins
    return np.clip(counts - level, 0, None).sum(axis=-1)


def _limits(values: np.ndarray) -> tuple[float, float]:
    """Colour range from the 1st to the 99th percentile: a few wild pixels must not wash out the map."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1e-9)


def plot_maps(result: dict, photons: np.ndarray, path, *, title: str = "") -> Path:
    """Write the maps (or histograms) of `result` (tau1, tau2, a, tau_mean) as a PNG."""
    matplotlib = require("matplotlib", "the maps' picture")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bright = photons >= MIN_PHOTONS
    image = np.ndim(result["tau_mean"]) == 2
    if image:
        fig, axes = plt.subplots(2, 3, figsize=(13, 8))
        shown = axes.flat
        ax = next(shown)
        im = ax.imshow(photons, cmap="gray")
        ax.set_title("intensity (photons above background)")
        fig.colorbar(im, ax=ax, fraction=0.046)
        for name, label in QUANTITIES:
            ax = next(shown)
            values = np.where(bright, result[name], np.nan).astype(np.float64)
            cmap = matplotlib.colormaps["viridis" if name == "a" else "turbo"].with_extremes(bad="0.25")
            im = ax.imshow(values, cmap=cmap, vmin=_limits(values)[0], vmax=_limits(values)[1])
            ax.set_title(label)
            fig.colorbar(im, ax=ax, fraction=0.046)
        ax = next(shown)
        for axis in axes.flat[:5]:
            axis.set_xticks([]), axis.set_yticks([])
    else:
        fig, axes = plt.subplots(1, 1, figsize=(6, 4))
        ax = axes
    tau = np.asarray(result["tau_mean"], np.float64)[bright]
    tau = tau[np.isfinite(tau)]
    ax.hist(tau, bins=100, range=_limits(tau), color="C0")
    ax.set(xlabel="mean lifetime (ns)", ylabel="pixels",
           title=f"mean lifetime, {tau.size} pixels >= {MIN_PHOTONS} photons")
    if title:
        fig.suptitle(title)
    path = Path(path)
    atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path


def summary(result: dict, photons: np.ndarray, *, source: str, model: str, engine: str,
            seconds: float) -> str:
    """A one-page Markdown summary: what was read, with what, and the distribution of each output."""
    bright = photons >= MIN_PHOTONS
    shape = "x".join(str(d) for d in np.shape(result["tau_mean"]))
    rows = ["| quantity | median | 5% | 95% | mean |", "|---|---|---|---|---|"]
    for name, label in QUANTITIES:
        values = np.asarray(result[name], np.float64)[bright]
        values = values[np.isfinite(values)]
        if values.size:
            p5, p50, p95 = np.percentile(values, [5, 50, 95])
            rows.append(f"| {label} | {p50:.3f} | {p5:.3f} | {p95:.3f} | {values.mean():.3f} |")
        else:
            rows.append(f"| {label} | - | - | - | - |")
    n = bright.size
    return f"""# Lifetime maps: {source}

- model `{model}`, engine `{engine}` ({'bit-exact with the FPGA IP' if engine in ('golden', 'rtl') else 'float torch model'})
- {shape} pixels in {seconds:.1f} s ({n / max(seconds, 1e-9):,.0f} pixels/s)
- {int(bright.sum())} pixels ({bright.mean():.0%}) with >= {MIN_PHOTONS} photons above background;
  median {np.median(photons):.0f} photons per pixel; statistics below are over those pixels

{chr(10).join(rows)}
"""
