"""`flirtl calibrate`: a model for the user's instrument, from one of its files and its response.

From a counts file of the instrument (its time axis: bin count and bin width) and either a measured
IRF or a reference sample of one known lifetime (from which the IRF follows, below), it fine-tunes
a shipped model's weights (transfer learning) with quantization-aware training in that model's
formats on simulated decays of the instrument, within a time budget, and reports the accuracy on
fresh simulations of the instrument beside the shipped model's, with single-exponential pixels
scored on their own. The model directory appears only when all of it succeeded; an existing one is
never overwritten. Training checkpoints, so the same command resumes an interrupted run.

The IRF from a reference of lifetime tau: the simulator's TPSF is the IRF convolved with the decay
integrated over bins, h_m = tau (1 - q) q^m with q = exp(-dt / tau), so y_k - q y_(k-1) = h_0 IRF_k:
each bin of the background-free reference decay, minus q times the bin before, is the IRF.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_write
from ..fli import check_irf, get_instrument, simulate
from ..fli.preprocess import background_sum
from ..golden import GoldenModel
from ..quant import QuantizedModel, dump_json
from ..readers import read_decay
from .data import trained_source
from .metrics import lifetime_error

#: The shipped model that holds wherever the decay sits: the start of every calibration.
DEFAULT_BASE = "models/seq2seqlite-32x32-anywhere"
#: Photons above background a reference needs: its IRF is a difference of neighbouring bins.
MIN_REFERENCE_PHOTONS = 20_000
#: Reference IRF samples below this fraction of its peak are noise of the bin differences.
IRF_FLOOR = 0.02
#: Both ends of the file's summed decay above this fraction of its peak: no background bins left.
ENDS_SIGNAL_WARNING = 0.05
REPORT_PIXELS = 4000
#: Pixels from which lifetimes are scored (as the evaluation's and the CRLB tables' bright bin).
BRIGHT = 1000


class CalibrationError(ValueError):
    """A calibration input that cannot be used; the message names the file and the problem."""


def irf_from_reference(decay: np.ndarray, *, dt: float, tau: float, bg_bins: int = 4) -> np.ndarray:
    """The IRF (unit sum) under a reference decay (T,) of single lifetime `tau` ns, summed over
    pixels: background (the lesser end) removed, then y_k - q y_(k-1) with q = exp(-dt/tau)."""
    decay = np.asarray(decay, np.float64)
    level = background_sum(decay, bg_bins=bg_bins, rule="ends") / bg_bins
    signal = np.clip(decay - level, 0, None)
    photons = signal.sum()
    if photons < MIN_REFERENCE_PHOTONS:
        raise CalibrationError(
            f"the reference holds {photons:.0f} photons above its background; recovering an IRF "
            f"needs at least {MIN_REFERENCE_PHOTONS} (sum more pixels or frames)")
    q = math.exp(-dt / tau)
    irf = signal - q * np.concatenate([[0.0], signal[:-1]])
    irf[irf < IRF_FLOOR * irf.max()] = 0.0
    return check_irf(irf, n_bins=len(decay), source="the IRF recovered from the reference")


@dataclass
class MeasuredInstrument:
    """What calibration learns of the user's instrument from their files."""

    n_bins: int
    dt: float
    irf: np.ndarray                  # (T,) unit sum
    photons: tuple[float, float]     # pixel photon range of the file (5th..99.5th percentile)
    source: str
    warnings: list[str]


def measure_instrument(data: str, *, irf: str | None, reference: str | None, reference_tau: float | None,
                       dt: float | None, bg_bins: int = 4) -> MeasuredInstrument:
    """Read the user's file and response; refuse what cannot make a model (CalibrationError)."""
    if (irf is None) == (reference is None):
        raise CalibrationError("give the instrument's response: --irf FILE (a measured IRF) or "
                               "--reference FILE --reference-tau NS (a sample of one known lifetime)")
    if reference is not None and not (reference_tau and math.isfinite(reference_tau) and reference_tau > 0):
        raise CalibrationError(f"--reference needs --reference-tau, the sample's lifetime in ns (> 0), "
                               f"not {reference_tau!r}")
    decay = read_decay(data, dt=dt)
    if decay.dt is None:
        raise CalibrationError(f"{decay.source} records no bin width: give it with --dt NS "
                               f"(a wrong one turns into lifetimes off by as much)")
    n_bins = decay.n_bins
    if n_bins <= 4 * bg_bins:
        raise CalibrationError(f"{decay.source} has {n_bins} time bins; a model needs more than {4 * bg_bins}")
    summed = decay.counts.reshape(-1, n_bins).sum(axis=0, dtype=np.float64)
    if reference is not None:
        ref = read_decay(reference, dt=decay.dt)
        if ref.n_bins != n_bins:
            raise CalibrationError(f"{ref.source} has {ref.n_bins} time bins, the data file {n_bins}: "
                                   f"the reference must come from the same instrument settings")
        response = irf_from_reference(ref.counts.reshape(-1, n_bins).sum(axis=0, dtype=np.float64),
                                      dt=decay.dt, tau=reference_tau, bg_bins=bg_bins)
        source = f"IRF recovered from {ref.source} (tau {reference_tau:g} ns)"
    else:
        from ..fli import load_irf

        response = load_irf(irf, n_bins=n_bins)
        source = f"IRF file {irf!r}"
    warnings = []
    peak = summed.max()
    head, tail = summed[:bg_bins].mean(), summed[-bg_bins:].mean()
    floor = summed.min()
    if peak > 0 and min(head, tail) - floor > ENDS_SIGNAL_WARNING * (peak - floor):
        warnings.append(f"both ends of the file's summed decay hold more than {ENDS_SIGNAL_WARNING:.0%} of "
                        f"its peak above its lowest bin: the background estimate will take signal "
                        f"for background (a window that ends before the decay does?)")
    pixels = decay.counts.reshape(-1, n_bins).astype(np.float64)
    level = background_sum(pixels, bg_bins=bg_bins, rule="ends")[:, None] / bg_bins
    photons = np.clip(pixels - level, 0, None).sum(axis=1)
    lit = photons[photons >= 20]
    if lit.size < 10:
        raise CalibrationError(f"{decay.source} has {lit.size} pixels of 20 photons or more: too few to "
                               f"learn the instrument's photon range from")
    lo, hi = np.percentile(lit, [5, 99.5])
    photon_range = (float(max(20.0, lo)), float(max(hi, 4 * max(20.0, lo))))
    return MeasuredInstrument(n_bins, float(decay.dt), response, photon_range, source, warnings)


def _staging(out: Path) -> Path:
    return out.parent / f".calibrating-{out.name}" / out.name


def calibrate(data: str, *, out: str, irf: str | None = None, reference: str | None = None,
              reference_tau: float | None = None, dt: float | None = None, base: str = DEFAULT_BASE,
              minutes: float = 10.0, n_train: int = 20_000, threads: int | None = 2, seed: int = 1,
              resolve_sigma: float = 0.0, progress: bool = True) -> Path:
    """Fine-tune `base` for the instrument of `data` into `out`; return the model directory.
    `resolve_sigma` > 0 labels the training pixels whose lifetimes the Cramer-Rao bound cannot split
    by that many deviations as one component (`flirtl train --resolve-sigma`)."""
    from .config import TrainConfig
    from .loop import train_student

    out_path, base_path = Path(out), Path(base)
    if out_path.exists():
        raise CalibrationError(f"{str(out_path)!r} exists: calibration writes a new model directory, "
                               f"never over one (remove it or pick another --out)")
    if not (base_path / "float_weights.npz").is_file() or not (base_path / "weights.npz").is_file():
        raise CalibrationError(f"--model {str(base_path)!r} is not a quantized model directory "
                               f"(no float_weights.npz and weights.npz)")
    if not (isinstance(minutes, (int, float)) and 0 < minutes <= 24 * 60):
        raise CalibrationError(f"--minutes must be in (0, 1440], not {minutes!r}")
    if not (isinstance(resolve_sigma, (int, float)) and 0 <= resolve_sigma < math.inf):
        raise CalibrationError(f"--resolve-sigma must be a finite number >= 0, not {resolve_sigma!r}")
    base_q = QuantizedModel.load(base_path)
    base_config = json.loads((base_path / "config.json").read_text())["train"]
    found = measure_instrument(data, irf=irf, reference=reference, reference_tau=reference_tau, dt=dt,
                               bg_bins=base_q.spec.bg_bins)
    for warning in found.warnings:
        print(f"flirtl: warning: {warning}", file=sys.stderr)

    staging = _staging(out_path)
    checkpoints = Path("checkpoints")
    keep = checkpoints / out_path.name
    keep.mkdir(parents=True, exist_ok=True)
    # the response the run trains on lives beside its checkpoint, so a rerun resumes with it
    irf_file = keep / "irf.npy"
    atomic_write(irf_file, lambda file: np.save(file, found.irf))
    config = TrainConfig(
        hidden=base_q.spec.hidden, preset=base_config.get("preset", "ss3"), bins=found.n_bins,
        dt=found.dt, irf=str(irf_file), background="ends", photons=found.photons, n_train=n_train, n_val=max(200, n_train // 10), n_test=2048, seed=seed, lr=3e-4, patience=4,
        lr_patience=2, max_epochs=200,
        max_minutes=minutes, bits=base_q.spec.bits, hidden_bits=base_q.spec.fmt("hidden").width,
        qat=True, init=str(base_path), out=str(staging), checkpoint_dir=str(checkpoints),
        threads=threads, resolve_sigma=resolve_sigma or None)
    if staging.parent.exists():
        shutil.rmtree(staging.parent)  # what an interrupted run of this command left
    try:
        started = time.monotonic()
        train_student(config, progress=progress)
        trained_s = time.monotonic() - started
        report = accuracy_report(staging, base_path, found, seed=seed + 1000, threads=threads)
        report["train_seconds"] = trained_s
        dump_json(staging / "calibration.json", report)
        atomic_write(staging / "calibration.md", calibration_text(report, found, out_path, base_path).encode())
        for name in ("config.json", "model_card.md"):  # name the final directory, not the staging one
            path = staging / name
            atomic_write(path, path.read_text().replace(str(staging), str(out_path)).encode())
        staging.rename(out_path)
    finally:
        if staging.parent.exists():
            shutil.rmtree(staging.parent)
    return out_path


def _scores(values: dict, test: dict, rows: np.ndarray) -> dict:
    return {"pixels": int(rows.sum()),
            **{name: lifetime_error(values[name][rows], test[name][rows]) for name in ("tau_mean", "tau1", "tau2")}}


def accuracy_report(model_dir: Path, base_dir: Path, found: MeasuredInstrument, *, seed: int, threads) -> dict:
    """Both models (the base only if it reads this time axis) on fresh simulations of the
    instrument: lifetimes per photon bin, and single-exponential pixels (a = 1) on their own."""
    source = trained_source(model_dir)
    test = simulate(source.instrument, n=REPORT_PIXELS, seed=seed, irf=source.irf, progress=False,
                    workers=threads)
    mono = test["a"] >= 1.0
    models = {"calibrated": QuantizedModel.load(model_dir)}
    base = QuantizedModel.load(base_dir)
    notes = []
    if base.spec.n_bins != found.n_bins:
        notes.append(f"the base model reads {base.spec.n_bins} bins, this instrument {found.n_bins}: "
                     f"no side-by-side row")
    elif base.spec.background != "ends":
        notes.append(f"the base model takes its background from the '{base.spec.background}' bins, the "
                     f"calibrated one from the lesser end: no side-by-side row")
    else:
        models["base"] = base
    report = {"instrument": json.loads(source.instrument.to_json()), "pixels": REPORT_PIXELS,
              "seed": seed, "notes": notes, "models": {}}
    bins = {"50-1000": (test["photons"] < BRIGHT), f">={BRIGHT}": test["photons"] >= BRIGHT}
    for label, model in models.items():
        values = GoldenModel(model).run(test["counts"], threads=threads).values()
        entry = {f"{name} photons": _scores(values, test, rows & ~mono) for name, rows in bins.items()}
        bright_mono = mono & (test["photons"] >= BRIGHT)
        entry["mono"] = {"pixels": int(bright_mono.sum())}
        if bright_mono.any():  # none when the file's photon range stays below BRIGHT
            entry["mono"].update(
                a_mean=float(values["a"][bright_mono].mean()),
                split_median_ns=float(np.median(np.abs(values["tau2"] - values["tau1"])[bright_mono])),
                tau_mean_mae=lifetime_error(values["tau_mean"][bright_mono], test["tau_mean"][bright_mono])["mae"])
        report["models"][label] = entry
    return report


def calibration_text(report: dict, found: MeasuredInstrument, out: Path, base: Path) -> str:
    inst = report["instrument"]
    lines = [f"# Calibration of `{out}`", "",
             f"Instrument: {found.n_bins} bins of {found.dt:g} ns, {found.source}; photons per pixel "
             f"{inst['photons_range'][0]:.0f}..{inst['photons_range'][1]:.0f} (from the file); background "
             f"from the lesser end of the window. Fine-tuned from `{base}` by 8-bit QAT in "
             f"{report['train_seconds'] / 60:.1f} min; scored on {report['pixels']} fresh simulated pixels "
             f"(seed {report['seed']}) through the golden model (what the FPGA computes).", ""]
    lines += [f"- warning: {w}" for w in found.warnings] + [f"- {n}" for n in report["notes"]]
    lines += ["", "| model | photons | pixels | tau_mean MAE / bias (ns) | tau1 MAE / bias | tau2 MAE / bias |",
              "|---|---|---|---|---|---|"]
    for label, entry in report["models"].items():
        for key, cell in entry.items():
            if key == "mono" or not cell["pixels"]:
                continue
            lines.append(f"| {label} | {key.removesuffix(' photons')} | {cell['pixels']} | " + " | ".join(
                f"{cell[q]['mae']:.3f} / {cell[q]['bias']:+.3f}" for q in ("tau_mean", "tau1", "tau2")) + " |")
    lines += ["", f"Single-exponential pixels (a = 1, >= {BRIGHT} photons): the fraction should come out near 1 "
              "and tau1 near tau2.", "", "| model | pixels | mean a | median abs(tau2 - tau1) (ns) | tau_mean MAE (ns) |",
              "|---|---|---|---|---|"]
    for label, entry in report["models"].items():
        m = entry["mono"]
        if not m["pixels"]:
            lines.append(f"| {label} | 0 (the instrument's photon range stays below {BRIGHT}) | | | |")
            continue
        lines.append(f"| {label} | {m['pixels']} | {m['a_mean']:.3f} | {m['split_median_ns']:.3f} | {m['tau_mean_mae']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from ..arguments import Parser, int_in, positive_float

    parser = Parser(prog="flirtl calibrate", description=__doc__.split("\n\n")[0],
                    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("data", help="a counts file of the instrument (.sdt, .ptu, .tif, .npy): its time axis")
    parser.add_argument("--irf", help="the measured IRF (.npy or .csv, one value per bin of the file)")
    parser.add_argument("--reference", help="instead of --irf: a counts file of a sample of one known lifetime")
    parser.add_argument("--reference-tau", type=positive_float, help="that sample's lifetime in ns")
    parser.add_argument("--dt", type=positive_float, help="bin width in ns, for a file that records none")
    parser.add_argument("--model", default=DEFAULT_BASE, help="the quantized model to fine-tune")
    parser.add_argument("--out", required=True, help="the new model directory (must not exist)")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget")
    parser.add_argument("--n-train", type=int_in(100), default=20_000, help="simulated training pixels")
    parser.add_argument("--threads", type=int_in(1), default=2, help="torch, simulator and golden-model threads")
    parser.add_argument("--seed", type=int_in(0), default=1, help="seed of the training data and the report")
    parser.add_argument("--resolve-sigma", type=float, default=0.0,
                        help="label training pixels whose lifetimes lie fewer than this many Cramer-Rao deviations "
                             "apart as one component: single exponentials come out nearer a = 1, separable "
                             "pixels' tau1 longer (benchmarks/resolve_sigma.py; 0: the drawn labels)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args = parser.parse_args(argv)
    path = calibrate(args.data, out=args.out, irf=args.irf, reference=args.reference,
                     reference_tau=args.reference_tau, dt=args.dt, base=args.model, minutes=args.minutes,
                     n_train=args.n_train, threads=args.threads, seed=args.seed, resolve_sigma=args.resolve_sigma,
                     progress=args.progress)
    print((path / "calibration.md").read_text())
    return 0
