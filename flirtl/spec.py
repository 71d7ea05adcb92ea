"""One fixed-point specification, read by every part of flirtl.

`QFormat` names the format of one tensor; `ModelSpec` names the format of every tensor of the
Seq2SeqLite encoder-decoder and of the IP around it (input normalisation, lifetime extraction), the
rounding and overflow modes, the activation method and the model's shape. The quantizer, the golden
model, the torch fake-quant used for QAT and the Amaranth generator all ask this object; none of them
restates a format. `ModelSpec` serialises to JSON next to every generated Verilog file.

GRU gate order everywhere is PyTorch's: r (reset), z (update), n (candidate); rows of `w_ih`, `w_hh`,
`b_ih`, `b_hh` are stacked [r; z; n]. In the PyTorch ("reset-after") cell the reset gate multiplies
`W_hn h + b_hn`; in the Keras ("reset-before") cell it multiplies h before `W_hn`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

#: Where each pixel's background comes from. 'head': the mean of the first `bg_bins` bins (the decay
#: must rise after them). 'ends': the lesser of the means of the first and of the last `bg_bins`
#: bins, so a decay may start anywhere in the window: an early pulse leaves its head full of signal
#: but its tail near background, a late one the reverse (one more adder and a compare in the IP).
BACKGROUND_RULES = ("head", "ends")

ROUNDING_MODES = ("floor", "half_up")
OVERFLOW_MODES = ("saturate", "wrap")
GRU_VARIANTS = ("pytorch", "keras")
ACTIVATION_METHODS = ("table", "pwl")
#: The function behind the gates r, z. Imported Keras models bring their own hard sigmoid, and the
#: three definitions differ: Keras 2 clip(0.2x + 0.5), Keras 3 relu6(x + 3) / 6, QKeras (its
#: `hard_sigmoid`, also inside its default quantized_tanh) clip(0.5x + 0.5).
GATE_FUNCTIONS = ("sigmoid", "hard_sigmoid_keras2", "hard_sigmoid_keras3", "hard_sigmoid_qkeras")
#: The function behind the candidate n: QKeras's default quantized_tanh is 2 * hard_sigmoid(x) - 1,
#: which is clip(x, -1, 1).
CANDIDATE_FUNCTIONS = ("tanh", "hard_tanh")
#: What the decoder reads at each of its T steps. 'zeros': all-zero inputs from the encoder's final
#: state (flirtl's own models), so its input product vanishes and gx is the input bias. 'encoder_state':
#: the encoder's final state repeated (Keras RepeatVector) from a zero state, so gx = W_ih h_enc + b_ih
#: is one more matrix-vector product per pixel, the same at every step.
DECODER_INPUTS = ("zeros", "encoder_state")

#: Named tensors whose width is a design choice; they must lie in [MIN_BITS, MAX_BITS].
MIN_BITS, MAX_BITS = 2, 32
#: Accumulators and other derived tensors may be wider, but must fit the golden model's int64.
MAX_DERIVED_BITS = 62

SFD_CHANNELS = 3  # total, short (tau1) component, long (tau2) component
INPUT_SIZE = 1  # one normalised photon count per time bin


class SpecError(ValueError):
    """An impossible or inconsistent fixed-point specification."""


@dataclass(frozen=True)
class QFormat:
    """Two's-complement (or unsigned) fixed-point format: value = code * 2**-frac_bits.

    `int_bits` counts the sign bit of signed formats (hls4ml's `integer`), so
    width = int_bits + frac_bits and a signed s1.7 holds [-1, 1 - 2**-7].
    """

    int_bits: int
    frac_bits: int
    signed: bool = True

    def __post_init__(self):
        for name in ("int_bits", "frac_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise SpecError(f"QFormat.{name} must be an int, not {value!r}")
        if self.frac_bits < 0:
            raise SpecError(f"QFormat.frac_bits must be >= 0, not {self.frac_bits!r}")
        if self.int_bits < 0:
            raise SpecError(
                f"QFormat has {self.frac_bits} fractional bits, beyond its width "
                f"{self.int_bits + self.frac_bits}")
        if self.width < 1 + self.signed:
            raise SpecError(f"QFormat {self} is too narrow to hold a value")

    @property
    def width(self) -> int:
        return self.int_bits + self.frac_bits

    @property
    def min_code(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac_bits

    @property
    def min_value(self) -> float:
        return self.min_code * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_code * self.lsb

    def __str__(self):
        return f"{'s' if self.signed else 'u'}{self.int_bits}.{self.frac_bits}"

    def to_json(self) -> dict:
        return {"int_bits": self.int_bits, "frac_bits": self.frac_bits, "signed": self.signed}

    @classmethod
    def from_json(cls, obj: dict) -> "QFormat":
        return cls(int(obj["int_bits"]), int(obj["frac_bits"]), bool(obj["signed"]))

    @classmethod
    def parse(cls, text: str) -> "QFormat":
        """Read the `s1.7` / `u4.12` notation used in summaries and on the command line."""
        try:
            sign, rest = text[0], text[1:]
            int_bits, frac_bits = (int(part) for part in rest.split("."))
        except (IndexError, ValueError):
            raise SpecError(f"cannot read fixed-point format {text!r}; write e.g. 's1.7' or 'u4.12'")
        if sign not in "su":
            raise SpecError(f"fixed-point format {text!r} must start with 's' or 'u'")
        return cls(int_bits, frac_bits, sign == "s")


def bits_for_signed(magnitude: int) -> int:
    """Width of the narrowest two's-complement format holding [-magnitude, magnitude]."""
    return max(int(magnitude).bit_length() + 1, 2)


@dataclass(frozen=True)
class ActivationSpec:
    """How sigmoid and tanh are computed.

    `gate` and `candidate` name the functions (`GATE_FUNCTIONS`, `CANDIDATE_FUNCTIONS`): the
    logistic sigmoid and tanh for models trained here, a Keras or QKeras hard variant for imports.
    The pre-activation is requantized (with the spec's rounding, saturating) to a signed address of
    `addr_bits` bits covering [-range, range); `table` reads one ROM word per address, `pwl` reads a
    base and a slope for each of 2**segment_bits segments and interpolates with one multiply.
    """

    method: str = "table"
    addr_bits: int = 10
    sigmoid_range: int = 8
    tanh_range: int = 4
    segment_bits: int = 4
    gate: str = "sigmoid"
    candidate: str = "tanh"

    def __post_init__(self):
        if self.method not in ACTIVATION_METHODS:
            raise SpecError(f"activation method {self.method!r} is not one of {ACTIVATION_METHODS}")
        if self.gate not in GATE_FUNCTIONS:
            raise SpecError(f"gate function {self.gate!r} is not one of {GATE_FUNCTIONS}")
        if self.candidate not in CANDIDATE_FUNCTIONS:
            raise SpecError(f"candidate function {self.candidate!r} is not one of {CANDIDATE_FUNCTIONS}")
        if not 3 <= self.addr_bits <= 16:
            raise SpecError(f"activation addr_bits must be in 3..16, not {self.addr_bits!r}")
        for name in ("sigmoid_range", "tanh_range"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or value & (value - 1):
                raise SpecError(f"activation {name} must be a power of two >= 1, not {value!r}")
            if self.addr_format(value).int_bits >= self.addr_bits:
                raise SpecError(
                    f"activation {name}={value} leaves no fractional address bits "
                    f"with addr_bits={self.addr_bits}")
        if not 1 <= self.segment_bits < self.addr_bits:
            raise SpecError(
                f"activation segment_bits must be in 1..{self.addr_bits - 1}, "
                f"not {self.segment_bits!r}")

    def addr_format(self, input_range: int) -> QFormat:
        int_bits = input_range.bit_length() + 1  # sign + log2(range) + 1 bits reach `range`
        return QFormat(int_bits, self.addr_bits - int_bits, True)

    @property
    def sigmoid_addr(self) -> QFormat:
        return self.addr_format(self.sigmoid_range)

    @property
    def tanh_addr(self) -> QFormat:
        return self.addr_format(self.tanh_range)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


#: Weight and bias tensors of Seq2SeqLite, with their PyTorch shapes (H = hidden units).
#: A decoder that reads zeros never uses its W_ih: it is not quantized and not in the datapath.
def weight_shapes(hidden: int, decoder_input: str = "zeros") -> dict[str, tuple[int, ...]]:
    h3 = 3 * hidden
    shapes = {
        "enc.w_ih": (h3, INPUT_SIZE), "enc.w_hh": (h3, hidden), "enc.b_ih": (h3,), "enc.b_hh": (h3,),
        "dec.w_hh": (h3, hidden), "dec.b_ih": (h3,), "dec.b_hh": (h3,),
        "head.w": (SFD_CHANNELS, hidden), "head.b": (SFD_CHANNELS,),
    }
    if decoder_input == "encoder_state":
        shapes["dec.w_ih"] = (h3, hidden)
    return shapes


WEIGHT_NAMES = tuple(weight_shapes(1))
BIAS_NAMES = tuple(name for name in WEIGHT_NAMES if ".b" in name)

#: Every matrix-vector product: (accumulator, weight, vector operand, bias, products per row).
#: A zero decoder input skips the decoder's input product: its gx is the bias alone.
def matvecs(hidden: int, decoder_input: str = "zeros") -> dict[str, tuple[str, str, str, int]]:
    products = {
        "enc.acc_x": ("enc.w_ih", "input", "enc.b_ih", INPUT_SIZE),
        "enc.acc_h": ("enc.w_hh", "hidden", "enc.b_hh", hidden),
        "dec.acc_h": ("dec.w_hh", "hidden", "dec.b_hh", hidden),
        "head.acc": ("head.w", "hidden", "head.b", hidden),
    }
    if decoder_input == "encoder_state":
        products["dec.acc_x"] = ("dec.w_ih", "hidden", "dec.b_ih", hidden)
    return products


def accumulator_widths(table: dict[str, QFormat], hidden: int, decoder_input: str = "zeros") -> dict[str, int]:
    """The width each accumulator needs so that no dot product (plus its aligned bias) overflows."""
    widths = {}
    for acc, (weight, operand, bias, terms) in matvecs(hidden, decoder_input).items():
        w, v, b = table[weight], table[operand], table[bias]
        product = max(-w.min_code, w.max_code) * max(-v.min_code, v.max_code)
        shift = w.frac_bits + v.frac_bits - b.frac_bits
        bias_mag = max(-b.min_code, b.max_code)
        bias_mag = bias_mag << shift if shift >= 0 else -(-bias_mag >> -shift)
        widths[acc] = bits_for_signed(terms * product + bias_mag)
    return widths


@dataclass(frozen=True)
class Requantization:
    """One rounding step of the datapath: a code with `src_frac` fractional bits into the format
    of tensor `dst` (`ModelSpec.requantizations`)."""

    src_frac: int
    dst: str


@dataclass(frozen=True)
class ModelSpec:
    """The fixed-point specification of one Seq2SeqLite model and its IP.

    Build it with `ModelSpec.build(bits=8, ...)`; the constructor takes the complete table of
    formats and checks it. Tensors (see `describe()` for each one's role):

    counts, input, recip, enc/dec/head weights and biases, the accumulators enc.acc_x, enc.acc_h,
    dec.acc_h, head.acc, preact, gate, candidate, hidden, sfd (head output), ratio, lifetime, fraction.
    """

    hidden: int
    n_bins: int
    dt: float
    formats: tuple[tuple[str, QFormat], ...]
    gru: str = "pytorch"
    rounding: str = "half_up"
    overflow: str = "saturate"
    activation: ActivationSpec = field(default_factory=ActivationSpec)
    bg_bins: int = 4
    background: str = "head"  # which bg_bins bins estimate the background (fli.preprocess.BACKGROUND_RULES)
    decoder_input: str = "zeros"  # DECODER_INPUTS
    bits: int = 8  # the nominal width the spec was built from (for names and reports)

    def __post_init__(self):
        if not isinstance(self.hidden, int) or not 1 <= self.hidden <= 1024:
            raise SpecError(f"hidden units must be an int in 1..1024, not {self.hidden!r}")
        if not isinstance(self.n_bins, int) or not 2 <= self.n_bins <= 65535:
            raise SpecError(f"n_bins (time bins per pixel) must be in 2..65535, not {self.n_bins!r}")
        if not (isinstance(self.dt, (int, float)) and math.isfinite(self.dt) and self.dt > 0):
            raise SpecError(f"dt (bin width in ns) must be a positive number, not {self.dt!r}")
        if self.gru not in GRU_VARIANTS:
            raise SpecError(f"gru variant {self.gru!r} is not one of {GRU_VARIANTS}")
        if self.rounding not in ROUNDING_MODES:
            raise SpecError(f"rounding mode {self.rounding!r} is not one of {ROUNDING_MODES}")
        if self.overflow not in OVERFLOW_MODES:
            raise SpecError(f"overflow mode {self.overflow!r} is not one of {OVERFLOW_MODES}")
        if (not isinstance(self.bg_bins, int) or self.bg_bins < 1 or self.bg_bins & (self.bg_bins - 1)
                or self.bg_bins >= self.n_bins):
            raise SpecError(
                f"bg_bins (leading bins averaged for the background) must be a power of two "
                f"below n_bins={self.n_bins}, not {self.bg_bins!r}")
        if self.background not in BACKGROUND_RULES:
            raise SpecError(f"background rule must be one of {BACKGROUND_RULES}, not {self.background!r}")
        if self.decoder_input not in DECODER_INPUTS:
            raise SpecError(f"decoder input must be one of {DECODER_INPUTS}, not {self.decoder_input!r}")
        table = dict(self.formats)
        missing = [name for name in _required_tensors(self.decoder_input) if name not in table]
        if missing:
            raise SpecError(f"spec has no format for tensor(s) {', '.join(missing)}")
        for name, fmt in self.formats:
            limit = MAX_DERIVED_BITS if name in _DERIVED_TENSORS else MAX_BITS
            if not MIN_BITS <= fmt.width <= limit:
                raise SpecError(
                    f"tensor {name!r} is {fmt.width} bits wide ({fmt}); "
                    f"allowed {MIN_BITS}..{limit} bits")
        for name in ("input", "gate", "counts", "ratio", "lifetime", "fraction", "recip"):
            if table[name].signed:
                raise SpecError(f"tensor {name!r} must be unsigned, not {table[name]}")
        for name in ("gate", "input", "fraction"):
            if table[name].int_bits < 1:
                raise SpecError(f"tensor {name!r} must reach 1.0, so needs int_bits >= 1: {table[name]}")
        for name in ("candidate", "hidden"):
            if table[name].int_bits < 1 or not table[name].signed:
                raise SpecError(f"tensor {name!r} must be signed and hold [-1, 1): {table[name]}")
        for acc, needed in self.accumulator_widths().items():
            if table[acc].width < needed:
                raise SpecError(
                    f"accumulator {acc!r} is {table[acc].width} bits ({table[acc]}) but its dot "
                    f"product needs {needed} bits")
            weight, operand, _bias, _ = self.matvecs()[acc]
            expected_frac = table[weight].frac_bits + table[operand].frac_bits
            if table[acc].frac_bits != expected_frac:
                raise SpecError(
                    f"accumulator {acc!r} must have {expected_frac} fractional bits "
                    f"({weight} x {operand}), not {table[acc].frac_bits}")

    # -- reading the spec -------------------------------------------------------------------------

    def fmt(self, name: str) -> QFormat:
        for key, value in self.formats:
            if key == name:
                return value
        raise KeyError(f"spec has no tensor {name!r}; tensors: {', '.join(k for k, _ in self.formats)}")

    @property
    def recip_frac(self) -> int:
        """Fractional bits of the per-pixel reciprocal of the peak: enough that d * recip stays
        within half an input LSB of d / peak for every count d <= peak."""
        return self.fmt("counts").width + self.fmt("input").frac_bits + 1

    @property
    def ratio_entries(self) -> int:
        """Entries of the lifetime table, indexed by S / y0 in the ratio format, up to n_bins."""
        return (self.n_bins << self.fmt("ratio").frac_bits) + 1

    def accumulator_widths(self) -> dict[str, int]:
        """The width each accumulator needs so that no dot product can overflow it."""
        return accumulator_widths(dict(self.formats), self.hidden, self.decoder_input)

    def matvecs(self) -> dict[str, tuple[str, str, str, int]]:
        return matvecs(self.hidden, self.decoder_input)

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        return weight_shapes(self.hidden, self.decoder_input)

    @property
    def weight_names(self) -> tuple[str, ...]:
        """The weight and bias tensors this model's datapath reads."""
        return tuple(self.weight_shapes())

    def requantizations(self) -> dict[str, Requantization]:
        """Every rounding step of the IP's datapath, by name: how many fractional bits its code
        carries and which tensor's format it is rounded into (with the spec's rounding and
        overflow). The golden model, the plain reference, QAT and the gateware read their steps
        from here, so no step can differ between them.

        input: (counts - background) x 1/peak. Each accumulator of `matvecs`, bias included: a
        gate pre-activation, or the SFD for the head. dec.gx: the input bias of a decoder that
        reads zeros. reset: r x gh_n (PyTorch cell) or r x h (Keras cell). candidate: tanh's
        output into the state's format. blend: n + z (h - n), held at gate + hidden bits until
        this one rounding."""
        frac = lambda name: self.fmt(name).frac_bits  # noqa: E731
        steps = {"input": Requantization(self.recip_frac, "input")}
        for acc in self.matvecs():
            steps[acc] = Requantization(frac(acc), "sfd" if acc == "head.acc" else "preact")
        if self.decoder_input == "zeros":
            steps["dec.gx"] = Requantization(frac("dec.b_ih"), "preact")
        reset = "preact" if self.gru == "pytorch" else "hidden"
        steps["reset"] = Requantization(frac("gate") + frac(reset), reset)
        steps["candidate"] = Requantization(frac("candidate"), "hidden")
        steps["blend"] = Requantization(frac("gate") + frac("hidden"), "hidden")
        return steps

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    def build(cls, bits: int = 8, *, hidden: int = 32, n_bins: int = 135, dt: float = 0.09,
              hidden_bits: int | None = None, bias_bits: int | None = None,
              preact_bits: int | None = None, sfd_bits: int = 16, count_bits: int = 16,
              weight_int_bits: dict[str, int] | None = None,
              overrides: dict[str, QFormat | str] | None = None,
              gru: str = "pytorch", rounding: str = "half_up", overflow: str = "saturate",
              activation: ActivationSpec | None = None, bg_bins: int = 4,
              background: str = "head", decoder_input: str = "zeros") -> "ModelSpec":
        """Derive every tensor's format from one `bits` value.

        bits:            weights, input, gates, candidate (and the hidden state unless hidden_bits)
        hidden_bits:     the recurrent state, independent of the weights (default: bits)
        bias_bits:       biases (default 2*bits, max 32: a bias costs an adder, not a multiplier)
        preact_bits:     pre-activations, signed with 4 integer bits (default bits + 4)
        sfd_bits:        head output (the IRF-free decay), signed with 2 integer bits
        weight_int_bits: integer bits of each weight/bias tensor (power-of-two scale per tensor,
                         chosen by `flirtl.quant` from the trained weights; default 2 and 4)
        overrides:       any tensor's format, e.g. {"gate": "u1.9"}; accumulators follow.
        """
        for name, value in (("bits", bits), ("hidden_bits", hidden_bits), ("bias_bits", bias_bits),
                            ("preact_bits", preact_bits), ("sfd_bits", sfd_bits),
                            ("count_bits", count_bits)):
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not MIN_BITS <= value <= MAX_BITS:
                raise SpecError(f"{name} must be an int in {MIN_BITS}..{MAX_BITS}, not {value!r}")
        if not isinstance(hidden, int) or hidden < 1:
            raise SpecError(f"hidden units must be a positive int, not {hidden!r}")
        hidden_bits = hidden_bits or bits
        bias_bits = bias_bits or min(2 * bits, MAX_BITS)
        preact_bits = preact_bits or min(bits + 4, MAX_BITS)
        if decoder_input not in DECODER_INPUTS:
            raise SpecError(f"decoder input must be one of {DECODER_INPUTS}, not {decoder_input!r}")
        weight_names = tuple(weight_shapes(hidden, decoder_input))
        weight_int_bits = dict(weight_int_bits or {})
        unknown = set(weight_int_bits) - set(weight_names)
        if unknown:
            raise SpecError(f"weight_int_bits names unknown tensor(s) {sorted(unknown)}; "
                            f"weights are {list(weight_names)}")

        def fixed(width: int, int_bits: int, signed: bool = True, name: str = "") -> QFormat:
            if int_bits > width:
                raise SpecError(f"tensor {name!r}: {int_bits} integer bits exceed its width {width}")
            return QFormat(int_bits, width - int_bits, signed)

        table: dict[str, QFormat] = {
            "counts": QFormat(count_bits, 0, False),
            # the input is capped at 24 bits so counts x reciprocal fits the int64 golden model
            "input": fixed(min(bits, 24), 1, False, "input"),
            "preact": fixed(preact_bits, min(4, preact_bits - 1), True, "preact"),
            "gate": fixed(bits, 1, False, "gate"),
            "candidate": fixed(bits, 1, True, "candidate"),
            "hidden": fixed(hidden_bits, 1, True, "hidden"),
            "sfd": fixed(sfd_bits, 2, True, "sfd"),
            "ratio": QFormat(n_bins.bit_length(), 4, False),
            "lifetime": QFormat(5, 11, False),  # ns: up to 32 ns in 0.5 ps steps
            "fraction": QFormat(1, 15, False),
        }
        for name in weight_names:
            width = bias_bits if name in BIAS_NAMES else bits
            default_int = 4 if name in BIAS_NAMES else 2
            table[name] = fixed(width, weight_int_bits.get(name, default_int), True, name)
        for name, value in (overrides or {}).items():
            fmt = QFormat.parse(value) if isinstance(value, str) else value
            if not isinstance(fmt, QFormat):
                raise SpecError(f"override for {name!r} must be a QFormat or 's1.7'-style text, not {value!r}")
            table[name] = fmt
        required = _required_tensors(decoder_input)
        unknown = set(table) - set(required)
        if unknown:
            raise SpecError(f"unknown tensor(s) {sorted(unknown)}; tensors are {list(required)}")
        # Recip is derived: it must represent 2**recip_frac / 1 for a peak of one photon.
        recip_frac = table["counts"].width + table["input"].frac_bits + 1
        table["recip"] = QFormat(1, recip_frac, False)
        # Accumulators are exact: fractional bits of the product, width from the worst dot product.
        products = matvecs(hidden, decoder_input)
        derived = [acc for acc in products if acc not in (overrides or {})]
        for acc in derived:
            weight, operand, _bias, _terms = products[acc]
            table[acc] = QFormat(1, table[weight].frac_bits + table[operand].frac_bits, True)
        widths = accumulator_widths(table, hidden, decoder_input)
        for acc in derived:
            table[acc] = QFormat(widths[acc] - table[acc].frac_bits, table[acc].frac_bits, True)
        return cls(hidden=hidden, n_bins=n_bins, dt=float(dt),
                   formats=tuple(sorted(table.items())), gru=gru, rounding=rounding,
                   overflow=overflow, activation=activation or ActivationSpec(), bg_bins=bg_bins,
                   background=background, decoder_input=decoder_input, bits=bits)

    def replace(self, **changes) -> "ModelSpec":
        return dataclasses.replace(self, **changes)

    # -- JSON -------------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "flirtl_spec": 1,
            "bits": self.bits, "hidden": self.hidden, "n_bins": self.n_bins, "dt": self.dt,
            "gru": self.gru, "rounding": self.rounding, "overflow": self.overflow,
            "bg_bins": self.bg_bins, "background": self.background, "decoder_input": self.decoder_input,
            "activation": self.activation.to_json(),
            "formats": {name: fmt.to_json() for name, fmt in self.formats},
        }

    @classmethod
    def from_json(cls, obj: dict) -> "ModelSpec":
        if obj.get("flirtl_spec") != 1:
            raise SpecError("not a flirtl spec JSON (missing 'flirtl_spec': 1)")
        try:
            return cls(
                hidden=obj["hidden"], n_bins=obj["n_bins"], dt=obj["dt"], gru=obj["gru"],
                rounding=obj["rounding"], overflow=obj["overflow"], bg_bins=obj["bg_bins"],
                # specs written before the rule existed used the head bins
                background=obj.get("background", "head"), decoder_input=obj.get("decoder_input", "zeros"),
                bits=obj["bits"], activation=ActivationSpec(**obj["activation"]),
                formats=tuple(sorted((k, QFormat.from_json(v)) for k, v in obj["formats"].items())))
        except KeyError as missing:
            raise SpecError(f"spec JSON lacks the field {missing}") from None

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def loads(cls, text: str) -> "ModelSpec":
        return cls.from_json(json.loads(text))

    def describe(self) -> str:
        """A human-readable table of every tensor's format."""
        lines = [f"Seq2SeqLite {self.hidden}x{self.hidden}, {self.bits}-bit, GRU {self.gru}, "
                 f"T={self.n_bins} x {self.dt} ns, rounding {self.rounding}, overflow {self.overflow}, "
                 f"activation {self.activation.method} ({self.activation.addr_bits} address bits, "
                 f"{self.activation.gate} / {self.activation.candidate})"
                 + (", decoder fed the encoder's state (RepeatVector)" if self.decoder_input == "encoder_state" else "")]
        for name, fmt in self.formats:
            lines.append(f"  {name:<10} {str(fmt):>8}  {fmt.width:>2} bits  {_ROLES.get(name, _ROLES.get(name.split('.')[-1], ''))}")
        return "\n".join(lines)


_ROLES = {
    "counts": "raw photon counts per time bin",
    "input": "normalised TPSF sample, (counts - background) / peak",
    "recip": "per-pixel reciprocal of the peak",
    "w_ih": "input weights [r; z; n]", "w_hh": "recurrent weights [r; z; n]",
    "b_ih": "input bias [r; z; n]", "b_hh": "recurrent bias [r; z; n]",
    "w": "head weights (3 SFD channels)", "b": "head bias",
    "acc_x": "input dot-product accumulator",
    "dec.acc_x": "decoder input accumulator: W_ih h_enc, once per pixel",
    "acc_h": "recurrent dot-product accumulator",
    "acc": "head dot-product accumulator",
    "preact": "gate pre-activation (table address source)",
    "gate": "sigmoid output r, z", "candidate": "tanh output n", "hidden": "GRU state h",
    "sfd": "head output: IRF-free decay, channels total/short/long",
    "ratio": "running sum / first sample of a channel", "lifetime": "tau1, tau2, mean tau (ns)",
    "fraction": "a, the short component's amplitude fraction",
}

_DERIVED_TENSORS = ("enc.acc_x", "enc.acc_h", "dec.acc_h", "head.acc", "dec.acc_x", "recip")


def _required_tensors(decoder_input: str) -> tuple[str, ...]:
    return ("counts", "input", "recip", *weight_shapes(1, decoder_input), *matvecs(1, decoder_input),
            "preact", "gate", "candidate", "hidden", "sfd", "ratio", "lifetime", "fraction")
