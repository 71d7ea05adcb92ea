"""Float -> integer codes, and the ROM contents the datapath reads.

Everything that turns a real number into a code lives here: weights (with fxpmath, rounding
half-up by adding half an LSB then flooring, because fxpmath's default rounds toward zero, which is
not what a shifter does), the sigmoid/tanh tables (or piecewise-linear segments) and the lifetime
table. The golden model and the gateware both take these arrays as they are, so a table is computed
once, from the spec, and never restated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fxpmath import Fxp

from .files import atomic_write, read_json_object, read_npz
from .spec import BIAS_NAMES, ModelSpec, QFormat, SpecError, weight_shapes


def quantize(values, fmt: QFormat, rounding: str = "half_up") -> tuple[np.ndarray, int]:
    """Codes of `values` in `fmt`, saturating; returns (int64 codes, how many values saturated)."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"cannot quantize non-finite values (NaN or inf) to {fmt}")
    if rounding == "half_up":
        values = values + fmt.lsb / 2
    elif rounding != "floor":
        raise SpecError(f"rounding mode {rounding!r} is not one of ('floor', 'half_up')")
    if values.size == 0:
        return np.zeros(values.shape, np.int64), 0
    scaled = np.floor(values * 2.0 ** fmt.frac_bits)
    saturated = int(np.count_nonzero((scaled < fmt.min_code) | (scaled > fmt.max_code)))
    fxp = Fxp(values, signed=fmt.signed, n_word=fmt.width, n_frac=fmt.frac_bits,
              rounding="floor", overflow="saturate")
    codes = np.asarray(fxp.val, dtype=np.int64).reshape(values.shape)
    return codes, saturated


def int_bits_for(values, width: int, signed: bool = True) -> int:
    """Power-of-two scale per tensor: the fewest integer bits whose range holds every value."""
    peak = float(np.max(np.abs(values))) if np.size(values) else 0.0
    for int_bits in range(1, width + 1):
        fmt = QFormat(int_bits, width - int_bits, signed)
        if -fmt.min_value >= peak and fmt.max_value >= peak - fmt.lsb / 2:
            return int_bits
    return width


@dataclass
class QuantReport:
    """Per-tensor outcome of quantization."""

    formats: dict[str, str] = field(default_factory=dict)
    saturated: dict[str, int] = field(default_factory=dict)
    max_error: dict[str, float] = field(default_factory=dict)

    @property
    def total_saturated(self) -> int:
        return sum(self.saturated.values())

    def __str__(self):
        rows = [f"{'tensor':<10} {'format':>8} {'saturated':>9} {'max |err|':>10}"]
        for name in self.formats:
            rows.append(f"{name:<10} {self.formats[name]:>8} {self.saturated[name]:>9} "
                        f"{self.max_error[name]:>10.3g}")
        return "\n".join(rows)


@dataclass
class QuantizedModel:
    """A spec plus the integer code of every weight and bias: all the RTL generator needs."""

    spec: ModelSpec
    codes: dict[str, np.ndarray]

    def __post_init__(self):
        for name, shape in self.spec.weight_shapes().items():
            if name not in self.codes:
                raise SpecError(f"quantized model lacks tensor {name!r}")
            code = np.asarray(self.codes[name])
            if code.shape != shape:
                raise SpecError(f"tensor {name!r} has shape {code.shape}, the spec needs {shape}")
            if code.dtype.kind not in "iuf" or code.dtype.kind == "f" and not np.isfinite(code).all():
                raise SpecError(f"tensor {name!r} must hold integer codes, not "
                                f"{'NaN or inf' if code.dtype.kind == 'f' else f'dtype {code.dtype}'}")
            if code.dtype.kind == "f" and not np.array_equal(code, np.floor(code)):
                bad = code.flat[np.flatnonzero(code != np.floor(code))[0]].item()
                raise SpecError(f"tensor {name!r} must hold whole-number codes, found {bad!r}")
            fmt = self.spec.fmt(name)
            if code.size and (code.min() < fmt.min_code or code.max() > fmt.max_code):
                raise SpecError(f"tensor {name!r} holds codes outside its format {fmt}")
            self.codes[name] = code.astype(np.int64)

    def floats(self) -> dict[str, np.ndarray]:
        """The values the codes stand for (what the quantized model computes with)."""
        return {name: code * self.spec.fmt(name).lsb for name, code in self.codes.items()}

    def save(self, directory) -> None:
        """Write `spec.json` and `weights.npz` atomically into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / "spec.json", self.spec.dumps().encode())
        atomic_write(directory / "weights.npz", lambda file: np.savez(file, **self.codes))

    @classmethod
    def load(cls, directory) -> "QuantizedModel":
        directory = Path(directory)
        for name in ("spec.json", "weights.npz"):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"model directory {str(directory)!r} has no {name}")
        spec = read_spec(directory / "spec.json")
        path = directory / "weights.npz"
        try:
            return cls(spec, read_npz(path, what="model file"))
        except SpecError as error:
            raise SpecError(f"model file {str(path)!r}: {error}") from None


def read_spec(path) -> ModelSpec:
    """The spec of a spec.json file; SpecError naming the file when it is not one."""
    document = read_json_object(path, what="model file")
    try:
        return ModelSpec.from_json(document)
    except (SpecError, TypeError, ValueError, KeyError, AttributeError) as error:
        raise SpecError(f"model file {str(path)!r} is not a valid flirtl spec: {error}") from None


def quantize_model(weights: dict[str, np.ndarray], bits: int = 8, **build) -> tuple[QuantizedModel, QuantReport]:
    """Quantize float Seq2SeqLite weights (PyTorch layout, names as `spec.weight_shapes`).

    Each tensor gets its own power-of-two scale from its largest magnitude; `build` goes to
    `ModelSpec.build` (hidden_bits, bias_bits, overrides, gru, activation, decoder_input, ...).
    """
    if "enc.w_hh" not in weights:
        raise SpecError("float weights lack tensor(s) ['enc.w_hh']")
    hidden = int(np.shape(weights["enc.w_hh"])[1])
    names = weight_shapes(hidden, build.get("decoder_input", "zeros"))
    missing = [name for name in names if name not in weights]
    if missing:
        raise SpecError(f"float weights lack tensor(s) {missing}")
    bias_bits = build.get("bias_bits") or min(2 * bits, 32)
    int_bits = {name: int_bits_for(weights[name], bias_bits if name in BIAS_NAMES else bits)
                for name in names}
    int_bits.update(build.pop("weight_int_bits", None) or {})
    spec = ModelSpec.build(bits, hidden=hidden, weight_int_bits=int_bits, **build)
    return quantize_weights(spec, weights)


def quantize_weights(spec: ModelSpec, weights: dict[str, np.ndarray]) -> tuple[QuantizedModel, QuantReport]:
    """Codes of float weights in the formats `spec` already fixes (after quantization-aware
    training, whose formats were chosen before the weights moved)."""
    missing = [name for name in spec.weight_names if name not in weights]
    if missing:
        raise SpecError(f"float weights lack tensor(s) {missing}")
    report, codes = QuantReport(), {}
    for name in spec.weight_names:
        fmt = spec.fmt(name)
        value = np.asarray(weights[name], dtype=np.float64)
        codes[name], report.saturated[name] = quantize(value, fmt, spec.rounding)
        report.formats[name] = str(fmt)
        report.max_error[name] = float(np.max(np.abs(codes[name] * fmt.lsb - value))) if value.size else 0.0
    return QuantizedModel(spec, codes), report


# -- ROM contents -------------------------------------------------------------------------------

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


#: Every function a spec can name for the gates ("sigmoid") or the candidate ("tanh").
ACTIVATION_FUNCTIONS = {
    "sigmoid": _sigmoid,
    "hard_sigmoid_keras2": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "hard_sigmoid_keras3": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "hard_sigmoid_qkeras": lambda x: np.clip(0.5 * x + 0.5, 0.0, 1.0),
    "tanh": np.tanh,
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
}


def activation_function(kind: str, spec: ModelSpec | None = None):
    """The gate ("sigmoid") or candidate ("tanh") function, as `spec.activation` names it."""
    if kind not in ("sigmoid", "tanh"):
        raise ValueError(f"unknown activation {kind!r}; use 'sigmoid' or 'tanh'")
    if spec is None:
        return ACTIVATION_FUNCTIONS[kind]
    return ACTIVATION_FUNCTIONS[spec.activation.gate if kind == "sigmoid" else spec.activation.candidate]


def activation_io(spec: ModelSpec, kind: str) -> tuple[QFormat, QFormat]:
    """(address format, output format) of the sigmoid (gates r, z) or tanh (candidate n)."""
    act = spec.activation
    if kind == "sigmoid":
        return act.sigmoid_addr, spec.fmt("gate")
    if kind == "tanh":
        return act.tanh_addr, spec.fmt("candidate")
    raise ValueError(f"unknown activation {kind!r}; use 'sigmoid' or 'tanh'")


def activation_table(spec: ModelSpec, kind: str) -> np.ndarray:
    """ROM of f(address) in the output format, one entry per address, most negative first."""
    addr, out = activation_io(spec, kind)
    x = np.arange(addr.min_code, addr.max_code + 1) * addr.lsb
    return quantize(activation_function(kind, spec)(x), out, spec.rounding)[0]


def pwl_slope_frac(spec: ModelSpec, kind: str) -> int:
    """Fractional bits of a segment's slope (output units per address step), kept a few bits finer
    than the output so the interpolation error stays below an output LSB."""
    _addr, out = activation_io(spec, kind)
    return out.frac_bits + 4


def pwl_segments(spec: ModelSpec, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(base, slope) ROMs of the piecewise-linear activation: segment s covers addresses
    [s * L, (s+1) * L) counted from the most negative; base is f at its start (output format),
    slope the chord to the next segment's start per address step (slope_frac fractional bits)."""
    addr, out = activation_io(spec, kind)
    f = activation_function(kind, spec)
    seg_bits = spec.activation.segment_bits
    length = 1 << (addr.width - seg_bits)
    starts = addr.min_code + np.arange(1 << seg_bits) * length
    y0, y1 = f(starts * addr.lsb), f((starts + length) * addr.lsb)
    base = quantize(y0, out, spec.rounding)[0]
    slope_frac = pwl_slope_frac(spec, kind)
    slope_fmt = QFormat(2, slope_frac, True)
    slope = quantize((y1 - y0) / length, slope_fmt, spec.rounding)[0]
    return base, slope


def lifetime_table(spec: ModelSpec) -> np.ndarray:
    """ROM mapping a channel's ratio R = sum(ch) / ch[0] (ratio format) to its lifetime (lifetime
    format, ns), with the correction for the truncated time window."""
    from .fli.lifetime import tau_from_ratio

    ratio = spec.fmt("ratio")
    r = np.arange(spec.ratio_entries) * ratio.lsb
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        tau = spec.dt * np.asarray(tau_from_ratio(r, n_bins=spec.n_bins), dtype=np.float64)
    tau = np.where(np.isfinite(tau), tau, spec.fmt("lifetime").max_value)
    return quantize(np.clip(tau, 0, None), spec.fmt("lifetime"), spec.rounding)[0]


# -- files --------------------------------------------------------------------------------------

def dump_json(path, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
