"""Seeded, vectorised simulation of time-resolved fluorescence (TPSFs and their labels).

Per pixel: tau1 <= tau2 drawn uniformly in `tau_range` and sorted, a (pre-exponential fraction of
tau1) uniformly in [0, 1], and a `mono_fraction` of pixels mono-exponential with a = 1 and
tau2 = tau1 (the long channel of their SFD is all zero); photons log-uniform, background, and the
IRF family's t0, width and jitter uniform in the instrument's ranges. The expected counts come from
`flirtl.fli.forward` (closed-form convolution and bin integration), scaled so the signal sums to
`photons` over the window plus a flat background per bin; then counts are drawn: Poisson, or the
binomial pile-up of 1-bit SPAD frames.

Random streams: samples are drawn in blocks of BLOCK pixels, block b from
SeedSequence(seed, spawn_key=(b,)), so the arrays depend only on (instrument, seed): not on `chunk`,
`workers`, or `n` (the first m pixels of a larger run are the m pixels of a smaller one).
"""

from __future__ import annotations

import concurrent.futures
import math
import os

import numpy as np
from tqdm.auto import tqdm

from ..files import atomic_write, check_memory
from .forward import (expected_signal_family, expected_signal_measured, scale_signal,
                      thread_workspace)
from .instrument import FWHM_PER_SIGMA, Instrument, get_instrument
from .irf_io import check_irf
from .preprocess import normalize_tpsf

#: Pixels per random stream. Part of the seeding contract: changing it changes every data set.
BLOCK = 1024

#: Keys `write_npz` insists on.
REQUIRED_KEYS = ("counts", "tpsf", "sfd", "tau1", "tau2", "a", "photons", "irf", "dt", "preset",
                 "instrument")


def simulate(instrument: Instrument | str, *, n: int, seed: int, irf=None, progress: bool = True,
             chunk: int = 65536, workers: int | None = None) -> dict[str, np.ndarray]:
    """Simulate `n` pixels of `instrument` (an Instrument or a preset name).

    irf: None samples the instrument's IRF family per pixel. A measured IRF, shape (T,) or (n, T),
        replaces it and is used as given (not shifted or blurred per pixel): the expected TPSF is
        its linear convolution with the decay integrated over bins [j*dt, (j+1)*dt), so the decay
        starts where the IRF's time zero is, and t0 / irf_width / irf_sigma are reported as NaN.
    chunk: pixels handed to a worker at a time (rounded up to whole blocks of BLOCK); it sets
        memory use and progress granularity, never the results.
    workers: threads (numpy releases the GIL); None uses every CPU this process may run on.

    Returns a dict of numpy arrays (float32 unless stated):
        counts (n, T) uint16 when the instrument cannot exceed 65535 counts per bin, else uint32;
        tpsf (n, T) model input, `normalize_tpsf` with the instrument's background rule;
        sfd (n, T, 3) IRF-free decay at t = k*dt from the laser pulse: total, a*exp(-t/tau1),
            (1-a)*exp(-t/tau2);
        tau1, tau2 (ns), a, tau_mean (ns, amplitude-weighted), photons (expected signal counts
            summed over the window), background (expected counts per bin), t0 (ns, laser pulse
            time from the start of bin 0), irf_width (gate width or Gaussian FWHM, ns), irf_sigma
            (edge jitter or Gaussian sigma, ns), all (n,);
        irf (n, T) each pixel's instrument response (its TPSF for a zero lifetime), unit sum;
        dt (float64 scalar), n_bins, seed (int64 scalars), preset and instrument (its JSON) strings.
    """
    if isinstance(instrument, str):
        instrument = get_instrument(instrument)
    if not isinstance(instrument, Instrument):
        raise TypeError(f"instrument must be an Instrument or a preset name, not {instrument!r}")
    _check_count("n", n, minimum=1)
    _check_count("seed", seed, minimum=0)
    _check_count("chunk", chunk, minimum=1)
    if workers is None:
        workers = usable_cpus()
    _check_count("workers", workers, minimum=1)
    n_bins = instrument.n_bins
    measured = None
    if irf is not None:
        measured = check_irf(irf, n_bins=n_bins, source="irf")
        if measured.ndim == 2 and measured.shape[0] != n:
            raise ValueError(f"irf has {measured.shape[0]} rows for n={n} pixels; give one IRF per "
                             f"pixel or a single IRF of shape ({n_bins},)")

    dtype = counts_dtype(instrument)  # refuses rates no counts array can hold
    per_pixel = n_bins * (dtype.itemsize + 4 + 12 + 4) + 4 * len(_LABELS)
    check_memory(n * per_pixel, f"simulating {n:,} pixels of {n_bins} bins",
                 "simulate fewer pixels per file (several files with other seeds add up to more)")
    out = {
        "counts": np.empty((n, n_bins), dtype),
        "tpsf": np.empty((n, n_bins), np.float32),
        "sfd": np.empty((n, n_bins, 3), np.float32),
        "irf": np.empty((n, n_bins), np.float32),
    }
    for name in _LABELS:
        out[name] = np.empty(n, np.float32)

    n_blocks = -(-n // BLOCK)
    blocks_per_chunk = -(-chunk // BLOCK)
    chunks = [range(first, min(first + blocks_per_chunk, n_blocks))
              for first in range(0, n_blocks, blocks_per_chunk)]

    def run(blocks: range) -> int:
        for block in blocks:
            _simulate_block(instrument, seed=seed, block=block, measured=measured, out=out)
        return min(blocks.stop * BLOCK, n) - blocks.start * BLOCK

    with concurrent.futures.ThreadPoolExecutor(min(workers, len(chunks))) as pool, tqdm(
            total=n, unit="px", desc=f"simulate {instrument.name}",
            disable=not progress or len(chunks) < 2) as bar:
        futures = [pool.submit(run, blocks) for blocks in chunks]
        try:
            for future in concurrent.futures.as_completed(futures):
                bar.update(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    out["dt"] = np.float64(instrument.dt)
    out["n_bins"] = np.int64(n_bins)
    out["seed"] = np.int64(seed)
    out["preset"] = np.array(instrument.name)
    out["instrument"] = np.array(instrument.to_json())
    return out


def counts_dtype(instrument: Instrument) -> np.dtype:
    """uint16 when no bin can plausibly exceed 65535 counts, else uint32 (simulate also checks);
    ValueError when even uint32 cannot hold them."""
    if instrument.counting == "binomial":
        most = instrument.frames
    else:
        mean = instrument.photons_range[1] + instrument.background_range[1]
        most = mean + 20.0 * math.sqrt(mean) + 20.0  # a 20-sigma Poisson excursion
    if not most <= np.iinfo(np.uint32).max:
        cause = (f"frames {instrument.frames!r}" if instrument.counting == "binomial" else
                 f"photons_range {instrument.photons_range!r} plus background_range "
                 f"{instrument.background_range!r}")
        raise ValueError(f"{cause} allow about {most:.3g} counts in a bin, beyond the "
                         f"{np.iinfo(np.uint32).max:,} a uint32 count holds: lower them")
    return np.dtype(np.uint16 if most <= np.iinfo(np.uint16).max else np.uint32)


def write_npz(path, data: dict) -> None:
    """Write `data` (e.g. from `simulate`) to the .npz file `path` atomically.

    The arrays go to a temporary file in the same directory, which then replaces `path` in one step:
    a failure never leaves a half-written file, and an existing file stays intact.
    """
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"data lacks key(s) {', '.join(map(repr, missing))} needed in {path!r}")
    atomic_write(path, lambda file: np.savez(file, **data))


def load_npz(path) -> dict:
    """Read a data set written by `write_npz`; scalars come back as Python values."""
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key].item() if archive[key].ndim == 0 else archive[key]
                for key in archive.files}


_LABELS = ("tau1", "tau2", "a", "tau_mean", "photons", "background", "t0", "irf_width",
           "irf_sigma")


def _simulate_block(instrument: Instrument, *, seed: int, block: int, measured, out: dict):
    """Simulate block `block` (BLOCK pixels) and store the part below n into `out`."""
    work = thread_workspace()
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))
    labels = _draw_labels(instrument, rng)
    first = block * BLOCK
    valid = min(BLOCK, out["counts"].shape[0] - first)
    if measured is None:
        signal, irf = expected_signal_family(instrument, labels, work)
    else:
        if measured.ndim == 1:
            irf = np.broadcast_to(measured, (BLOCK, instrument.n_bins))
        else:
            # pad a final partial block with copies of its first row; the padding is dropped
            irf = measured[first:first + BLOCK]
            irf = np.concatenate([irf, np.broadcast_to(irf[:1], (BLOCK - len(irf), irf.shape[1]))])
        signal = expected_signal_measured(instrument, labels, irf)
        for name in ("t0", "irf_width", "irf_sigma"):
            labels[name] = np.full(BLOCK, np.nan)
    expected = scale_signal(signal, labels, out=work("expected", signal.shape))
    counts = _count(instrument, rng, expected)
    _merge_unresolved(instrument, labels, None if measured is None else irf)  # labels only: the counts keep both

    rows = slice(first, first + valid)
    out["counts"][rows] = counts[:valid]
    out["tpsf"][rows] = normalize_tpsf(counts[:valid], bg_bins=instrument.bg_bins,
                                       background=instrument.background)
    _sfd(instrument, labels, out=out["sfd"][rows], work=work)
    irf_total = irf[:valid].sum(axis=1, keepdims=True)
    # an IRF entirely outside the window stays all zero (x / inf), never NaN
    out["irf"][rows] = irf[:valid] / np.where(irf_total > 0, irf_total, np.inf)
    for name in _LABELS:
        out[name][rows] = labels[name][:valid]


def _draw_labels(instrument: Instrument, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-pixel parameters of one block, always BLOCK of them in a fixed order (prefix-stable)."""
    tau = np.sort(rng.uniform(*instrument.tau_range, size=(BLOCK, 2)), axis=1)
    tau1, tau2 = tau[:, 0], tau[:, 1]
    a = rng.uniform(0.0, 1.0, BLOCK)
    mono = rng.random(BLOCK) < instrument.mono_fraction
    a[mono] = 1.0
    tau2[mono] = tau1[mono]
    log_lo, log_hi = np.log(instrument.photons_range)
    photons = np.exp(rng.uniform(log_lo, log_hi, BLOCK))
    background = rng.uniform(*instrument.background_range, size=BLOCK)
    t0 = rng.uniform(*instrument.irf_position_range, size=BLOCK)
    if instrument.irf_kind == "gaussian":
        width = rng.uniform(*instrument.fwhm_range, size=BLOCK)
        sigma = width / FWHM_PER_SIGMA
    else:
        width = rng.uniform(*instrument.gate_width_range, size=BLOCK)
        sigma = rng.uniform(*instrument.jitter_range, size=BLOCK)
    return {"tau1": tau1, "tau2": tau2, "a": a, "tau_mean": a * tau1 + (1 - a) * tau2,
            "photons": photons, "background": background, "t0": t0, "irf_width": width,
            "irf_sigma": sigma}


def _merge_unresolved(instrument: Instrument, labels: dict, irf: np.ndarray | None) -> None:
    """Label pixels whose components the instrument's resolve limits call one as one component
    (a = 1, tau1 = tau2 = the amplitude-weighted lifetime), in place. `irf`: the block's measured
    IRF (None: the family's parameters in `labels`), for the Cramer-Rao rule."""
    a, tau1, tau2 = labels["a"], labels["tau1"], labels["tau2"]
    one = (tau2 < instrument.resolve_ratio * tau1) | (np.minimum(a, 1 - a) < instrument.resolve_fraction)
    two = ~one & (a < 1.0) & (tau2 > tau1)
    if instrument.resolve_sigma > 0 and two.any():
        from .crlb import crlb  # crlb imports this module

        pixels = {name: value[two] for name, value in labels.items()}
        if irf is not None:
            pixels["irf"] = irf[two]
        deviation = crlb(instrument, pixels, workers=1)  # one block per thread already
        apart = (pixels["tau2"] - pixels["tau1"]) / np.hypot(deviation["tau1"], deviation["tau2"])
        one[np.flatnonzero(two)[~(apart >= instrument.resolve_sigma)]] = True  # NaN: not told apart
    tau = labels["tau_mean"]
    tau1[one], tau2[one], a[one] = tau[one], tau[one], 1.0


def _count(instrument: Instrument, rng: np.random.Generator, expected: np.ndarray) -> np.ndarray:
    """Photon counts for expected counts per bin, in `counts_dtype(instrument)`."""
    if instrument.counting == "poisson":
        counts = rng.poisson(expected)
    else:
        # each of `frames` 1-bit frames sees >= 1 photon with Poisson probability 1 - exp(-mean)
        counts = rng.binomial(instrument.frames, -np.expm1(-expected / instrument.frames))
    dtype = counts_dtype(instrument)
    if counts.max() > np.iinfo(dtype).max:
        raise ValueError(
            f"a simulated bin holds {counts.max()} counts, beyond {dtype.name}; lower "
            f"photons_range {instrument.photons_range!r} or background_range "
            f"{instrument.background_range!r}")
    return counts.astype(dtype)


def _sfd(instrument: Instrument, labels: dict, *, out: np.ndarray, work):
    """Write the SFD of the first len(out) pixels into out (n, T, 3): total, a*exp(-t/tau1),
    (1-a)*exp(-t/tau2) at t = k*dt from the laser pulse."""
    valid = out.shape[0]
    t = np.arange(instrument.n_bins) * instrument.dt
    decay = work("decay", (valid, instrument.n_bins))
    for channel, amp, tau in ((1, labels["a"], labels["tau1"]),
                              (2, 1.0 - labels["a"], labels["tau2"])):
        np.divide(-t, tau[:valid, None], out=decay)
        np.exp(decay, out=decay)
        decay *= amp[:valid, None]
        out[:, :, channel] = decay
    np.add(out[:, :, 1], out[:, :, 2], out=out[:, :, 0])


def usable_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _check_count(name, value, *, minimum):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, not {value!r}")
