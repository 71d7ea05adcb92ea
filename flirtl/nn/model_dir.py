"""The model directory a training run writes (`write_model_dir`): float weights, configuration,
the quantized model, the history, metrics.json (`held_out_metrics`) and the model card."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..files import atomic_write
from ..fli import lifetimes_from_sfd
from ..golden import GoldenModel
from ..quant import QuantizedModel, dump_json, quantize_model
from .card import model_card
from .config import TrainConfig, command_line
from .data import model_input, simulated, split_seed
from .metrics import card_sfd_scores, lifetime_error, rmse
from .model import Seq2Seq, Seq2SeqConfig, float_state, predict
from .qat import QuantSeq2Seq


def write_model_dir(config: TrainConfig, model: nn.Module, state: dict, *, wall_s: Callable[[], float], progress: bool = True) -> Path:
    """Write float weights, config, quantized model, history and model card to `config.out`.

    wall_s() is the wall time of every run of the command so far, this one included."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    qat = model if isinstance(model, QuantSeq2Seq) else None
    float_model = _float_twin(model) if qat else model
    # QAT: the float64 masters, which quantize to exactly the shipped codes
    weights = qat.export_weights() if qat else float_state(float_model)
    atomic_write(out / "float_weights.npz", lambda file: np.savez(file, **weights))
    command = command_line(config)
    data = {split: {"preset": config.preset, "n": n, "seed": split_seed(config.seed, split)}
            for split, n in (("train", config.n_train), ("val", config.n_val), ("test", config.n_test))}
    dump_json(out / "config.json", {"train": asdict(config), "model": float_model.config.to_json(),
                                    "data": data, "command": command})
    dump_json(out / "history.json", state["history"])
    if config.irf is not None:  # the directory carries its IRF, wherever the model is used later
        atomic_write(out / "irf.npy", lambda file: np.save(file, config.source().irf))

    quantized = report = None
    if qat is not None:
        quantized, report = qat.quantized()  # the formats it trained in
    elif config.layers == 1:
        quantized, report = quantize_model(weights, **config.quant_args())
    if quantized is not None:
        quantized.save(out)

    metrics = held_out_metrics(config, float_model, quantized, qat=qat, progress=progress)
    card = model_card(config, float_model, state, data=data, metrics=metrics, quantized=quantized,
                      report=report, command=command, wall_s=wall_s())
    atomic_write(out / "model_card.md", card.encode())
    dump_json(out / "metrics.json", metrics)
    summary = f"float test RMSE ch0 {metrics['float_test']['rmse_ch0']:.4f}"
    if quantized is not None:
        summary += f", {config.bits}-bit golden {metrics['golden_test']['rmse_ch0']:.4f}"
    print(f"wrote {out}: {summary}", file=sys.stderr)
    return out


def _float_twin(model: QuantSeq2Seq) -> Seq2Seq:
    """The float Seq2SeqLite with a quantization-aware model's master weights."""
    spec = model.spec
    twin = Seq2Seq(Seq2SeqConfig(hidden=spec.hidden, layers=1, n_bins=spec.n_bins))
    twin.load_weights(model.export_weights())
    return twin.to(next(model.parameters()).device)


def _tau_mean_error(tau_mean: np.ndarray, test: dict) -> dict[str, float]:
    """metrics.json's tau_mean fields: `lifetime_error`'s MAE (ns) and non-finite count."""
    error = lifetime_error(tau_mean, test["tau_mean"])
    return {"tau_mean_mae_ns": error["mae"], "tau_mean_nonfinite": error["nonfinite"]}


def held_out_metrics(config: TrainConfig, model: Seq2Seq, quantized: QuantizedModel | None, *,
             qat: QuantSeq2Seq | None = None, progress: bool = True) -> dict[str, dict]:
    """Float model on the validation and test splits; the integer golden model on the test split's
    raw counts (its own normalisation, as the IP does it); and for a quantization-aware model, how
    many of its output beats equal the golden model's (all of them, by construction)."""
    data_args = dict(cache_dir=config.data_dir, workers=config.threads, progress=progress)
    source = config.source()
    val = simulated(source, n=config.n_val, seed=split_seed(config.seed, "val"), **data_args)
    test = simulated(source, n=config.n_test, seed=split_seed(config.seed, "test"), **data_args)
    device = next(model.parameters()).device
    as_input = lambda data, spec=None: torch.from_numpy(model_input(data, spec)).to(device)
    val_pred = predict(model, as_input(val)).cpu().numpy()
    float_pred = predict(model, as_input(test)).cpu().numpy()
    metrics = {
        "float_val": card_sfd_scores(val_pred, val["sfd"]),
        "float_test": {**card_sfd_scores(float_pred, test["sfd"]),
                       **_tau_mean_error(lifetimes_from_sfd(float_pred, dt=test["dt"])["tau_mean"], test)},
    }
    golden = None
    if quantized is not None:
        started = time.monotonic()
        result = GoldenModel(quantized).run(test["counts"], threads=config.threads, progress=progress)
        golden_s = time.monotonic() - started
        golden = result.values()
        metrics["golden_test"] = {**card_sfd_scores(golden["sfd"], test["sfd"]),
                                  **_tau_mean_error(golden["tau_mean"], test),
                                  "pixels_per_s": config.n_test / golden_s}
    if qat is not None:
        lsb = quantized.spec.fmt("sfd").lsb
        codes = predict(qat, as_input(test, quantized.spec)).double().cpu().numpy() / lsb
        metrics["qat_vs_golden"] = {"beats": int(codes.shape[0] * codes.shape[1]),
                                    "identical_beats": int((codes == result.sfd).all(axis=-1).sum())}
    # channel-0 RMSE in four log-spaced photon bins spanning the preset's range
    lo, hi = config.instrument().photons_range
    edges = np.geomspace(lo, hi, 5)
    by_photons = []
    for low, high in zip(edges[:-1], edges[1:]):
        rows = (test["photons"] >= low) & (test["photons"] <= high)
        if rows.any():
            row = {"photons": [float(low), float(high)], "pixels": int(rows.sum()),
                   "float_rmse_ch0": rmse(float_pred[rows, :, 0], test["sfd"][rows, :, 0])}
            if golden is not None:
                row["golden_rmse_ch0"] = rmse(golden["sfd"][rows, :, 0], test["sfd"][rows, :, 0])
            by_photons.append(row)
    metrics["test_by_photons"] = by_photons
    return metrics
