"""simulate(): labels, targets, counting statistics, determinism, and the .npz file."""

import json
import os

import numpy as np
import pytest

from flirtl.fli import (BLOCK, PRESETS, counts_dtype, expected_counts, get_instrument, load_npz,
                        normalize_tpsf, simulate, write_npz)

ARRAY_KEYS = {"counts": None, "tpsf": np.float32, "sfd": np.float32, "irf": np.float32,
              "tau1": np.float32, "tau2": np.float32, "a": np.float32, "tau_mean": np.float32,
              "photons": np.float32, "background": np.float32, "t0": np.float32,
              "irf_width": np.float32, "irf_sigma": np.float32}


@pytest.fixture(scope="module", params=sorted(PRESETS))
def data(request):
    return simulate(request.param, n=3000, seed=7, progress=False)


def test_keys_shapes_and_dtypes(data):
    instrument = PRESETS[str(data["preset"])]
    n, n_bins = 3000, instrument.n_bins
    assert set(ARRAY_KEYS) | {"dt", "n_bins", "seed", "preset", "instrument"} == set(data)
    for key, dtype in ARRAY_KEYS.items():
        assert data[key].shape[0] == n
        assert data[key].dtype == (dtype or np.uint16), key
    assert data["counts"].shape == data["tpsf"].shape == data["irf"].shape == (n, n_bins)
    assert data["sfd"].shape == (n, n_bins, 3)
    assert data["dt"] == instrument.dt and data["n_bins"] == n_bins
    assert json.loads(str(data["instrument"]))["name"] == instrument.name


def test_labels_lie_in_the_instrument_ranges(data):
    instrument = PRESETS[str(data["preset"])]
    lo, hi = instrument.tau_range
    assert np.all((lo <= data["tau1"]) & (data["tau1"] <= data["tau2"]) & (data["tau2"] <= hi))
    assert np.all((0 <= data["a"]) & (data["a"] <= 1))
    for key, (lo, hi) in (("photons", instrument.photons_range),
                          ("background", instrument.background_range),
                          ("t0", instrument.irf_position_range)):
        assert np.all((data[key] >= np.float32(lo)) & (data[key] <= np.float32(hi))), key
    # photons are log-uniform: the median sits at the geometric mean of the range
    assert np.median(data["photons"]) == pytest.approx(np.sqrt(np.prod(instrument.photons_range)),
                                                       rel=0.15)
    np.testing.assert_allclose(
        data["tau_mean"], data["a"] * data["tau1"] + (1 - data["a"]) * data["tau2"], rtol=1e-6)


def test_mono_exponential_convention(data):
    instrument = PRESETS[str(data["preset"])]
    mono = data["a"] == 1
    n = len(mono)
    share = instrument.mono_fraction
    assert abs(mono.mean() - share) < 5 * np.sqrt(share * (1 - share) / n)
    assert np.all(data["tau1"][mono] == data["tau2"][mono])
    assert np.all(data["sfd"][mono, :, 2] == 0)
    assert np.all(data["tau1"][~mono] != data["tau2"][~mono])


def test_sfd_channels_are_total_short_long_from_the_pulse(data):
    t = np.arange(data["sfd"].shape[1]) * data["dt"]
    a, tau1, tau2 = (data[key][:, None].astype(float) for key in ("a", "tau1", "tau2"))
    short, long = a * np.exp(-t / tau1), (1 - a) * np.exp(-t / tau2)
    np.testing.assert_allclose(data["sfd"][..., 1], short, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(data["sfd"][..., 2], long, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(data["sfd"][..., 0], short + long, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(data["sfd"][:, 0, 0], 1.0, rtol=1e-6)


def test_tpsf_is_the_normalised_counts_and_irf_has_unit_sum(data):
    instrument = PRESETS[str(data["preset"])]
    np.testing.assert_array_equal(data["tpsf"],
                                  normalize_tpsf(data["counts"], bg_bins=instrument.bg_bins))
    np.testing.assert_allclose(data["irf"].sum(axis=1), 1.0, rtol=1e-5)
    assert data["irf"].min() >= 0


def test_background_bins_come_before_the_rise(data):
    instrument = PRESETS[str(data["preset"])]
    assert np.all(data["irf"][:, :instrument.bg_bins] < 1e-4)


def test_counts_sum_to_photons_plus_background(data):
    n_bins = data["counts"].shape[1]
    mean = data["photons"].astype(float) + n_bins * data["background"]
    z = (data["counts"].sum(axis=1) - mean) / np.sqrt(mean)
    assert abs(z.mean()) < 5 / np.sqrt(len(z))
    assert z.std() == pytest.approx(1.0, abs=0.1)


def _fixed(preset, **overrides):
    """An instrument whose every range is one value: all pixels share one expectation."""
    ranges = dict(tau_range=(0.4, 0.4), mono_fraction=1.0, photons_range=(3000.0, 3000.0),
                  background_range=(0.5, 0.5))
    instrument = PRESETS[preset]
    ranges["irf_position_range"] = (instrument.irf_position_range[0],) * 2
    if instrument.irf_kind == "gaussian":
        ranges["fwhm_range"] = (0.3, 0.3)
    else:
        ranges["gate_width_range"] = (instrument.gate_width_range[1],) * 2
        ranges["jitter_range"] = (0.05, 0.05)
    ranges.update(overrides)
    return get_instrument(preset, **ranges)


def _expectation(instrument, data):
    return expected_counts(instrument, tau1=0.4, tau2=0.4, a=1.0, photons=3000.0, background=0.5,
                           t0=float(data["t0"][0]), irf_width=float(data["irf_width"][0]),
                           irf_sigma=float(data["irf_sigma"][0]))[0]


def _poisson_z(counts, mean):
    """z-scores of the per-bin sample mean and sample variance against a Poisson of mean `mean`."""
    n = len(counts)
    z_mean = (counts.mean(axis=0) - mean) / np.sqrt(mean / n)
    # Var(sample variance) of a Poisson: (mean + 2 mean^2) / n
    z_var = (counts.var(axis=0, ddof=1) - mean) / np.sqrt((mean + 2 * mean**2) / n)
    return z_mean, z_var


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_poisson_mean_and_variance_per_bin(preset):
    instrument = _fixed(preset)
    data = simulate(instrument, n=20000, seed=11, progress=False)
    mean = _expectation(instrument, data)
    z_mean, z_var = _poisson_z(data["counts"].astype(float), mean)
    assert np.abs(z_mean).max() < 5.5 and np.abs(z_var).max() < 5.5
    # the same bounds catch a 2% error in the expectation or a non-Poisson spread
    assert np.abs(_poisson_z(data["counts"].astype(float), 1.02 * mean)[0]).max() > 5.5
    extra = np.random.default_rng(0).poisson(0.2 * mean, data["counts"].shape)
    assert np.abs(_poisson_z(data["counts"] + extra - 0.2 * mean, mean)[1]).max() > 5.5


def test_binomial_pile_up_statistics():
    instrument = _fixed("ss3", counting="binomial", frames=500, photons_range=(5000.0, 5000.0))
    data = simulate(instrument, n=20000, seed=5, progress=False)
    light = expected_counts(instrument, tau1=0.4, tau2=0.4, a=1.0, photons=5000.0, background=0.5,
                            t0=float(data["t0"][0]), irf_width=float(data["irf_width"][0]),
                            irf_sigma=float(data["irf_sigma"][0]))[0]
    p = -np.expm1(-light / instrument.frames)
    counts = data["counts"].astype(float)
    mean, variance = instrument.frames * p, instrument.frames * p * (1 - p)
    z = (counts.mean(axis=0) - mean) / np.sqrt(variance / len(counts))
    assert np.abs(z).max() < 5.5
    assert counts.max() <= instrument.frames
    # pile-up: the peak loses counts against the incident light, and the spread is sub-Poisson
    assert counts.mean(axis=0).max() < 0.95 * light.max()
    np.testing.assert_allclose(counts.var(axis=0), variance, rtol=0.1, atol=0.05)


def test_late_decay_leaves_the_first_bins_at_background():
    instrument = get_instrument("tcspc256", irf_position_range=(11.5, 11.5), tau_range=(3.0, 3.0),
                                background_range=(0.0, 0.0), photons_range=(1e4, 1e4))
    data = simulate(instrument, n=2000, seed=1, progress=False)
    assert np.all(data["counts"][:, :200] == 0)
    assert data["counts"][:, -1].mean() > 50


def test_same_seed_same_arrays_other_seed_other_arrays():
    first = simulate("ss3", n=2500, seed=3, progress=False)
    again = simulate("ss3", n=2500, seed=3, progress=False, chunk=BLOCK, workers=2)
    other = simulate("ss3", n=2500, seed=4, progress=False)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
    assert not np.array_equal(first["counts"], other["counts"])
    assert not np.array_equal(first["tau1"], other["tau1"])


def test_a_shorter_run_is_a_prefix_of_a_longer_one():
    short = simulate("iccd160", n=1500, seed=9, progress=False)
    long = simulate("iccd160", n=2 * BLOCK + 1, seed=9, progress=False, chunk=3 * BLOCK)
    for key in ("counts", "sfd", "irf", "tau1", "photons"):
        np.testing.assert_array_equal(short[key], long[key][:1500], err_msg=key)


def test_measured_irf_replaces_the_family():
    instrument = _fixed("ss3")
    irf = np.zeros(instrument.n_bins)
    irf[30:50] = np.hanning(20)
    data = simulate(instrument, n=20000, seed=2, irf=irf, progress=False)
    np.testing.assert_allclose(data["irf"], np.broadcast_to(irf / irf.sum(), data["irf"].shape),
                               rtol=1e-6, atol=1e-9)
    assert np.isnan(data["t0"]).all()
    mean = expected_counts(instrument, tau1=0.4, tau2=0.4, a=1.0, photons=3000.0, background=0.5,
                           irf=irf)[0]
    z_mean, z_var = _poisson_z(data["counts"].astype(float), mean)
    assert np.abs(z_mean).max() < 5.5 and np.abs(z_var).max() < 5.5
    per_pixel = np.tile(irf, (5, 1))
    per_pixel[2] = np.roll(irf, 10)
    rows = simulate(instrument, n=5, seed=2, irf=per_pixel, progress=False)
    assert rows["counts"][2].argmax() > rows["counts"][1].argmax()
    with pytest.raises(ValueError, match="irf has 5 rows for n=4 pixels"):
        simulate(instrument, n=4, seed=2, irf=per_pixel, progress=False)


def test_counts_dtype_guards_overflow():
    assert counts_dtype(get_instrument("ss3")) == np.uint16
    assert counts_dtype(get_instrument("ss3", photons_range=(50, 1e6))) == np.uint32
    assert counts_dtype(get_instrument("ss3", counting="binomial", frames=65535)) == np.uint16
    assert counts_dtype(get_instrument("ss3", counting="binomial", frames=65536)) == np.uint32
    big = simulate(_fixed("ss3", photons_range=(5e6, 5e6)), n=10, seed=0, progress=False)
    assert big["counts"].dtype == np.uint32 and big["counts"].max() > 65535


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0, seed=1), "n must be an int >= 1, not 0"),
    (dict(n=10, seed=-1), "seed must be an int >= 0, not -1"),
    (dict(n=10, seed=1, chunk=0), "chunk must be an int >= 1"),
    (dict(n=10, seed=1, irf=np.full(135, np.nan)), "NaN"),
    (dict(n=10, seed=1, irf=np.ones(134)), r"irf has shape \(134,\)"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate("ss3", progress=False, **kwargs)


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="unknown instrument preset 'ss4'"):
        simulate("ss4", n=1, seed=1)


def test_npz_round_trip(tmp_path):
    data = simulate("ss3", n=100, seed=1, progress=False)
    path = tmp_path / "ss3.npz"
    write_npz(path, data)
    loaded = load_npz(path)
    assert set(loaded) == set(data)
    for key in ("counts", "tpsf", "sfd", "tau1", "tau2", "a", "photons", "irf"):
        assert loaded[key].dtype == data[key].dtype
        np.testing.assert_array_equal(loaded[key], data[key])
    assert loaded["dt"] == 0.09 and loaded["preset"] == "ss3"
    assert json.loads(loaded["instrument"])["n_bins"] == 135
    assert os.listdir(tmp_path) == ["ss3.npz"]


def test_npz_write_is_atomic(tmp_path, monkeypatch):
    data = simulate("ss3", n=100, seed=1, progress=False)
    path = tmp_path / "data.npz"
    path.write_bytes(b"the previous file")

    def failing_savez(file, **arrays):
        file.write(b"PK half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        write_npz(path, data)
    assert path.read_bytes() == b"the previous file"
    with pytest.raises(OSError, match="disk full"):
        write_npz(tmp_path / "new.npz", data)
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]


def test_npz_write_needs_the_dataset_keys(tmp_path):
    with pytest.raises(ValueError, match="'tpsf'"):
        write_npz(tmp_path / "x.npz", {"counts": np.zeros((1, 2))})
    assert os.listdir(tmp_path) == []


def test_unresolved_components_are_labelled_as_one():
    """resolve_ratio / resolve_fraction change the labels of pixels whose components the decay
    cannot tell apart, never their counts: one component with the amplitude-weighted lifetime."""
    plain = simulate("ss3", n=2000, seed=3, progress=False)
    merged = simulate(get_instrument("ss3", resolve_ratio=1.3, resolve_fraction=0.1), n=2000, seed=3,
                      progress=False)
    np.testing.assert_array_equal(plain["counts"], merged["counts"])
    close = plain["tau2"] < 1.3 * plain["tau1"]
    weak = np.minimum(plain["a"], 1 - plain["a"]) < 0.1
    one = close | weak
    assert 0.1 < (one & (plain["a"] < 1)).mean() < 0.6  # a sizeable share of the bi-exponentials
    assert np.all(merged["a"][one] == 1) and np.all(merged["sfd"][one, :, 2] == 0)
    np.testing.assert_allclose(merged["tau1"][one], plain["tau_mean"][one], rtol=1e-6)
    np.testing.assert_array_equal(merged["tau2"][one], merged["tau1"][one])
    for key in ("a", "tau1", "tau2", "sfd"):  # separable pixels keep their labels
        np.testing.assert_array_equal(merged[key][~one], plain[key][~one])
    with pytest.raises(ValueError, match=r"Instrument.resolve_ratio must be a number >= 1, not 0.5"):
        get_instrument("ss3", resolve_ratio=0.5)
    with pytest.raises(ValueError, match=r"Instrument.resolve_fraction must be a number in \[0, 0.5\), not 0.5"):
        get_instrument("ss3", resolve_fraction=0.5)


def test_lifetimes_the_cramer_rao_bound_cannot_split_are_labelled_as_one():
    """resolve_sigma: a pixel whose lifetimes lie fewer than k bound deviations apart (its own
    photons deciding) is labelled as one component; its counts never change."""
    from flirtl.fli.crlb import crlb
    plain = simulate("ss3", n=1500, seed=5, progress=False)
    merged = simulate(get_instrument("ss3", resolve_sigma=2.0), n=1500, seed=5, progress=False)
    np.testing.assert_array_equal(plain["counts"], merged["counts"])
    two = (plain["a"] < 1) & (plain["tau2"] > plain["tau1"])
    deviation = crlb("ss3", {name: plain[name] for name in ("tau1", "tau2", "a", "photons", "background", "t0",
                                                            "irf_width", "irf_sigma")})
    apart = (plain["tau2"] - plain["tau1"]) / np.hypot(deviation["tau1"], deviation["tau2"])
    one = two & ~(apart >= 2.0)
    assert 0.2 < one.sum() / two.sum() < 0.9
    assert np.all(merged["a"][one] == 1) and np.all(merged["sfd"][one, :, 2] == 0)
    np.testing.assert_allclose(merged["tau1"][one], plain["tau_mean"][one], rtol=1e-6)
    for key in ("a", "tau1", "tau2", "sfd"):  # resolvable pixels keep their labels
        np.testing.assert_array_equal(merged[key][~one], plain[key][~one])
    # the photons decide: among pixels at the same separation, the bright ones stay split more often
    bright = plain["photons"] >= 1000
    assert (one & bright).sum() / (two & bright).sum() < (one & ~bright).sum() / (two & ~bright).sum()
    # a measured IRF: the bound of each pixel comes from that response
    t = (np.arange(135) + 0.5) * 0.09
    irf = np.exp(-0.5 * ((t - 5.0) / 0.3) ** 2)
    measured = [simulate(get_instrument("ss3", irf_measured=True, resolve_sigma=k), n=1000, seed=2, irf=irf,
                         progress=False) for k in (0.0, 2.0)]
    np.testing.assert_array_equal(measured[0]["counts"], measured[1]["counts"])
    drawn_two = measured[0]["a"] < 1
    assert 0.2 < (measured[1]["a"][drawn_two] == 1).mean() < 0.95
    with pytest.raises(ValueError, match=r"Instrument.resolve_sigma must be a finite number >= 0, not -1"):
        get_instrument("ss3", resolve_sigma=-1)
