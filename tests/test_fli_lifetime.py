"""Lifetime extraction from an SFD: exact ratio inversion and the mono-exponential convention."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from flirtl.fli import PRESETS, lifetimes_from_sfd, simulate, tau_from_ratio, tau_mean


def _sfd(*, tau1, tau2, a, dt, n_bins, dtype=np.float64):
    t = np.arange(n_bins) * dt
    tau1, tau2, a = (np.asarray(v, dtype=np.float64)[..., None] for v in (tau1, tau2, a))
    short, long = a * np.exp(-t / tau1), (1 - a) * np.exp(-t / tau2)
    return np.stack([short + long, short, long], axis=-1).astype(dtype)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exact_sfd_gives_the_lifetimes_back(preset, dtype):
    instrument = PRESETS[preset]
    tau = np.linspace(0.05, 3.0, 60)
    tau1, tau2 = (grid.ravel() for grid in np.meshgrid(tau, tau))
    a = np.resize([0.1, 0.5, 0.9], tau1.size)
    sfd = _sfd(tau1=tau1, tau2=tau2, a=a, dt=instrument.dt, n_bins=instrument.n_bins, dtype=dtype)
    got = lifetimes_from_sfd(sfd, dt=instrument.dt)
    assert np.abs(got["tau1"] - tau1).max() < 1e-3
    assert np.abs(got["tau2"] - tau2).max() < 1e-3
    assert np.abs(got["a"] - a).max() < 1e-6
    assert np.abs(got["tau_mean"] - (a * tau1 + (1 - a) * tau2)).max() < 1e-3


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_simulated_targets_give_the_simulated_labels_back(preset):
    data = simulate(preset, n=2000, seed=12, progress=False)
    got = lifetimes_from_sfd(data["sfd"], dt=data["dt"].item())
    for key in ("tau1", "tau2", "tau_mean"):
        assert np.abs(got[key] - data[key]).max() < 1e-3, key
    assert np.abs(got["a"] - data["a"]).max() < 1e-6


@settings(deadline=None, max_examples=300)
@given(n_bins=st.integers(2, 1024), tau_over_dt=st.floats(0.05, 1e4))
def test_ratio_inversion_round_trip(n_bins, tau_over_dt):
    q = np.exp(-1.0 / tau_over_dt)
    ratio = np.sum(q ** np.arange(n_bins))
    assert tau_from_ratio(ratio, n_bins=n_bins) == pytest.approx(tau_over_dt, rel=1e-6)


def test_ratio_limits_and_shapes():
    got = tau_from_ratio(np.array([[0.5, 1.0, 135.0], [200.0, np.nan, 2.0]]), n_bins=135)
    assert got.shape == (2, 3)
    assert got[0, 0] == 0 and got[0, 1] == 0
    assert np.isinf(got[0, 2]) and np.isinf(got[1, 0])
    assert np.isnan(got[1, 1])
    # R = 2 = 1 + q + q^2 + ... (q^135 negligible): q = 1/2, tau/dt = 1/log(2)
    assert got[1, 2] == pytest.approx(1 / np.log(2), rel=1e-12)
    assert tau_from_ratio(1.5, n_bins=2) == pytest.approx(-1 / np.log(0.5))
    with pytest.raises(ValueError, match="n_bins must be an int >= 2, not 1"):
        tau_from_ratio(1.5, n_bins=1)


def test_mono_exponential_convention():
    sfd = _sfd(tau1=[0.8, 0.8], tau2=[0.8, 2.0], a=[1.0, 0.0], dt=0.09, n_bins=135)
    got = lifetimes_from_sfd(sfd, dt=0.09)
    np.testing.assert_allclose(got["tau1"], [0.8, 2.0], rtol=1e-9)  # absent short: tau1 = tau2
    np.testing.assert_allclose(got["tau2"], [0.8, 2.0], rtol=1e-9)
    np.testing.assert_array_equal(got["a"], [1.0, 0.0])
    np.testing.assert_allclose(got["tau_mean"], [0.8, 2.0], rtol=1e-9)


def test_noisy_channels_do_not_break_extraction():
    sfd = _sfd(tau1=[0.5, 0.5, 0.5], tau2=[2.0, 2.0, 2.0], a=[0.5, 0.5, 0.5], dt=0.09, n_bins=135)
    sfd[1, 0, 2] = -0.01  # a negative amplitude counts as absent
    sfd[2, :, 1:] = 0.0  # nothing at all
    got = lifetimes_from_sfd(sfd, dt=0.09)
    assert got["a"][1] == 1.0 and got["tau2"][1] == got["tau1"][1]
    assert np.isnan(got["a"][2]) and np.isnan(got["tau1"][2]) and np.isnan(got["tau_mean"][2])


def test_tau_mean_ignores_an_absent_component():
    np.testing.assert_allclose(tau_mean(tau1=[1.0, 1.0, 1.0], tau2=[3.0, np.inf, 3.0],
                                        a=[0.25, 1.0, 0.0]), [2.5, 1.0, 3.0])


def test_bad_sfd_is_named():
    with pytest.raises(ValueError, match=r"sfd must have shape \(\.\.\., T, 3\), not \(10, 2\)"):
        lifetimes_from_sfd(np.ones((10, 2)), dt=0.09)
    with pytest.raises(ValueError, match="dt must be a number > 0, not 0"):
        lifetimes_from_sfd(np.ones((10, 3)), dt=0)
