"""The SDT offset study (flirtl.nn.sample_offset): its forward model and IRF fit on synthetic decays
of known instrument, the phasor's sensitivity to the IRF position it measures, the shipped page
against its JSON, and (when `make data` fetched them) the study's findings on the real SDT sample."""

import json
from pathlib import Path

import numpy as np
import pytest

from flirtl.baselines import phasor_lifetimes
from flirtl.nn import sample_offset as so

ROOT = Path(__file__).resolve().parents[1]
DT, T = 0.04886, 256
PERIOD = T * DT


def test_periodic_decays_hold_one_excitation_per_period():
    """With the laser period every photon of an excitation lands in the window (the tails of earlier
    periods fill in what the window cuts off); a single decay loses its tail."""
    kw = dict(n_bins=T, dt=DT, centre=1.36, sigma=0.05)
    periodic = so.periodic_decays([0.5, 3.0], period=PERIOD, **kw)
    single = so.periodic_decays([0.5, 3.0], period=None, **kw)
    np.testing.assert_allclose(periodic.sum(axis=1), 1.0, rtol=1e-3)
    assert single[1].sum() < 0.99 and abs(single[0].sum() - 1.0) < 1e-3
    # before the rise only the tail of the previous period remains: exp(-(P - 1.36) / 3) / 3 per ns
    assert periodic[1, 5] / DT == pytest.approx(np.exp(-(PERIOD - 1.36 + 5.5 * DT) / 3.0) / 3.0 / (1 - np.exp(-PERIOD / 3.0)), rel=0.01)
    assert single[1, 5] < 1e-12


def test_fit_recovers_the_irf_of_a_synthetic_summed_decay():
    truth = {"tau1": np.full(400, 0.4), "tau2": np.full(400, 2.5), "a": np.full(400, 0.7)}
    irf = {"centre": 1.356, "sigma": 0.047}
    counts = so.twin_counts(truth, np.full(400, 5000.0), n_bins=T, dt=DT, irf=irf, period=PERIOD,
                            recorded=(12, 245), background=0.01, seed=3)
    assert (counts[:, :12] == 0).all() and (counts[:, 246:] == 0).all()
    fit = so.fit_summed_decay(counts.sum(axis=0), dt=DT, recorded=(12, 245), period=PERIOD)
    assert fit["centre"] == pytest.approx(1.356, abs=0.005)
    assert fit["sigma"] == pytest.approx(0.047, rel=0.15)
    assert fit["tau_mean"] == pytest.approx(0.7 * 0.4 + 0.3 * 2.5, rel=0.05)
    assert 0 < fit["wrapped"] < 0.05


def test_phasor_moves_with_the_irf_position_as_the_study_finds():
    """The phasor calibrated with the IRF where it is recovers the lifetime; 40 ps early (the SDT's
    stand-in) reads it longer by about (1 + (omega tau)^2) * 40 ps."""
    n = 300
    truth = {"tau1": np.full(n, 1.0), "tau2": np.full(n, 1.0), "a": np.ones(n)}
    irf = {"centre": 1.356, "sigma": 0.047}
    counts = so.twin_counts(truth, np.full(n, 3000.0), n_bins=T, dt=DT, irf=irf, period=PERIOD,
                            recorded=None, background=0.0, seed=4)
    at = so.gaussian_irf(n_bins=T, dt=DT, **irf)
    early = so.gaussian_irf(n_bins=T, dt=DT, centre=1.316, sigma=0.047)
    tau_at = np.median(phasor_lifetimes(counts, dt=DT, irf=at)["tau_normal"])
    tau_early = np.median(phasor_lifetimes(counts, dt=DT, irf=early)["tau_normal"])
    assert tau_at == pytest.approx(1.0, abs=0.02)
    omega = 2 * np.pi / PERIOD
    assert tau_early - tau_at == pytest.approx((1 + omega ** 2) * 0.04, rel=0.3)


def test_page_refuses_a_missing_block_and_rewrites_only_the_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{so.BEGIN}\nold\n{so.END}\noutro\n")
    so.update_page(page, "new\n")
    assert page.read_text() == f"intro\n{so.BEGIN}\nnew\n{so.END}\noutro\n"
    bare = tmp_path / "bare.md"
    bare.write_text("no block\n")
    with pytest.raises(ValueError, match="needs one block"):
        so.update_page(bare, "new\n")
    assert bare.read_text() == "no block\n"


def test_shipped_page_carries_the_table_of_its_json():
    data = json.loads((ROOT / "docs/eval/sdt_offset.json").read_text())
    assert data["table"] == so.table(data["results"])
    assert f"{so.BEGIN}\n{data['table']}{so.END}" in (ROOT / "docs/eval/sdt_offset.md").read_text()


def test_sdt_findings_on_the_real_sample():
    path = ROOT / so.SAMPLES["SDT"][0]
    if not path.is_file():
        pytest.skip(f"{so.SAMPLES['SDT'][0]} is absent: `make data` fetches the samples")
    r = so.study_sample(path, so.SAMPLES["SDT"][1], pixels=1500, lma_pixels=300, seed=15)
    m = r["medians"]
    model, stand_in, fitted = (m["model (golden 8-bit), as flirtl infer"], m["phasor, stand-in IRF"],
                               m["phasor, fitted IRF"])
    assert stand_in - model > 0.18  # the offset of the issue
    assert stand_in - fitted > 0.04  # the stand-in IRF sits early
    assert r["irf"]["fitted"]["centre"] > r["irf"]["stand-in"]["centre"]
    assert r["fit"]["fwhm"] < r["facts"]["model"]["fwhm_ns"][0]  # narrower than the model ever saw
    assert r["facts"]["recorded"] == [12, 245]
    twins = r["twins"]
    wide = next(case for case in twins if case.startswith("IRF FWHM"))
    key = "model (golden 8-bit), as flirtl infer"
    assert twins["as recorded"][key]["error"] < -0.04
    assert abs(twins[wide][key]["error"]) < abs(twins["as recorded"][key]["error"]) - 0.03
    # the empty TAC bins and the wrap-around are not the cause
    for case in ("single decays (no wrap-around)", "every bin recorded"):
        assert abs(twins[case][key]["median"] - twins["as recorded"][key]["median"]) < 0.03


@pytest.mark.parametrize("argv, message", [
    (["--model", "XX=models/tcspc256-16x16"], "SAMPLE=DIR"),
    (["--model", "SDT=models/no-such-model"], "not a quantized model directory"),
    (["--pixels", "100", "--lma-pixels", "200"], "at most --pixels"),
])
def test_bad_arguments_stop_with_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        so.main(argv + ["--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
