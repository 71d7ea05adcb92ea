"""`flirtl import`: GRU encoder-decoders trained elsewhere (ONNX, Keras 3, Keras 2 / QKeras) into a
model directory that `flirtl rtl`, `flirtl infer` and `flirtl eval` take like one trained here."""

from __future__ import annotations

from pathlib import Path

from .common import ImportedModel, ImportRefused, file_kind, float_forward, write_model_dir

__all__ = ["ImportedModel", "ImportRefused", "float_forward", "import_model", "read_model"]


def read_model(path, *, n_bins: int | None = None) -> ImportedModel:
    """The encoder-decoder of a foreign file, whichever kind it is."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    kind = file_kind(path)
    if kind == "onnx":
        from .onnx import read_onnx
        return read_onnx(path, n_bins=n_bins)
    from .keras import read_keras
    return read_keras(path, kind)


def import_model(path, out, *, bits: int | None = None, n_bins: int | None = None, dt: float = 0.09,
                 input_scale: float = 1.0, calibrate=None, command: str = "flirtl import"):
    """Read `path` and write the model directory `out`; `calibrate` is a data set .npz (as
    `flirtl simulate` writes) whose counts choose the pre-activation and SFD formats."""
    model = read_model(path, n_bins=n_bins)
    counts = None
    if calibrate is not None:
        from ..fli.simulate import load_npz

        data = load_npz(calibrate)
        if "counts" not in data:
            raise ValueError(f"calibration data {str(calibrate)!r} has no 'counts' array")
        counts = data["counts"]
    return write_model_dir(model, out, source_file=path, command=command, bits=bits, n_bins=n_bins,
                           dt=dt, input_scale=input_scale, calibrate=counts)
