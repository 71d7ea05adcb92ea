"""Conventional lifetime baselines on the pixels the neural models see: FLIMLib's
Levenberg-Marquardt fit and phasor analysis (phasorpy).

Both take raw counts (N, T), the bin width dt in ns and the instrument response: one IRF of shape
(T,) for every pixel or one per pixel (N, T), each the TPSF of a zero lifetime on the same bins
(`flirtl.fli.simulate` returns each pixel's in "irf"). Both report the project's labels: tau1 <=
tau2 in ns, a = pre-exponential fraction of tau1 and the amplitude-weighted mean lifetime
tau_mean = a*tau1 + (1-a)*tau2 (`flirtl.fli.tau_mean`), so their errors compare directly with the
models'. flimlib and phasorpy are imported on first use: the rest of flirtl runs without them.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np
from tqdm.auto import tqdm

from .fli.irf_io import check_irf
from .fli.lifetime import tau_mean
from .fli.preprocess import background_sum, validate_counts
from .fli.simulate import usable_cpus

MODELS = ("auto", "bi", "mono")

#: Lower limit of the fitted background (counts per bin). FLIMLib's maximum-likelihood deviance
#: skips bins whose model is <= 0 and its curvature weight is 0/0 where model and counts are both
#: 0, which freezes the fit: a free offset at exactly 0 in front of an all-zero IRF does both.
MIN_BACKGROUND = 1e-3
#: FLIMLib's own default lifetime limits (ns), kept when its user limits replace the defaults.
TAU_LIMITS = (1e-3, 1e3)
#: "auto" keeps the bi-exponential fit only if its two extra parameters lower the deviance by more
#: than this (Akaike's 2 per parameter); otherwise the mono-exponential fit explains the pixel.
AIC_DEVIANCE = 4.0
#: IRF samples below this fraction of its peak are 0 for FLIMLib and the zero tail is cut off:
#: float32 denormals slow every convolution, and a shorter IRF makes each one cheaper (30% faster).
IRF_FLOOR = 1e-7
#: Pixels per task of the fitting threads (a progress step).
CHUNK = 64

# FLIMLib keeps user parameter limits in C globals: one fit call at a time may set and use them.
_LIMITS_LOCK = threading.Lock()


def lma_fit(counts, *, dt, irf, model: str = "auto", average_irf: bool = True, bg_bins: int = 4,
            background: str = "head",
            fit_start: int = 0, fit_end: int | None = None, workers: int | None = None,
            progress: bool = False) -> dict[str, np.ndarray]:
    """Bi-exponential maximum-likelihood fit of every pixel with FLIMLib's Levenberg-Marquardt.

    The model is FLIMLib's: offset Z plus the IRF convolved with A1*exp(-t/tau1) + A2*exp(-t/tau2)
    sampled at bin starts t = k*dt, fitted over bins [fit_start, fit_end) (default: the whole
    window; the leading background bins pin the offset) with Poisson maximum-likelihood weighting
    (NOISE_MLE). Each pixel is first fitted mono-exponentially from the centroid-shift lifetime
    (TPSF centroid minus IRF centroid) and the background of `bg_bins` bins (`background`: the
    first ones, or the lesser end, as `fli.preprocess.background_sum`); the
    bi-exponential fit starts from that at tau/2 and 3*tau/2 with the amplitude split evenly.

    model: 'auto' keeps the bi-exponential fit where it lowers the deviance by more than
        AIC_DEVIANCE, else the mono-exponential one (a = 1, tau2 = tau1); 'bi' keeps it wherever it
        converges, which on mono-exponential pixels often invents a faint fast component that
        drags tau_mean down; 'mono' fits one lifetime only.
    average_irf: average the IRF with its copy delayed by one bin before fitting. A TPSF is the
        decay convolved with the IRF in continuous time; sampling the decay at bin starts puts it
        half a bin early against that, which FLIMLib can only absorb with longer lifetimes (+0.035
        ns median on ss3, dt = 0.09 ns). The average is the first-order correction (the IRF
        linearly interpolated between bins). Turn it off only for data made with the discrete
        model itself, such as `simulate(irf=...)`, which convolves a given IRF with the decay
        integrated over whole bins.
    workers: fitting threads (FLIMLib releases the GIL); None uses every CPU this process may use.

    Returns float64 arrays (N,): tau1, tau2 (ns), a, tau_mean (ns), background (fitted counts per
    bin), deviance (Poisson deviance of the kept fit); components (N,) int8, the exponentials of the
    kept fit (0 where none); success (N,) bool, False where the pixel has no signal above its
    background or every fit failed (its lifetimes are then NaN).
    """
    counts, dt, irf = _check_inputs(counts, dt=dt, irf=irf, bg_bins=bg_bins)
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    n, n_bins = counts.shape
    fit_end = n_bins if fit_end is None else fit_end
    for name, value in (("fit_start", fit_start), ("fit_end", fit_end)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{name} must be an int, not {value!r}")
    if not 0 <= fit_start < fit_end <= n_bins or fit_end - fit_start <= 5:
        raise ValueError(f"fit range [{fit_start}, {fit_end}) must lie in [0, {n_bins}] and hold "
                         f"more bins than the 5 parameters")
    workers = usable_cpus() if workers is None else workers
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, not {workers!r}")
    import flimlib

    if average_irf:
        irf = 0.5 * (irf + np.concatenate([np.zeros_like(irf[..., :1]), irf[..., :-1]], axis=-1))
    irf = np.where(irf >= IRF_FLOOR * irf.max(axis=-1, keepdims=True), irf, 0.0)
    irf = np.atleast_2d(irf).astype(np.float32)
    instr = [row[:np.flatnonzero(row)[-1] + 1] for row in irf]

    start = _initial_guess(counts, irf, dt=dt, bg_bins=bg_bins, background=background)
    params = np.full((2, n, 5), np.nan, np.float32)  # mono, bi: [Z, A1, tau1, A2, tau2]
    deviance = np.full((2, n), np.nan, np.float32)

    def fit(pixels: range) -> int:
        # one FLIMLib call fits all the pixels that share an IRF: its Python wrapper costs about a
        # quarter of a fit per call
        blocks = [pixels] if len(instr) == 1 else [range(i, i + 1) for i in pixels]
        for block in blocks:
            rows = np.array([i for i in block if not np.isnan(start[i, 0])], dtype=np.intp)
            if rows.size:
                params[:, rows], deviance[:, rows] = _fit_block(
                    flimlib, counts[rows].astype(np.float32), start[rows],
                    instr[rows[0] if len(instr) > 1 else 0], dt=dt,
                    fit_range=(fit_start, fit_end), bi=model != "mono")
        return len(pixels)

    chunks = [range(first, min(first + CHUNK, n)) for first in range(0, n, CHUNK)]
    with _LIMITS_LOCK:
        # user limits, which FLIMLib clips each step to: background >= MIN_BACKGROUND, amplitudes
        # >= 0, lifetimes in TAU_LIMITS
        flimlib.GCI_set_restrain_limits(
            [1] * 5, [MIN_BACKGROUND, 0.0, TAU_LIMITS[0], 0.0, TAU_LIMITS[0]],
            [1e10, 1e10, TAU_LIMITS[1], 1e10, TAU_LIMITS[1]])
        with ThreadPoolExecutor(min(workers, len(chunks))) as pool, tqdm(
                total=n, unit="px", desc="FLIMLib fit", disable=not progress) as bar:
            for done in as_completed([pool.submit(fit, chunk) for chunk in chunks]):
                bar.update(done.result())
    return _fit_results(params.astype(np.float64), deviance.astype(np.float64), dt=dt,
                        model=model)


def _fit_block(flimlib, y: np.ndarray, start: np.ndarray, instr: np.ndarray, *, dt: float,
               fit_range: tuple[int, int], bi: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mono- then (if `bi`) bi-exponential fits of the rows of y (K, T) that share `instr`.

    Returns parameters (2, K, 5) and deviances (2, K), mono first; NaN where a fit failed or was
    not made. The bi-exponential fit starts from the mono-exponential one (or from `start` where
    that failed) at tau/2 and 3*tau/2, splitting the amplitude evenly.
    """
    params = np.full((2, *start.shape), np.nan, np.float32)
    deviance = np.full((2, len(start)), np.nan, np.float32)
    for column, kind in enumerate(("mono", "bi") if bi else ("mono",)):
        guess = start if kind == "mono" else _split(params[0], start)
        result = flimlib.GCI_marquardt_fitting_engine(
            dt, y, guess, *fit_range, instr=instr, noise_type="NOISE_MLE",
            paramfree=[1, 1, 1, 0, 0] if kind == "mono" else None,
            restrain_type="ECF_RESTRAIN_USER",
            # no refits: FLIMLib restarts the fit while the deviance exceeds chisq_target, which in
            # our measurements doubled the time and turned some fits into NaN
            chisq_target=math.inf, compute_fitted=False, compute_residuals=False,
            compute_covar=False, compute_alpha=False, compute_erraxes=False)
        params[column], deviance[column] = result.param, result.chisq
    return params, deviance


def _split(mono: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Bi-exponential start from mono-exponential parameters (K, 5), `start` where they are NaN."""
    base = np.where(np.isfinite(mono[:, :3]).all(axis=1, keepdims=True), mono, start)
    z, amplitude, tau = base[:, 0], base[:, 1], base[:, 2]
    return np.stack([z, amplitude / 2, tau / 2, amplitude / 2, 1.5 * tau], axis=1)


def _initial_guess(counts: np.ndarray, irf: np.ndarray, *, dt: float,
                   bg_bins: int, background: str) -> np.ndarray:
    """Mono-exponential start (N, 5) [Z, A, tau, 0, tau] per pixel; NaN rows have no signal.

    tau is the centroid shift, which an IRF convolution adds to the decay's mean time (clipped to
    [dt, window]); A makes the fitted signal sum to the counts above the background Z.
    """
    n, n_bins = counts.shape
    background = background_sum(counts, bg_bins=bg_bins, rule=background) / bg_bins
    signal = counts - background[:, None]
    total = signal.sum(axis=1)
    bins = np.arange(n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = (signal @ bins / total - irf @ bins / irf.sum(axis=1)) * dt
    tau = np.clip(shift, dt, n_bins * dt)
    start = np.stack([np.maximum(background, MIN_BACKGROUND), total * -np.expm1(-dt / tau), tau,
                      np.zeros(n), tau], axis=1).astype(np.float32)
    start[~(total > 0)] = np.nan
    return start


def _fit_results(params: np.ndarray, deviance: np.ndarray, *, dt: float,
                 model: str) -> dict[str, np.ndarray]:
    """Labels from FLIMLib's parameters (2, N, 5) [Z, A1, tau1, A2, tau2], mono and bi fits."""
    mono, bi = params
    mono_ok = np.isfinite(mono[:, :3]).all(axis=1)
    tau_bi = bi[:, [2, 4]]
    with np.errstate(divide="ignore", invalid="ignore"):
        # sampled at bin starts, a component of amplitude a_i fills the bins with a_i times its
        # integral over a bin, tau_i*(1 - exp(-dt/tau_i)): divide that out to get a_i back
        weight = bi[:, [1, 3]] / (tau_bi * -np.expm1(-dt / tau_bi))
        short = np.argmin(tau_bi, axis=1)
        a_bi = np.take_along_axis(weight, short[:, None], axis=1)[:, 0] / weight.sum(axis=1)
    bi_ok = np.isfinite(bi).all(axis=1) & np.isfinite(a_bi)
    if model == "auto":
        use_bi = bi_ok & ~(mono_ok & (deviance[0] - deviance[1] <= AIC_DEVIANCE))
    else:
        use_bi = bi_ok  # 'bi' falls back to the mono-exponential fit; 'mono' has no bi fit
    success = use_bi | mono_ok
    tau_bi = np.sort(tau_bi, axis=1)
    tau1 = np.where(use_bi, tau_bi[:, 0], mono[:, 2])
    tau2 = np.where(use_bi, tau_bi[:, 1], mono[:, 2])
    a = np.where(use_bi, a_bi, np.where(success, 1.0, np.nan))
    return {
        "tau1": tau1, "tau2": tau2, "a": a, "tau_mean": tau_mean(tau1=tau1, tau2=tau2, a=a),
        "background": np.where(use_bi, bi[:, 0], mono[:, 0]),
        "deviance": np.where(use_bi, deviance[1], deviance[0]),
        "components": np.where(use_bi, 2, np.where(success, 1, 0)).astype(np.int8),
        "success": success,
    }


def phasor_lifetimes(counts, *, dt, irf, harmonic: int = 1,
                     bg_bins: int = 4, background: str = "head") -> dict[str, np.ndarray]:
    """Phasor lifetimes of every pixel, calibrated with the IRF as a reference of lifetime 0.

    The time window is taken as one period (frequency 1/(T*dt)). Each pixel's counts minus the
    mean of its `bg_bins` background bins (`background`, as in `lma_fit`; a flat background only shrinks the phasor towards 0) give its
    phasor at `harmonic` and 2*`harmonic`; dividing by the IRF's phasor (phasorpy's
    phasor_calibrate, known lifetime 0) removes the instrument response and the delay. The IRF is
    used as sampled: a shift in continuous time multiplies the phasor exactly, so no half-bin
    correction applies here (unlike `lma_fit`). The decays are not periodic: what the window cuts
    off biases long lifetimes (phase lifetime up to +5% at 2-3 ns in ss3's 12 ns window).

    Returns float64 arrays (N,): g, s (calibrated phasor at `harmonic`); tau_phase, tau_mod
    (apparent single lifetimes from phase and modulation, ns); tau_normal (the single lifetime of
    the phasor's perpendicular projection onto the universal semicircle); tau1, tau2, a, tau_mean
    from phasorpy's two-component search on both harmonics where it resolves two lifetimes
    (`resolved`, bool), else from tau_normal as a mono-exponential (a = 1, tau2 = tau1). Pixels with
    no signal above the background are NaN.
    """
    counts, dt, irf = _check_inputs(counts, dt=dt, irf=irf, bg_bins=bg_bins)
    n_bins = counts.shape[1]
    if (not isinstance(harmonic, (int, np.integer)) or isinstance(harmonic, bool)
            or not 1 <= harmonic <= n_bins // 4):
        raise ValueError(f"harmonic must be an int in [1, {n_bins // 4}] (its double is also "
                         f"used, at most T/2), not {harmonic!r}")
    from phasorpy.lifetime import (phasor_calibrate, phasor_to_apparent_lifetime,
                                   phasor_to_lifetime_search, phasor_to_normal_lifetime)
    from phasorpy.phasor import phasor_from_signal

    harmonics = [int(harmonic), 2 * int(harmonic)]
    frequency = 1e3 / (n_bins * dt)  # MHz for dt in ns
    signal = counts.astype(np.float64)
    signal -= background_sum(signal, bg_bins=bg_bins, rule=background)[:, None] / bg_bins
    mean, real, imag = phasor_from_signal(signal, harmonic=harmonics)
    real, imag = phasor_calibrate(
        real, imag, *phasor_from_signal(irf, harmonic=harmonics), frequency=frequency,
        lifetime=0.0, harmonic=harmonics, skip_axis=0 if irf.ndim == 2 else None)
    real[:, ~(mean > 0)] = np.nan
    imag[:, ~(mean > 0)] = np.nan

    at = frequency * harmonic
    with np.errstate(divide="ignore", invalid="ignore"):
        tau_phase, tau_mod = phasor_to_apparent_lifetime(real[0], imag[0], at)
        tau_normal = phasor_to_normal_lifetime(real[0], imag[0], at)
        lifetimes, fractions = phasor_to_lifetime_search(
            real, imag, at, lifetime_range=(0.0, n_bins * dt, dt / 10))
        order = np.argsort(lifetimes, axis=0)
        lifetimes = np.take_along_axis(lifetimes, order, axis=0)
        amplitudes = np.take_along_axis(fractions, order, axis=0) / lifetimes
        a_pair = amplitudes[0] / amplitudes.sum(axis=0)
    resolved = np.isfinite(a_pair) & np.isfinite(lifetimes).all(axis=0)
    tau1 = np.where(resolved, lifetimes[0], tau_normal)
    tau2 = np.where(resolved, lifetimes[1], tau_normal)
    a = np.where(resolved, a_pair, np.where(np.isnan(tau_normal), np.nan, 1.0))
    return {
        "g": real[0], "s": imag[0], "tau_phase": tau_phase, "tau_mod": tau_mod,
        "tau_normal": tau_normal, "tau1": tau1, "tau2": tau2, "a": a,
        "tau_mean": tau_mean(tau1=tau1, tau2=tau2, a=a), "resolved": resolved,
    }


def _check_inputs(counts, *, dt, irf, bg_bins) -> tuple[np.ndarray, float, np.ndarray]:
    """Counts (N, T) of photons, dt > 0 and an IRF (T,) or (N, T) normalised to unit sum."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] < 1:
        raise ValueError(f"counts must have shape (N, T) with N >= 1 pixels, not {counts.shape}")
    n, n_bins = counts.shape
    counts = validate_counts(counts, n_bins=n_bins)
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise ValueError(f"dt must be a number > 0 (ns), not {dt!r}") from None
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a number > 0 (ns), not {dt!r}")
    irf = check_irf(irf, n_bins=n_bins, source="irf")
    if irf.ndim == 2 and irf.shape[0] != n:
        raise ValueError(f"irf has {irf.shape[0]} rows for {n} pixels; give one IRF per pixel "
                         f"or a single IRF of shape ({n_bins},)")
    if (not isinstance(bg_bins, (int, np.integer)) or isinstance(bg_bins, bool)
            or not 1 <= bg_bins < n_bins):
        raise ValueError(f"bg_bins must be an int in [1, {n_bins - 1}], not {bg_bins!r}")
    return counts, dt, irf
