"""The forward model against independent references: closed-form EMG, quadrature, convolution."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from flirtl.fli import expected_counts, get_instrument
from flirtl.fli.forward import erfcx
from flirtl.fli.instrument import FWHM_PER_SIGMA


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _emg_cdf(x: float, *, t0: float, sigma: float, tau: float) -> float:
    """CDF of a Gaussian(t0, sigma) convolved with an exponential of mean tau (textbook form)."""
    y = x - t0
    exponent = -y / tau + sigma * sigma / (2 * tau * tau)
    tail = _phi(y / sigma - sigma / tau)
    return _phi(y / sigma) - (math.exp(exponent) * tail if tail > 0 else 0.0)


@pytest.mark.parametrize("tau, fwhm, t0", [
    (0.05, 0.4, 1.0),  # sigma/tau = 3.4: the exponential is narrower than the IRF
    (0.5, 0.25, 1.73),
    (3.0, 0.15, 2.5),  # most of the decay leaves the window
])
def test_tcspc_mono_exponential_is_the_bin_integrated_emg(tau, fwhm, t0):
    instrument = get_instrument("tcspc256")
    sigma = fwhm / FWHM_PER_SIGMA
    got = expected_counts(instrument, tau1=tau, tau2=tau, a=1.0, photons=1.0, t0=t0,
                          irf_sigma=sigma)[0]
    edges = [_emg_cdf(k * instrument.dt, t0=t0, sigma=sigma, tau=tau)
             for k in range(instrument.n_bins + 1)]
    reference = np.diff(edges)
    reference /= reference.sum()
    assert got.sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-9 * reference.max())


STEPS = 400  # quadrature points per gate step: Simpson's error is then below 1e-10 of the peak


def _gate_quadrature(instrument, *, tau1, tau2, a, t0, width, sigma):
    """counts[k] = integral_0^inf f(u) gate(u + t0 - k*dt) du by Simpson's rule on a fine grid
    aligned with the gate steps (t0 must be a multiple of the grid step h = dt/STEPS)."""
    dt, n_bins = instrument.dt, instrument.n_bins
    h = dt / STEPS
    offset = round(t0 / h)
    assert abs(offset * h - t0) < 1e-12
    n_u = 2 * round((instrument.window + width + 10 * sigma) / (2 * h))  # even: Simpson
    u = np.arange(n_u + 1) * h
    weights = np.ones(n_u + 1)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    decay = weights * h / 3 * (a * np.exp(-u / tau1) + (1 - a) * np.exp(-u / tau2))
    # gate(s) = Phi(s/sigma) - Phi((s - W)/sigma) on s = m*h
    m = np.arange(offset - STEPS * (n_bins - 1), n_u + offset + 1)
    s = m * h
    phi = np.frompyfunc(_phi, 1, 1)
    gate = (phi(s / sigma) - phi((s - width) / sigma)).astype(float)
    first = m[0]
    counts = np.array([decay @ gate[offset - STEPS * k - first:][:n_u + 1] for k in range(n_bins)])
    return counts / counts.sum()


@pytest.mark.parametrize("preset, tau1, tau2, a, t0, width, sigma", [
    ("ss3", 0.05, 3.0, 0.5, 4.5, 1.0, 0.05),
    ("ss3", 0.7, 1.9, 0.3, 5.04, 3.0, 0.2),
    ("iccd160", 0.3, 0.3, 1.0, 1.0, 0.3, 0.04),
])
def test_gated_tpsf_is_the_gate_integral(preset, tau1, tau2, a, t0, width, sigma):
    instrument = get_instrument(preset)
    got = expected_counts(instrument, tau1=tau1, tau2=tau2, a=a, photons=1.0, t0=t0,
                          irf_width=width, irf_sigma=sigma)[0]
    reference = _gate_quadrature(instrument, tau1=tau1, tau2=tau2, a=a, t0=t0, width=width,
                                 sigma=sigma)
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-9 * reference.max())


def test_gated_tpsf_rises_over_the_gate_width_before_decaying():
    instrument = get_instrument("ss3")
    t0, width = 4.5, 2.0
    tpsf = expected_counts(instrument, tau1=1.0, tau2=1.0, a=1.0, photons=1.0, t0=t0,
                           irf_width=width, irf_sigma=0.05)[0]
    rise = round((t0 - width) / instrument.dt)
    peak = round(t0 / instrument.dt)
    assert tpsf[:rise - 4].max() < 1e-9 * tpsf.max()
    assert np.all(np.diff(tpsf[rise:peak - 2]) > 0)
    assert np.all(np.diff(tpsf[peak + 2:]) < 0)


@pytest.mark.parametrize("preset", ["ss3", "iccd160", "tcspc256"])
def test_zero_lifetime_limit_is_the_irf(preset):
    instrument = get_instrument(preset)
    t0, width, sigma = np.mean(instrument.irf_position_range), 0.3, 0.06
    got = expected_counts(instrument, tau1=1e-9, tau2=1e-9, a=1.0, photons=1.0, t0=t0,
                          irf_width=width, irf_sigma=sigma)[0]
    start = np.arange(instrument.n_bins) * instrument.dt - t0
    # TCSPC: the Gaussian integrated over each bin; gated: the gate profile at each gate position
    end = start + (instrument.dt if instrument.irf_kind == "gaussian" else width)
    irf = np.array([_phi(b / sigma) - _phi(a / sigma) for a, b in zip(start, end)])
    np.testing.assert_allclose(got, irf / irf.sum(), rtol=0, atol=1e-7 * got.max())


def test_late_decay_does_not_wrap_around():
    # the decay starts 1 ns before the window ends; a circular convolution would put most of a
    # 3 ns tail into the first bins
    instrument = get_instrument("tcspc256", irf_position_range=(11.5, 11.5))
    counts = expected_counts(instrument, tau1=3.0, tau2=3.0, a=1.0, photons=1e4, background=0.5,
                             t0=11.5, irf_sigma=0.1)[0]
    assert np.all(counts[:200] == 0.5)
    assert counts[-1] > 100
    measured_irf = np.zeros(instrument.n_bins)
    measured_irf[-20:-15] = 1.0
    counts = expected_counts(instrument, tau1=3.0, tau2=3.0, a=1.0, photons=1e4, background=0.5,
                             irf=measured_irf)[0]
    assert np.all(counts[:-20] == 0.5)


def test_measured_irf_is_convolved_linearly_with_the_bin_integrated_decay():
    instrument = get_instrument("ss3")
    rng = np.random.default_rng(3)
    irf = rng.random(instrument.n_bins) * (np.arange(instrument.n_bins) > 10)
    tau1, tau2, a = 0.4, 2.2, 0.6
    got = expected_counts(instrument, tau1=tau1, tau2=tau2, a=a, photons=5000.0, irf=irf)[0]
    edges = np.arange(instrument.n_bins + 1) * instrument.dt
    decay = -np.diff(a * tau1 * np.exp(-edges / tau1) + (1 - a) * tau2 * np.exp(-edges / tau2))
    reference = np.convolve(irf, decay)[:instrument.n_bins]
    np.testing.assert_allclose(got, 5000.0 * reference / reference.sum(), rtol=1e-10)


def test_photons_and_background_scale_the_expectation():
    instrument = get_instrument("ss3")
    counts = expected_counts(instrument, tau1=[0.3, 1.0], tau2=[2.0, 1.0], a=[0.5, 1.0],
                             photons=[100.0, 7000.0], background=[0.0, 1.5], t0=4.6,
                             irf_width=1.5, irf_sigma=0.1)
    np.testing.assert_allclose(counts.sum(axis=1), [100.0, 7000.0 + 1.5 * instrument.n_bins])
    assert counts[1].min() == pytest.approx(1.5)


def test_expected_counts_names_missing_parameters():
    with pytest.raises(ValueError, match="irf_width"):
        expected_counts(get_instrument("ss3"), tau1=1, tau2=1, a=1, photons=1, t0=4.5,
                        irf_sigma=0.1)
    with pytest.raises(ValueError, match="tau1 must be > 0 ns, not 0.0"):
        expected_counts(get_instrument("tcspc256"), tau1=0, tau2=1, a=1, photons=1, t0=2,
                        irf_sigma=0.1)


@settings(deadline=None)
@given(st.floats(0.0, 26.0))
def test_erfcx_relative_error(x):
    exact = math.exp(x * x) * math.erfc(x)
    assert erfcx(np.array([x]))[0] == pytest.approx(exact, rel=1e-10)


def test_erfcx_asymptote_far_out():
    x = np.array([30.0, 1e3, 1e6])
    w = 1 / (2 * x * x)
    asymptote = 1 / (x * math.sqrt(math.pi)) * (1 - w + 3 * w**2 - 15 * w**3)
    np.testing.assert_allclose(erfcx(x), asymptote, rtol=1e-10)
