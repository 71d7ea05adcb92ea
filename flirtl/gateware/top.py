"""The IP top: `engines` pixel engines behind one AXI4-Stream input and one result stream.

Pixels are dealt to the engines in turn (T beats each) and their results collected in the same
turn, so results leave in input order. `FlirtlTop.ports()` describes the flat Verilog ports.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..quant import QuantizedModel
from .engine import PixelEngine, count_layout, result_layout, sfd_layout


class FlirtlCore(wiring.Component):
    """`engines` copies of `PixelEngine`; `s_axis`: raw counts, `m_axis`: results."""

    def __init__(self, model: QuantizedModel, *, lanes: int | None = None, engines: int = 1,
                 sfd_stream: bool = False):
        if not isinstance(engines, int) or isinstance(engines, bool) or engines < 1:
            raise ValueError(f"engines must be a positive int, not {engines!r}")
        self._engines = [PixelEngine(model, lanes=lanes, sfd_stream=sfd_stream) for _ in range(engines)]
        self._spec = model.spec
        members = {
            "s_axis": In(stream.Signature(count_layout(model.spec))),
            "m_axis": Out(stream.Signature(result_layout(model.spec))),
        }
        if sfd_stream:
            members["m_sfd_axis"] = Out(stream.Signature(sfd_layout(model.spec)))
        super().__init__(members)

    @property
    def engine(self) -> PixelEngine:
        return self._engines[0]

    @property
    def engines(self) -> int:
        return len(self._engines)

    def elaborate(self, platform):
        m = Module()
        n = len(self._engines)
        for index, engine in enumerate(self._engines):
            m.submodules[f"engine{index}"] = engine
        sfd = self.engine.sfd_stream
        if n == 1:
            wiring.connect(m, wiring.flipped(self.s_axis), self._engines[0].i)
            wiring.connect(m, self._engines[0].o, wiring.flipped(self.m_axis))
            if sfd:
                wiring.connect(m, self._engines[0].sfd, wiring.flipped(self.m_sfd_axis))
            return m
        T = self._spec.n_bins
        deal = Signal(range(n))
        beat = Signal(range(T))
        collect = Signal(range(n))
        for index, engine in enumerate(self._engines):
            with m.If(deal == index):
                m.d.comb += [engine.i.payload.eq(self.s_axis.payload), engine.i.valid.eq(self.s_axis.valid),
                             self.s_axis.ready.eq(engine.i.ready)]
            with m.If(collect == index):
                m.d.comb += [self.m_axis.payload.eq(engine.o.payload), self.m_axis.valid.eq(engine.o.valid),
                             engine.o.ready.eq(self.m_axis.ready)]
        # the engine cuts pixels every T beats; dealing follows the same count
        with m.If(self.s_axis.valid & self.s_axis.ready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(beat == T - 1):
                m.d.sync += [beat.eq(0), deal.eq(Mux(deal == n - 1, 0, deal + 1))]
        with m.If(self.m_axis.valid & self.m_axis.ready):
            m.d.sync += collect.eq(Mux(collect == n - 1, 0, collect + 1))
        if sfd:  # whole pixels (T beats, the last one marked) in the same turn
            collect_sfd = Signal(range(n))
            for index, engine in enumerate(self._engines):
                with m.If(collect_sfd == index):
                    m.d.comb += [self.m_sfd_axis.payload.eq(engine.sfd.payload),
                                 self.m_sfd_axis.valid.eq(engine.sfd.valid),
                                 engine.sfd.ready.eq(self.m_sfd_axis.ready)]
            with m.If(self.m_sfd_axis.valid & self.m_sfd_axis.ready & self.m_sfd_axis.payload.last):
                m.d.sync += collect_sfd.eq(Mux(collect_sfd == n - 1, 0, collect_sfd + 1))
        return m
