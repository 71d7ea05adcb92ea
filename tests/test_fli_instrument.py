"""Instrument presets, overrides and their validation."""

import dataclasses

import pytest

from flirtl.fli import PRESETS, Instrument, get_instrument


def test_presets_match_the_design_brief():
    ss3 = PRESETS["ss3"]
    assert (ss3.n_bins, ss3.dt, ss3.irf_kind) == (135, 0.09, "gate")
    assert (PRESETS["iccd160"].n_bins, PRESETS["iccd160"].dt) == (160, 0.04)
    assert (PRESETS["tcspc256"].n_bins, PRESETS["tcspc256"].dt) == (256, 0.0489)
    assert PRESETS["tcspc256"].fwhm_range == (0.15, 0.4)
    assert PRESETS["ss3"].gate_width_range == (1.0, 3.0)
    for instrument in PRESETS.values():
        assert instrument.tau_range == (0.05, 3.0)
        assert instrument.photons_range == (50.0, 10000.0)
        assert instrument.bg_bins == 4


def test_overrides_and_json_round_trip():
    instrument = get_instrument("ss3", photons_range=[100, 1000], counting="binomial", frames=255)
    assert instrument.photons_range == (100.0, 1000.0)  # lists become tuples of floats
    assert instrument.counting == "binomial" and PRESETS["ss3"].counting == "poisson"
    assert Instrument.from_json(instrument.to_json()) == instrument
    with pytest.raises(dataclasses.FrozenInstanceError):
        instrument.n_bins = 3


@pytest.mark.parametrize("name, overrides, message", [
    ("ss4", {}, "unknown instrument preset 'ss4'; choose one of 'ss3', 'iccd160', 'tcspc256'"),
    ("ss3", {"bins": 10}, "unknown Instrument field\\(s\\) 'bins'"),
    ("ss3", {"n_bins": 1}, "n_bins must be an int >= 2, not 1"),
    ("ss3", {"dt": 0.0}, "dt must be a finite number > 0, not 0.0"),
    ("ss3", {"dt": float("nan")}, "dt must be a finite number > 0, not nan"),
    ("ss3", {"tau_range": (0.0, 3.0)}, r"tau_range must lie inside \(0, inf\), not \(0.0, 3.0\)"),
    ("ss3", {"tau_range": (3.0, 1.0)}, r"tau_range must be finite with lo <= hi, not \(3.0, 1"),
    ("ss3", {"tau_range": (1.0, float("inf"))}, "finite"),
    ("ss3", {"photons_range": "many"}, "photons_range must be a \\(lo, hi\\) pair"),
    ("ss3", {"background_range": (-1, 2)}, "background_range must be >= 0"),
    ("ss3", {"irf_kind": "streak"}, "irf_kind must be one of .*not 'streak'"),
    ("ss3", {"counting": "analog"}, "counting must be one of .*not 'analog'"),
    ("ss3", {"bg_bins": 3}, "bg_bins must be a power of two, not 3"),
    ("ss3", {"mono_fraction": 1.5}, "mono_fraction must be a number in \\[0, 1\\], not 1.5"),
    ("ss3", {"irf_position_range": (2.0, 5.0)}, "rise at .* inside the 4 background bins.*background='ends'"),
    ("ss3", {"background": "tail"}, "background must be one of \\('head', 'ends'\\), not 'tail'"),
    ("ss3", {"background": "ends", "irf_position_range": (-0.5, 5.0)}, "starts before the window"),
    ("ss3", {"irf_position_range": (5.0, 13.0)}, "must end before the window ends at 12.15 ns"),
    ("ss3", {"irf_kind": "gaussian"}, "fwhm_range is required for irf_kind 'gaussian'"),
    ("tcspc256", {"fwhm_range": (0.0, 0.4)}, "fwhm_range must lie inside \\(0, inf\\)"),
])
def test_bad_instruments_are_named(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        get_instrument(name, **overrides)


def test_background_from_the_ends_lets_the_decay_start_anywhere():
    """With the 'ends' rule the pulse may sit from bin 0 on; the head rule refuses that window."""
    inst = get_instrument("ss3", background="ends", irf_position_range=(0.0, 7.0))
    assert inst.irf_position_range == (0.0, 7.0)
    assert Instrument.from_json(inst.to_json()) == inst


def test_a_measured_irf_sets_the_position_check(tmp_path):
    """With a measured IRF the preset's pulse range plays no part (a 0.65 ns IRF in a TCSPC window
    the preset's range would refuse), and the IRF's own rise is checked against the background bins."""
    import numpy as np

    from flirtl.nn.config import TrainConfig

    t = (np.arange(256) + 0.5) * 0.09766
    early = np.exp(-0.5 * ((t - 0.65) / 0.13) ** 2)
    np.save(tmp_path / "early.npy", early)
    late = np.roll(early, 40)
    np.save(tmp_path / "late.npy", late)
    common = dict(preset="tcspc256", bins=256, dt=0.09766, out=str(tmp_path / "m"))
    assert TrainConfig(irf=str(tmp_path / "late.npy"), **common).instrument().irf_measured
    with pytest.raises(ValueError, match="early.npy' rises at bin 3 .*inside the 4 background bins.*--background ends"):
        TrainConfig(irf=str(tmp_path / "early.npy"), **common)
    TrainConfig(irf=str(tmp_path / "early.npy"), background="ends", **common)  # accepted
