"""Property-based tests of the NumPy arithmetic primitives against exact rational arithmetic."""

from fractions import Fraction
import math

import numpy as np
from hypothesis import given, strategies as st

from flirtl import arith
from flirtl.quant import quantize
from flirtl.spec import QFormat

formats = st.builds(lambda i, f, s: QFormat(i + s, f, s),
                    st.integers(1, 12), st.integers(0, 12), st.booleans())
codes = st.integers(-(1 << 40), 1 << 40)


@given(codes, formats)
def test_saturate_clamps(code, fmt):
    assert arith.saturate(np.int64(code), fmt) == min(max(code, fmt.min_code), fmt.max_code)


@given(codes, formats)
def test_wrap_is_modular(code, fmt):
    got = int(arith.wrap(np.int64(code), fmt))
    assert fmt.min_code <= got <= fmt.max_code
    assert (got - code) % (1 << fmt.width) == 0


@given(codes, st.integers(0, 20), formats, st.sampled_from(["floor", "half_up"]))
def test_requantize_matches_exact_rounding(code, src_frac, dst, rounding):
    exact = Fraction(code, 1 << src_frac) * (1 << dst.frac_bits)
    rounded = math.floor(exact + Fraction(1, 2)) if rounding == "half_up" else math.floor(exact)
    expected = min(max(rounded, dst.min_code), dst.max_code)
    assert int(arith.requantize(np.int64(code), src_frac, dst, rounding, "saturate")) == expected


@given(st.integers(-(1 << 24), 1 << 24), st.integers(-(1 << 24), 1 << 24))
def test_multiply_is_exact(a, b):
    assert int(arith.multiply(np.int64(a), np.int64(b))) == a * b


@given(st.lists(st.integers(-(1 << 20), 1 << 20), min_size=1, max_size=20), st.integers(0, 10))
def test_table_lookup_reads_the_saturated_address(values, src_frac):
    addr = QFormat(3, 4, True)
    table = np.arange(1 << addr.width) * 3 - 7
    got = arith.table_lookup(np.array(values, np.int64), src_frac, addr, table, "half_up")
    index = arith.requantize(np.array(values, np.int64), src_frac, addr, "half_up", "saturate") - addr.min_code
    assert np.array_equal(got, table[index])
    assert np.all((index >= 0) & (index < len(table)))


@given(st.lists(st.floats(-300, 300, allow_nan=False), min_size=1, max_size=30), formats,
       st.sampled_from(["floor", "half_up"]))
def test_quantize_rounds_as_specified(values, fmt, rounding):
    codes_, saturated = quantize(values, fmt, rounding)
    for value, code in zip(values, codes_):
        scaled = Fraction(value) * (1 << fmt.frac_bits)
        rounded = math.floor(scaled + Fraction(1, 2)) if rounding == "half_up" else math.floor(scaled)
        assert code == min(max(rounded, fmt.min_code), fmt.max_code)
    outside = sum(1 for v in values
                  if not fmt.min_code <= math.floor(Fraction(v) * (1 << fmt.frac_bits) + (Fraction(1, 2) if rounding == "half_up" else 0)) <= fmt.max_code)
    assert saturated == outside
