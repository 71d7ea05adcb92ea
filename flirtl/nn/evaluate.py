"""`flirtl eval`: every compression step, side by side on one fresh simulated test set.

For each model directory it scores the float model, weight-only post-training quantization (the
reference work's PTQ: weights rounded to `bits`, biases to 2 x `bits` as the IP keeps them,
arithmetic in float), and, for the
one-layer students, the full-integer golden model (activations and state quantized too: what the
FPGA outputs). A directory trained with --qat is scored in the formats it trained in. Conventional
baselines (a constant prior-mean guess; FLIMLib's Levenberg-Marquardt fit and phasor analysis when
their packages are installed) run on the same pixels, and the Cramer-Rao bound of every pixel gives
the physical limit.

Metrics (`flirtl.nn.metrics`), as the reference reports them: per SFD channel RMSE (every pixel and
bin), R2 per pixel averaged over pixels (not the model card's pooled R2), and L2 (per-pixel norm of the error, averaged); lifetimes: MAE and RMSE of
tau1, tau2, a and tau_mean in photon-count bins. Output: results.json, tables.md and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write, check_output_dir
from ..fli import Instrument, crlb, lifetimes_from_sfd, separable, simulate
from ..golden import GoldenModel
from ..modeldir import missing_models
from ..quant import QuantizedModel, dump_json, int_bits_for, quantize, quantize_model
from ..spec import QFormat
from .data import data_source, model_input, trained_source
from .metrics import CHANNELS, lifetime_error, sfd_scores
from .model import Seq2Seq, load_float_model, predict

PHOTON_BINS = ((50, 200), (200, 1000), (1000, 10000))
LIFETIMES = ("tau1", "tau2", "a", "tau_mean")
#: Quantile bins per true tau1, tau2 and a that split an RMSE / sqrt(CRLB) into bias and spread.
SPREAD_QUANTILES = 4
#: A seed no training run draws from (training splits use `split_seed`, 32-bit hashes).
DEFAULT_SEED = 20_241_125


@dataclass
class Row:
    """One estimator's output on the test set."""

    model: str              # model directory name, or the baseline's
    method: str             # float | ptq | golden | qat | baseline
    bits: int | None
    lifetimes: dict[str, np.ndarray]
    sfd: np.ndarray | None = None
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    network: dict = field(default_factory=dict)  # layers, hidden, kd (distilled), init of a model's rows

    @property
    def label(self) -> str:
        bits = f" {self.bits}-bit" if self.bits else ""
        return f"{self.model} {self.method}{bits}"


# -- metrics -------------------------------------------------------------------------------------

def lifetime_scores(estimate: dict[str, np.ndarray], truth: dict[str, np.ndarray],
                    rows: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """`lifetime_error` of each lifetime quantity over `rows` (default: every pixel)."""
    rows = slice(None) if rows is None else rows
    return {name: lifetime_error(np.asarray(estimate[name])[rows], np.asarray(truth[name])[rows])
            for name in LIFETIMES}


def photon_bins(photons: np.ndarray) -> dict[str, np.ndarray]:
    return {f"{lo}-{hi}": (photons >= lo) & (photons < hi) for lo, hi in PHOTON_BINS}


def conditional_spread(z: np.ndarray, labels: dict[str, np.ndarray], quantiles: int = SPREAD_QUANTILES) -> float:
    """RMS of z about its mean within cells of similar truth: the part of RMS(z) that is spread, not
    bias. Cells are the `quantiles`-quantile bins of the true tau1, tau2 and a (quantiles**3 cells);
    the pooled within-cell variance divides by pixels - cells, so small cells do not shrink it.
    RMS(z)**2 is about this squared plus the mean squared cell bias (the estimator's pull towards
    its training prior, for a network). NaN when there are no more pixels than cells."""
    cell = np.zeros(len(z), dtype=np.int64)
    for name in ("tau1", "tau2", "a"):
        truth = np.asarray(labels[name], np.float64)
        edges = np.quantile(truth, np.linspace(0, 1, quantiles + 1)[1:-1]) if len(truth) else []
        cell = cell * quantiles + np.searchsorted(edges, truth, side="right")
    cells, index = np.unique(cell, return_inverse=True)
    if len(z) <= len(cells):
        return float("nan")
    mean = np.bincount(index, weights=z) / np.bincount(index)
    return float(np.sqrt(np.sum((z - mean[index]) ** 2) / (len(z) - len(cells))))


def limit_scores(row: Row, test: dict, bound: dict[str, np.ndarray]) -> dict:
    """RMSE / sqrt(CRLB) per quantity on the separable pixels of each photon bin from 200 up: the
    estimator's distance from the physical limit, taken pixel by pixel as the RMS of
    error / sqrt(CRLB) (1 = an efficient unbiased estimator). Pooling the bounds first (RMSE over
    the RMS bound) would let the few nearly unidentifiable pixels, whose bounds exceed the whole
    lifetime range, set the scale: a constant guess scored 1.0 that way. `spread` is the same
    ratio with each truth cell's mean error removed (`conditional_spread`)."""
    out = {}
    sep = separable(test)
    for name, rows in photon_bins(test["photons"]).items():
        if int(name.split("-")[0]) < 200:
            continue
        out[name] = {}
        for quantity in LIFETIMES:
            keep = rows & sep & np.isfinite(bound[quantity])
            est = np.asarray(row.lifetimes[quantity], np.float64)[keep]
            error = est - np.asarray(test[quantity], np.float64)[keep]
            finite = np.isfinite(error)
            z = error[finite] / bound[quantity][keep][finite]
            truth = {name: np.asarray(test[name], np.float64)[keep][finite] for name in ("tau1", "tau2", "a")}
            nan = float("nan")
            out[name][quantity] = {
                "pixels": int(keep.sum()), "not_estimated": int((~finite).sum()),
                "rmse": float(np.sqrt(np.mean(error[finite] ** 2))) if finite.any() else nan,
                "crlb_median": float(np.median(bound[quantity][keep])) if keep.any() else nan,
                "ratio": float(np.sqrt(np.mean(z ** 2))) if z.size else nan,
                "spread": conditional_spread(z, truth)}
    return out


def score(row: Row, test: dict, bound: dict[str, np.ndarray] | None = None) -> None:
    truth = {name: test[name] for name in LIFETIMES}
    row.metrics = {"lifetimes": {name: lifetime_scores(row.lifetimes, truth, rows)
                                 for name, rows in photon_bins(test["photons"]).items()},
                   "lifetimes_all": lifetime_scores(row.lifetimes, truth),
                   "pixels_per_s": len(test["photons"]) / row.seconds if row.seconds else None}
    if row.sfd is not None:
        row.metrics["sfd"] = sfd_scores(row.sfd, test["sfd"])
    if bound is not None:
        row.metrics["crlb"] = limit_scores(row, test, bound)


# -- estimators ----------------------------------------------------------------------------------

def weight_only_ptq(model: Seq2Seq, bits: int) -> Seq2Seq:
    """A copy of `model` whose every weight (at `bits`) and bias (at 2 * bits, as the IP keeps
    them) is rounded to a per-tensor power-of-two format; arithmetic stays float."""
    copy = Seq2Seq(model.config)
    state = {}
    for name, value in model.state_dict().items():
        width = min(2 * bits, 32) if "bias" in name else bits
        array = value.detach().cpu().double().numpy()
        fmt = QFormat(int_bits_for(array, width), width - int_bits_for(array, width), True)
        state[name] = torch.as_tensor(quantize(array, fmt)[0] * fmt.lsb, dtype=torch.float32)
    copy.load_state_dict(state)
    return copy.eval()


def _float_row(name: str, method: str, bits, model: Seq2Seq, test: dict) -> Row:
    tpsf = torch.from_numpy(model_input(test, None))
    started = time.monotonic()
    sfd = predict(model, tpsf).numpy()
    seconds = time.monotonic() - started
    return Row(name, method, bits, lifetimes_from_sfd(sfd, dt=float(test["dt"])), sfd, seconds)


def _golden_row(name: str, method: str, quantized: QuantizedModel, test: dict, threads) -> Row:
    started = time.monotonic()
    values = GoldenModel(quantized).run(test["counts"], threads=threads).values()
    seconds = time.monotonic() - started
    return Row(name, method, quantized.spec.bits, {k: values[k] for k in LIFETIMES},
               values["sfd"], seconds)


def model_rows(directory: Path, test: dict, bits: list[int], threads=None) -> list[Row]:
    """Float, weight-only PTQ at each width, and (one-layer models) the golden model at each width;
    for a QAT directory, the float network of its weights and its own golden model."""
    name = directory.name
    model = load_float_model(directory)
    rows = [_float_row(name, "float", None, model, test)]
    train = json.loads((directory / "config.json").read_text()).get("train", {})
    if train.get("qat"):
        # its float weights were trained for its own formats: the sweep belongs to the float model
        rows.append(_golden_row(name, "qat", QuantizedModel.load(directory), test, threads))
    elif model.config.layers > 1:
        # the teacher's table in the reference work: PTQ at 16 and 8 bits (narrower is hopeless
        # without quantization-aware training, and each row costs a full teacher pass)
        rows += [_float_row(name, "ptq", b, weight_only_ptq(model, b), test) for b in bits if b >= 8]
    else:
        rows += [_float_row(name, "ptq", b, weight_only_ptq(model, b), test) for b in bits]
        instrument = Instrument.from_json(str(test["instrument"]))
        for b in bits:
            quantized, _ = quantize_model(model.export_weights(), bits=b, n_bins=instrument.n_bins,
                                          dt=instrument.dt, bg_bins=instrument.bg_bins,
                                          background=instrument.background)
            rows.append(_golden_row(name, "golden", quantized, test, threads))
    # `init`: the float student a QAT run started from (a float model is its own), so the tables
    # keep students of one width but different float training apart
    network = {"layers": model.config.layers, "hidden": model.config.hidden,
               "kd": bool(train.get("teacher") and train.get("kd_alpha")),
               "init": Path(train["init"]).name if train.get("init") else name}
    for row in rows:
        row.network = network
    return rows


def prior_row(test: dict, seed: int) -> Row:
    """The constant guess: each quantity's mean over the instrument's prior (a fresh draw)."""
    prior = simulate(Instrument.from_json(str(test["instrument"])), n=20_000, seed=seed + 1, progress=False)
    guess = {name: np.full(len(test["photons"]), float(np.mean(prior[name]))) for name in LIFETIMES}
    return Row("prior mean", "baseline", None, guess)


def baseline_rows(test: dict, *, lma_pixels: int | None, threads=None, progress=True) -> tuple[list[Row], list[str]]:
    """FLIMLib's LMA fit (MLE noise, each pixel's own IRF) and phasor analysis on the same pixels;
    (rows, notes). The fit runs on the first `lma_pixels` pixels when given (its other rows are
    NaN and counted as not fitted); a package that is not installed is a note, not an error."""
    from .. import baselines

    rows, notes = [], []
    n, dt = len(test["photons"]), float(test["dt"])
    try:
        started = time.monotonic()
        phasor = baselines.phasor_lifetimes(test["counts"], dt=dt, irf=test["irf"])
        rows.append(Row("phasor (phasorpy)", "baseline", None, {k: phasor[k] for k in LIFETIMES},
                        seconds=time.monotonic() - started))
    except ImportError as error:
        notes.append(f"phasor baseline skipped: {error}")
    try:
        m = min(lma_pixels or n, n)
        started = time.monotonic()
        fit = baselines.lma_fit(test["counts"][:m], dt=dt, irf=test["irf"][:m], workers=threads,
                                progress=progress)
        seconds = time.monotonic() - started
        lifetimes = {k: np.concatenate([fit[k], np.full(n - m, np.nan)]) for k in LIFETIMES}
        row = Row("LMA fit (FLIMLib)", "baseline", None, lifetimes, seconds=seconds * n / m)
        rows.append(row)
        if m < n:
            notes.append(f"LMA fit on the first {m} of {n} pixels (the rest count as not fitted); "
                         f"its pixels/s is measured on those")
    except ImportError as error:
        notes.append(f"LMA baseline skipped: {error}")
    return rows, notes


# -- report --------------------------------------------------------------------------------------

def _cell(value: float, digits: int = 4) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def tables(rows: list[Row], test: dict, notes: list[str] = ()) -> str:
    """Markdown: SFD table in the reference's layout (channel-0 RMSE per model and width), the
    full per-channel table, and lifetime errors per photon bin."""
    models = list(dict.fromkeys(r.model for r in rows if r.sfd is not None))
    widths = sorted({r.bits for r in rows if r.bits and r.method in ("ptq", "golden")}, reverse=True)
    lookup = {(r.model, r.method, r.bits): r for r in rows}
    out = [f"# flirtl eval: {len(test['photons'])} pixels of preset {test['preset']}, seed {int(test['seed'])}", ""]
    out += [f"- {note}" for note in notes] + ([""] if notes else [])
    columns = (["model", "float"] + [f"PTQ {b} (weights)" for b in widths]
               + [f"golden {b} (integer)" for b in widths] + ["QAT (golden)"])
    out += ["## SFD channel-0 RMSE by compression step", "",
            "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for model in models:
        cells = [lookup.get((model, "float", None))]
        cells += [lookup.get((model, "ptq", b)) for b in widths]
        cells += [lookup.get((model, "golden", b)) for b in widths]
        cells.append(next((r for r in rows if r.model == model and r.method == "qat"), None))
        out.append(f"| {model} | " + " | ".join(
            _cell(c.metrics["sfd"]["total"]["rmse"]) if c else "-" for c in cells) + " |")
    out += reference_tables(rows)
    out += ["", "## SFD per channel: RMSE / mean per-pixel R2 / mean L2", "",
            "| estimator | " + " | ".join(CHANNELS) + " | pixels/s |", "|---|---|---|---|---|"]
    for row in rows:
        if row.sfd is None:
            continue
        cells = [f"{_cell(m['rmse'])} / {_cell(m['r2'], 3)} / {_cell(m['l2'], 3)}"
                 for m in (row.metrics["sfd"][c] for c in CHANNELS)]
        out.append(f"| {row.label} | " + " | ".join(cells) + f" | {_rate(row)} |")
    out += ["", "## Lifetimes: MAE / RMSE per photon-count bin (ns; a unitless)", ""]
    for quantity in LIFETIMES:
        out += [f"### {quantity}", "", "| estimator | " + " | ".join(f"{b} photons" for b in
                photon_bins(test["photons"])) + " | all |", "|---" * (len(PHOTON_BINS) + 2) + "|"]
        for row in rows:
            cells = [row.metrics["lifetimes"][b][quantity] for b in photon_bins(test["photons"])]
            cells.append(row.metrics["lifetimes_all"][quantity])
            out.append(f"| {row.label} | " + " | ".join(
                f"{_cell(c['mae'], 3)} / {_cell(c['rmse'], 3)}" + (f" ({c['nonfinite']} failed)" if c["nonfinite"] else "")
                for c in cells) + " |")
        out.append("")
    limits = [row for row in rows if "crlb" in row.metrics]
    if limits:
        bins = list(limits[0].metrics["crlb"])
        order = ("tau_mean", "tau2", "tau1", "a")
        header = ["| estimator | " + " | ".join(f"{q} {b}" for b in bins for q in order) + " |",
                  "|---" * (1 + 4 * len(bins)) + "|"]
        for key, title, text in (
                ("ratio", "## Against the physical limit: RMSE / sqrt(CRLB)",
                 "Separable pixels only (tau2 / tau1 >= 2, 0.2 <= a <= 0.8): RMS over pixels of "
                 "error / sqrt(CRLB), the Cramer-Rao bound of each pixel under the simulator's forward "
                 "model (1 = an efficient unbiased estimator)."),
                ("spread", "### Spread part: the same with each truth cell's mean error removed",
                 f"Cells: {SPREAD_QUANTILES} quantile bins each of the true tau1, tau2 and a "
                 f"({SPREAD_QUANTILES ** 3} cells). ratio^2 = bias^2 + spread^2 (about): where the ratio above is "
                 "well over this spread, the error is a pull towards the training prior (bias), not noise.")):
            out += ([""] if key == "spread" else []) + [title, "", text, ""] + header
            out += [f"| {row.label} | " + " | ".join(_cell(row.metrics["crlb"][b][q][key], 2) for b in bins for q in order)
                    + " |" for row in limits]
        first = limits[0].metrics["crlb"]
        out += ["", "Median sqrt(CRLB) and pixels: " + "; ".join(
            f"{b}: " + ", ".join(f"{q} {first[b][q]['crlb_median']:.3f}" for q in LIFETIMES)
            + f" ({first[b]['tau_mean']['pixels']} px)" for b in bins), ""]
    return "\n".join(out) + "\n"


def reference_tables(rows: list[Row]) -> list[str]:
    """The reference work's two tables (channel-0 RMSE): the teacher and its weight reductions under
    weight-only PTQ, and the students (with and without distillation) through the IP's integer
    datapath at each width: a QAT model of that width where one was scored, else the golden model
    of the float student's PTQ (marked PTQ)."""
    def rmse(row):
        return _cell(row.metrics["sfd"]["total"]["rmse"])

    teachers = [r for r in rows if r.network.get("layers", 1) > 1 and r.method in ("float", "ptq")]
    students = [r for r in rows if r.network.get("layers") == 1]
    if not teachers and not students:
        return []
    out = ["", "## The reference work's tables: SFD channel-0 RMSE"]
    if teachers:
        widths = sorted({r.bits for r in teachers if r.bits}, reverse=True)
        out += ["", "### Teacher and weight reduction: float and weight-only PTQ", "",
                "| model | network | float | " + " | ".join(f"PTQ {b}" for b in widths) + " |",
                "|---" * (3 + len(widths)) + "|"]
        for model in dict.fromkeys(r.model for r in teachers):
            mine = {r.bits: r for r in teachers if r.model == model}
            net = next(iter(mine.values())).network
            out.append(f"| {model} | {net['layers']} x GRU({net['hidden']}) | " + " | ".join(
                rmse(mine[b]) if b in mine else "-" for b in [None, *widths]) + " |")
    if students:
        family = lambda r: (r.network["hidden"], r.network["kd"], r.network.get("init", r.model))
        families = sorted({family(r) for r in students}, key=lambda f: (-f[0], f[1], f[2]))
        widths = sorted({r.bits for r in students if r.method in ("qat", "golden")}, reverse=True)
        out += ["", "### Students through the IP's integer datapath (golden model), by width", "",
                "| student | from float | float | " + " | ".join(f"{b} bits" for b in widths) + " |",
                "|---" * (3 + len(widths)) + "|"]
        for hidden, kd, init in families:
            mine = [r for r in students if family(r) == (hidden, kd, init)]
            qat_models = {r.model for r in mine if r.method == "qat"}
            floats = [r for r in mine if r.method == "float" and r.model not in qat_models]
            cells = [init, rmse(floats[0]) if floats else "-"]
            for b in widths:
                qat = next((r for r in mine if r.method == "qat" and r.bits == b), None)
                ptq = next((r for r in mine if r.method == "golden" and r.bits == b), None)
                cells.append(f"{rmse(qat)} (QAT)" if qat else f"{rmse(ptq)} (PTQ)" if ptq else "-")
            out.append(f"| {hidden}x{hidden}{' + KD' if kd else ''} | " + " | ".join(cells) + " |")
    return out


def _rate(row: Row) -> str:
    rate = row.metrics.get("pixels_per_s")
    return f"{rate:,.0f}" if rate else "-"


def plots(rows: list[Row], test: dict, out: Path) -> list[Path]:
    """error_vs_bits.png (channel-0 RMSE against width, PTQ and golden per model) and
    error_vs_photons.png (tau_mean RMSE per photon bin per estimator)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    colours = iter(plt.get_cmap("tab20").colors * 3)  # one colour per model or QAT family
    qat_models = {r.model for r in rows if r.method == "qat"}
    for model in dict.fromkeys(r.model for r in rows if r.sfd is not None and r.model not in qat_models):
        colour = next(colours)
        for method, style in (("ptq", "--o"), ("golden", "-s")):
            points = sorted((r.bits, r.metrics["sfd"]["total"]["rmse"]) for r in rows
                            if r.model == model and r.method == method)
            if points:
                ax.plot(*zip(*points), style, color=colour, label=f"{model} {method}")
        base = next((r for r in rows if r.model == model and r.method == "float"), None)
        if base is not None:
            ax.axhline(base.metrics["sfd"]["total"]["rmse"], color="grey", lw=0.6)
    # QAT directories of one float student at several widths form one line (as in the tables)
    families = {}
    for row in rows:
        if row.method == "qat":
            net = row.network
            family = f"{net.get('init', row.model)} QAT" + (" + KD" if net.get("kd") else "")
            families.setdefault(family, []).append((row.bits, row.metrics["sfd"]["total"]["rmse"]))
    for family, points in families.items():
        ax.plot(*zip(*sorted(points)), "-*", color=next(colours), markersize=10, label=family)
    ax.set(xlabel="bits", ylabel="SFD channel-0 RMSE", yscale="log",
           title="compression: error against width (grey: float)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    written.append(_save(fig, out / "error_vs_bits.png"))

    bins = list(photon_bins(test["photons"]))
    qat_models = {r.model for r in rows if r.method == "qat"}
    # what each model puts on the FPGA (QAT or 8-bit golden), the float models, the baselines;
    # not the float network of a QAT model's weights (trained for its formats, never deployed)
    shown = [r for r in rows if r.method in ("qat", "baseline")
             or (r.method == "float" and r.model not in qat_models)
             or (r.method == "golden" and r.bits == 8)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    styles = [(c, m) for m in ("o", "s", "^", "D") for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]]
    for ax, stat in zip(axes, ("mae", "rmse")):
        for row, (colour, marker) in zip(shown, styles):
            ax.plot(bins, [row.metrics["lifetimes"][b]["tau_mean"][stat] for b in bins], "-",
                    marker=marker, color=colour, label=row.label)
        ax.set(xlabel="photons per pixel", ylabel=f"tau_mean {stat.upper()} (ns)", yscale="log",
               title=f"mean-lifetime {stat.upper()} against photon count")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    written.append(_save(fig, out / "error_vs_photons.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return path


# -- the command ---------------------------------------------------------------------------------

def evaluate(model_dirs: list[Path], *, preset: str | None = None, n: int = 100_000, seed: int = DEFAULT_SEED,
             bits: list[int] = (16, 8, 6, 4), out: Path = Path("build/eval"), threads=None,
             baselines: bool = True, lma_pixels: int | None = None, progress: bool = True) -> Path:
    """Score every model directory and the baselines on one test set of the instrument the first
    model was trained on (or of `preset`); write results.json, tables.md and plots into `out`."""
    model_dirs = [Path(d) for d in model_dirs]
    check_output_dir(out, what="--out")  # before minutes of scoring, not after
    missing = [directory for directory in model_dirs if not directory.exists()]
    if missing:
        raise missing_models(missing)
    for directory in model_dirs:
        if not (directory / "float_weights.npz").is_file():
            raise FileNotFoundError(f"{str(directory)!r} is not a model directory (no float_weights.npz)")
    source = data_source(preset) if preset else trained_source(model_dirs[0])
    for directory in model_dirs:
        if trained_source(directory).key != source.key:
            raise ValueError(f"{str(directory)!r} was trained for another instrument "
                             f"({trained_source(directory).key}) than the test set's ({source.key})")
    test = simulate(source.instrument, n=n, seed=seed, irf=source.irf, progress=progress, workers=threads)
    rows = []
    for directory in model_dirs:
        started = time.monotonic()
        rows += model_rows(directory, test, list(bits), threads)
        if progress:
            print(f"{directory.name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    rows.append(prior_row(test, seed))
    notes = []
    if baselines:
        found, notes = baseline_rows(test, lma_pixels=lma_pixels, threads=threads, progress=progress)
        rows += found
    started = time.monotonic()
    bound = crlb(source.instrument, test, workers=threads)
    if progress:
        print(f"Cramer-Rao bounds: {time.monotonic() - started:.0f} s", file=sys.stderr)
    for row in rows:
        score(row, test, bound)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dump_json(out / "results.json", {"instrument": json.loads(source.instrument.to_json()), "n": n, "seed": seed,
                                     "rows": [{"label": r.label, "model": r.model, "method": r.method,
                                               "bits": r.bits, "network": r.network, **r.metrics} for r in rows]})
    atomic_write(out / "tables.md", tables(rows, test, notes).encode())
    plots(rows, test, out)
    return out


def main(argv=None) -> int:
    from ..arguments import BITS, Parser, int_in

    parser = Parser(prog="flirtl eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model directories")
    parser.add_argument("--preset", help="instrument preset of the test set (default: the first model's instrument)")
    parser.add_argument("-n", type=int_in(1), default=100_000, help="test pixels")
    parser.add_argument("--seed", type=int_in(0), default=DEFAULT_SEED, help="test-set simulator seed")
    # one value per option (`--bits 8,4` or `--bits 8 --bits 4`), so that the model paths may follow
    parser.add_argument("--bits", type=lambda text: [BITS(part) for part in text.split(",")], action="extend",
                        help="widths of the PTQ and golden-model rows (default 16,8,6,4)")
    parser.add_argument("--out", default="build/eval", help="directory for results.json, tables.md, PNGs")
    parser.add_argument("--threads", type=int_in(1), help="torch, simulator and golden-model threads")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false",
                        help="skip the LMA fit and the phasor analysis")
    parser.add_argument("--lma-pixels", type=int_in(1), help="fit only the first N pixels (the fit is slow)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--robustness", action="store_true",
                        help="instead: error and bias against pulse position, gate (IRF) width, background "
                             "and photons, on a test set over the instrument's whole timing range "
                             "(flirtl.nn.robustness; the LMA fit on --lma-pixels, default 2000)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.robustness:
        from .robustness import evaluate_robustness

        print(evaluate_robustness(args.models, n=args.n, seed=args.seed, out=Path(args.out),
                                  lma_pixels=2000 if args.lma_pixels is None else args.lma_pixels,
                                  threads=args.threads, progress=not args.quiet))
        return 0
    out = evaluate(args.models, preset=args.preset, n=args.n, seed=args.seed, bits=args.bits or [16, 8, 6, 4],
                   out=Path(args.out), threads=args.threads, baselines=args.baselines,
                   lma_pixels=args.lma_pixels, progress=not args.quiet)
    print(out / "tables.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
