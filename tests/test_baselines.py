"""Conventional baselines on simulated ss3 pixels: FLIMLib's fit and phasor lifetimes."""

import importlib

import numpy as np
import pytest

from flirtl.baselines import lma_fit, phasor_lifetimes
from flirtl.fli import get_instrument, simulate


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except (ImportError, OSError, RuntimeError):  # flimlib loads its C library with ctypes
        return False
    return True


needs_flimlib = pytest.mark.skipif(not _importable("flimlib"),
                                   reason="flimlib (FLIMLib's Python wrapper) cannot be imported")
needs_phasorpy = pytest.mark.skipif(not _importable("phasorpy"),
                                    reason="phasorpy cannot be imported")

N = 64
#: Every pixel of this instrument has the same IRF, so one (T,) IRF describes them all.
ONE_IRF = dict(irf_position_range=(4.6, 4.6), gate_width_range=(2.0, 2.0),
               jitter_range=(0.1, 0.1))


def _pixels(*, photons, mono_fraction, irf=None, **overrides):
    instrument = get_instrument("ss3", photons_range=(photons, photons),
                                mono_fraction=mono_fraction, **overrides)
    return simulate(instrument, n=N, seed=11, irf=irf, progress=False)


@needs_flimlib
def test_lma_recovers_mono_exponential_lifetimes():
    data = _pixels(photons=2e4, mono_fraction=1.0)
    got = lma_fit(data["counts"], dt=data["dt"], irf=data["irf"])
    assert got["success"].all()
    assert (got["components"] == 1).all()  # the deviance never pays for a second lifetime
    error = got["tau_mean"] - data["tau_mean"]
    assert np.median(np.abs(error) / data["tau_mean"]) < 0.015
    # lifetimes below a bin (0.05 ns of dt = 0.09 ns) are off by up to 0.02 ns
    assert np.all(np.abs(error) < 0.02 + 0.03 * data["tau_mean"])
    np.testing.assert_array_equal(got["tau1"], got["tau2"])
    assert (got["a"] == 1).all()


@needs_flimlib
def test_lma_recovers_bi_exponential_mean_lifetime():
    data = _pixels(photons=5e4, mono_fraction=0.0)
    got = lma_fit(data["counts"], dt=data["dt"], irf=data["irf"])
    assert got["success"].all()
    error = np.abs(got["tau_mean"] - data["tau_mean"])
    # the amplitude-weighted mean is ill-conditioned: a faint fast component can carry much of a
    assert np.median(error / data["tau_mean"]) < 0.02
    assert np.percentile(error, 90) < 0.1
    assert np.all(got["tau1"] <= got["tau2"])
    assert np.all((got["a"] >= 0) & (got["a"] <= 1))


@needs_flimlib
def test_irf_average_removes_the_half_bin_bias():
    data = _pixels(photons=5e4, mono_fraction=1.0)
    error = {average: np.median(lma_fit(data["counts"], dt=data["dt"], irf=data["irf"],
                                        model="mono", average_irf=average)["tau1"] - data["tau1"])
             for average in (False, True)}
    assert error[False] > 0.02  # +0.034 ns measured: about dt/2 = 0.045 ns too long
    assert abs(error[True]) < 0.005


@needs_flimlib
def test_lma_with_one_irf_for_all_pixels():
    data = _pixels(photons=2e4, mono_fraction=1.0, tau_range=(0.3, 1.5), **ONE_IRF)
    irf = data["irf"][0]
    got = lma_fit(data["counts"], dt=data["dt"], irf=irf)
    assert np.abs(got["tau_mean"] / data["tau_mean"] - 1).max() < 0.05
    # simulate(irf=...) convolves in discrete time: the same IRF fits as it is, not averaged
    discrete = _pixels(photons=2e4, mono_fraction=1.0, tau_range=(0.3, 1.5), irf=irf)
    got = lma_fit(discrete["counts"], dt=discrete["dt"], irf=irf, average_irf=False)
    assert np.abs(got["tau_mean"] / discrete["tau_mean"] - 1).max() < 0.05


@needs_phasorpy
@pytest.mark.parametrize("one_irf", [False, True])
def test_phasor_lifetime_of_mono_exponential(one_irf):
    # lifetimes the 12 ns window does not cut off: the phasor assumes a periodic decay
    data = _pixels(photons=2e4, mono_fraction=1.0, tau_range=(0.3, 1.5), **ONE_IRF)
    got = phasor_lifetimes(data["counts"], dt=data["dt"],
                           irf=data["irf"][0] if one_irf else data["irf"])
    for key in ("tau_phase", "tau_normal", "tau_mean"):
        error = np.abs(got[key] / data["tau_mean"] - 1)
        assert np.median(error) < 0.015, key
        assert error.max() < 0.06, key
    unresolved = ~got["resolved"]
    assert unresolved.any()
    np.testing.assert_array_equal(got["tau_mean"][unresolved], got["tau_normal"][unresolved])


@needs_flimlib
@needs_phasorpy
def test_pixels_without_signal_are_flagged_not_raised():
    data = _pixels(photons=2e4, mono_fraction=1.0)
    counts = data["counts"][:3].copy()
    counts[1] = 0
    counts[2] = 1  # flat background, nothing above it
    fit = lma_fit(counts, dt=data["dt"], irf=data["irf"][:3])
    np.testing.assert_array_equal(fit["success"], [True, False, False])
    assert np.isnan(fit["tau_mean"][1:]).all() and (fit["components"][1:] == 0).all()
    phasor = phasor_lifetimes(counts, dt=data["dt"], irf=data["irf"][:3])
    assert np.isfinite(phasor["tau_mean"][0]) and np.isnan(phasor["tau_mean"][1:]).all()


COUNTS, IRF = np.ones((4, 135)), np.ones((4, 135))
NAN_COUNTS = COUNTS.copy()
NAN_COUNTS[1, 7] = np.nan


@pytest.mark.parametrize("function", [lma_fit, phasor_lifetimes])
@pytest.mark.parametrize("counts, irf, message", [
    (NAN_COUNTS, IRF, "counts holds 1 NaN"),
    (COUNTS[0], IRF, r"shape \(N, T\)"),
    (COUNTS[None], IRF, r"shape \(N, T\)"),
    (COUNTS - 5, IRF, "non-negative"),
    (COUNTS + 0.5, IRF, "integer photon counts"),
    (COUNTS, IRF[:, :-1], "one sample per time bin"),
    (COUNTS, IRF[:-1], "3 rows for 4 pixels"),
    (COUNTS, np.full_like(IRF, np.nan), "irf holds NaN"),
])
def test_bad_input_raises_naming_the_problem(function, counts, irf, message):
    with pytest.raises(ValueError, match=message):
        function(counts, dt=0.09, irf=irf)


@pytest.mark.parametrize("function", [lma_fit, phasor_lifetimes])
def test_bad_parameters_raise(function):
    counts, irf = np.ones((2, 135)), np.ones(135)
    with pytest.raises(ValueError, match="dt must be a number > 0"):
        function(counts, dt=0.0, irf=irf)
    with pytest.raises(ValueError, match="bg_bins"):
        function(counts, dt=0.09, irf=irf, bg_bins=135)
    options = ({"model": "tri"}, {"fit_start": 132}) if function is lma_fit else (
        {"harmonic": 34}, {"harmonic": 0})
    for option in options:
        with pytest.raises(ValueError, match=next(iter(option)).split("_")[0]):
            function(counts, dt=0.09, irf=irf, **option)
