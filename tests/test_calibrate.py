"""`flirtl calibrate`: from a user's file and its IRF (or a reference sample) to a fine-tuned 8-bit
model, and every bad input refused with one line, leaving no directory behind."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flirtl.fli import get_instrument, simulate
from flirtl.nn.calibrate import CalibrationError, calibrate, irf_from_reference

ROOT = Path(__file__).resolve().parents[1]
T, DT = 48, 0.2


def gaussian_irf(n_bins=T, dt=DT, centre=0.8, fwhm=0.3):
    t = (np.arange(n_bins) + 0.5) * dt
    irf = np.exp(-0.5 * ((t - centre) / (fwhm / 2.3548)) ** 2)
    return irf / irf.sum()


def instrument(**changes):
    return get_instrument("tcspc256", n_bins=T, dt=DT, background="ends", irf_position_range=(0.0, 0.0),
                          **changes)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("instrument")
    irf = gaussian_irf()
    np.save(folder / "irf.npy", irf)
    data = simulate(instrument(), n=600, seed=5, irf=irf, progress=False)
    np.save(folder / "data.npy", data["counts"].reshape(20, 30, T))
    ref = simulate(instrument(tau_range=(2.0, 2.0), mono_fraction=1.0, photons_range=(5000, 5000)),
                   n=50, seed=6, irf=irf, progress=False)
    np.save(folder / "reference.npy", ref["counts"])
    return folder


def test_irf_recovered_from_a_reference_of_known_lifetime(files):
    ref = np.load(files / "reference.npy")
    recovered = irf_from_reference(ref.sum(axis=0), dt=DT, tau=2.0)
    truth = gaussian_irf()
    assert recovered.argmax() == truth.argmax()
    assert np.abs(recovered - truth).sum() < 0.15  # L1 of two unit-sum responses; 2 = disjoint
    # the wrong lifetime leaves a decaying tail in the "IRF": visibly worse
    wrong = irf_from_reference(ref.sum(axis=0), dt=DT, tau=0.5)
    assert np.abs(wrong - truth).sum() > 2 * np.abs(recovered - truth).sum()
    with pytest.raises(CalibrationError, match="photons above its background.*at least 20000"):
        irf_from_reference(ref[:1].sum(axis=0) // 50, dt=DT, tau=2.0)


def test_calibrate_writes_a_model_and_its_report(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # checkpoints/ lands here
    out = calibrate(str(files / "data.npy"), out=str(tmp_path / "mine"), irf=str(files / "irf.npy"), dt=DT,
                    base=str(ROOT / "models/seq2seqlite-32x32-anywhere"), minutes=0.05, n_train=300,
                    threads=1, resolve_sigma=1.0, progress=False)
    # the model, its checkpoint and the simulation cache; no staging directory left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "data", "mine"]
    report = json.loads((out / "calibration.json").read_text())
    assert report["instrument"]["n_bins"] == T and report["instrument"]["background"] == "ends"
    assert set(report["models"]) == {"calibrated"}  # the base reads 135 bins: said in a note
    assert "reads 135 bins" in report["notes"][0]
    mono = report["models"]["calibrated"]["mono"]
    assert mono["pixels"] > 0 and 0 <= mono["a_mean"] <= 1
    spec = json.loads((out / "spec.json").read_text())
    assert spec["n_bins"] == T and spec["background"] == "ends" and spec["bits"] == 8
    assert np.allclose(np.load(out / "irf.npy"), gaussian_irf())
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["out"] == str(out) and config["train"]["qat"]
    assert config["train"]["resolve_sigma"] == 1.0 and report["instrument"]["resolve_sigma"] == 1.0
    text = (out / "calibration.md").read_text()
    assert "Single-exponential pixels" in text and "| calibrated |" in text


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "flirtl", "calibrate", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case, message", [
    ("no-response", "give the instrument's response"),
    ("no-tau", "--reference needs --reference-tau"),
    ("no-dt", "records no bin width: give it with --dt"),
    ("irf-wrong-axis", "shape \\(47,\\); expected \\(48,\\)"),
    ("irf-negative", "must be non-negative"),
    ("irf-zero", "is all zero"),
    ("reference-dim", "photons above its background"),
    ("out-exists", "exists: calibration writes a new model directory"),
    ("not-a-model", "is not a quantized model directory"),
    ("minutes", "--minutes must be in"),
    ("resolve-sigma", "--resolve-sigma must be a finite number >= 0, not -1.0"),
])
def test_bad_calibration_inputs_are_refused(files, tmp_path, case, message):
    irf = gaussian_irf()
    args = [files / "data.npy", "--dt", DT, "--irf", files / "irf.npy", "--out", tmp_path / "new",
            "--model", ROOT / "models/seq2seqlite-32x32-anywhere"]
    if case == "no-response":
        args = args[:3] + args[5:]
    elif case == "out-exists":
        args[6] = ROOT / "models/seq2seqlite-32x32"
    elif case == "no-tau":
        args[3] = "--reference"
    elif case == "no-dt":
        args = args[:1] + args[3:]
    elif case.startswith("irf-"):
        bad = {"irf-wrong-axis": irf[:-1], "irf-negative": irf - 0.01, "irf-zero": irf * 0}[case]
        np.save(tmp_path / "bad.npy", bad)
        args[4] = tmp_path / "bad.npy"
    elif case == "reference-dim":
        np.save(tmp_path / "dim.npy", np.load(files / "reference.npy")[:2] // 20)
        args[3:5] = ["--reference", tmp_path / "dim.npy", "--reference-tau", 2.0]
    elif case == "not-a-model":
        args[-1] = files
    elif case == "minutes":
        args += ["--minutes", -1]
    elif case == "resolve-sigma":
        args += ["--resolve-sigma", -1]
    before = sorted(tmp_path.iterdir())
    shipped = (ROOT / "models/seq2seqlite-32x32/weights.npz").stat().st_mtime_ns
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flirtl: error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert sorted(tmp_path.iterdir()) == before  # nothing written, no checkpoint either
    assert (ROOT / "models/seq2seqlite-32x32/weights.npz").stat().st_mtime_ns == shipped


def test_report_of_a_dim_instrument_has_no_empty_rows():
    """A file whose photon range stays below 1000 has no bright single-exponential pixels: the
    report says so instead of a NaN row (and NumPy's empty-mean warning)."""
    from flirtl.nn.calibrate import BRIGHT, MeasuredInstrument, calibration_text

    found = MeasuredInstrument(n_bins=T, dt=DT, irf=gaussian_irf(), photons=(50.0, 800.0), source="a file",
                               warnings=[])
    empty = {"pixels": 0, **{q: {"mae": float("nan"), "bias": float("nan")} for q in ("tau_mean", "tau1", "tau2")}}
    dim = {**empty, "pixels": 12, **{q: {"mae": 0.1, "bias": 0.01} for q in ("tau_mean", "tau1", "tau2")}}
    report = {"instrument": {"photons_range": [50.0, 800.0]}, "pixels": 4000, "seed": 1, "notes": [],
              "train_seconds": 60.0,
              "models": {"calibrated": {"50-1000 photons": dim, f">={BRIGHT} photons": empty, "mono": {"pixels": 0}}}}
    text = calibration_text(report, found, Path("models/mine"), Path("models/base"))
    assert "nan" not in text.lower()
    assert f"| calibrated | 0 (the instrument's photon range stays below {BRIGHT}) |" in text
    assert "| calibrated | 50-1000 | 12 |" in text
