"""What every importer hands over, and how it becomes a model directory.

An importer reads a foreign file into an `ImportedModel`: float weights in the names and PyTorch
layout of `spec.weight_shapes` (gate order r, z, n), the GRU cell, the gate and candidate functions,
what the decoder reads (zeros, or the encoder's state repeated),
and, for weights quantized in the file (QKeras), their exact codes and formats. `write_model_dir`
turns it into the directory `flirtl rtl`, `flirtl infer` and `flirtl eval` read, through the
project's own quantizer (`quant.quantize_model` for float weights) and `QuantizedModel.save`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..quant import (ACTIVATION_FUNCTIONS, QuantizedModel, dump_json, int_bits_for,
                     quantize_model)
from ..spec import ActivationSpec, ModelSpec, QFormat, weight_shapes


class ImportRefused(ValueError):
    """The file holds something the IP cannot compute; the message names the layer and why."""


@dataclass
class ImportedModel:
    """A GRU encoder-decoder read from a foreign file, in flirtl's terms."""

    source: str                              # "ONNX", "Keras 3", "Keras 2", "QKeras"
    weights: dict[str, np.ndarray]           # float, spec.weight_shapes names, PyTorch layout [r; z; n]
    gru: str = "pytorch"                     # spec.GRU_VARIANTS
    decoder_input: str = "zeros"             # spec.DECODER_INPUTS
    gate: str = "sigmoid"                    # spec.GATE_FUNCTIONS
    candidate: str = "tanh"                  # spec.CANDIDATE_FUNCTIONS
    n_bins: int | None = None                # time steps, when the file fixes them
    layers: list[str] = field(default_factory=list)  # what was read, for the model card
    #: Weights quantized in the file: the exact codes and their formats (every weight), the
    #: nominal width, and other tensors' formats the file fixes (e.g. the candidate's).
    codes: dict[str, np.ndarray] | None = None
    formats: dict[str, QFormat] = field(default_factory=dict)
    bits: int | None = None

    @property
    def hidden(self) -> int:
        return int(np.shape(self.weights["enc.w_hh"])[1])

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        return weight_shapes(self.hidden, self.decoder_input)

    def check_shapes(self) -> None:
        for name, shape in self.weight_shapes().items():
            if name not in self.weights:
                raise ImportRefused(f"{self.source} file lacks the weight {name!r}")
            if np.shape(self.weights[name]) != shape:
                raise ImportRefused(f"{self.source} weight {name!r} has shape "
                                    f"{np.shape(self.weights[name])}, expected {shape}")
            if not np.all(np.isfinite(self.weights[name])):
                raise ImportRefused(f"{self.source} weight {name!r} holds NaN or inf")


# -- the float model, as the source framework computes it ------------------------------------------

def float_forward(model: ImportedModel, tpsf: np.ndarray, *, ranges: dict | None = None) -> np.ndarray:
    """(N, T) normalised TPSF -> (N, T, 3) SFD of the imported float model (float64): the reference
    that tests hold the source framework to, and what calibration measures. `ranges`, when given,
    collects the largest |pre-activation| and |SFD|."""
    w, H = model.weights, model.hidden
    sig, tanh = ACTIVATION_FUNCTIONS[model.gate], ACTIVATION_FUNCTIONS[model.candidate]
    peak = {"preact": 0.0, "sfd": 0.0}

    def step(h, gx, w_hh, b_hh):
        if model.gru == "pytorch":
            gh = h @ w_hh.T + b_hh
            rz = gx[:, :2 * H] + gh[:, :2 * H]
            r, z = sig(rz[:, :H]), sig(rz[:, H:])
            pre_n = gx[:, 2 * H:] + r * gh[:, 2 * H:]
        else:  # reset-before: r scales h before W_hn
            rz = gx[:, :2 * H] + h @ w_hh[:2 * H].T + b_hh[:2 * H]
            r, z = sig(rz[:, :H]), sig(rz[:, H:])
            pre_n = gx[:, 2 * H:] + (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:]
        peak["preact"] = max(peak["preact"], float(np.abs(rz).max()), float(np.abs(pre_n).max()))
        n = tanh(pre_n)
        return n + z * (h - n)

    tpsf = np.asarray(tpsf, dtype=np.float64)
    h = np.zeros((tpsf.shape[0], H))
    for t in range(tpsf.shape[1]):
        gx = tpsf[:, t, None] @ w["enc.w_ih"].T + w["enc.b_ih"]
        h = step(h, gx, w["enc.w_hh"], w["enc.b_hh"])
    sfd = np.empty((tpsf.shape[0], tpsf.shape[1], 3))
    gx = np.broadcast_to(w["dec.b_ih"], (tpsf.shape[0], 3 * H))
    if model.decoder_input == "encoder_state":  # RepeatVector: the encoder's state, from zero
        gx, h = h @ w["dec.w_ih"].T + gx, np.zeros_like(h)
    for t in range(tpsf.shape[1]):
        h = step(h, gx, w["dec.w_hh"], w["dec.b_hh"])
        sfd[:, t] = h @ w["head.w"].T + w["head.b"]
    peak["sfd"] = float(np.abs(sfd).max()) if sfd.size else 0.0
    if ranges is not None:
        ranges.update(peak)
    return sfd


# -- model directory ----------------------------------------------------------------------------

def _calibrated_overrides(model: ImportedModel, spec: ModelSpec, counts: np.ndarray) -> tuple[dict, dict]:
    """Pre-activation and SFD formats from the ranges the float model reaches on `counts`, fed
    through the IP's own normalisation: the fewest integer bits that hold them."""
    from ..golden import normalize_counts

    x = normalize_counts(spec, counts) * spec.fmt("input").lsb
    ranges: dict = {}
    float_forward(model, x, ranges=ranges)
    overrides = {}
    for name in ("preact", "sfd"):
        fmt = spec.fmt(name)
        int_bits = min(max(int_bits_for([ranges[name]], fmt.width), 2), fmt.width - 1)
        overrides[name] = QFormat(int_bits, fmt.width - int_bits, True)
    return overrides, ranges


def _quantized(model: ImportedModel, *, bits: int | None, n_bins: int, dt: float,
               calibrate: np.ndarray | None) -> tuple[QuantizedModel, dict]:
    """The integer model: the file's own codes, or post-training quantization of float weights."""
    activation = ActivationSpec(gate=model.gate, candidate=model.candidate)
    notes: dict = {}
    if model.codes is not None:
        if bits is not None and bits != model.bits:
            raise ImportRefused(f"the file's weights are quantized to {model.bits} bits; "
                                f"--bits {bits} would change them (leave --bits out)")
        if calibrate is not None:
            raise ImportRefused("the file's weights are already quantized: --calibrate has nothing to choose")
        spec = ModelSpec.build(model.bits, hidden=model.hidden, n_bins=n_bins, dt=dt, gru=model.gru,
                               activation=activation, overrides=model.formats,
                               decoder_input=model.decoder_input)
        notes["quantization"] = "codes as quantized in the file"
        return QuantizedModel(spec, {name: model.codes[name] for name in spec.weight_names}), notes
    build = dict(n_bins=n_bins, dt=dt, gru=model.gru, activation=activation, decoder_input=model.decoder_input)
    bits = bits or 8
    if calibrate is not None:
        spec = ModelSpec.build(bits, hidden=model.hidden, **build)
        build["overrides"], ranges = _calibrated_overrides(model, spec, calibrate)
        notes["calibration"] = {"pixels": int(len(calibrate)), **{f"max_abs_{k}": v for k, v in ranges.items()},
                                **{k: str(v) for k, v in build["overrides"].items()}}
    quantized, report = quantize_model(model.weights, bits, **build)
    notes["quantization"] = f"post-training quantization to {bits} bits ({report.total_saturated} values saturated)"
    notes["saturated"] = report.total_saturated
    return quantized, notes


def _card(model: ImportedModel, quantized: QuantizedModel, meta: dict) -> str:
    spec = quantized.spec
    lines = [f"# Imported model: {Path(meta['file']).name}", "",
             f"Imported by `{meta['command']}` from the {model.source} file "
             f"(sha256 {meta['sha256'][:16]}...).", "",
             "## Layers read", "", *(f"- {line}" for line in model.layers), "",
             "## Quantization", "", meta["quantization"] + ".", ""]
    if "calibration" in meta:
        cal = meta["calibration"]
        lines += [f"Calibrated on {cal['pixels']} pixels: largest |pre-activation| {cal['max_abs_preact']:.3g} "
                  f"-> preact {cal['preact']}, largest |SFD| {cal['max_abs_sfd']:.3g} -> sfd {cal['sfd']}.", ""]
    lines += ["The IP feeds the encoder the background-subtracted TPSF divided by its peak"
              + (f", times {meta['input_scale']} (folded into the encoder's input weights)"
                 if meta["input_scale"] != 1 else "") + ".", "",
              "## Fixed-point spec", "", "```", spec.describe(), "```", ""]
    if not meta["float_model"]:
        lines += ["No float_weights.npz: the project's torch model computes the PyTorch GRU cell with "
                  "sigmoid and tanh, not this model's; the source file is its float reference, and "
                  "source_float_weights.npz holds its weights in flirtl's layout.", ""]
    return "\n".join(lines)


def write_model_dir(model: ImportedModel, out, *, source_file, command: str, bits: int | None = None,
                    n_bins: int | None = None, dt: float = 0.09, input_scale: float = 1.0,
                    calibrate: np.ndarray | None = None) -> tuple[Path, dict]:
    """Write the model directory `out` (which must not exist) in one step: everything goes into a
    temporary sibling first, renamed into place only when complete; a failure leaves nothing."""
    out = Path(out)
    if out.exists():
        raise ImportRefused(f"{str(out)!r} already exists; choose another --out or remove it first")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"the directory {str(out.parent)!r} for --out does not exist")
    model.check_shapes()
    if model.n_bins is not None and n_bins is not None and n_bins != model.n_bins:
        raise ImportRefused(f"the file fixes {model.n_bins} time steps; --bins {n_bins} disagrees")
    n_bins = n_bins or model.n_bins
    if n_bins is None:
        raise ImportRefused("the file leaves the number of time bins open: give it with --bins")
    if input_scale != 1:
        if not (np.isfinite(input_scale) and input_scale > 0):
            raise ImportRefused(f"--input-scale must be a positive number, not {input_scale!r}")
        if model.codes is not None:
            raise ImportRefused("the file's weights are already quantized: --input-scale would change their codes")
        model = dataclasses.replace(model, weights={**model.weights,
                                                    "enc.w_ih": model.weights["enc.w_ih"] * input_scale})
    quantized, meta = _quantized(model, bits=bits, n_bins=n_bins, dt=dt, calibrate=calibrate)
    float_model = model.gru == "pytorch" and (model.gate, model.candidate) == ("sigmoid", "tanh")
    meta.update(file=str(source_file), sha256=hashlib.sha256(Path(source_file).read_bytes()).hexdigest(),
                source=model.source, command=command, gru=model.gru, gate=model.gate,
                candidate=model.candidate, input_scale=input_scale, float_model=float_model,
                layers=model.layers)
    staging = out.parent / f".{out.name}.importing-{os.getpid()}"
    try:
        staging.mkdir()
        quantized.save(staging)
        floats = {name: np.asarray(model.weights[name], np.float64) for name in model.weight_shapes()}
        # float_weights.npz is what the torch Seq2Seq loads: only when it computes this model
        np.savez(staging / ("float_weights.npz" if float_model else "source_float_weights.npz"), **floats)
        dump_json(staging / "config.json", {
            "command": command,
            "model": {"hidden": model.hidden, "layers": 1, "n_bins": n_bins,
                      "decoder_input": model.decoder_input},
            "imported": {k: v for k, v in meta.items() if k != "layers"}})
        (staging / "model_card.md").write_text(_card(model, quantized, meta))
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out, meta


def reorder_zrh(matrix: np.ndarray, hidden: int) -> np.ndarray:
    """Rows [z; r; h] (ONNX, and Keras's kernel columns once transposed) -> flirtl's [r; z; n]."""
    z, r, h = (matrix[i * hidden:(i + 1) * hidden] for i in range(3))
    return np.concatenate([r, z, h])


def file_kind(path: Path) -> str:
    """"onnx", "keras3" or "keras2" from the file's contents (not only its name)."""
    head = path.read_bytes()[:8]
    if head.startswith(b"PK"):
        return "keras3"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras2"
    if path.suffix == ".onnx":
        return "onnx"
    raise ImportRefused(f"{str(path)!r} is not an ONNX (.onnx), Keras 3 (.keras) or Keras 2 / QKeras "
                        f"(.h5) model file")
