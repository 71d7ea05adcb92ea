"""Lifetime map pictures and the summary page of `flirtl infer`."""

import numpy as np

from flirtl.maps import MIN_PHOTONS, plot_maps, signal_photons, summary


def fake_result(shape, seed=0):
    rng = np.random.default_rng(seed)
    tau1 = rng.uniform(0.2, 1.0, shape)
    tau2 = tau1 + rng.uniform(0.5, 2.0, shape)
    a = rng.uniform(0, 1, shape)
    return {"tau1": tau1, "tau2": tau2, "a": a, "tau_mean": a * tau1 + (1 - a) * tau2}


def test_signal_photons_subtracts_the_background():
    counts = np.full((2, 10), 3)
    counts[0, 6] += 100
    np.testing.assert_array_equal(signal_photons(counts, bg_bins=4), [100, 0])


def test_image_maps_and_pixel_histogram(tmp_path):
    photons = np.full((16, 20), 500.0)
    photons[:4] = 0  # dark rows are masked, not drawn
    for shape, photon_array in (((16, 20), photons), ((50,), np.full(50, 500.0))):
        path = plot_maps(fake_result(shape), photon_array, tmp_path / f"{len(shape)}.png", title="test")
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000


def test_summary_reports_bright_pixels_only():
    result = fake_result((10, 10))
    photons = np.full((10, 10), 1000.0)
    photons[0] = MIN_PHOTONS - 1
    result["tau_mean"][0] = 99.0  # the dark row's outputs are noise and stay out of the statistics
    text = summary(result, photons, source="x.sdt", model="m", engine="golden", seconds=2.0)
    assert "10x10 pixels in 2.0 s" in text and "90 pixels (90%)" in text
    assert "99.0" not in text and "bit-exact with the FPGA IP" in text
