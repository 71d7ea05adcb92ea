"""Forward model: expected photon counts per bin for a bi-exponential decay seen by an instrument.

The decay f(u) = a*exp(-u/tau1) + (1-a)*exp(-u/tau2), u >= 0 the time since the laser pulse t0, is
convolved with the instrument response and integrated over each bin in closed form: no sub-grid, no
circular wrap-around. Both IRF families reduce to differences, across a bin's two edges s (times
relative to t0), of

    C(s) = integral_0^inf exp(-u/tau) Phi((s - u)/sigma) du = tau * (Phi(s/sigma) - P(s)),
    P(s) = exp(sigma^2/(2 tau^2) - s/tau) * Phi(s/sigma - sigma/tau):

- TCSPC ('gaussian'): photons arriving in [k*dt, (k+1)*dt) through a Gaussian IRF of std sigma:
  C(s_k+1) - C(s_k) with s_k = k*dt - t0;
- gated ('gate', 'iccd'): gate k open over [k*dt, k*dt + W] with edges blurred by Gaussian jitter:
  C(s_k + W) - C(s_k).

Phi's difference alone is the IRF, the response to a decay of zero lifetime. A measured IRF is
instead convolved (linearly, causally) with the decay integrated over whole bins.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .instrument import Instrument
from .irf_io import check_irf

_SQRT2 = math.sqrt(2.0)
# erfcx(x) = exp(x*x) * erfc(x) for x >= 0 as t*exp(poly(t)), t = 1/(1 + x/2): Numerical Recipes'
# form (no overflow for any x), refitted at degree 16 (least-squares Chebyshev fit of
# log(erfcx(x)/t) on t in [0, 1] against mpmath, converted to Horner form): relative error < 1e-11.
_ERFCX_COEFFS = (
    0.20716292640652378, -1.7793692083889014, 6.790159689114478, -15.039880873944773,
    21.17528954171983, -19.56123368429621, 12.031592386459074, -5.244036384466117,
    1.863188837841121, -0.3741948398281943, -0.024649266615512817, -0.15147037754109224,
    -0.08535385978950298, 0.0833065985585888, 0.3750006443994211, 0.9999999938495426,
    -1.265512123474888,
)


def expected_counts(instrument: Instrument, *, tau1, tau2, a, photons, background=0.0, t0=None,
                    irf_width=None, irf_sigma=None, irf=None) -> np.ndarray:
    """Noise-free mean counts (N, T) float64 (the Poisson mean; before any pile-up).

    Per-pixel parameters broadcast to one axis of N pixels: tau1, tau2 (ns), a (fraction of tau1),
    photons (expected signal counts summed over the window), background (counts per bin). Give
    either the IRF family's t0 (laser pulse, ns from bin 0), irf_sigma (edge jitter or Gaussian
    sigma, ns) and, for gated kinds, irf_width (gate width, ns); or a measured `irf` of shape (T,)
    or (N, T), used as given.
    """
    values = {"tau1": tau1, "tau2": tau2, "a": a, "photons": photons, "background": background}
    if irf is None:
        missing = [name for name, value in (("t0", t0), ("irf_sigma", irf_sigma)) if value is None]
        if instrument.irf_kind != "gaussian" and irf_width is None:
            missing.append("irf_width")
        if missing:
            raise ValueError(f"give irf= or the IRF family parameters {', '.join(missing)}")
        values.update(t0=t0, irf_sigma=irf_sigma, irf_width=0.0 if irf_width is None else irf_width)
    else:
        irf = check_irf(irf, n_bins=instrument.n_bins, source="irf")
        values["irf rows"] = np.zeros(irf.shape[0] if irf.ndim == 2 else 1)  # joins the broadcast
    arrays = [np.atleast_1d(np.asarray(value, dtype=np.float64)) for value in values.values()]
    labels = dict(zip(values, np.broadcast_arrays(*arrays)))
    if labels["tau1"].ndim != 1:
        raise ValueError(f"parameters must be scalars or 1-D, not of shape {labels['tau1'].shape}")
    for name, value in labels.items():
        if not np.isfinite(value).all():
            bad = value[~np.isfinite(value)][0].item()
            raise ValueError(f"{name} must be finite, not {bad!r}")
    for name in ("tau1", "tau2", "irf_sigma"):
        if name in labels and not np.all(labels[name] > 0):
            raise ValueError(f"{name} must be > 0 ns, not {labels[name].min().item()!r}")
    if irf is None:
        signal, _ = expected_signal_family(instrument, labels, Workspace())
    else:
        shape = (len(labels["tau1"]), instrument.n_bins)
        signal = expected_signal_measured(instrument, labels, np.broadcast_to(irf, shape))
    return scale_signal(signal, labels, out=np.empty_like(signal))


def scale_signal(signal: np.ndarray, labels: dict, *, out: np.ndarray) -> np.ndarray:
    """Scale each row of `signal` to sum to `photons` and add `background` per bin, into `out`."""
    total = signal.sum(axis=1, keepdims=True)
    scale = np.divide(labels["photons"][:, None], total, where=total > 0, out=np.zeros_like(total))
    np.multiply(signal, scale, out=out)
    out += labels["background"][:, None]
    return out


def expected_signal_family(instrument: Instrument, labels: dict,
                           work: Workspace) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free signal per bin (arbitrary scale) and the IRF per bin, both (N, T) float64.

    labels holds (N,) float64 arrays tau1, tau2, a, t0, irf_sigma, irf_width. Signal =
    sum_i amp_i * tau_i * (dPhi - dP_i) across each bin's edges. With s' = s/(sigma sqrt 2),
    r = sigma/(tau sqrt 2), z = r - s' and G = exp(-s'^2), both terms come from erfcx without
    overflow or cancellation:
        Phi(s/sigma) = [s > 0] - sign(s) G/2 erfcx(|s'|),
        P(s) = [z < 0] exp(r^2 - 2 r s') + sign(z) G/2 erfcx(|z|)   (exp(...) < 1 where used).
    The G terms vanish (< 1e-18) beyond |s'| = BAND_EDGE, so they are evaluated only on the columns
    where some pixel of the batch has an edge that close. The returned arrays are `work` buffers,
    valid until its next use.
    """
    n_bins, dt = instrument.n_bins, instrument.dt
    t0 = labels["t0"]
    n = t0.shape[0]
    sigma = labels["irf_sigma"][:, None]
    if instrument.irf_kind == "gaussian":
        shape = (n, n_bins + 1)
        edges = np.subtract(np.arange(n_bins + 1) * dt, t0[:, None], out=work("edges", shape))
        # TCSPC bin k lies between edges k and k+1, which sit at s = 0 where k*dt = t0
        bands = [_band(t0, sigma[:, 0], dt=dt, first=0, count=n_bins + 1)]

        def across_bin(values, out):
            return np.subtract(values[:, 1:], values[:, :-1], out=out)
    else:
        shape = (n, 2 * n_bins)
        edges = work("edges", shape)
        # gate k is open over [k*dt, k*dt + W]: opening edges first, then closing edges
        np.subtract(np.arange(n_bins) * dt, t0[:, None], out=edges[:, :n_bins])
        np.add(edges[:, :n_bins], labels["irf_width"][:, None], out=edges[:, n_bins:])
        bands = [_band(t0, sigma[:, 0], dt=dt, first=0, count=n_bins),
                 _band(t0 - labels["irf_width"], sigma[:, 0], dt=dt, first=n_bins, count=n_bins)]

        def across_bin(values, out):
            return np.subtract(values[:, n_bins:], values[:, :n_bins], out=out)

    bins = (n, n_bins)
    scaled = np.multiply(edges, 1.0 / (_SQRT2 * sigma), out=work("scaled", shape))
    after = np.greater(edges, 0.0, out=work("after", shape, bool))
    gauss = []  # G/2 of each band, shared by Phi and both P terms
    phi = work("phi", shape)
    phi[...] = after
    for band in bands:
        band_scaled = scaled[:, band]
        half_gauss = np.multiply(band_scaled, band_scaled,
                                 out=work(f"gauss{band.start}", band_scaled.shape))
        np.negative(half_gauss, out=half_gauss)
        _exp_nonpositive(half_gauss)
        half_gauss *= 0.5
        tail = erfcx(np.abs(band_scaled, out=work("magnitude", half_gauss.shape)),
                     out=work("tail", half_gauss.shape), scratch=work("scratch", half_gauss.shape))
        tail *= half_gauss
        band_phi = phi[:, band]
        np.subtract(band_phi, tail, out=band_phi, where=after[:, band])
        np.add(band_phi, tail, out=band_phi, where=~after[:, band])
        gauss.append(half_gauss)
    irf = across_bin(phi, out=work("irf", bins))

    signal = work("signal", bins)
    signal.fill(0.0)
    component = work("component", bins)
    modified = work("modified", shape)
    rising = work("rising", shape, bool)
    for amp, tau in ((labels["a"], labels["tau1"]), (1.0 - labels["a"], labels["tau2"])):
        r = sigma / (_SQRT2 * tau[:, None])
        np.greater(scaled, r, out=rising)  # z < 0
        np.multiply(scaled, -2.0, out=modified)
        modified += r
        modified *= r
        _exp_nonpositive(modified)  # A = r*r - 2*r*s' < -r*r <= 0 wherever it is used (z < 0)
        modified *= rising
        for band, half_gauss in zip(bands, gauss):
            z = np.subtract(r, scaled[:, band], out=work("magnitude", half_gauss.shape))
            sign = np.less(z, 0.0, out=work("sign", half_gauss.shape, bool))
            np.abs(z, out=z)
            tail = erfcx(z, out=work("tail", half_gauss.shape),
                         scratch=work("scratch", half_gauss.shape))
            tail *= half_gauss
            band_modified = modified[:, band]
            np.subtract(band_modified, tail, out=band_modified, where=sign)
            np.add(band_modified, tail, out=band_modified, where=~sign)
        across_bin(modified, out=component)  # now dP
        np.subtract(irf, component, out=component)
        component *= (amp * tau)[:, None]
        signal += component
    np.maximum(signal, 0.0, out=signal)  # rounding may leave -1e-17 before the rise
    return signal, irf


#: |s'| = |s|/(sigma sqrt 2) beyond which exp(-s'^2) < 5e-19 and the Gaussian terms are dropped.
BAND_EDGE = 6.5


def _band(centre: np.ndarray, sigma: np.ndarray, *, dt: float, first: int, count: int) -> slice:
    """Columns first + k, 0 <= k < count, whose edge k*dt - centre lies within BAND_EDGE of 0 (in
    units of sigma sqrt 2) for at least one pixel."""
    reach = BAND_EDGE * _SQRT2 * sigma
    lo = int(np.clip(np.floor(np.min(centre - reach) / dt), 0, count))
    hi = int(np.clip(np.ceil(np.max(centre + reach) / dt) + 1, lo, count))
    return slice(first + lo, first + hi)


def expected_signal_measured(instrument: Instrument, labels: dict, irf: np.ndarray) -> np.ndarray:
    """Noise-free signal (N, T) float64: linear convolution of `irf` (N, T) with the decay.

    The decay integrated over bin j is tau*(1-q)*q**j with q = exp(-dt/tau), so the convolution
    sum_j irf[k-j] q**j is the recursion y[k] = irf[k] + q*y[k-1]: exact and causal.
    """
    irf_t = np.ascontiguousarray(irf.T, dtype=np.float64)  # time-major: one contiguous row a step
    signal_t = np.zeros_like(irf_t)
    state = np.empty(irf_t.shape[1])
    for amp, tau in ((labels["a"], labels["tau1"]), (1.0 - labels["a"], labels["tau2"])):
        q = np.exp(-instrument.dt / tau)
        weight = amp * tau * (1.0 - q)
        state.fill(0.0)
        for k in range(instrument.n_bins):
            state *= q
            state += irf_t[k]
            signal_t[k] += weight * state
    return signal_t.T


class Workspace:
    """Reusable buffers by name, for one thread.

    A fresh multi-MB temporary per numpy operation costs a page fault per 4 KiB every time, about
    half the simulator's run time; the hot path writes into these with out= instead. A buffer is
    contiguous, uninitialised, and valid until the next request of the same name.
    """

    def __init__(self):
        self._buffers: dict[tuple[str, np.dtype], np.ndarray] = {}

    def __call__(self, name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        key = (name, np.dtype(dtype))
        size = math.prod(shape)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[key] = np.empty(size, dtype)
        return buffer[:size].reshape(shape)


_thread_state = threading.local()


def thread_workspace() -> Workspace:
    """This thread's Workspace."""
    if not hasattr(_thread_state, "workspace"):
        _thread_state.workspace = Workspace()
    return _thread_state.workspace


def erfcx(x: np.ndarray, *, out=None, scratch=None) -> np.ndarray:
    """Scaled complementary error function exp(x*x)*erfc(x) for x >= 0 (relative error < 1e-11).

    out and scratch are optional buffers shaped like x; scratch may not be x.
    """
    t = np.multiply(x, 0.5, out=scratch)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = np.multiply(t, _ERFCX_COEFFS[0], out=out)
    for coeff in _ERFCX_COEFFS[1:-1]:
        poly += coeff
        poly *= t
    poly += _ERFCX_COEFFS[-1]
    np.exp(poly, out=poly)
    poly *= t
    return poly


def _exp_nonpositive(x: np.ndarray) -> np.ndarray:
    """exp(min(x, 0)) in place; clipping at -700 also keeps exp off its slow underflow path."""
    np.clip(x, -700.0, 0.0, out=x)
    return np.exp(x, out=x)
