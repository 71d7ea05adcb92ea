"""Model directories: what `flirtl rtl` and `flirtl infer` read.

A directory holds `spec.json` + `weights.npz` (the integer codes the hardware uses, e.g. after QAT)
and usually `float_weights.npz` (the float model, PyTorch layout) and `model_card.md`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .quant import QuantizedModel, quantize_model
from .spec import ModelSpec


def load_for_rtl(directory, *, bits: int) -> tuple[QuantizedModel, str]:
    """The model's integer codes at `bits`: the trained codes when the directory was quantized at
    that width, otherwise post-training quantization of its float weights (with a note saying so)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory {str(directory)!r} does not exist")
    spec_path, float_path = directory / "spec.json", directory / "float_weights.npz"
    config_path = directory / "config.json"
    if config_path.is_file() and json.loads(config_path.read_text()).get("model", {}).get("layers", 1) > 1:
        raise ValueError(f"{str(directory)!r} holds a multi-layer model (a teacher); the IP runs "
                         f"one-layer Seq2SeqLite students: distil one with `flirtl train student --teacher`")
    if spec_path.is_file():
        spec = ModelSpec.loads(spec_path.read_text())
        if spec.bits == bits:
            return QuantizedModel.load(directory), ""
    if not float_path.is_file():
        raise FileNotFoundError(
            f"model directory {str(directory)!r} has no {bits}-bit codes (spec.json + weights.npz) "
            f"and no float_weights.npz to quantize")
    with np.load(float_path) as archive:
        weights = {name: archive[name] for name in archive.files}
    n_bins, dt = (spec.n_bins, spec.dt) if spec_path.is_file() else (135, 0.09)
    model, report = quantize_model(weights, bits, n_bins=n_bins, dt=dt)
    note = (f"{directory} has no {bits}-bit trained codes: post-training quantization of its float "
            f"weights ({report.total_saturated} values saturated)")
    return model, note
