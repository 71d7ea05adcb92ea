"""Model directories: what `flirtl rtl` and `flirtl infer` read.

A directory holds `spec.json` + `weights.npz` (the integer codes the hardware uses, e.g. after QAT)
and usually `float_weights.npz` (the float model, PyTorch layout) and `model_card.md`.
"""

from __future__ import annotations

from pathlib import Path

from .files import read_json_object, read_npz
from .quant import QuantizedModel, quantize_model, read_spec

#: The model cards and metrics of the ablations, which models/ does not ship (`make models` trains them).
ABLATIONS = Path(__file__).resolve().parents[1] / "docs" / "eval" / "ablations"


def missing_models(directories) -> FileNotFoundError:
    """The error for model directories that do not exist, saying how to make the ablations among them."""
    names = ", ".join(repr(str(d)) for d in directories)
    text = (f"model directory {names} does not exist" if len(directories) == 1
            else f"model directories {names} do not exist")
    ablations = [Path(d).name for d in directories if (ABLATIONS / Path(d).name).is_dir()]
    if ablations:
        named = ("it" if len(directories) == 1 else "they") if len(ablations) == len(directories) else ", ".join(ablations)
        which = f"{named} {'is an ablation' if len(ablations) == 1 else 'are ablations'}"
        text += (f"; {which} that models/ does not ship: `make models` trains every model, these included "
                 f"(cards and figures in docs/eval/ablations/)")
    return FileNotFoundError(text)


def load_for_rtl(directory, *, bits: int) -> tuple[QuantizedModel, str]:
    """The model's integer codes at `bits`: the trained codes when the directory was quantized at
    that width, otherwise post-training quantization of its float weights (with a note saying so)."""
    directory = check_model_dir(directory)
    spec_path, float_path = directory / "spec.json", directory / "float_weights.npz"
    if spec_path.is_file():
        spec = read_spec(spec_path)
        if spec.bits == bits:
            return QuantizedModel.load(directory), ""
    if not float_path.is_file():
        raise FileNotFoundError(
            f"model directory {str(directory)!r} has no {bits}-bit codes (spec.json + weights.npz) "
            f"and no float_weights.npz to quantize")
    weights = read_npz(float_path, what="model file")
    n_bins, dt = (spec.n_bins, spec.dt) if spec_path.is_file() else (135, 0.09)
    try:
        model, report = quantize_model(weights, bits, n_bins=n_bins, dt=dt)
    except ValueError as error:
        raise ValueError(f"model file {str(float_path)!r}: {error}") from None
    note = (f"{directory} has no {bits}-bit trained codes: post-training quantization of its float "
            f"weights ({report.total_saturated} values saturated)")
    return model, note


def check_model_dir(directory) -> Path:
    """`directory` as a one-layer model directory, its config.json (when it has one) readable:
    FileNotFoundError / ValueError naming the problem otherwise."""
    directory = Path(directory)
    if not directory.exists():
        raise missing_models([directory])
    if not directory.is_dir():
        raise ValueError(f"--model {str(directory)!r} is a file; name the model's directory")
    config_path = directory / "config.json"
    if config_path.is_file():
        model = read_json_object(config_path, what="model file").get("model", {})
        layers = model.get("layers", 1) if isinstance(model, dict) else None
        if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
            raise ValueError(f"model file {str(config_path)!r} has no valid 'model.layers' (found {layers!r})")
        if layers > 1:
            raise ValueError(f"{str(directory)!r} holds a multi-layer model (a teacher); the IP runs "
                             f"one-layer Seq2SeqLite students: distil one with `flirtl train student --teacher`")
    return directory
