"""The gateware twins in `flirtl.gateware.arith` equal their NumPy twins in `flirtl.arith`.

Each example draws one combination of formats, builds ONE combinational module for it and drives
a batch of input codes (random ones plus the edges of the input range) through the Amaranth
simulator, comparing every output with the NumPy twin and the output shape with `fmt_shape(dst)`.
"""

import numpy as np
from amaranth.hdl import Module, Shape, Signal, signed, unsigned
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings, strategies as st

from flirtl import arith
from flirtl.gateware import arith as gw
from flirtl.spec import QFormat

ROUNDINGS = st.sampled_from(["floor", "half_up"])
OVERFLOWS = st.sampled_from(["saturate", "wrap"])

# Each example simulates a whole batch, so a few dozen examples cover a lot of codes.
twin_settings = settings(max_examples=150, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])


@st.composite
def formats(draw, min_width=2, max_width=24):
    """Any representable QFormat of min_width..max_width bits."""
    width = draw(st.integers(min_width, max_width))
    is_signed = draw(st.booleans())
    frac_bits = draw(st.integers(0, width))
    return QFormat(width - frac_bits, frac_bits, is_signed)


@st.composite
def input_shapes(draw, max_width=32):
    """The shape of a code entering a twin: signed or unsigned, 1..max_width bits."""
    return draw(st.sampled_from([signed, unsigned]))(draw(st.integers(1, max_width)))


def shape_range(shape: Shape) -> tuple[int, int]:
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


@st.composite
def codes_of(draw, shape: Shape, max_size=48):
    """Random codes of `shape`, always with its extremes and the codes around zero."""
    lo, hi = shape_range(shape)
    edges = [value for value in (lo, lo + 1, -1, 0, 1, hi - 1, hi) if lo <= value <= hi]
    return edges + draw(st.lists(st.integers(lo, hi), max_size=max_size))


def simulate(twin, shapes, rows):
    """Values of `twin(*inputs)` for each row of input codes, and the shape of its result.

    One combinational module per call; the testbench sets the inputs and reads the result without
    clock ticks.
    """
    inputs = [Signal(shape, name=f"in{i}") for i, shape in enumerate(shapes)]
    expr = twin(*inputs)
    result = Signal(expr.shape(), name="result")
    m = Module()
    m.d.comb += result.eq(expr)
    outputs = []

    async def testbench(ctx):
        for row in rows:
            for port, code in zip(inputs, row):
                ctx.set(port, code)
            outputs.append(ctx.get(result))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(outputs, dtype=np.int64), expr.shape()


def check_unary(numpy_twin, gateware_twin, shape, codes, dst=None):
    got, result_shape = simulate(gateware_twin, [shape], [(code,) for code in codes])
    expected = numpy_twin(np.array(codes, dtype=np.int64))
    assert np.array_equal(got, expected), (
        f"mismatch at codes {np.array(codes)[got != expected][:8]}: "
        f"gateware {got[got != expected][:8]}, numpy {expected[got != expected][:8]}")
    if dst is not None:
        assert result_shape == gw.fmt_shape(dst)


@twin_settings
@given(st.data(), input_shapes(), formats())
def test_saturate(data, shape, dst):
    codes = data.draw(codes_of(shape))
    check_unary(lambda c: arith.saturate(c, dst), lambda v: gw.saturate(v, dst), shape, codes, dst)


@twin_settings
@given(st.data(), input_shapes(), formats())
def test_wrap(data, shape, dst):
    codes = data.draw(codes_of(shape))
    check_unary(lambda c: arith.wrap(c, dst), lambda v: gw.wrap(v, dst), shape, codes, dst)


@twin_settings
@given(st.data(), input_shapes(), formats(), OVERFLOWS)
def test_overflow(data, shape, dst, mode):
    codes = data.draw(codes_of(shape))
    check_unary(lambda c: arith.overflow(c, dst, mode), lambda v: gw.overflow(v, dst, mode),
                shape, codes, dst)


@twin_settings
@given(st.data(), input_shapes(), st.integers(-24, 24), ROUNDINGS)
def test_shift_round(data, shape, shift, rounding):
    codes = data.draw(codes_of(shape))
    check_unary(lambda c: arith.shift_round(c, shift, rounding),
                lambda v: gw.shift_round(v, shift, rounding), shape, codes)


@twin_settings
@given(st.data(), input_shapes(), st.integers(0, 24), formats(), ROUNDINGS, OVERFLOWS)
def test_requantize(data, shape, src_frac, dst, rounding, mode):
    codes = data.draw(codes_of(shape))
    check_unary(lambda c: arith.requantize(c, src_frac, dst, rounding, mode),
                lambda v: gw.requantize(v, src_frac, dst, rounding, mode), shape, codes, dst)


@twin_settings
@given(st.data(), input_shapes(max_width=28), input_shapes(max_width=28))
def test_multiply(data, shape_a, shape_b):
    a = data.draw(codes_of(shape_a, max_size=24))
    b = data.draw(codes_of(shape_b, max_size=24))
    rows = [(x, y) for x in a for y in b[:12]] + list(zip(a, b))  # every edge meets every edge
    got, _ = simulate(gw.multiply, [shape_a, shape_b], rows)
    a_codes, b_codes = (np.array(column, dtype=np.int64) for column in zip(*rows))
    assert np.array_equal(got, arith.multiply(a_codes, b_codes))


def test_fmt_shape():
    assert gw.fmt_shape(QFormat(1, 7, True)) == signed(8)
    assert gw.fmt_shape(QFormat(1, 9, False)) == unsigned(10)
