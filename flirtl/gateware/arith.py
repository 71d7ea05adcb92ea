"""Gateware twins of `flirtl.arith`: same names, same arguments, Amaranth values instead of arrays.

Each function builds combinational logic; the result has exactly the shape of the target format
(`fmt_shape(fmt)`), so the twins compose like their NumPy counterparts.
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, Shape, Value, signed, unsigned

from ..spec import QFormat


def fmt_shape(fmt: QFormat) -> Shape:
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def _fit(value: Value, fmt: QFormat) -> Value:
    low = value.as_unsigned()[:fmt.width] if len(value) >= fmt.width else value
    return low.as_signed() if fmt.signed else low.as_unsigned()


def saturate(code: Value, fmt: QFormat) -> Value:
    """Clamp to the range of `fmt`."""
    code = Value.cast(code)
    hi, lo = Const(fmt.max_code), Const(fmt.min_code, signed(max(fmt.width, 2)))
    clamped = Mux(code > hi, hi, Mux(code < lo, lo, code))
    return _fit(clamped.as_signed() if fmt.signed else clamped, fmt)


def wrap(code: Value, fmt: QFormat) -> Value:
    """Keep the low `fmt.width` bits, reinterpreted in `fmt`."""
    code = Value.cast(code)
    if len(code) < fmt.width:  # sign- or zero-extend first
        code = code.as_signed() if code.shape().signed else code
        code = Value.cast(code) + Const(0, fmt.width + 1)
    return _fit(code, fmt)


def overflow(code: Value, fmt: QFormat, mode: str) -> Value:
    return saturate(code, fmt) if mode == "saturate" else wrap(code, fmt)


def shift_round(code: Value, shift: int, rounding: str) -> Value:
    """Scale by 2**-shift: arithmetic right shift with rounding, or an exact left shift."""
    code = Value.cast(code)
    if shift <= 0:
        return code << -shift
    if rounding == "half_up":
        code = code + (1 << (shift - 1))
    return code >> shift


def requantize(code: Value, src_frac: int, dst: QFormat, rounding: str, overflow_mode: str) -> Value:
    """Move a code with `src_frac` fractional bits into format `dst`."""
    return overflow(shift_round(code, src_frac - dst.frac_bits, rounding), dst, overflow_mode)


def multiply(a: Value, b: Value) -> Value:
    """Full-precision product (Amaranth widens it: len(a) + len(b) bits)."""
    return Value.cast(a) * Value.cast(b)
