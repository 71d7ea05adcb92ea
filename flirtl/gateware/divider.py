"""Sequential unsigned divider: the per-pixel reciprocal of the peak and the lifetime ratios are one
divide each, rare enough that one quotient bit per cycle costs nothing in throughput."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class Divider(wiring.Component):
    """Restoring division: `quotient = floor(dividend / divisor)`, one quotient bit per cycle.

    A division by zero gives a quotient of all ones (every trial subtraction of 0 succeeds);
    callers avoid it, as the golden model does.

    Parameters
    ----------
    dividend_width : int, >= 1
    divisor_width : int, >= 1

    Interface
    ---------
    start : In(1)
        Begin a division on this clock edge; `dividend` and `divisor` are sampled now. A start
        while busy abandons the division in progress and begins the new one.
    dividend : In(dividend_width)
    divisor : In(divisor_width)
    busy : Out(1)
        A division is in progress (from the cycle after `start` until `done`).
    done : Out(1)
        Pulses for one cycle, `latency` cycles after `start`: `quotient` is final.
    quotient : Out(dividend_width)
        Valid from `done` until the next `start`; meaningless while `busy`.

    `start` may be high in the cycle of `done`, so back-to-back divisions take `latency` cycles each.
    """

    def __init__(self, dividend_width: int, divisor_width: int):
        for name, value in (("dividend_width", dividend_width), ("divisor_width", divisor_width)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value!r}")
        self._dividend_width = dividend_width
        self._divisor_width = divisor_width
        super().__init__({
            "start": In(1),
            "dividend": In(dividend_width),
            "divisor": In(divisor_width),
            "busy": Out(1),
            "done": Out(1),
            "quotient": Out(dividend_width),
        })

    @property
    def dividend_width(self) -> int:
        return self._dividend_width

    @property
    def divisor_width(self) -> int:
        return self._divisor_width

    @property
    def latency(self) -> int:
        """Cycles from the `start` cycle to the `done` cycle: one load, one per quotient bit."""
        return self.latency_for(self._dividend_width)

    @staticmethod
    def latency_for(dividend_width: int) -> int:
        return dividend_width + 1

    def elaborate(self, platform):
        m = Module()
        n = self._dividend_width
        # The shift register starts as the dividend; each step shifts its top bit into the partial
        # remainder and a quotient bit in at the bottom, so after n steps it holds the quotient.
        shift = Signal(n)
        remainder = Signal(self._divisor_width)
        divisor = Signal(self._divisor_width)
        steps_left = Signal(range(n + 1))

        trial = Cat(shift[-1], remainder)  # remainder * 2 + next dividend bit
        fits = trial >= divisor
        m.d.comb += self.quotient.eq(shift)
        m.d.sync += self.done.eq(0)

        with m.If(self.start):
            m.d.sync += [shift.eq(self.dividend), remainder.eq(0), divisor.eq(self.divisor),
                         steps_left.eq(n), self.busy.eq(1)]
        with m.Elif(self.busy):
            # A partial remainder stays below the divisor, so `trial - divisor` fits its width
            # (with divisor 0 it wraps, but every bit is 1 anyway).
            m.d.sync += [
                shift.eq(Cat(fits, shift[:-1])),
                remainder.eq(Mux(fits, trial - divisor, trial)),
                steps_left.eq(steps_left - 1),
            ]
            with m.If(steps_left == 1):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
