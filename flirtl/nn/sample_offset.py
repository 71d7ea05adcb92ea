"""Where the model-phasor offset on the real samples comes from (issue 15: on the Becker & Hickl SDT
sample the model's median mean lifetime sat 0.26 ns below the phasor's).

For each sample file of `make data` (SDT: 256 bins of 48.9 ps, read with `models/tcspc256-16x16`;
PTU: 132 bins of 97 ps, with `models/ptu132-16x16`), on a seeded subsample of its pixels with at
least `MIN_PHOTONS` photons:

1. The instrument, measured: bins recorded (a TCSPC module's TAC limits leave bins empty in every
   pixel), where the decay peaks against the model's training range, the level before the rise.
   A fit of the image's summed decay (millions of photons) gives the IRF: a Gaussian of free centre
   and width under three exponentials, excited periodically (the tail of each laser period runs
   into the next: the level before the rise is mostly that tail, not dark counts) plus a flat
   background, fitted over the recorded bins with Pearson weights.
2. Medians of the mean lifetime (amplitude-weighted, the project's tau_mean) on the real pixels: the
   model as `flirtl infer` runs it (golden 8-bit engine), the model with the decay moved to the
   middle of its training range (`--peak-bin`, the empty bins padded with each pixel's
   background), the model trained with the pulse anywhere (an ss3 model: another instrument, on
   whole bins read as 0.09 ns and rescaled), the phasor and FLIMLib's LMA fit each with the stand-in
   IRF (`fli.irf_io.stand_in_irf`, as `benchmarks/sample_vs_phasor.py`) and with the fitted IRF.
3. A twin of the sample with known lifetimes: each LMA-subsample pixel's LMA fit (fitted IRF) as its
   truth, drawn again with its own photon count through the fitted IRF, periodic excitation, the
   fitted background and the file's empty bins; then without the wrap-around (single decays, what
   the models were trained on), without the empty bins, and with an IRF as wide as the model's
   training range when the fitted one lies outside it. Each estimator's median against the truth's
   shows which cause moves which estimator, and by how much (medians of both: the distances add).

    .venv/bin/python -m flirtl.nn.sample_offset --out docs/eval     # ~1-2 min on 2 cores

writes sdt_offset.json, sdt_offset.png and the table block of sdt_offset.md there (the page's text
around the block is kept). `--write-irf IRF.npy` writes the IRF fitted to the SDT's summed decay
(for `flirtl calibrate --irf`), `--model SDT=DIR` studies another model for a sample.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..baselines import lma_fit, phasor_lifetimes
from ..files import atomic_write
from ..fli import get_instrument
from ..fli.irf_io import stand_in_irf
from ..fli.instrument import FWHM_PER_SIGMA
from ..infer import infer
from ..quant import dump_json
from ..readers import Decay, match_time_axis, read_decay
from .data import trained_source

ROOT = Path(__file__).resolve().parents[2]
#: sample name -> (file of `make data`, model trained for its instrument)
SAMPLES = {
    "SDT": ("data/samples/seminal_receptacle_FLIM_single_image.sdt", "models/tcspc256-16x16"),
    "PTU": ("data/samples/hazelnut_FLIM_single_image.ptu", "models/ptu132-16x16"),
}
#: The model trained with the pulse anywhere in ss3's window.
ANYWHERE = "models/seq2seqlite-32x32-anywhere"
#: Pixels scored (as README's sample_vs_phasor figures: >= 100 photons).
MIN_PHOTONS = 100
#: Exponentials of the summed-decay fit (two leave structured residuals on both samples).
COMPONENTS = 3
#: Sub-samples per bin of the bin-integrated forward model.
SUBSAMPLES = 8
#: The twin's truth takes the LMA fits with both lifetimes in this range (ns): on a few hundred
#: photons the fit now and then runs a component to FLIMLib's 1 ps limit with nearly all the
#: amplitude (13% of the PTU pixels), which drags the amplitude-weighted tau_mean to 0.
TRUTH_TAU = (0.05, 10.0)
BEGIN, END = "<!-- sample_offset:begin (written by python -m flirtl.nn.sample_offset) -->", "<!-- sample_offset:end -->"


# -- forward model and the fit of the summed decay -----------------------------------------------

def periodic_decays(tau, *, n_bins: int, dt: float, centre: float, sigma: float, period: float | None) -> np.ndarray:
    """Counts per bin (len(tau), n_bins) of exp(-t/tau)/tau (unit area) starting at `centre`,
    convolved with a Gaussian IRF of standard deviation `sigma` (ns), integrated over each bin
    [k*dt, (k+1)*dt) and, with a laser `period`, summed over the earlier periods whose tails reach
    the window (periodic excitation); period None: a single decay."""
    tau = np.atleast_1d(np.asarray(tau, np.float64))[:, None]
    t = ((np.arange(n_bins * SUBSAMPLES) + 0.5) * dt / SUBSAMPLES)[None, :]
    wraps = 1 if period is None else 1 + int(math.ceil(25.0 * tau.max() / period))
    total = np.zeros((tau.shape[0], t.shape[1]))
    for k in range(wraps):
        total += _emg(t + k * (period or 0.0) - centre, sigma, tau)
    return total.reshape(tau.shape[0], n_bins, SUBSAMPLES).mean(axis=2) * dt


def _emg(t, sigma, tau):
    """exp(-t/tau)/tau for t >= 0 convolved with N(0, sigma): stable on both sides of the rise."""
    from scipy.special import erfc, erfcx

    x = t / sigma
    arg = (sigma / tau - x) / math.sqrt(2.0)
    x, arg, tt, ta = np.broadcast_arrays(x, arg, t, tau)
    out = np.empty(x.shape)
    rising = arg > 0  # erfcx keeps exp(x^2) * erfc(x) finite where erfc underflows
    out[rising] = 0.5 / ta[rising] * np.exp(-0.5 * x[rising] ** 2) * erfcx(arg[rising])
    falling = ~rising  # here the exponent is <= 0
    s = sigma / ta[falling]
    out[falling] = 0.5 / ta[falling] * np.exp(0.5 * s ** 2 - tt[falling] / ta[falling]) * erfc(arg[falling])
    return out


def gaussian_irf(*, n_bins: int, dt: float, centre: float, sigma: float) -> np.ndarray:
    """A Gaussian IRF integrated over each bin, unit sum."""
    from scipy.special import ndtr

    edges = ndtr((np.arange(n_bins + 1) * dt - centre) / sigma)
    irf = np.diff(edges)
    return irf / irf.sum()


def fit_summed_decay(summed, *, dt: float, recorded: tuple[int, int], period: float | None,
                     components: int = COMPONENTS) -> dict:
    """Fit of a summed decay (T,) over the recorded bins [first, last]: flat background + Gaussian
    IRF (free centre and width) under `components` exponentials with periodic excitation.

    Returns centre, sigma, fwhm (ns), tau (ns, ascending), fraction (pre-exponential, sums to 1),
    area (photons per component and laser period),
    tau_mean (amplitude-weighted), background (counts per bin), wrapped (share of the counts in
    the recorded bins that come from earlier laser periods) and reduced_chi2."""
    from scipy.optimize import least_squares

    summed = np.asarray(summed, np.float64)
    n_bins = summed.size
    first, last = recorded
    rows = slice(first, last + 1)
    weight = 1.0 / np.sqrt(np.maximum(summed, 1.0))

    def expected(p, period=period):
        shapes = periodic_decays(p[4::2], n_bins=n_bins, dt=dt, centre=p[0], sigma=p[1], period=period)
        return p[2] + p[3::2] @ shapes

    rise = (int(np.argmax(np.diff(summed[rows]))) + first + 1) * dt
    taus = np.geomspace(0.3, 4.0, components)
    start = [rise, 0.1, max(float(np.min(summed[rows])) * 0.5, 0.0)]
    for tau in taus:
        start += [summed[rows].sum() / components, tau]
    lower = [first * dt, 0.005, 0.0] + [0.0, 0.02] * components
    upper = [(last + 1) * dt, 1.0, np.inf] + [np.inf, 50.0] * components
    fit = least_squares(lambda p: ((expected(p) - summed) * weight)[rows], start,
                        bounds=(lower, upper), x_scale="jac")
    p = fit.x
    order = np.argsort(p[4::2])
    tau, area = p[4::2][order], p[3::2][order]
    fraction = (area / tau) / (area / tau).sum()
    model = expected(p)[rows]
    single = expected(p, period=None)[rows]
    return {
        "centre": float(p[0]), "sigma": float(p[1]), "fwhm": float(p[1] * FWHM_PER_SIGMA),
        "tau": tau.tolist(), "fraction": fraction.tolist(), "area": area.tolist(),
        "tau_mean": float(fraction @ tau), "background": float(p[2]),
        "wrapped": float((model - single).sum() / model.sum()),
        "reduced_chi2": float((fit.fun ** 2).sum() / (last + 1 - first - len(p))),
    }


def twin_counts(truth: dict, photons, *, n_bins: int, dt: float, irf: dict, period: float | None,
                recorded: tuple[int, int] | None, background: float, seed: int) -> np.ndarray:
    """Poisson counts (N, T) of bi-exponential pixels with known tau1, tau2, a (pre-exponential)
    and expected signal `photons` each, through a Gaussian IRF (`irf` centre, sigma), with periodic
    excitation (`period`; None: single decays), a flat `background` per bin, and every bin outside
    `recorded` (first, last) empty, as a TAC window narrower than the file's leaves it."""
    tau1, tau2, a = (np.asarray(truth[k], np.float64) for k in ("tau1", "tau2", "a"))
    kw = dict(n_bins=n_bins, dt=dt, centre=irf["centre"], sigma=irf["sigma"], period=period)
    # pre-exponential amplitude a_i of a unit-area shape exp(-t/tau)/tau carries a_i * tau_i photons
    shape = (a * tau1)[:, None] * periodic_decays(tau1, **kw) + ((1 - a) * tau2)[:, None] * periodic_decays(tau2, **kw)
    expected = shape / shape.sum(axis=1, keepdims=True) * np.asarray(photons, np.float64)[:, None] + background
    counts = np.random.default_rng(seed).poisson(expected)
    if recorded is not None:
        counts[:, :recorded[0]] = 0
        counts[:, recorded[1] + 1:] = 0
    return counts


# -- one sample ------------------------------------------------------------------------------------

def instrument_facts(counts: np.ndarray, *, dt: float, model: str) -> dict:
    """The file's time axis against the model's training data."""
    summed = counts.reshape(-1, counts.shape[-1]).sum(axis=0, dtype=np.float64)
    lit = np.flatnonzero(summed)
    first, last = int(lit[0]), int(lit[-1])
    peak = int(np.argmax(summed))
    rise = int(np.argmax(np.diff(summed[first:last + 1]))) + first + 1
    source = trained_source(ROOT / model)
    inst = source.instrument
    pre = summed[first:first + inst.bg_bins].mean()
    return {
        "n_bins": int(summed.size), "dt": float(dt), "window_ns": float(summed.size * dt),
        "recorded": [first, last], "peak_bin": peak, "peak_ns": peak * dt, "rise_bin": rise,
        "pre_rise_level": float(pre / summed.max()), "tail_level": float(summed[last - inst.bg_bins + 1:last + 1].mean() / summed.max()),
        "model": {"n_bins": inst.n_bins, "dt": inst.dt, "irf": "measured (irf.npy)" if source.irf is not None else inst.irf_kind,
                  "pulse_ns": list(inst.irf_position_range), "fwhm_ns": list(inst.fwhm_range or ()),
                  "tau_ns": list(inst.tau_range), "background": inst.background, "bg_bins": inst.bg_bins},
    }


def _anywhere(decay: Decay, model: str) -> np.ndarray:
    """tau_mean of the pulse-anywhere ss3 model: whole bins summed to the nearest 0.09 ns, read as
    0.09 ns (peak at the middle of ss3's pulse range), lifetimes rescaled to the true bin width."""
    inst = trained_source(ROOT / model).instrument
    peak = int(round(np.mean(get_instrument(inst.name).irf_position_range) / inst.dt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # padding with the background level is what is asked for
        matched = match_time_axis(decay, inst.n_bins, inst.dt, peak_bin=peak, rtol=0.1, bg_bins=inst.bg_bins)
    return infer(matched.counts, ROOT / model)["tau_mean"] * (matched.dt / inst.dt)


def _model_aligned(decay: Decay, model: str) -> tuple[np.ndarray, int]:
    """tau_mean of the model with the decay's peak moved to the middle of its training pulse range;
    with a measured IRF (made from the file itself, as the PTU model's) one bin earlier than the
    file has it: how much one bin of delay moves a model trained at one pulse position."""
    source = trained_source(ROOT / model)
    inst = source.instrument
    if source.irf is None:
        peak = int(round(np.mean(inst.irf_position_range) / inst.dt))
    else:
        peak = int(np.argmax(decay.counts.reshape(-1, decay.n_bins).sum(axis=0))) - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matched = match_time_axis(decay, inst.n_bins, inst.dt, peak_bin=peak, bg_bins=inst.bg_bins)
    return infer(matched.counts, ROOT / model)["tau_mean"], peak


def estimates(counts: np.ndarray, *, dt: float, model: str, irfs: dict[str, np.ndarray],
              fit_range: tuple[int, int], lma_pixels: int, extra: bool) -> dict[str, np.ndarray]:
    """tau_mean (N,) per estimator (the LMA fit on the first `lma_pixels` pixels, NaN after);
    `extra` adds the aligned model and the pulse-anywhere model (real pixels only)."""
    out = {"model (golden 8-bit), as flirtl infer": infer(counts, ROOT / model)["tau_mean"].astype(np.float64)}
    decay = Decay(counts, dt, "subsample")
    if extra:
        aligned, peak = _model_aligned(decay, model)
        out[f"model, decay peak moved to bin {peak} (--peak-bin {peak})"] = aligned.astype(np.float64)
        out[f"{Path(ANYWHERE).name} (ss3 gates, rescaled)"] = _anywhere(decay, ANYWHERE).astype(np.float64)
    for name, irf in irfs.items():
        out[f"phasor, {name} IRF"] = phasor_lifetimes(counts, dt=dt, irf=irf)["tau_mean"]
    for name, irf in irfs.items():
        lma = np.full(len(counts), np.nan)
        lma[:lma_pixels] = lma_fit(counts[:lma_pixels], dt=dt, irf=irf, fit_start=fit_range[0],
                                   fit_end=fit_range[1] + 1, workers=2)["tau_mean"]
        out[f"LMA fit, {name} IRF"] = lma
    return out


def file_fit(decay: Decay) -> tuple[dict, tuple[int, int]]:
    """`fit_summed_decay` of a file over its recorded bins (those holding a count in some pixel),
    its window taken as one laser period (both samples: the SDT's TAC range is 1 / its sync rate,
    the PTU reader histograms one period); returns the fit and the recorded (first, last) bins."""
    summed = decay.counts.reshape(-1, decay.n_bins).sum(axis=0, dtype=np.float64)
    lit = np.flatnonzero(summed)
    if not lit.size:
        raise ValueError(f"{decay.source} holds no counts")
    recorded = (int(lit[0]), int(lit[-1]))
    return fit_summed_decay(summed, dt=decay.dt, recorded=recorded, period=decay.n_bins * decay.dt), recorded


def study_sample(path, model: str, *, pixels: int, lma_pixels: int, seed: int) -> dict:
    """Everything for one sample: facts, fit, medians on real pixels and on its twins. The per-pixel
    arrays of the real pixels are returned under 'pixels' (for the figure; not written to JSON)."""
    decay = read_decay(path)
    flat = decay.counts.reshape(-1, decay.n_bins)
    photons = flat.sum(axis=1, dtype=np.int64)
    bright = np.flatnonzero(photons >= MIN_PHOTONS)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(bright, min(pixels, bright.size), replace=False))
    rng.shuffle(chosen)  # the LMA fit takes the first lma_pixels: a random share of the image
    counts = flat[chosen].astype(np.int64)
    lma_pixels = min(lma_pixels, len(counts))
    dt, n_bins = decay.dt, decay.n_bins
    facts = instrument_facts(decay.counts, dt=dt, model=model)
    fit, (first, last) = file_fit(decay)
    period = n_bins * dt
    fwhm = float(np.mean(get_instrument("tcspc256").fwhm_range))
    irfs = {"stand-in": stand_in_irf(decay.counts, dt=dt, fwhm=fwhm),
            "fitted": gaussian_irf(n_bins=n_bins, dt=dt, centre=fit["centre"], sigma=fit["sigma"])}
    stand_in_centre = float(np.sum(irfs["stand-in"] * (np.arange(n_bins) + 0.5) * dt))
    real = estimates(counts, dt=dt, model=model, irfs=irfs, fit_range=(first, last),
                     lma_pixels=lma_pixels, extra=True)
    # the twin: each LMA pixel's fit (fitted IRF) as its truth, its own photons above background
    lma = lma_fit(counts[:lma_pixels], dt=dt, irf=irfs["fitted"], fit_start=first, fit_end=last + 1, workers=2)
    ok = lma["success"] & (lma["tau1"] >= TRUTH_TAU[0]) & (lma["tau2"] <= TRUTH_TAU[1])
    truth = {"tau1": lma["tau1"][ok], "tau2": lma["tau2"][ok], "a": lma["a"][ok]}
    truth["tau_mean"] = truth["a"] * truth["tau1"] + (1 - truth["a"]) * truth["tau2"]
    dark = fit["background"] / flat.shape[0]  # dark counts per bin per pixel: flat over the image
    signal = np.maximum(photons[chosen[:lma_pixels]][ok] - dark * (last + 1 - first), 1.0)
    twins = {}
    inst = trained_source(ROOT / model).instrument
    width = dict(fit)
    cases = {"as recorded": (period, (first, last), fit), "single decays (no wrap-around)": (None, (first, last), fit)}
    if (first, last) != (0, n_bins - 1):
        cases["every bin recorded"] = (period, None, fit)
    if inst.fwhm_range and not inst.fwhm_range[0] <= fit["fwhm"] <= inst.fwhm_range[1]:
        width["sigma"] = float(np.mean(inst.fwhm_range)) / FWHM_PER_SIGMA
        cases[f"IRF FWHM {np.mean(inst.fwhm_range):.3g} ns (the model's range)"] = (period, (first, last), width)
    inside = (truth["tau2"] <= inst.tau_range[1]) & (truth["tau1"] >= inst.tau_range[0])
    for index, (case, (twin_period, recorded, twin_irf)) in enumerate(cases.items()):
        twin = twin_counts(truth, signal, n_bins=n_bins, dt=dt, irf=twin_irf, period=twin_period,
                           recorded=recorded, background=dark, seed=seed + 1 + index)
        span = recorded or (0, n_bins - 1)
        twin_irfs = {"stand-in": stand_in_irf(twin, dt=dt, fwhm=fwhm),
                     "fitted": gaussian_irf(n_bins=n_bins, dt=dt, centre=twin_irf["centre"], sigma=twin_irf["sigma"])}
        found = estimates(twin, dt=dt, model=model, irfs=twin_irfs, fit_range=span,
                          lma_pixels=len(twin), extra=False)
        twins[case] = {name: {"median": _median(v), "error": _median(v) - _median(truth["tau_mean"])} for name, v in found.items()}
        model_key = next(iter(found))
        twins[case][f"model, pixels with lifetimes in its training range ({inside.mean():.0%})"] = {
            "median": _median(found[model_key][inside]),
            "error": _median(found[model_key][inside]) - _median(truth["tau_mean"][inside])}
    return {
        "file": str(path), "model": model, "facts": facts, "fit": fit,
        "irf": {"stand-in": {"centre": stand_in_centre, "fwhm": fwhm},
                "fitted": {"centre": fit["centre"], "fwhm": fit["fwhm"]}},
        "pixels_scored": int(len(counts)), "pixels_bright": int(bright.size), "lma_pixels": lma_pixels,
        "medians": {name: _median(v) for name, v in real.items()},
        # the orders of the table, kept as lists: the JSON is written with sorted keys
        "estimators": list(real), "cases": list(twins), "twin_rows": list(next(iter(twins.values()))),
        "lma_at_limit": float(1 - ok.mean()), "dark": float(dark), "truth_median": _median(truth["tau_mean"]), "twin_pixels": int(ok.sum()), "twins": twins,
        "pixels": real,
    }


def _median(values) -> float:
    values = np.asarray(values, np.float64)
    return float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")


# -- outputs ----------------------------------------------------------------------------------------

def table(results: dict) -> str:
    """The Markdown block: instrument facts, medians on the real pixels, twin errors."""
    names = [name for name in SAMPLES if name in results] + [name for name in results if name not in SAMPLES]
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def row(label, cell):
        lines.append(f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |")

    row("file, model", lambda r: f"`{Path(r['file']).name}`, `{Path(r['model']).name}`")
    row("bins x width (window)", lambda r: f"{r['facts']['n_bins']} x {r['facts']['dt'] * 1e3:.2f} ps ({r['facts']['window_ns']:.2f} ns)")
    row("model trained on", lambda r: (f"{r['facts']['model']['n_bins']} x {r['facts']['model']['dt'] * 1e3:.2f} ps, "
                                       f"IRF {r['facts']['model']['irf']}"
                                       + (f" FWHM {_range(r['facts']['model']['fwhm_ns'])} ns, pulse {_range(r['facts']['model']['pulse_ns'])} ns"
                                          if r['facts']['model']['irf'] == 'gaussian' else "")
                                       + f", tau {_range(r['facts']['model']['tau_ns'])} ns, background: {_rule(r['facts']['model'])}"))
    row("bins recorded", lambda r: f"{r['facts']['recorded'][0]}..{r['facts']['recorded'][1]}")
    row("decay peak", lambda r: f"bin {r['facts']['peak_bin']} ({r['facts']['peak_ns']:.2f} ns)")
    row("level before the rise / after the tail (of peak)", lambda r: f"{r['facts']['pre_rise_level']:.2%} / {r['facts']['tail_level']:.2%}")
    row("IRF: stand-in / fitted centre", lambda r: f"{r['irf']['stand-in']['centre']:.3f} / {r['irf']['fitted']['centre']:.3f} ns")
    row("IRF: stand-in / fitted FWHM", lambda r: f"{r['irf']['stand-in']['fwhm']:.3f} / {r['irf']['fitted']['fwhm']:.3f} ns")
    row("summed decay: lifetimes (fractions)", lambda r: ", ".join(f"{t:.2f} ({f:.2f})" for t, f in zip(r['fit']['tau'], r['fit']['fraction'])))
    row("counts from earlier laser periods / dark counts per bin per pixel", lambda r: f"{r['fit']['wrapped']:.1%} / {r['dark']:.4f}")
    lines += ["", f"Median tau_mean (ns) on the real pixels (>= {MIN_PHOTONS} photons; LMA on the first pixels of the subsample):", "",
              "| estimator | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    estimators = list(dict.fromkeys(k for n in names for k in results[n]["estimators"]))
    for name in estimators:
        lines.append(f"| {name} | " + " | ".join(_cell(results[n]["medians"].get(name)) for n in names) + " |")
    lines.append("| pixels (LMA) | " + " | ".join(f"{results[n]['pixels_scored']} ({results[n]['lma_pixels']})" for n in names) + " |")
    lines.append("| LMA fit, fitted IRF: pixels with a lifetime at a limit (< 0.05 or > 10 ns; left out of the twin) | "
                 + " | ".join(f"{results[n]['lma_at_limit']:.1%}" for n in names) + " |")
    lines += ["", "Twin with known lifetimes (each LMA pixel's fit as truth, its photons, the fitted IRF, "
              "background and wrap-around): median tau_mean / its distance from the truth's median (ns):", "",
              "| estimator | " + " | ".join(f"{n}: {c}" for n in names for c in results[n]["cases"]) + " |",
              "|---|" + "---|" * sum(len(results[n]["twins"]) for n in names)]
    lines.append("| truth | " + " | ".join(f"{results[n]['truth_median']:.3f}" for n in names for _ in results[n]["twins"]) + " |")
    twin_rows = list(dict.fromkeys(k for n in names for k in results[n]["twin_rows"]))
    for name in twin_rows:
        cells = []
        for n in names:
            for c in (results[n]["twins"][case] for case in results[n]["cases"]):
                cells.append(f"{c[name]['median']:.3f} / {c[name]['error']:+.3f}" if name in c else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _rule(model: dict) -> str:
    which = "first" if model["background"] == "head" else "lesser end of the first and last"
    return f"{which} {model['bg_bins']} bins"


def _range(pair) -> str:
    lo, hi = pair
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def _cell(value) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def plot(results: dict, path: Path) -> Path:
    """Per sample: the summed decay with the fit and both IRFs (log), the histograms of tau_mean of
    the model, the phasor and the LMA fit, and the per-pixel model and phasor against LMA."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 3, figsize=(17, 4.6 * len(results)), constrained_layout=True, squeeze=False)
    for row, (name, r) in zip(axes, results.items()):
        decay = read_decay(ROOT / r["file"])
        summed = decay.counts.reshape(-1, decay.n_bins).sum(axis=0, dtype=np.float64)
        t = (np.arange(decay.n_bins) + 0.5) * decay.dt
        f = r["fit"]
        fitted = f["background"] + np.array(f["area"]) @ periodic_decays(
            f["tau"], n_bins=decay.n_bins, dt=decay.dt, centre=f["centre"], sigma=f["sigma"], period=decay.n_bins * decay.dt)
        lo, hi = r["facts"]["recorded"]
        ax = row[0]
        ax.semilogy(t, np.maximum(summed, 0.5), ".", ms=3, color="k", label="summed decay")
        ax.semilogy(t[lo:hi + 1], fitted[lo:hi + 1], "-", color="tab:orange", lw=1,
                    label=f"fit: {COMPONENTS} exp., periodic, IRF FWHM {f['fwhm']:.3f} ns")
        for irf_name, colour in (("stand-in", "tab:blue"), ("fitted", "tab:green")):
            centre, fwhm = r["irf"][irf_name]["centre"], r["irf"][irf_name]["fwhm"]
            g = np.exp(-0.5 * ((t - centre) / (fwhm / FWHM_PER_SIGMA)) ** 2)
            ax.semilogy(t, np.maximum(g * summed.max(), 0.5), "--", color=colour, lw=1,
                        label=f"{irf_name} IRF ({centre:.3f} ns, FWHM {fwhm:.3f})")
        pulse = r["facts"]["model"]["pulse_ns"]
        if r["facts"]["model"]["irf"] == "gaussian":
            ax.axvspan(*pulse, color="grey", alpha=0.15, label="model's training pulse range")
        ax.set(xlabel="time (ns)", ylabel="photons (all pixels)", ylim=(0.5, summed.max() * 3),
               title=f"{name}: {decay.n_bins} bins of {decay.dt * 1e3:.1f} ps, recorded {lo}..{hi}")
        ax.legend(fontsize=7, loc="lower center")
        px = r["pixels"]
        keys = [k for k in px if k.startswith(("model (", "phasor", "LMA"))]
        finite = np.concatenate([px[k][np.isfinite(px[k])] for k in keys])
        edges = np.linspace(*np.percentile(finite, [0.5, 99.5]), 80)
        for k in keys:
            v = px[k][np.isfinite(px[k])]
            row[1].hist(v, bins=edges, histtype="step", density=True, lw=1.2, label=f"{k}: {np.median(v):.3f}")
        row[1].set(xlabel="tau_mean (ns)", ylabel="density", title=f"{name}: tau_mean, medians in ns")
        row[1].legend(fontsize=7)
        lma = px["LMA fit, fitted IRF"]
        both = np.isfinite(lma)
        span = np.percentile(lma[both], [1, 99])
        for k, colour in (("model (golden 8-bit), as flirtl infer", "tab:red"), ("phasor, fitted IRF", "tab:blue"),
                          ("phasor, stand-in IRF", "tab:cyan")):
            row[2].plot(lma[both], px[k][both], ".", ms=2, alpha=0.35, color=colour, label=k)
        row[2].plot(span, span, "k--", lw=0.8)
        row[2].set(xlim=span, ylim=span, xlabel="LMA fit, fitted IRF: tau_mean (ns)", ylabel="tau_mean (ns)",
                   title=f"{name}: per pixel against the LMA fit ({both.sum()} pixels)")
        row[2].legend(fontsize=7, markerscale=4)
    atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path


def update_page(page: Path, block: str) -> None:
    """Replace the block between BEGIN and END of `page` (refused if the page has none)."""
    text = page.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"{page} needs one block between {BEGIN!r} and {END!r}")
    head, rest = text.split(BEGIN)
    atomic_write(page, (head + BEGIN + "\n" + block + END + rest.split(END, 1)[1]).encode())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="build/sdt_offset", help="folder for sdt_offset.json/.png (docs/eval for the shipped page)")
    parser.add_argument("--pixels", type=int, default=8000, help="pixels of each sample scored (subsample, seeded)")
    parser.add_argument("--lma-pixels", type=int, default=2000, help="of those, pixels the LMA fit takes (and the twin)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--model", action="append", default=[], metavar="SAMPLE=DIR",
                        help=f"another model for a sample ({', '.join(SAMPLES)}), e.g. one calibrated to its fitted IRF")
    parser.add_argument("--write-irf", metavar="IRF.npy", help="only write the IRF fitted to --sample's summed decay "
                        "(bin-integrated Gaussian on the file's time axis, for flirtl calibrate --irf) and exit")
    parser.add_argument("--sample", choices=list(SAMPLES), default="SDT", help="the sample of --write-irf")
    args = parser.parse_args(argv)
    if args.pixels < 10 or not 10 <= args.lma_pixels <= args.pixels:
        parser.error("--pixels and --lma-pixels must be >= 10, --lma-pixels at most --pixels")
    models = {name: model for name, (_, model) in SAMPLES.items()}
    for item in args.model:
        name, _, directory = item.partition("=")
        if name not in SAMPLES or not directory:
            parser.error(f"--model takes SAMPLE=DIR with SAMPLE one of {', '.join(SAMPLES)}, not {item!r}")
        if not (ROOT / directory / "weights.npz").is_file():
            parser.error(f"--model {item!r}: {directory!r} is not a quantized model directory (no weights.npz)")
        models[name] = directory
    missing = [str(ROOT / f) for f, _ in SAMPLES.values() if not (ROOT / f).is_file()]
    if missing:
        print(f"sample_offset: {', '.join(missing)} missing: `make data` fetches the samples", file=sys.stderr)
        return 1
    if args.write_irf:
        if not args.write_irf.endswith(".npy"):
            parser.error(f"--write-irf must name a .npy file, not {args.write_irf!r}")
        decay = read_decay(ROOT / SAMPLES[args.sample][0])
        fit, _ = file_fit(decay)
        irf = gaussian_irf(n_bins=decay.n_bins, dt=decay.dt, centre=fit["centre"], sigma=fit["sigma"])
        atomic_write(Path(args.write_irf), lambda file: np.save(file, irf))
        print(f"{args.write_irf}: {args.sample}'s fitted IRF, {decay.n_bins} bins of {decay.dt:.5g} ns, "
              f"centre {fit['centre']:.3f} ns, FWHM {fit['fwhm']:.3f} ns")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = {name: study_sample(ROOT / f, models[name], pixels=args.pixels, lma_pixels=args.lma_pixels, seed=args.seed)
               for name, (f, _) in SAMPLES.items()}
    for r in results.values():
        r["file"] = str(Path(r["file"]).relative_to(ROOT))
    block = table(results)
    print(block)
    plot(results, out / "sdt_offset.png")
    dump_json(out / "sdt_offset.json", {
        "pixels": args.pixels, "lma_pixels": args.lma_pixels, "seed": args.seed, "min_photons": MIN_PHOTONS,
        "results": {n: {k: v for k, v in r.items() if k != "pixels"} for n, r in results.items()}, "table": block})
    page = out / "sdt_offset.md"
    if page.is_file():
        update_page(page, block)
    print(f"{out / 'sdt_offset.png'}, {out / 'sdt_offset.json'} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
