"""Cramer-Rao bound: the textbook F = 1 limit, Monte-Carlo maximum-likelihood fits, the edges."""

import numpy as np
import pytest

from flirtl.fli import PRESETS, Instrument, expected_counts, get_instrument, simulate
from flirtl.fli.crlb import (PARAMETERS, _expected_counts_and_jacobian, _pixel_labels, crlb,
                             fisher_information, separable)
from flirtl.fli.forward import Workspace
from flirtl.fli.instrument import FWHM_PER_SIGMA

#: TCSPC as fine and as long as the textbook limit assumes: 10 ps bins, a 10 ns window, a
#: 0.4 ps IRF starting on a bin edge.
FINE = Instrument(name="fine", n_bins=1024, dt=0.01, irf_kind="gaussian",
                  irf_position_range=(0.5, 0.5), fwhm_range=(0.001, 0.001))
FINE_IRF = {"t0": 0.5, "irf_sigma": 0.001 / FWHM_PER_SIGMA}
GATED_IRF = {"t0": 4.7, "irf_width": 2.0, "irf_sigma": 0.1}
BI = {"tau1": 0.5, "tau2": 2.5, "a": 0.5, "photons": 10000.0, "background": 1.0}


@pytest.fixture(scope="module")
def ss3():
    return simulate("ss3", n=3000, seed=5, progress=False)


def _binned_exponential_deviation(*, tau, photons, dt, n_bins):
    """sqrt(1/I) for the lifetime of an exponential binned on [0, n_bins*dt) with `photons` in the
    window: p_j = (q**j - q**(j+1)) / (1 - q**n_bins), I = photons * sum (dp_j/dtau)**2 / p_j."""
    edges = np.arange(n_bins + 1) * dt
    survival = np.exp(-edges / tau)
    d_survival = survival * edges / tau**2
    window, d_window = 1 - survival[-1], -d_survival[-1]
    p = (survival[:-1] - survival[1:]) / window
    dp = ((d_survival[:-1] - d_survival[1:]) - p * d_window) / window
    return 1 / np.sqrt(photons * np.sum(dp**2 / p))


@pytest.mark.parametrize("tau", [0.3, 0.5, 1.0])
def test_mono_exponential_reaches_the_binned_limit_and_f_of_one(tau):
    photons = 10000.0
    # all three spellings of a mono-exponential decay; no background, held known
    labels = {"tau1": [tau, tau, 0.1], "tau2": [tau, tau, tau], "a": [1.0, 0.5, 0.0],
              "photons": photons, "background": 0.0, **FINE_IRF}
    bound = crlb(FINE, labels)
    reference = _binned_exponential_deviation(tau=tau, photons=photons, dt=FINE.dt,
                                              n_bins=FINE.n_bins - 50)  # the decay starts at bin 50
    np.testing.assert_allclose(bound["tau_mean"], reference, rtol=2e-3)
    # F = 1: sigma_tau = tau / sqrt(N) when the bins are fine and the window holds the decay
    np.testing.assert_allclose(bound["tau_mean"], tau / np.sqrt(photons), rtol=0.03)
    for name in ("tau1", "tau2", "a"):
        assert np.isnan(bound[name]).all(), name


def _fit(instrument, counts, start, irf, *, iterations=30):
    """Poisson maximum-likelihood fit of (tau1, tau2, a, photons, background) to each row of
    `counts` by Fisher scoring, with its own central differences of `expected_counts`."""
    theta = np.tile(start, (len(counts), 1))

    def model(values):
        return expected_counts(instrument, **dict(zip(PARAMETERS, values.T)), **irf)

    for _ in range(iterations):
        mean = model(theta)
        jacobian = np.empty(mean.shape + (len(PARAMETERS),))
        for column in range(len(PARAMETERS)):
            step = 1e-5 * np.maximum(theta[:, column], 1.0)
            up, down = theta.copy(), theta.copy()
            up[:, column] += step
            down[:, column] -= step
            jacobian[:, :, column] = (model(up) - model(down)) / (2 * step[:, None])
        information = np.einsum("ntk,nt,ntl->nkl", jacobian, 1 / mean, jacobian)
        score = np.einsum("ntk,nt->nk", jacobian, counts / mean - 1)
        update = np.linalg.solve(information, score[..., None])[..., 0]
        theta += update
        theta[:, 2] = np.clip(theta[:, 2], 0.0, 1.0)
        if np.all(np.abs(update) < 1e-7 * np.maximum(np.abs(theta), 1.0)):
            return theta
    raise AssertionError("the maximum-likelihood fit did not converge")


def test_maximum_likelihood_fits_scatter_as_the_bound_says():
    instrument = get_instrument("ss3")
    rng = np.random.default_rng(3)
    mean = expected_counts(instrument, **BI, **GATED_IRF)[0]
    counts = rng.poisson(mean, size=(400, instrument.n_bins))
    theta = _fit(instrument, counts, [BI[name] for name in PARAMETERS], GATED_IRF)
    fitted = dict(zip(PARAMETERS, theta.T))
    fitted["tau_mean"] = fitted["a"] * fitted["tau1"] + (1 - fitted["a"]) * fitted["tau2"]
    bound = crlb(instrument, {**BI, **GATED_IRF})
    # 400 fits: the empirical std is good to 3.5% (one sigma)
    assert fitted["tau_mean"].std(ddof=1) / bound["tau_mean"][0] == pytest.approx(1.0, abs=0.15)
    for name in ("tau1", "tau2", "a"):
        assert fitted[name].std(ddof=1) / bound[name][0] == pytest.approx(1.0, abs=0.25), name


def test_jacobian_is_the_derivative_of_the_forward_model():
    instrument = get_instrument("ss3")
    labels = {name: np.array([value, value]) for name, value in BI.items()}
    labels["tau1"] = np.array([0.05, 0.5])  # the shortest lifetime, narrower than the IRF edges
    labels.update(GATED_IRF)
    checked = _pixel_labels(instrument, labels)
    mean, jacobian = _expected_counts_and_jacobian(instrument, checked, step=1e-4, work=Workspace())
    np.testing.assert_allclose(mean, expected_counts(instrument, **labels), rtol=1e-12)
    for column, name in enumerate(PARAMETERS):
        step = 1e-6 * max(checked[name].max(), 1.0)
        up, down = dict(labels), dict(labels)
        up[name], down[name] = labels[name] + step, labels[name] - step
        difference = (expected_counts(instrument, **up)
                      - expected_counts(instrument, **down)) / (2 * step)
        np.testing.assert_allclose(jacobian[:, :, column], difference, rtol=0,
                                   atol=1e-6 * np.abs(difference).max(), err_msg=name)


def test_two_step_sizes_give_the_same_bounds(ss3):
    coarse, fine = crlb("ss3", ss3, step=1e-4), crlb("ss3", ss3, step=1e-5)
    sep = separable(ss3)
    for name in coarse:
        np.testing.assert_array_equal(np.isnan(coarse[name]), np.isnan(fine[name]))
        np.testing.assert_allclose(coarse[name][sep], fine[name][sep], rtol=1e-4, err_msg=name)
        np.testing.assert_allclose(coarse[name], fine[name], rtol=1e-2, err_msg=name)


def test_shapes_and_nan_policy_on_simulated_pixels(ss3):
    bound = crlb("ss3", ss3)
    n = len(ss3["tau1"])
    assert set(bound) == {"tau1", "tau2", "a", "tau_mean"}
    for value in bound.values():
        assert value.shape == (n,) and value.dtype == np.float64
    mono = ss3["a"] == 1
    for name in ("tau1", "tau2", "a"):
        assert np.isnan(bound[name][mono]).all()
    # beyond mono: NaN only where the two lifetimes are too close to tell apart in float64
    unresolved = np.isnan(bound["tau1"]) & ~mono
    assert np.all(ss3["tau2"][unresolved] / ss3["tau1"][unresolved] < 1.01)
    assert unresolved.sum() < 0.01 * n
    for name, value in bound.items():
        assert np.isnan(value[~mono]).sum() == unresolved.sum(), name
        assert np.all(value[~np.isnan(value)] > 0), name
    assert np.isfinite(bound["tau_mean"][mono]).all()
    # more photons, tighter bounds: sigma ~ 1/sqrt(photons) at fixed everything else
    sep = separable(ss3)
    photons = ss3["photons"][sep]
    assert np.corrcoef(np.log(photons), np.log(bound["tau_mean"][sep]))[0, 1] < -0.5


def test_fisher_information_is_symmetric_and_positive_semidefinite(ss3):
    bi = np.flatnonzero(ss3["a"] < 1)[:200]
    labels = {name: ss3[name][bi] for name in ("tau1", "tau2", "a", "photons", "background",
                                               "t0", "irf_width", "irf_sigma")}
    information = fisher_information("ss3", labels)
    assert information.shape == (200, len(PARAMETERS), len(PARAMETERS))
    np.testing.assert_allclose(information, information.transpose(0, 2, 1), rtol=1e-12)
    scale = np.sqrt(np.diagonal(information, axis1=1, axis2=2))
    assert np.linalg.eigvalsh(information / scale[:, :, None] / scale[:, None, :]).min() > -1e-9
    # a mono-exponential pixel has no information about the split a: the matrix is singular
    mono = {name: ss3[name][ss3["a"] == 1][:1] for name in labels}
    assert fisher_information("ss3", mono)[0, 2, 2] == 0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_bounds_its_separable_pixels(preset):
    data = simulate(preset, n=400, seed=2, progress=False)
    bound = crlb(preset, data, workers=2)
    sep = separable(data)
    assert sep.sum() > 40
    for name, value in bound.items():
        assert np.all(np.isfinite(value[sep]) & (value[sep] > 0)), name


def test_a_measured_irf_is_used_where_the_simulation_carries_one():
    instrument = get_instrument("ss3")
    # the IRF itself: the gate profile seen by a vanishing lifetime
    irf = expected_counts(instrument, tau1=1e-4, tau2=1e-4, a=1.0, photons=1.0, **GATED_IRF)[0]
    data = simulate(instrument, n=50, seed=1, irf=irf, progress=False)
    assert np.isnan(data["t0"]).all()
    bound = crlb(instrument, data)
    assert np.isfinite(bound["tau_mean"]).all()
    # one pixel both ways: the measured IRF's bin-integrated convolution is close to the family's
    pixel = {**BI, **GATED_IRF}
    measured = crlb(instrument, {**BI, "irf": irf})
    family = crlb(instrument, pixel)
    for name in family:
        assert measured[name][0] == pytest.approx(family[name][0], rel=0.05), name


def test_binomial_counting_tends_to_poisson_and_pile_up_costs_information():
    pixel = {**BI, **GATED_IRF}
    poisson = crlb("ss3", pixel)
    many_frames = crlb(get_instrument("ss3", counting="binomial", frames=10**9), pixel)
    few_frames = crlb(get_instrument("ss3", counting="binomial", frames=300), pixel)
    for name in poisson:
        assert many_frames[name][0] == pytest.approx(poisson[name][0], rel=1e-5), name
        assert few_frames[name][0] > 1.01 * poisson[name][0], name


def test_a_zero_background_is_the_limit_of_a_vanishing_one():
    zero = crlb("ss3", {**BI, **GATED_IRF, "background": 0.0})
    tiny = crlb("ss3", {**BI, **GATED_IRF, "background": 1e-9})
    some = crlb("ss3", {**BI, **GATED_IRF})
    for name in zero:
        assert tiny[name][0] == pytest.approx(zero[name][0], rel=1e-3), name
        assert zero[name][0] < some[name][0], name


def test_separable_mask_either_convention():
    labels = {"tau1": np.array([0.5, 1.0, 0.5, 0.5, 2.0, 0.5]),
              "tau2": np.array([1.0, 1.9, 2.0, 2.0, 0.5, 0.5]),
              "a": np.array([0.5, 0.5, 0.1, 0.8, 0.3, 0.5])}
    np.testing.assert_array_equal(separable(labels), [True, False, False, True, True, False])


@pytest.mark.parametrize("change, message", [
    ({"a": 1.5}, "a must lie in"),
    ({"tau1": 0.0}, "tau1 must be > 0"),
    ({"photons": np.nan}, "photons must be finite"),
    ({"t0": np.nan}, "labels need the IRF"),
])
def test_bad_labels_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        crlb("ss3", {**BI, **GATED_IRF, **change})
    with pytest.raises(ValueError, match="lack 'irf_width'"):
        crlb("ss3", {**BI, "t0": 4.7, "irf_sigma": 0.1})
