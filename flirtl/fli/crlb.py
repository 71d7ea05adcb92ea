"""Cramer-Rao lower bound: the smallest lifetime error any unbiased estimator can reach per pixel.

The counts n_t of the T bins are independent with mean mu_t(theta), theta = (tau1, tau2, a,
photons, background) as `flirtl.fli.forward` and the simulator define them. Their Fisher
information is

    I_ij = sum_t w_t (d mu_t / d theta_i) (d mu_t / d theta_j),   w_t = 1/mu_t (Poisson),

and the bound on the variance of theta_i is (I^-1)_ii: photons and background are nuisance
parameters, marginalised by inverting the whole matrix. The mean lifetime tau_mean = a*tau1 +
(1-a)*tau2 (amplitude-weighted, as `flirtl.fli.lifetime.tau_mean`) gets g^T I^-1 g by the delta
method, g its gradient. The instrument response is known: each pixel's own IRF, as simulated.

Binomial (pile-up) counting is exact, not approximated: n_t ~ Binomial(F, p_t), p_t = 1 -
exp(-mu_t/F) for F frames, whose information about mu_t is w_t = 1/(F expm1(mu_t/F)) (-> 1/mu_t for
F -> inf).
"""

from __future__ import annotations

import concurrent.futures

import numpy as np

from .forward import Workspace, expected_signal_family, expected_signal_measured, thread_workspace
from .instrument import Instrument, get_instrument
from .irf_io import check_irf
from .simulate import usable_cpus

#: Order of the Fisher matrix's rows and columns.
PARAMETERS = ("tau1", "tau2", "a", "photons", "background")
#: Relative step of the central differences in tau1 and tau2: truncation error ~STEP^2 (1e-8),
#: rounding error ~1e-16/STEP, both far below what a bound needs.
STEP = 1e-4
#: Pixels per batch: six evaluations of the forward model each, about 25 MB per buffer.
CHUNK = 2048
#: Reciprocal condition number of the diagonally scaled Fisher matrix below which a pixel's
#: lifetimes cannot be told apart in float64 (on ss3: tau2/tau1 below about 1.003) and its bounds
#: would depend on the rounding of the forward model: they are NaN instead.
SINGULAR = 1e-13


def crlb(instrument: Instrument | str, labels: dict, *, step: float = STEP,
         workers: int | None = None) -> dict[str, np.ndarray]:
    """Standard deviations sqrt(CRLB) of tau1, tau2 (ns), a and tau_mean (ns), each (N,) float64.

    labels: per-pixel tau1, tau2, a, photons, background and the IRF (see `fisher_information`),
    e.g. the dict `flirtl.fli.simulate` returns.

    A mono-exponential pixel (tau1 == tau2, or a at 0 or 1) has one lifetime and no split between
    two: tau1, tau2 and a are NaN, and tau_mean is bounded in the mono-exponential model (tau,
    photons, background), i.e. for an estimator that knows the decay has one component: the
    bi-exponential bound does not tend to it as tau2 -> tau1 (on ss3 it stays ~2.4x higher). A
    parameter the counts say nothing about (zero information, e.g. a zero background, held fixed)
    is treated as known. Lifetimes too close to tell apart in float64 (see SINGULAR) give NaN
    throughout. The tests check that the bounds move by < 1% between steps 1e-4 and 1e-5 (< 1e-4
    on separable pixels).
    workers: threads (default: every CPU this process may run on).
    """
    instrument = _instrument(instrument)
    labels = _pixel_labels(instrument, labels)
    information = _fisher_information(instrument, labels, step=step, workers=workers)
    tau1, tau2, a = labels["tau1"], labels["tau2"], labels["a"]
    mono = (tau1 == tau2) | (a <= 0.0) | (a >= 1.0)
    # a mono-exponential decay has one lifetime, tau1 = tau2 moving together: its row is the sum
    # of theirs, and the split a and the second lifetime do not exist
    information[mono, 0] += information[mono, 1]
    information[mono, :, 0] += information[mono, :, 1]
    information[mono, 1:3] = 0.0
    information[mono, :, 1:3] = 0.0
    zero = np.zeros_like(a)
    gradient = np.stack([np.where(mono, 1.0, a), np.where(mono, 0.0, 1.0 - a),
                         np.where(mono, 0.0, tau1 - tau2), zero, zero], axis=1)

    index = np.arange(len(PARAMETERS))
    diagonal = information[:, index, index]
    known = diagonal <= 0  # no information: its row and column are zero too (I is PSD)
    scale = np.sqrt(np.where(known, 1.0, diagonal))
    # unit diagonal: the conditioning no longer depends on the units (ns against 1e4 photons)
    scaled = information / (scale[:, :, None] * scale[:, None, :])
    scaled[:, index, index] = 1.0
    eigenvalues, vectors = np.linalg.eigh(scaled)
    singular = ~(eigenvalues[:, 0] > SINGULAR * eigenvalues[:, -1])
    eigenvalues[singular] = 1.0  # their results are replaced by NaN below
    # I^-1 = V diag(1/lambda) V^T in scaled units
    variance = np.einsum("nik,nk->ni", vectors**2, 1.0 / eigenvalues) / scale**2
    projected = np.einsum("nik,ni->nk", vectors, gradient / scale)
    mean_variance = np.einsum("nk,nk->n", projected**2, 1.0 / eigenvalues)

    variance[known | singular[:, None]] = np.nan
    variance[mono, 0] = np.nan
    mean_variance[singular | np.any(known & (gradient != 0), axis=1)] = np.nan
    deviation = np.sqrt(variance)
    return {"tau1": deviation[:, 0], "tau2": deviation[:, 1], "a": deviation[:, 2],
            "tau_mean": np.sqrt(mean_variance)}


def fisher_information(instrument: Instrument | str, labels: dict, *, step: float = STEP,
                       workers: int | None = None) -> np.ndarray:
    """Fisher information (N, 5, 5) float64 of the bi-exponential model, order `PARAMETERS`.

    labels: (N,) arrays tau1, tau2 (ns), a, photons, background (counts per bin); and the IRF,
    either its family's t0, irf_sigma and, for gated kinds, irf_width (finite), or a measured `irf`
    of shape (T,) or (N, T). A zero background lies on the boundary of its range, where the empty
    bins pin it down exactly: its column is zero (no information to marginalise over).
    Mono-exponential pixels give a singular matrix; `crlb` reduces it.
    """
    instrument = _instrument(instrument)
    return _fisher_information(instrument, _pixel_labels(instrument, labels), step=step,
                               workers=workers)


def _fisher_information(instrument: Instrument, labels: dict, *, step: float,
                        workers: int | None) -> np.ndarray:
    """`fisher_information` of labels checked by `_pixel_labels`, CHUNK pixels per thread task."""
    if not 0 < step < 1:
        raise ValueError(f"step must lie in (0, 1), not {step!r}")
    workers = usable_cpus() if workers is None else workers
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, not {workers!r}")
    n = len(labels["tau1"])
    information = np.empty((n, len(PARAMETERS), len(PARAMETERS)))

    def run(rows: slice):
        chunk = {name: value[rows] for name, value in labels.items()}
        mean, jacobian = _expected_counts_and_jacobian(instrument, chunk, step=step,
                                                       work=thread_workspace())
        if instrument.counting == "poisson":
            weight = np.divide(1.0, mean, where=mean > 0, out=np.zeros_like(mean))
        else:
            frames = instrument.frames
            weight = np.divide(1.0, frames * np.expm1(mean / frames), where=mean > 0,
                               out=np.zeros_like(mean))
        weighted = jacobian * np.sqrt(weight)[:, :, None]
        information[rows] = np.matmul(weighted.transpose(0, 2, 1), weighted)

    chunks = [slice(first, min(first + CHUNK, n)) for first in range(0, n, CHUNK)]
    with concurrent.futures.ThreadPoolExecutor(max(1, min(workers, len(chunks)))) as pool:
        for _ in pool.map(run, chunks):  # re-raises a worker's exception
            pass
    return information


def _expected_counts_and_jacobian(instrument: Instrument, labels: dict, *, step: float,
                                  work: Workspace) -> tuple[np.ndarray, np.ndarray]:
    """Mean counts (N, T) and their derivatives (N, T, 5) in the order `PARAMETERS`.

    labels as `_pixel_labels` returns them. With the components c_i(tau_i) (exp(-t/tau_i)
    convolved with the IRF and integrated over each bin, as the forward model builds them),
    S = a c_1 + (1-a) c_2 and mu = photons S / sum(S) + background.
    The derivatives in a, photons and background are exact; those in tau_i are central
    differences with step `step` * tau_i, one forward-model call for all six evaluations.
    """
    tau1, tau2, a = labels["tau1"], labels["tau2"], labels["a"]
    n = len(tau1)
    tau = np.concatenate([tau1, tau1 * (1 + step), tau1 * (1 - step),
                          tau2, tau2 * (1 + step), tau2 * (1 - step)])
    # a = 1 and tau2 = tau: each row is one component alone
    rows = {"tau1": tau, "tau2": tau, "a": np.ones_like(tau)}
    if "irf" in labels:
        component = expected_signal_measured(instrument, rows, np.tile(labels["irf"], (6, 1)))
    else:
        for name in ("t0", "irf_sigma", "irf_width"):
            rows[name] = np.tile(labels[name], 6)
        component, _ = expected_signal_family(instrument, rows, work)
    component = component.reshape(6, n, -1)
    c1, c2 = component[0], component[3]
    dc1 = (component[1] - component[2]) / (2 * step * tau1[:, None])
    dc2 = (component[4] - component[5]) / (2 * step * tau2[:, None])

    signal = a[:, None] * c1 + (1 - a[:, None]) * c2
    total = signal.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        shape = np.where(total > 0, signal / total, 0.0)  # unit sum over the window
        scale = np.where(total > 0, labels["photons"][:, None] / total, 0.0)
    jacobian = np.empty(signal.shape + (len(PARAMETERS),))
    for column, d_signal in enumerate((a[:, None] * dc1, (1 - a[:, None]) * dc2, c1 - c2)):
        # d(S / sum S) = (dS - shape * sum dS) / sum S
        jacobian[:, :, column] = scale * (d_signal - shape * d_signal.sum(axis=1, keepdims=True))
    jacobian[:, :, 3] = shape
    jacobian[:, :, 4] = (labels["background"] > 0)[:, None]
    mean = labels["photons"][:, None] * shape + labels["background"][:, None]
    return mean, jacobian


def separable(labels: dict) -> np.ndarray:
    """Pixels whose two lifetimes can be told apart: ratio >= 2 and 0.2 <= a <= 0.8 (bool (N,)).

    The evaluation scores bi-exponential errors against the CRLB on these only. The ratio is taken
    long over short whichever of tau1 and tau2 is longer (the simulator's tau1 <= tau2), and the
    a window is symmetric, so either convention gives the same mask.
    """
    tau1, tau2, a = (np.asarray(labels[name], dtype=np.float64) for name in ("tau1", "tau2", "a"))
    short, long = np.minimum(tau1, tau2), np.maximum(tau1, tau2)
    return (long >= 2.0 * short) & (a >= 0.2) & (a <= 0.8)


def _instrument(instrument: Instrument | str) -> Instrument:
    """An Instrument, or the preset of that name."""
    if isinstance(instrument, str):
        return get_instrument(instrument)
    if not isinstance(instrument, Instrument):
        raise TypeError(f"instrument must be an Instrument or a preset name, not {instrument!r}")
    return instrument


def _pixel_labels(instrument: Instrument, labels: dict) -> dict[str, np.ndarray]:
    """The labels the forward model needs, checked, as (N,) float64 arrays (irf (N, T) if measured).

    The IRF family's parameters are used where given and finite; a simulation with a measured IRF
    reports them as NaN and carries the IRF itself.
    """
    names = ["tau1", "tau2", "a", "photons", "background"]
    family = "t0" in labels and np.all(np.isfinite(labels["t0"]))
    if family:
        names += ["t0", "irf_sigma"] + (["irf_width"] if instrument.irf_kind != "gaussian" else [])
    elif "irf" not in labels:
        raise ValueError("labels need the IRF: t0, irf_sigma (and irf_width for gated kinds), or "
                         "a measured irf")
    missing = [name for name in names if name not in labels]
    if missing:
        raise ValueError(f"labels lack {', '.join(map(repr, missing))}")
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(labels[name], dtype=np.float64))
                                   for name in names))
    out = dict(zip(names, arrays))
    if out["tau1"].ndim != 1:
        raise ValueError(f"labels must be scalars or 1-D, not of shape {out['tau1'].shape}")
    for name, value in out.items():
        if not np.isfinite(value).all():
            raise ValueError(f"{name} must be finite, not {value[~np.isfinite(value)][0].item()!r}")
        if name in ("tau1", "tau2", "irf_sigma") and not np.all(value > 0):
            raise ValueError(f"{name} must be > 0 ns, not {value.min().item()!r}")
        if name in ("photons", "background") and not np.all(value >= 0):
            raise ValueError(f"{name} must be >= 0, not {value.min().item()!r}")
    if not np.all((out["a"] >= 0) & (out["a"] <= 1)):
        bad = out["a"][(out["a"] < 0) | (out["a"] > 1)][0].item()
        raise ValueError(f"a must lie in [0, 1], not {bad!r}")
    n = len(out["tau1"])
    if not family:
        irf = check_irf(labels["irf"], n_bins=instrument.n_bins, source="labels['irf']")
        out["irf"] = np.broadcast_to(irf, (n, instrument.n_bins))
    elif instrument.irf_kind == "gaussian":
        out["irf_width"] = np.zeros(n)  # unused by the Gaussian family
    return out
