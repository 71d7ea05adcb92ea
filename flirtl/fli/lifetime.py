"""Float lifetime extraction from an SFD (the reference for the hardware's running sums + divide).

An exponential ch[k] = A*q**k, q = exp(-dt/tau), sampled at t = k*dt for k = 0..T-1 has the ratio

    R = sum(ch) / ch[0] = (1 - q**T) / (1 - q),

so tau follows exactly from R, whatever the window truncates. The reference work's
tau = integral(ch dt) / ch[0] is dt*R: it reads dt instead of tau for short lifetimes and
underestimates lifetimes cut off by the window; inverting R removes both biases.
"""

from __future__ import annotations

import numpy as np

#: Bisection halves the q interval [0, 1] this often: q to 2**-52, well below float64's tau needs.
_BISECTION_STEPS = 52


def tau_from_ratio(ratio, *, n_bins: int) -> np.ndarray:
    """tau/dt of the exponential whose T-sample sum over its first sample is `ratio`.

    Solves (1 - q**T)/(1 - q) = ratio for q = exp(-dt/tau) in (0, 1) by vectorised bisection (the
    left side grows monotonically with q). ratio <= 1 gives 0 (all weight in the first sample);
    ratio >= n_bins gives inf (a flat or rising channel); NaN stays NaN. Returns float64.
    """
    if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 2:
        raise ValueError(f"n_bins must be an int >= 2, not {n_bins!r}")
    ratio = np.asarray(ratio, dtype=np.float64)
    lo = np.zeros(ratio.shape)
    hi = np.ones(ratio.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(_BISECTION_STEPS):
            q = 0.5 * (lo + hi)
            below = _geometric_sum(q, n_bins) < ratio
            lo = np.where(below, q, lo)
            hi = np.where(below, hi, q)
        tau = -1.0 / np.log(0.5 * (lo + hi))
    tau = np.where(ratio <= 1.0, 0.0, tau)
    tau = np.where(ratio >= n_bins, np.inf, tau)
    return np.where(np.isnan(ratio), np.nan, tau)


def lifetimes_from_sfd(sfd, *, dt: float) -> dict[str, np.ndarray]:
    """tau1, tau2 (ns), a and tau_mean from an SFD of shape (..., T, 3).

    Channels: 0 = total, 1 = short (tau1) component, 2 = long (tau2) component, sampled at t = k*dt
    from the decay start. tau_i = dt * tau_from_ratio(sum(ch_i) / ch_i[0]); a = ch1[0] / (ch1[0] +
    ch2[0]) with negative amplitudes clipped to 0. A component whose first sample is <= 0 is absent:
    the pixel is mono-exponential and that tau takes the other's value (the simulator's convention
    a = 1, tau2 = tau1). tau_mean is the amplitude-weighted mean a*tau1 + (1-a)*tau2 from these; the
    total channel's own ratio is not used, because a sum of two exponentials has no exact inverse.
    """
    sfd = np.asarray(sfd)
    if sfd.ndim < 2 or sfd.shape[-1] != 3:
        raise ValueError(f"sfd must have shape (..., T, 3), not {sfd.shape}")
    try:
        dt = float(dt)  # also a 0-d array, e.g. a data set's "dt"
    except (TypeError, ValueError):
        raise ValueError(f"dt must be a number > 0, not {dt!r}") from None
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a number > 0, not {dt!r}")
    n_bins = sfd.shape[-2]
    components = sfd[..., 1:].astype(np.float64)
    first = components[..., 0, :]
    present = first > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(present, components.sum(axis=-2) / first, np.nan)
    tau = dt * tau_from_ratio(ratio, n_bins=n_bins)
    tau1, tau2 = tau[..., 0], tau[..., 1]
    tau1, tau2 = (np.where(present[..., 0], tau1, tau2), np.where(present[..., 1], tau2, tau1))
    amplitude = np.maximum(first, 0.0)
    total = amplitude.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(total > 0, amplitude[..., 0] / total, np.nan)
    return {"tau1": tau1, "tau2": tau2, "a": a, "tau_mean": tau_mean(tau1=tau1, tau2=tau2, a=a)}


def tau_mean(*, tau1, tau2, a) -> np.ndarray:
    """Amplitude-weighted mean lifetime a*tau1 + (1-a)*tau2 (a component of weight 0 is ignored)."""
    tau1, tau2, a = np.asarray(tau1), np.asarray(tau2), np.asarray(a)
    with np.errstate(invalid="ignore"):
        mean = a * tau1 + (1 - a) * tau2
    # an absent component may carry an inf or NaN lifetime; 0 * inf must not poison the mean
    return np.where(a >= 1, tau1, np.where(a <= 0, tau2, mean))


def _geometric_sum(q: np.ndarray, n_bins: int) -> np.ndarray:
    """(1 - q**T) / (1 - q), i.e. 1 + q + ... + q**(T-1), with the q -> 1 limit T."""
    return np.where(q < 1.0, -np.expm1(n_bins * np.log(q)) / (1.0 - q), float(n_bins))
