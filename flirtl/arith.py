"""Integer arithmetic primitives of the fixed-point datapath, in NumPy.

Each function has a gateware twin of the same name and arguments in `flirtl.gateware.arith`;
property-based tests prove the twins equal. A format's value is code * 2**-frac_bits (see
`flirtl.spec.QFormat`).

Codes are int64 arrays, or integer-valued float arrays when the caller knows every intermediate is
exact in that float type (below 2**24 for float32, 2**53 for float64: see `flirtl.golden`); both give
the same codes. The golden model uses floats because BLAS multiplies them and NumPy vectorises them.
"""

from __future__ import annotations

import numpy as np

from .spec import QFormat


def saturate(code, fmt: QFormat):
    """Clamp codes to the range of `fmt`."""
    return np.clip(code, fmt.min_code, fmt.max_code)


def _is_float(code) -> bool:
    return np.asarray(code).dtype.kind == "f"


def wrap(code, fmt: QFormat):
    """Keep the low `fmt.width` bits, reinterpreted in `fmt` (two's-complement overflow)."""
    if _is_float(code):  # subtract the multiple of 2**width that lands in range (powers of two: exact)
        span = 2.0 ** fmt.width
        return code - np.floor((code - fmt.min_code) / span) * span
    low = np.bitwise_and(code, (1 << fmt.width) - 1)
    if fmt.signed:
        low = low - ((low >> (fmt.width - 1)) << fmt.width)
    return low


def overflow(code, fmt: QFormat, mode: str):
    return saturate(code, fmt) if mode == "saturate" else wrap(code, fmt)


def shift_round(code, shift: int, rounding: str):
    """Scale by 2**-shift: arithmetic right shift with rounding, or an exact left shift."""
    if _is_float(code):  # floor(code * 2**-shift [+ 1/2]) is the rounding shift
        scaled = code * 2.0 ** -shift
        if shift <= 0:
            return scaled
        return np.floor(scaled + 0.5 if rounding == "half_up" else scaled)
    if shift <= 0:
        return np.left_shift(code, -shift)
    if rounding == "half_up":
        code = code + (1 << (shift - 1))  # half an LSB of the result, then floor
    return np.right_shift(code, shift)


def requantize(code, src_frac: int, dst: QFormat, rounding: str, overflow_mode: str):
    """Move codes with `src_frac` fractional bits into format `dst`."""
    return overflow(shift_round(code, src_frac - dst.frac_bits, rounding), dst, overflow_mode)


def multiply(a, b):
    """Full-precision product; its fractional bits are the sum of the operands'."""
    return np.multiply(a, b)


def _address(code, src_frac: int, addr: QFormat, rounding: str):
    """Table index of a code: requantized to the (saturating) address format, counted from the most
    negative address."""
    index = requantize(code, src_frac, addr, rounding, "saturate") - addr.min_code
    return index.astype(np.intp) if _is_float(index) else index


def table_lookup(code, src_frac: int, addr: QFormat, table, rounding: str):
    """Activation ROM read: requantize to the (saturating) address format, then index the table,
    whose entry 0 belongs to the most negative address."""
    return np.take(table, _address(code, src_frac, addr, rounding))


def pwl_lookup(code, src_frac: int, addr: QFormat, base, slope, slope_frac: int,
               segment_bits: int, out: QFormat, rounding: str):
    """Piecewise-linear activation: the address' top `segment_bits` pick a segment (base value
    and slope), the low bits are the offset into it; one multiply interpolates."""
    index = _address(code, src_frac, addr, rounding)
    offset_bits = addr.width - segment_bits
    segment = np.right_shift(index, offset_bits)
    offset = np.bitwise_and(index, (1 << offset_bits) - 1)
    step = shift_round(multiply(np.take(slope, segment), offset), slope_frac - out.frac_bits, rounding)
    return saturate(np.take(base, segment) + step, out)
