"""Integer arithmetic primitives of the fixed-point datapath, in NumPy.

Each function has a gateware twin of the same name and arguments in `flirtl.gateware.arith`;
property-based tests prove the twins equal. Codes are int64 arrays; a format's value is
code * 2**-frac_bits (see `flirtl.spec.QFormat`).
"""

from __future__ import annotations

import numpy as np

from .spec import QFormat


def saturate(code, fmt: QFormat):
    """Clamp codes to the range of `fmt`."""
    return np.clip(code, fmt.min_code, fmt.max_code)


def wrap(code, fmt: QFormat):
    """Keep the low `fmt.width` bits, reinterpreted in `fmt` (two's-complement overflow)."""
    low = np.bitwise_and(code, (1 << fmt.width) - 1)
    if fmt.signed:
        low = low - ((low >> (fmt.width - 1)) << fmt.width)
    return low


def overflow(code, fmt: QFormat, mode: str):
    return saturate(code, fmt) if mode == "saturate" else wrap(code, fmt)


def shift_round(code, shift: int, rounding: str):
    """Scale by 2**-shift: arithmetic right shift with rounding, or an exact left shift."""
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


def table_lookup(code, src_frac: int, addr: QFormat, table, rounding: str):
    """Activation ROM read: requantize to the (saturating) address format, then index the table,
    whose entry 0 belongs to the most negative address."""
    index = requantize(code, src_frac, addr, rounding, "saturate") - addr.min_code
    return np.take(table, index)


def pwl_lookup(code, src_frac: int, addr: QFormat, base, slope, slope_frac: int,
               segment_bits: int, out: QFormat, rounding: str):
    """Piecewise-linear activation: the address' top `segment_bits` pick a segment (base value
    and slope), the low bits are the offset into it; one multiply interpolates."""
    index = requantize(code, src_frac, addr, rounding, "saturate") - addr.min_code
    offset_bits = addr.width - segment_bits
    segment = np.right_shift(index, offset_bits)
    offset = np.bitwise_and(index, (1 << offset_bits) - 1)
    step = shift_round(multiply(np.take(slope, segment), offset), slope_frac - out.frac_bits, rounding)
    return saturate(np.take(base, segment) + step, out)
