"""Sigmoid and tanh of a pre-activation code: the gateware of `GoldenModel.activate`.

The pre-activation is requantized (the spec's rounding, saturating) to the signed address format of
`quant.activation_io`; flipping the address' sign bit turns it into a ROM index whose entry 0 is the
most negative address, exactly as `arith.table_lookup` / `arith.pwl_lookup` index their tables.
The ROM contents come from `quant.activation_table` / `quant.pwl_segments`, never restated here.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..quant import activation_io, activation_table, pwl_segments, pwl_slope_frac
from ..spec import ModelSpec, bits_for_signed
from .arith import fmt_shape, multiply, requantize, saturate, shift_round

ACTIVATION_KINDS = ("sigmoid", "tanh")


class Activation(wiring.Component):
    """sigmoid (gate format) or tanh (candidate format) of a stream of pre-activation codes.

    A pipeline that takes one new input every cycle and never stalls; it computes exactly
    `GoldenModel.activate(kind, preact)` for either `spec.activation.method`:

    - ``"table"``: address requantization (combinational), then one synchronous ROM read;
      latency 1.
    - ``"pwl"``: the base and slope ROMs of the address' segment are read synchronously while the
      offset within the segment is registered; then one multiply, the rounding shift, the add and
      the saturation, into an output register; latency 2.

    Two gates per cycle (r and z) take two instances.

    Parameters
    ----------
    spec : ModelSpec
    kind : "sigmoid" or "tanh"

    Interface
    ---------
    preact : In(fmt_shape(spec.fmt("preact")))
        Pre-activation code, sampled on the clock edge where `en` is high.
    en : In(1)
        `preact` holds a valid input this cycle.
    out : Out(fmt_shape of the gate format for sigmoid, the candidate format for tanh)
        The activation of the input given `latency` cycles earlier; holds its value until the next
        result (cycles without `en` do not disturb it).
    valid : Out(1)
        `en` delayed by `latency` cycles: `out` holds a new result this cycle.
    """

    def __init__(self, spec: ModelSpec, kind: str):
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"spec must be a ModelSpec, not {spec!r}")
        if kind not in ACTIVATION_KINDS:
            raise ValueError(f"activation kind must be one of {ACTIVATION_KINDS}, not {kind!r}")
        self._spec = spec
        self._kind = kind
        self._addr, self._out = activation_io(spec, kind)
        super().__init__({
            "preact": In(fmt_shape(spec.fmt("preact"))),
            "en": In(1),
            "out": Out(fmt_shape(self._out)),
            "valid": Out(1),
        })

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def method(self) -> str:
        return self._spec.activation.method

    @property
    def latency(self) -> int:
        """Cycles from an input (with `en`) to its result on `out` (with `valid`)."""
        return self.latency_for(self._spec)

    @staticmethod
    def latency_for(spec: ModelSpec) -> int:
        """The latency of every Activation built from `spec`, without building one (an unused
        component draws Amaranth's UnusedElaboratable warning)."""
        return 1 if spec.activation.method == "table" else 2

    def elaborate(self, platform):
        m = Module()
        spec, addr = self._spec, self._addr
        address = requantize(self.preact, spec.fmt("preact").frac_bits, addr, spec.rounding, "saturate")
        # address - addr.min_code: flipping the sign bit of a two's-complement code adds 2**(w-1).
        index = Cat(address[:-1], ~address[-1])

        if self.method == "table":
            self._elaborate_table(m, index)
        else:
            self._elaborate_pwl(m, index)
        return m

    def _elaborate_table(self, m: Module, index):
        table = activation_table(self._spec, self._kind)
        m.submodules.rom = rom = Memory(shape=fmt_shape(self._out), depth=len(table),
                                        init=[int(code) for code in table])
        read = rom.read_port()
        m.d.comb += [read.addr.eq(index), read.en.eq(self.en), self.out.eq(read.data)]
        m.d.sync += self.valid.eq(self.en)

    def _elaborate_pwl(self, m: Module, index):
        spec, out = self._spec, self._out
        base, slope = pwl_segments(spec, self._kind)
        slope_frac = pwl_slope_frac(spec, self._kind)
        offset_bits = self._addr.width - spec.activation.segment_bits
        segment, offset = index[offset_bits:], index[:offset_bits]

        # Stage 1: the segment's base and slope come out of the ROMs; the offset waits beside them.
        m.submodules.base_rom = base_rom = Memory(
            shape=fmt_shape(out), depth=len(base), init=[int(code) for code in base])
        slope_width = bits_for_signed(max(abs(int(code)) for code in slope))
        m.submodules.slope_rom = slope_rom = Memory(
            shape=signed(slope_width), depth=len(slope), init=[int(code) for code in slope])
        base_read, slope_read = base_rom.read_port(), slope_rom.read_port()
        m.d.comb += [base_read.addr.eq(segment), base_read.en.eq(self.en),
                     slope_read.addr.eq(segment), slope_read.en.eq(self.en)]
        offset_1 = Signal(offset_bits)
        valid_1 = Signal()
        with m.If(self.en):
            m.d.sync += offset_1.eq(offset)
        m.d.sync += valid_1.eq(self.en)

        # Stage 2: interpolate, round to the output's fractional bits, saturate, register.
        step = shift_round(multiply(slope_read.data, offset_1), slope_frac - out.frac_bits, spec.rounding)
        with m.If(valid_1):
            m.d.sync += self.out.eq(saturate(base_read.data + step, out))
        m.d.sync += self.valid.eq(valid_1)
