"""The pixel engine: raw counts in, tau1 / tau2 / a / mean lifetime out, bit-exact to `GoldenModel`.

Datapath (weight-stationary rows, broadcast state)::

    counts ─> input stage ─(bg, 1/peak)─> context ─┐
                                                   │ one slot = I*H cycles per GRU step
    state[ctx][j] ──broadcast──> L MAC lanes ──> bank A ──> bank B ──> GRU update (1 unit/cycle)
                                  (rows of W_hh                         │          └─> state[ctx]
                                   and the head)                        └─ head rows ─> running sums
                                                                                    └─> lifetime unit

* Rows: the 3H rows of W_hh ([r; z; n]) and the 3 head rows. Lane l owns rows l, l+L, l+2L, ...,
  so a GRU step (a *slot*) costs I = ceil((3H+3)/L) row passes of H cycles each. The head uses
  h'(t), which is exactly the state broadcast during the pixel's next slot.
* Slots rotate over `contexts` pixels in flight: while the lanes compute pixel A's products, the
  GRU update finishes pixel B's step, so the lanes never wait on the recurrence.
* A pixel takes 2T+1 slots: T encoder steps, T decoder steps (zero input: gx is a constant), and one
  slot whose only product is the head on the last decoder state.
* A decoder fed the encoder's state (RepeatVector, `spec.decoder_input`) adds one *bridge* step
  after the encoder: the lanes hold the rows of the decoder's W_ih over the encoder's final state,
  and its GRU update writes gx = W_ih h_enc + b_ih into a per-pixel buffer that the decoder's
  updates read instead of the constant gx, and zeros into the state (the decoder starts from zero).
* The Keras (reset-before) cell multiplies r into h *before* W_hn, so its step takes two slots: the
  r, z (and head) rows on h, then the n rows on r*h, which the GRU update of the first slot wrote
  into a per-pixel buffer that the second slot broadcasts. A pixel takes 4T+1 slots (a bridge step
  is two slots too: its r, z rows, then its n rows on h_enc itself).
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden import GoldenModel
from ..ports import result_fields, result_width, sfd_width
from ..quant import QuantizedModel
from ..spec import SFD_CHANNELS, ModelSpec
from .activation import Activation
from .arith import fmt_shape, multiply, overflow, requantize, shift_round
from .divider import Divider

#: Clock edges of a hidden-state read (`_read_unit`: the unit within its group, then context + group).
_READ_EDGES = 2
#: Cycles from a slot's last issue cycle until the GRU update reads its accumulators: the state read,
#: the group's broadcast copy, the multiplier's register, product, fabric register, bank A, bank B.
_BANK_LATENCY = _READ_EDGES + 6
#: Lanes that one copy of the broadcast, the ROM address and the accumulator controls drives.
_FANOUT = 8
#: Operand bits of an unsigned operand that one multiplier block takes (18x18 signed on ECP5 and
#: Gowin, 18x18 from two 9x9 on Nexus, 25x18 on 7-series).
_MULTIPLIER_BITS = 17
#: Registers of the GRU update besides its activation ROMs (`_Pipeline` counts them as it builds
#: the update and elaborate() checks the count).
_UPDATE_REGISTERS = 17
#: Registers between bank B and the head's running sums (the requantized outputs' register); the
#: finished pixel's record leaves one cycle after its last sum.
_HEAD_LATENCY = 1


def count_layout(spec: ModelSpec) -> data.StructLayout:
    """One input beat: a raw photon count; `last` marks the pixel's final time bin."""
    return data.StructLayout({"data": unsigned(spec.fmt("counts").width), "last": 1})


def sfd_layout(spec: ModelSpec) -> data.StructLayout:
    """One SFD beat: the three channels of one decoder step (`flirtl.ports` documents the packing);
    `last` on the pixel's T-th step."""
    return data.StructLayout({"data": unsigned(sfd_width(spec)), "last": 1})


def result_layout(spec: ModelSpec) -> data.StructLayout:
    """One output beat per pixel (`flirtl.ports` documents the packing)."""
    return data.StructLayout({"data": unsigned(result_width(spec)), "last": 1})


class _Pipeline:
    """Registers of a feed-forward pipeline, stage by stage: `reg` registers a value computed in the
    current stage, `next(n)` moves on by n register stages, and `at(value)` returns a value of an
    earlier stage delayed to the current one. The pipeline counts its own stages (`registers`)."""

    def __init__(self, m: Module, prefix: str):
        self._m, self._prefix = m, prefix
        self._stage = 1
        self._born = {}  # id(register) -> the stage whose edge loaded it

    @property
    def registers(self) -> int:
        """Register stages from the first stage's inputs to the outputs of the stages built."""
        return self._stage - 1

    def reg(self, value, name: str):
        out = _delay(self._m, value, 1, name)
        self._born[id(out)] = self._stage
        return out

    def next(self, stages: int = 1) -> None:
        self._stage += stages

    def later(self, value, edges: int):
        """Adopt `value`, built outside the pipeline from the current stage's inputs and registered
        `edges` times on the way, as a register of the stage `edges` - 1 ahead."""
        self._born[id(value)] = self._stage + edges - 1
        return value

    def at(self, value):
        """A register of an earlier stage, delayed to line up with the current stage's inputs."""
        born = self._born[id(value)]
        out = _delay(self._m, value, self._stage - 1 - born, f"{value.name}_s")
        self._born[id(out)] = self._stage - 1
        return out


#: Units per group of the hidden-state reads' first register stage (a LUT4 pair and its muxes).
_READ_GROUP = 8


def _read_unit(m: Module, entry, ctx, unit, contexts: int, units: int, name: str, *, zero=None):
    """entry(k, j) of context `ctx`, unit `unit` (registers, one per context and unit), `_READ_EDGES`
    clock edges later: every context's unit within its group of `_READ_GROUP` is registered, then the
    context and the group pick one (one contexts x units : 1 multiplexer is too deep for a cycle).
    `zero`: read 0 instead (h(0) = 0), decided with the indices."""
    groups = math.ceil(units / _READ_GROUP)
    low = unit.as_unsigned()[:(_READ_GROUP - 1).bit_length()]
    parts = [_delay(m, Array(entry(k, j) for j in range(g * _READ_GROUP, min(units, (g + 1) * _READ_GROUP)))[low],
                    1, f"{name}_part{k}_{g}") for k in range(contexts) for g in range(groups)]
    pick = _delay(m, ctx * groups + (unit >> low.shape().width), 1, f"{name}_pick")
    value = Array(parts)[pick]
    if zero is not None:
        value = Mux(_delay(m, zero, 1, f"{name}_zero"), 0, value)
    return _delay(m, value, 1, name)


def _region_width(entries: int) -> int:
    """Address bits of one pixel's entries (its bins, its units) in a buffer whose per-pixel
    regions start at powers of two: the address is (region, entry) side by side."""
    return max(1, (entries - 1).bit_length())


def _delay(m: Module, value, cycles: int, name: str, *, keep: bool = False):
    """`value` seen `cycles` clock edges later (a shift register). `keep`: synthesis must not merge
    these registers with equal ones (copies that split a large fan-out)."""
    for stage in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{stage + 1}", attrs={"keep": 1} if keep else {})
        m.d.sync += reg.eq(value)
        value = reg
    return value


class PixelEngine(wiring.Component):
    """One pixel engine. `i`: raw counts (T beats per pixel); `o`: one result beat per pixel.

    lanes:    parallel multiply-accumulate units (1 .. rows per slot: 3H+3 for the PyTorch cell,
              2H+3 for the Keras cell; default one row each).
    contexts: pixels in flight (default: the fewest that hide the GRU update's latency).
    sfd_stream: also emit the IRF-free decay (T beats per pixel) on `sfd`; a pixel is admitted only
              when the SFD buffer has room for all it will emit, so a slow SFD reader throttles the
              input instead of stalling a pixel half-way.
    """

    def __init__(self, model: QuantizedModel, *, lanes: int | None = None, contexts: int | None = None,
                 sfd_stream: bool = False):
        if not isinstance(model, QuantizedModel):
            raise TypeError(f"model must be a QuantizedModel, not {model!r}")
        spec = model.spec
        self._keras = spec.gru == "keras"
        self._repeat = spec.decoder_input == "encoder_state"
        rows = (2 if self._keras else 3) * spec.hidden + SFD_CHANNELS
        lanes = rows if lanes is None else lanes
        if not isinstance(lanes, int) or not 1 <= lanes <= rows:
            raise ValueError(f"lanes must be an int in 1..{rows} (rows per slot), not {lanes!r}")
        self._model, self._spec, self._golden = model, spec, GoldenModel(model)
        self._rows, self._lanes = rows, lanes
        self._passes = math.ceil(rows / lanes)
        self._slot = self._passes * spec.hidden
        if self._slot < _BANK_LATENCY:  # a slot's descriptor must hold until its sums reach bank B
            raise ValueError(f"a GRU step of {self._slot} cycles is too short for the pipeline; "
                             f"use hidden >= 8 or fewer lanes")
        # cycles from reading a unit's accumulators to its state write (see the GRU update's stages)
        self._update_latency = _UPDATE_REGISTERS + 1 + 2 * Activation.latency_for(spec)
        needed = 1 + math.ceil((_BANK_LATENCY + self._update_latency) / self._slot)
        contexts = max(2, needed) if contexts is None else contexts
        if not isinstance(contexts, int) or contexts < needed:
            raise ValueError(f"contexts must be an int >= {needed} to hide the GRU update, not {contexts!r}")
        self._contexts = contexts
        self._sfd_stream = bool(sfd_stream)
        members = {
            "i": In(stream.Signature(count_layout(spec))),
            "o": Out(stream.Signature(result_layout(spec))),
        }
        if self._sfd_stream:
            members["sfd"] = Out(stream.Signature(sfd_layout(spec)))
        super().__init__(members)

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def sfd_stream(self) -> bool:
        return self._sfd_stream

    @property
    def contexts(self) -> int:
        return self._contexts

    @property
    def slot_cycles(self) -> int:
        """Cycles per GRU step of one pixel (all lanes busy)."""
        return self._slot

    @property
    def finish_cycle(self) -> int:
        """Cycle of the following slot in which a finished pixel's record enters the lifetime
        unit's queue (the slot's descriptor still holds then)."""
        return _BANK_LATENCY + _HEAD_LATENCY

    @property
    def latency_bound(self) -> int:
        """Cycles from a lone pixel's last input beat to its result, at most (input stage, a wait
        for its context's slot, 2T+1 slots of its context, GRU update, lifetime unit)."""
        spec, F, S = self._spec, self._contexts, self._slot
        input_stage = 3 + Divider.latency_for(spec.recip_frac + 1)
        slots = (F + 1) * S + (self.slots_per_pixel - 1) * F * S
        lifetime = 3 * (Divider.latency_for(self._ratio_dividend_width) + 4) + 7
        return input_stage + slots + self.finish_cycle + lifetime + 4

    @property
    def _ratio_dividend_width(self) -> int:
        """Dividend of the lifetime unit's divider: sum << ratio bits, or short << fraction bits."""
        spec = self._spec
        return max(self._sum_width + spec.fmt("ratio").frac_bits,
                   spec.fmt("sfd").width + spec.fmt("fraction").frac_bits)

    @property
    def _sum_width(self) -> int:
        return self._spec.fmt("sfd").width + self._spec.n_bins.bit_length()

    @property
    def slots_per_step(self) -> int:
        return 2 if self._keras else 1

    @property
    def steps_per_pixel(self) -> int:
        """GRU steps of a pixel: T encoder steps, the bridge step of a RepeatVector decoder, T
        decoder steps."""
        return 2 * self._spec.n_bins + self._repeat

    @property
    def slots_per_pixel(self) -> int:
        return self.steps_per_pixel * self.slots_per_step + 1

    @property
    def cycles_per_pixel(self) -> int:
        """Steady-state cycles between results with the input never starved."""
        return self.slots_per_pixel * self._slot

    def elaborate(self, platform):
        m = Module()
        spec, golden, codes = self._spec, self._golden, self._model.codes
        H, T, F, L, P, S = (spec.hidden, spec.n_bins, self._contexts, self._lanes, self._passes,
                            self._slot)
        R = self._rows
        fmt = spec.fmt
        rnd, ovf = spec.rounding, spec.overflow
        count_w = fmt("counts").width
        rounding_steps = spec.requantizations()

        def rounded(value, step: str):
            """`value` rounded as the spec's step `step` (`ModelSpec.requantizations`)."""
            step = rounding_steps[step]
            return requantize(value, step.src_frac, fmt(step.dst), rnd, ovf)

        # -- input stage: receive a pixel, background, peak, one reciprocal ---------------------
        regions = F + 1  # each context owns a region of the counts buffer; one more is filling
        # A region's T bins start at a power-of-two address: the address is (region, bin) side by
        # side, no multiplier between the region register and the memory.
        bin_w = _region_width(T)
        counts = Memory(shape=unsigned(count_w), depth=regions << bin_w, init=[])
        m.submodules.counts = counts
        counts_wr = counts.write_port()
        counts_rd = counts.read_port()
        m.submodules.recip_div = recip_div = Divider(dividend_width=spec.recip_frac + 1,
                                                     divisor_width=count_w)
        fill_region = Signal(range(regions), init=F)
        fill_index = Signal(range(T))
        bg_shift = spec.bg_bins.bit_length() - 1
        bg_sum = Signal(count_w + bg_shift)
        tail_sum = Signal(count_w + bg_shift)  # rule 'ends': the last bg_bins bins, too
        count_max = Signal(count_w)
        framing = Signal()
        staged_bg = Signal(count_w)
        staged_peak = Signal(count_w)
        staged_recip = Signal(spec.recip_frac + 1)
        staged = Signal()
        admit = Signal()

        beat = self.i.payload
        with m.FSM(name="input"):
            with m.State("RECEIVE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.comb += [counts_wr.addr.eq(Cat(fill_index, fill_region)),
                                 counts_wr.data.eq(beat.data), counts_wr.en.eq(1)]
                    with m.If(fill_index < spec.bg_bins):
                        m.d.sync += bg_sum.eq(bg_sum + beat.data)
                    if spec.background == "ends":
                        with m.If(fill_index >= T - spec.bg_bins):
                            m.d.sync += tail_sum.eq(tail_sum + beat.data)
                    with m.If(beat.data > count_max):
                        m.d.sync += count_max.eq(beat.data)
                    at_end = fill_index == T - 1
                    with m.If(beat.last != at_end):
                        m.d.sync += framing.eq(1)
                    m.d.sync += fill_index.eq(Mux(at_end, 0, fill_index + 1))
                    with m.If(at_end):
                        m.next = "BACKGROUND"
            with m.State("BACKGROUND"):
                # the fewer counts of the two ends: the end the decay has not reached
                chosen = bg_sum if spec.background == "head" else Mux(tail_sum < bg_sum, tail_sum, bg_sum)
                m.d.sync += staged_bg.eq(shift_round(chosen, bg_shift, "half_up"))
                m.next = "PEAK"
            with m.State("PEAK"):
                peak = Mux(count_max > staged_bg, count_max - staged_bg, 0)
                m.d.sync += staged_peak.eq(peak)
                m.d.comb += [recip_div.dividend.eq(1 << spec.recip_frac), recip_div.divisor.eq(peak),
                             recip_div.start.eq(peak != 0)]
                m.next = "RECIPROCAL"
            with m.State("RECIPROCAL"):
                with m.If(staged_peak == 0):
                    m.d.sync += staged_recip.eq(0)  # an empty pixel normalises to all zeros
                    m.next = "STAGED"
                with m.Elif(recip_div.done):
                    m.d.sync += staged_recip.eq(recip_div.quotient)
                    m.next = "STAGED"
            with m.State("STAGED"):
                m.d.comb += staged.eq(1)
                with m.If(admit):
                    m.d.sync += [bg_sum.eq(0), tail_sum.eq(0), count_max.eq(0), framing.eq(0)]
                    m.next = "RECEIVE"

        # -- contexts and the slot schedule -------------------------------------------------------
        spt = self.slots_per_step
        last_slot = self.slots_per_pixel - 1
        step_w = range(last_slot + 1)
        busy = Array(Signal(name=f"busy{k}") for k in range(F))
        steps = Array(Signal(step_w, name=f"step{k}") for k in range(F))
        region = Array(Signal(range(regions), init=k, name=f"region{k}") for k in range(F))
        bg = Array(Signal(count_w, name=f"bg{k}") for k in range(F))
        recip = Array(Signal(spec.recip_frac + 1, name=f"recip{k}") for k in range(F))
        ctx_framing = Array(Signal(name=f"framing{k}") for k in range(F))

        cycle = Signal(range(S), init=S - 1)
        row_pass = Signal(range(max(P, 2)), init=P - 1)  # never zero bits wide
        column = Signal(range(H), init=H - 1)
        ctx = Signal(range(F), init=F - 1)
        slot_step = Signal(step_w)
        slot_active = Signal()
        slot_end = cycle == S - 1

        m.d.sync += [cycle.eq(Mux(slot_end, 0, cycle + 1)),
                     column.eq(Mux(column == H - 1, 0, column + 1))]
        with m.If(column == H - 1):
            m.d.sync += row_pass.eq(Mux(row_pass == P - 1, 0, row_pass + 1))

        # Results waiting anywhere downstream never exceed the result FIFO: admission holds back.
        result_depth = F + 2
        in_system = Signal(range(result_depth + 1))
        retired = self.o.valid & self.o.ready
        m.d.sync += in_system.eq(in_system + admit - retired)
        sfd_room = Const(1)
        if self._sfd_stream:
            # Pixels in flight write their decoder outputs interleaved; each owns a region of the
            # SFD buffer (T beats) from admission until its region has been sent, in input order.
            sfd_regions = F + 2
            sfd_free = Signal(sfd_regions, init=(1 << sfd_regions) - 1)
            sfd_pick = Signal(range(sfd_regions))  # the lowest free region
            for r in reversed(range(sfd_regions)):
                with m.If(sfd_free[r]):
                    m.d.comb += sfd_pick.eq(r)
            sfd_room = sfd_free.any()
            sfd_region = Array(Signal(range(sfd_regions), name=f"sfd_region{k}") for k in range(F))
            sfd_released = Signal(sfd_regions)  # set by the sender when a region's last beat left
            m.d.sync += sfd_free.eq((sfd_free & ~Mux(admit, 1 << sfd_pick, 0)) | sfd_released)

        with m.If(slot_end):
            nxt = Mux(ctx == F - 1, 0, ctx + 1)
            m.d.sync += ctx.eq(nxt)
            with m.If(busy[nxt]):
                m.d.sync += [slot_step.eq(steps[nxt]), slot_active.eq(1)]
                last_step = steps[nxt] == last_slot
                m.d.sync += [steps[nxt].eq(steps[nxt] + 1), busy[nxt].eq(~last_step)]
            with m.Elif(staged & (in_system < result_depth) & sfd_room):
                m.d.comb += admit.eq(1)
                m.d.sync += [slot_step.eq(0), slot_active.eq(1), busy[nxt].eq(1), steps[nxt].eq(1),
                             region[nxt].eq(fill_region), fill_region.eq(region[nxt]),
                             bg[nxt].eq(staged_bg), recip[nxt].eq(staged_recip),
                             ctx_framing[nxt].eq(framing)]
                if self._sfd_stream:
                    m.d.sync += sfd_region[nxt].eq(sfd_pick)
            with m.Else():
                m.d.sync += [slot_step.eq(0), slot_active.eq(0)]

        def phases(step):
            """(encoding, bridging, decoding, sub-slot B, kind) of a slot step; kind: the rows the lanes hold,
            Cat(sub-slot, phase) with phase 0 encoder, 1 decoder, 2 bridge (see `_slot_rows`)."""
            dec_start = (T + self._repeat) * spt
            encoding, decoding = step < T * spt, step >= dec_start
            bridging = ~encoding & ~decoding if self._repeat else Const(0)
            phase = Cat(decoding, bridging) if self._repeat else decoding
            # Keras: odd slots are the n rows of a step (sub-slot B), even ones its r, z and head rows.
            sub_b = step[0] if self._keras else Const(0)
            return encoding, bridging, decoding, sub_b, (Cat(sub_b, phase) if self._keras else phase)

        encoding, bridging, decoding, sub_b, kind = phases(slot_step)

        # -- encoder input of this slot: x = (count - bg) * (1 / peak) -------------------------------
        input_fmt = fmt("input")
        x_slot = Signal(fmt_shape(input_fmt))
        # The read address is registered: the memory's read-during-write compare starts at flip-flops.
        read_bin = Mux(encoding, slot_step >> (spt - 1), 0)[:bin_w]
        m.d.sync += counts_rd.addr.eq(Cat(read_bin, region[ctx]))
        signal = Signal(count_w)
        count = _delay(m, counts_rd.data, 1, "x_count")  # a block RAM's clock-to-out is long
        above_bg = Signal(signed(count_w + 1))  # one subtraction whose sign picks zero
        m.d.comb += above_bg.eq(count - bg[ctx])
        with m.If(_delay(m, cycle == 0, 3, "x_read")):  # the count arrives
            m.d.sync += signal.eq(Mux(above_bg < 0, 0, above_bg[:count_w]))
        # signal * (1 / peak) as partial products of 17-bit slices of the reciprocal (each one
        # multiplier block), summed in the next stage
        recip_q = _delay(m, recip[ctx], 1, "x_recip")
        slices = range(0, len(recip_q), _MULTIPLIER_BITS)
        partial = [Signal(count_w + _MULTIPLIER_BITS, name=f"x_partial{lo}") for lo in slices]
        with m.If(_delay(m, cycle == 0, 4, "x_scale")):
            m.d.sync += [p.eq(multiply(signal, recip_q[lo:lo + _MULTIPLIER_BITS])) for p, lo in zip(partial, slices)]
        scaled = Signal(count_w + len(recip_q))
        with m.If(_delay(m, cycle == 0, 5, "x_sum")):
            m.d.sync += scaled.eq(sum(p << lo for p, lo in zip(partial, slices)))
        with m.If(_delay(m, cycle == 0, 6, "x_requantize")):
            m.d.sync += x_slot.eq(rounded(scaled, "input"))

        # -- broadcast of the state and the MAC lanes ------------------------------------------------
        hid = fmt("hidden")
        state = Array(Array(Signal(fmt_shape(hid), name=f"h{k}_{j}") for j in range(H)) for k in range(F))
        if self._keras:
            # r * h of the step in flight, broadcast by its n-row slot; z waits for that slot.
            reset_h = Array(Array(Signal(fmt_shape(hid), name=f"rh{k}_{j}") for j in range(H)) for k in range(F))
            update_z = Array(Array(Signal(fmt_shape(fmt("gate")), name=f"z{k}_{j}") for j in range(H))
                             for k in range(F))
            # a bridge step's n rows multiply h_enc itself (no reset gate before W_ih)
            reset_now = sub_b & ~bridging
            broadcast = _read_unit(m, lambda k, j: Mux(reset_now, reset_h[k][j], state[k][j]), ctx, column, F, H,
                                   "broadcast", zero=(slot_step == 0) & ~reset_now)  # h(0) = 0
        else:
            broadcast = _read_unit(m, lambda k, j: state[k][j], ctx, column, F, H, "broadcast", zero=slot_step == 0)

        lane_products = {acc: weight for acc, (weight, operand, _bias, _terms) in spec.matvecs().items()
                         if operand == "hidden"}
        acc_w = max(fmt(acc).width for acc in lane_products)
        weight_w = max(fmt(weight).width for weight in lane_products.values())
        # lane pipeline: ROM read, weight register, product register, fabric register, accumulate.
        # The lane is a registered A*B+P (the accumulator restarts from zero): the row biases are
        # added after the slot, in the GRU update and the head, outside the accumulator's feedback.
        # Sums are modulo 2**acc_w, so the order of the additions does not change a bit.
        first = _delay(m, column == 0, _READ_EDGES + 3, "first")  # + multiplier in, product, fabric
        last = _delay(m, column == H - 1, _READ_EDGES + 3, "last")
        pass2 = _delay(m, row_pass, _READ_EDGES + 3, "pass")
        # One register per group of lanes drives the group's multipliers and accumulators: no
        # net fans out to every lane (the copies carry `keep` so that synthesis does not merge them).
        # Each lane's weight ROM (a LUT tree) gets its own address register: a group's would drive
        # every ROM LUT of its lanes, and that net's routing made the ROM read the critical path.
        groups = math.ceil(L / _FANOUT)
        # (one register in step with the state read's first)
        rom_addr = _delay(m, Cat(column, row_pass[:(P - 1).bit_length()], kind), 1, "rom_addr")
        bank_a = [Signal(signed(acc_w), name=f"bank_a{r}") for r in range(R)]
        for group in range(groups):
            copy = lambda value, name: _delay(m, value, 1, f"g{group}_{name}", keep=True)  # noqa: E731
            broadcast_g = _delay(m, copy(broadcast, "broadcast"), 1, f"g{group}_broadcast")
            first_g, last_g, pass_g = copy(first, "first"), copy(last, "last"), copy(pass2, "pass")
            for lane in range(group * _FANOUT, min(L, (group + 1) * _FANOUT)):
                weights = self._lane_rom(lane)
                rom = Memory(shape=signed(weight_w), depth=len(weights), init=weights)
                m.submodules[f"lane{lane}_w"] = rom
                w_rd = rom.read_port()
                m.d.comb += w_rd.addr.eq(_delay(m, rom_addr, 1, f"lane{lane}_rom_addr", keep=True))
                weight = _delay(m, w_rd.data, 1, f"lane{lane}_weight")  # a ROM's clock-to-out is long
                product = Signal(signed(weight_w + hid.width), name=f"lane{lane}_product")
                acc = Signal(signed(acc_w), name=f"lane{lane}_acc")
                m.d.sync += product.eq(multiply(weight, broadcast_g))
                # The product leaves its multiplier block (whose output register holds it) through
                # a fabric register: blocks sit in a few rows, often far from the lane's carry
                # chain, and that route alone fills a cycle.
                product_near = _delay(m, product, 1, f"lane{lane}_product_near")
                acc_next = Mux(first_g, 0, acc) + product_near
                m.d.sync += acc.eq(acc_next)
                for p in range(P):
                    if p * L + lane < R:
                        with m.If(last_g & (pass_g == p)):
                            m.d.sync += bank_a[p * L + lane].eq(acc_next)

        u_ctx, u_step, u_active = (Signal.like(ctx, name="u_ctx"), Signal.like(slot_step, name="u_step"),
                                   Signal(name="u_active"))
        u_x = Signal.like(x_slot, name="u_x")
        u_unit = Signal(range(H))
        u_run = Signal()
        # Bank B: the finished slot's sums. The GRU update reads one unit per cycle, so each gate's
        # block shifts by one unit per cycle and the update always reads its first entry: no
        # H:1 multiplexers. The head rows stay in place.
        bank_b = [Signal(signed(acc_w), name=f"bank_b{r}") for r in range(R)]
        blocks = 2 if self._keras else 3
        slot_done = _delay(m, slot_end, _BANK_LATENCY - 1, "slot_done")  # bank A final: copy to bank B
        head_row = blocks * H
        head_bias = [int(b) for b in self._golden.head.bias]
        with m.If(slot_done):
            m.d.sync += [bank_b[r].eq(bank_a[r]) for r in range(head_row)]
            m.d.sync += [bank_b[head_row + c].eq(bank_a[head_row + c] + head_bias[c]) for c in range(SFD_CHANNELS)]
        with m.Elif(u_run):
            m.d.sync += [bank_b[b * H + j].eq(bank_b[b * H + j + 1]) for b in range(blocks) for j in range(H - 1)]
        # The finished slot's descriptor, held until its GRU update starts.
        done_ctx, done_step, done_active = (Signal.like(ctx, name="done_ctx"),
                                            Signal.like(slot_step, name="done_step"), Signal(name="done_active"))
        done_x = Signal.like(x_slot, name="done_x")
        with m.If(slot_end):
            m.d.sync += [done_ctx.eq(ctx), done_step.eq(slot_step), done_active.eq(slot_active),
                         done_x.eq(x_slot)]
        update_start = _delay(m, slot_done, 1, "update_start")

        # -- GRU update: one hidden unit per cycle ---------------------------------------------------
        # Unit 0 is read the cycle bank B becomes valid, unit H-1 the cycle before it is next
        # overwritten: a slot lasts at least H cycles.
        with m.If(slot_done):
            m.d.sync += [u_ctx.eq(done_ctx), u_step.eq(done_step), u_active.eq(done_active),
                         u_x.eq(done_x), u_unit.eq(0), u_run.eq(1)]
        with m.Elif(u_run):
            m.d.sync += u_unit.eq(u_unit + 1)
            with m.If(u_unit == H - 1):
                m.d.sync += u_run.eq(0)

        preact, gate = fmt("preact"), fmt("gate")
        acc_x = fmt("enc.acc_x")
        _, u_bridging, u_decoding, u_sub_b, u_kind = phases(u_step)

        # One hidden unit per cycle, in short register-to-register steps so that the update meets
        # the lanes' clock (at most one multiply, or one add + round + saturate, per stage). Every
        # product leaves its multiplier block's output register through a fabric register before
        # any logic uses it: the blocks sit in a few rows, far from that logic, and the route alone
        # fills a cycle. Bank and constant reads -> bias added, w_ih * x -> requantized gh, w_ih * x
        # landed -> w_ih * x + b_ih -> requantized gx -> r, z pre-activations -> sigmoid ROMs -> r, z
        # -> r * gh_n (Keras: r * h) -> landed -> requantized -> n pre-activation -> tanh ROM -> n
        # -> h - n -> z * (h - n) -> landed -> n + z * (h - n) -> h'.
        pipe = _Pipeline(m, "u")
        reg = pipe.reg

        def table(values, shape, index, name):  # constants by index, read through a register
            return reg(Array(Const(v, shape) for v in values)[index], name)

        # stage 1: reads (bank B's first entries, the rows' biases, the input weights)
        kinds = self._slot_rows()
        bias_index = Cat(u_unit, u_kind)
        column_pad = (1 << (H - 1).bit_length()) - H
        bias = []
        for block in range(blocks):
            values = []
            for rows in kinds:
                values += [rows[r][1] if r < len(rows) else 0 for r in range(block * H, (block + 1) * H)]
                values += [0] * column_pad
            bias.append(table(values, signed(acc_w), bias_index, f"u_bias{block}"))
        acc = [reg(bank_b[block * H], f"u_acc{block}") for block in range(blocks)]
        w_ih, b_ih, dec_gx = {}, {}, {}
        if self._repeat:
            # the bridge step's gx = W_ih h_enc + b_ih, per pixel and unit (LUT RAM)
            unit_w = _region_width(H)
            gx_buffers = {g: Memory(shape=fmt_shape(preact), depth=F << unit_w, init=[]) for g in "rzn"}
        for block, gate_name in enumerate("rzn"):
            rows = range(block * H, (block + 1) * H)
            w_ih[gate_name] = table([int(codes["enc.w_ih"][r, 0]) for r in rows], fmt_shape(fmt("enc.w_ih")),
                                    u_unit, f"u_w_ih_{gate_name}")
            b_ih[gate_name] = table([int(golden.enc_b_ih[r]) for r in rows], signed(acc_x.width), u_unit,
                                    f"u_b_ih_{gate_name}")
            if self._repeat:
                m.submodules[f"u_dec_gx_{gate_name}"] = gx_buffers[gate_name]
                gx_rd = gx_buffers[gate_name].read_port(domain="comb")
                m.d.comb += gx_rd.addr.eq(Cat(u_unit.as_unsigned()[:unit_w], u_ctx))
                dec_gx[gate_name] = reg(gx_rd.data, f"u_dec_gx_{gate_name}")
            else:
                dec_gx[gate_name] = table([int(golden.dec_gx[r]) for r in rows], fmt_shape(preact), u_unit,
                                          f"u_dec_gx_{gate_name}")
        x1, decoding, bridging = reg(u_x, "u_x1"), reg(u_decoding, "u_decoding"), reg(u_bridging, "u_bridging")
        tag = [reg(v, f"u_tag{i}") for i, v in enumerate((u_run & u_active & (u_step < last_slot), u_ctx,
                                                           u_unit, u_sub_b, u_bridging))]
        # the unit's state (and Keras' z from the r, z slot), registered twice: ready in stage 2
        h_old = pipe.later(_read_unit(m, lambda k, j: state[k][j], u_ctx, u_unit, F, H, "u_h_old",
                                      zero=u_step < spt), _READ_EDGES)  # h(0) = 0
        z_old = pipe.later(_read_unit(m, lambda k, j: update_z[k][j], u_ctx, u_unit, F, H, "u_z_old"),
                           _READ_EDGES) if self._keras else None

        # stage 2: biases added (modulo 2**acc_w, as the lanes sum), the input's products
        pipe.next()
        sums = [reg((a + b)[:acc_w].as_signed(), f"u_sum{block}") for block, (a, b) in enumerate(zip(acc, bias))]
        x_products = {g: reg(multiply(w_ih[g], x1), f"u_x_product_{g}") for g in "rzn"}

        # stage 3: requantized gh; the input's products land in the fabric
        pipe.next()
        decoding, bridging = pipe.at(decoding), pipe.at(bridging)

        def gh(value, name):  # the bridge step's sums are the decoder's gx
            recurrent = Mux(decoding, rounded(value, "dec.acc_h"), rounded(value, "enc.acc_h"))
            if self._repeat:
                recurrent = Mux(bridging, rounded(value, "dec.acc_x"), recurrent)
            return reg(recurrent, name)

        # Keras: the n slot's bank holds the n rows first
        gh_r, gh_z = gh(sums[0], "u_gh_r"), gh(sums[1], "u_gh_z")
        gh_n = gh(sums[0] if self._keras else sums[2], "u_gh_n")
        x_landed = {g: reg(x_products[g], f"u_x_landed_{g}") for g in "rzn"}

        # stage 4: the input's products plus their biases; a bridge step writes its gx (the sums
        # just requantized) into the gx buffers
        pipe.next()
        x_sums = {g: reg(x_landed[g] + pipe.at(b_ih[g]), f"u_x_sum_{g}") for g in "rzn"}
        if self._repeat:
            g_write, g_ctx, g_unit, g_sub_b, g_bridging = (pipe.at(v) for v in tag)
            g_write &= g_bridging
            # PyTorch: all three gates at once; Keras: r, z in the step's first slot, n in its second
            for gate_name, value, when in (("r", gh_r, ~g_sub_b), ("z", gh_z, ~g_sub_b), ("n", gh_n, g_sub_b)):
                wr = gx_buffers[gate_name].write_port()
                m.d.comb += [wr.addr.eq(Cat(g_unit.as_unsigned()[:unit_w], g_ctx)),
                             wr.data.eq(value), wr.en.eq(g_write & (when if self._keras else 1))]

        # stage 5: requantized gx
        pipe.next()

        def gx(gate_name):
            enc = rounded(x_sums[gate_name], "enc.acc_x")
            return reg(Mux(pipe.at(decoding), pipe.at(dec_gx[gate_name]), enc), f"u_gx_{gate_name}")

        gx_r, gx_z, gx_n = gx("r"), gx("z"), gx("n")

        # stage 6: pre-activations of the gates r, z
        pipe.next()
        pre_r = reg(overflow(gx_r + pipe.at(gh_r), preact, ovf), "u_pre_r")
        pre_z = reg(overflow(gx_z + pipe.at(gh_z), preact, ovf), "u_pre_z")

        # stage 7: sigmoid ROMs
        m.submodules.sig_r = sig_r = Activation(spec, "sigmoid")
        m.submodules.sig_z = sig_z = Activation(spec, "sigmoid")
        m.d.comb += [sig_r.en.eq(1), sig_z.en.eq(1), sig_r.preact.eq(pre_r), sig_z.preact.eq(pre_z)]
        pipe.next(sig_r.latency)

        # stage 8: the gates leave their ROMs through a register (a ROM's clock-to-out is long)
        pipe.next()
        r_gate, z_gate = reg(sig_r.out, "u_r"), reg(sig_z.out, "u_z")

        # stage 9: the reset gate's product: r * gh_n (PyTorch, reset after W_hn h + b_hn) or
        # r * h (Keras, before W_hn, for the n slot to broadcast)
        pipe.next()
        product = reg(multiply(r_gate, pipe.at(h_old) if self._keras else pipe.at(gh_n)), "u_r_product")

        # stage 10: the product lands in the fabric
        pipe.next()
        product = reg(product, "u_r_landed")

        # stage 11: the product in its format
        pipe.next()
        if self._keras:
            rh_new = reg(rounded(product, "reset"), "u_rh")
        else:
            r_gh = reg(rounded(product, "reset"), "u_r_gh")

        # stage 12: the candidate's pre-activation
        pipe.next()
        pre_n = reg(overflow(pipe.at(gx_n) + (pipe.at(gh_n) if self._keras else r_gh), preact, ovf), "u_pre_n")

        # stage 13: tanh ROM
        m.submodules.tanh_n = tanh_n = Activation(spec, "tanh")
        m.d.comb += [tanh_n.en.eq(1), tanh_n.preact.eq(pre_n)]
        pipe.next(tanh_n.latency)

        # stage 14: n in the state's format
        pipe.next()
        n_h = reg(rounded(tanh_n.out, "candidate"), "u_n_h")

        # stage 15: h - n
        pipe.next()
        h_diff = reg(pipe.at(h_old) - n_h, "u_h_diff")

        # stage 16: z * (h - n)
        pipe.next()
        z = pipe.at(z_old) if self._keras else pipe.at(z_gate)
        z_diff = reg(multiply(z, h_diff), "u_z_diff")

        # stage 17: the product lands in the fabric
        pipe.next()
        z_diff = reg(z_diff, "u_z_landed")

        # stage 18: n + z * (h - n)
        pipe.next()
        blend = reg((pipe.at(n_h) << gate.frac_bits) + z_diff, "u_blend")

        # stage 19: h', one rounding at the end
        pipe.next()
        h_new = reg(rounded(blend, "blend"), "u_h_new")
        pipe.next()  # what follows lines up with h'
        write, w_ctx, w_unit, w_sub_b, w_bridging = (pipe.at(v) for v in tag)
        if pipe.registers + 1 != self._update_latency:  # + the state's own register
            raise AssertionError(f"the GRU update has {pipe.registers} registers, the schedule assumed "
                                 f"{self._update_latency - 1}")
        if self._keras:
            rh_new, z_new = pipe.at(rh_new), pipe.at(z_gate)
            with m.If(write & ~w_sub_b & ~w_bridging):
                m.d.sync += [reset_h[w_ctx][w_unit].eq(rh_new), update_z[w_ctx][w_unit].eq(z_new)]
            write = write & w_sub_b
        # the bridge step leaves the decoder's initial state: zero
        h_new = Mux(w_bridging, 0, h_new) if self._repeat else h_new
        with m.If(write):
            m.d.sync += state[w_ctx][w_unit].eq(h_new)
        # Signals a simulator test may watch: every state write, with its context and unit.
        self.probes = {"write": write, "ctx": w_ctx, "unit": w_unit, "h": h_new}

        # -- head outputs and running sums for the lifetimes ------------------------------------------
        sfd = fmt("sfd")
        sum_w = self._sum_width
        sums = Array(Array(Signal(signed(sum_w), name=f"sum{k}_{c}") for c in (1, 2)) for k in range(F))
        firsts = Array(Array(Signal(fmt_shape(sfd), name=f"first{k}_{c}") for c in (1, 2)) for k in range(F))
        # bank B's head rows hold their biases (added on the copy from bank A); the outputs leave
        # through a register before the running sums
        head_out = [_delay(m, rounded(bank_b[head_row + c], "head.acc"), 1,
                           f"head_out{c}") for c in range(SFD_CHANNELS)]
        # The head reads h(t), broadcast by the pixel's next (r, z) slot: outputs from decoder step 1
        # on, up to the final head-only slot. Channel 0 (the total) is not needed for the lifetimes.
        first_head = (T + self._repeat + 1) * spt
        # It reads the slot's descriptor from the GRU update's copy, which holds for a whole slot.
        head_slot = u_step >= first_head
        if self._keras:
            head_slot &= ~u_step[0]
        head_valid = _delay(m, update_start & u_active & head_slot, _HEAD_LATENCY, "head_valid")
        head_first = _delay(m, u_step == first_head, _HEAD_LATENCY, "head_first")
        with m.If(head_valid):
            for c in range(2):
                with m.If(head_first):
                    m.d.sync += [firsts[u_ctx][c].eq(head_out[c + 1]), sums[u_ctx][c].eq(head_out[c + 1])]
                with m.Else():
                    m.d.sync += sums[u_ctx][c].eq(sums[u_ctx][c] + head_out[c + 1])
        finished = _delay(m, update_start & u_active & (u_step == last_slot), _HEAD_LATENCY + 1, "finished")
        finished_ctx = _delay(m, u_ctx, 1, "finished_ctx")
        if self._sfd_stream:
            self._sfd_sender(m, head_out, head_valid, (u_step - first_head) >> (spt - 1),
                             sfd_region[u_ctx], finished, sfd_region[finished_ctx], sfd_regions,
                             sfd_released)

        record = data.StructLayout({"sum1": signed(sum_w), "sum2": signed(sum_w),
                                    "first1": fmt_shape(sfd), "first2": fmt_shape(sfd), "framing": 1})
        m.submodules.finished = finished_q = fifo.SyncFIFOBuffered(width=record.size, depth=result_depth)
        rec_in = data.View(record, finished_q.w_data)
        m.d.comb += [rec_in.sum1.eq(sums[finished_ctx][0]), rec_in.sum2.eq(sums[finished_ctx][1]),
                     rec_in.first1.eq(firsts[finished_ctx][0]), rec_in.first2.eq(firsts[finished_ctx][1]),
                     rec_in.framing.eq(ctx_framing[finished_ctx]), finished_q.w_en.eq(finished)]

        # -- lifetime unit: two ratios and one fraction through one sequential divider -------------
        self._lifetime_unit(m, data.View(record, finished_q.r_data), finished_q, result_depth)
        return m

    def _sfd_sender(self, m, channels, write, index, region, finished, finished_region, regions, released):
        """SFD buffer: decoder outputs written at (region, step); whole regions sent in the order
        their pixels finished (= input order), then released."""
        T = self._spec.n_bins
        width = sfd_width(self._spec)
        bin_w = _region_width(T)
        buffer = Memory(shape=unsigned(width), depth=regions << bin_w, init=[])
        m.submodules.sfd_buffer = buffer
        wr, rd = buffer.write_port(), buffer.read_port()
        m.d.comb += [wr.addr.eq(Cat(index[:bin_w], region)), wr.data.eq(Cat(*(c.as_unsigned() for c in channels))),
                     wr.en.eq(write)]
        m.submodules.sfd_done = done = fifo.SyncFIFOBuffered(width=len(Signal(range(regions))), depth=regions)
        m.d.comb += [done.w_data.eq(finished_region), done.w_en.eq(finished)]
        # Reads go through a small FIFO so that tready never waits on the buffer's read latency.
        m.submodules.sfd_out = out = fifo.SyncFIFOBuffered(width=width + 1, depth=4)
        beat = data.View(sfd_layout(self._spec), out.w_data)
        step = Signal(range(T))
        reading = Signal()
        room = out.level + reading < out.depth - 1
        issue = done.r_rdy & room
        m.d.comb += rd.addr.eq(Cat(step, done.r_data))
        m.d.sync += reading.eq(issue)
        last = _delay(m, step == T - 1, 1, "sfd_last")
        m.d.comb += [beat.data.eq(rd.data), beat.last.eq(last), out.w_en.eq(reading)]
        with m.If(issue):
            m.d.sync += step.eq(Mux(step == T - 1, 0, step + 1))
            with m.If(step == T - 1):
                m.d.comb += [done.r_en.eq(1), released.eq(1 << done.r_data)]
        m.d.comb += [self.sfd.payload.eq(out.r_data), self.sfd.valid.eq(out.r_rdy),
                     out.r_en.eq(self.sfd.ready)]

    def _lifetime_unit(self, m, rec, queue, depth):
        spec, golden = self._spec, self._golden
        ratio_frac = spec.fmt("ratio").frac_bits
        frac = spec.fmt("fraction")
        lifetime = spec.fmt("lifetime")
        m.submodules.ratio_div = div = Divider(dividend_width=self._ratio_dividend_width,
                                               divisor_width=spec.fmt("sfd").width + 1)
        dividend_w = div.dividend_width
        rom = Memory(shape=unsigned(lifetime.width), depth=spec.ratio_entries,
                     init=[int(v) for v in golden.lifetime_rom])
        m.submodules.lifetime_rom = rom
        rom_rd = rom.read_port()

        out_fields = data.StructLayout({name: unsigned(width) for name, width in result_fields(spec).items()})
        m.submodules.results = results = fifo.SyncFIFOBuffered(width=out_fields.size, depth=depth)
        res = data.View(out_fields, results.w_data)
        tau1, tau2, a = Signal(lifetime.width), Signal(lifetime.width), Signal(frac.width)
        framing = Signal()
        weighted = Signal(lifetime.width + frac.width + 1)  # a * tau1 + (1 - a) * tau2, unrounded
        rest = Signal(frac.width + 1)  # 1 - a
        weight1, weight2 = Signal(lifetime.width + frac.width + 1), Signal(lifetime.width + frac.width + 1)
        channel = Signal()  # 0: tau1, 1: tau2
        ratio = Signal(dividend_w)
        sums = (rec.sum1, rec.sum2)
        firsts = (rec.first1, rec.first2)
        total, first = Mux(channel, sums[1], sums[0]), Mux(channel, firsts[1], firsts[0])
        valid = (first > 0) & (total > 0)
        # The record stays at the queue's head from IDLE to EMIT, and FRACTION comes at least seven
        # cycles after IDLE: the fraction's operands are registered one operation per stage
        # instead of a compare, an add and a compare in FRACTION's own cycle.
        short = _delay(m, Mux(rec.first1 > 0, rec.first1, 0), 1, "fraction_short")
        long_ = _delay(m, Mux(rec.first2 > 0, rec.first2, 0), 1, "fraction_long")
        denominator = _delay(m, short + long_, 1, "fraction_denominator")
        has_denominator = _delay(m, denominator > 0, 1, "fraction_has_denominator")
        one = 1 << frac.frac_bits

        with m.FSM(name="lifetime"):
            with m.State("IDLE"):
                with m.If(queue.r_rdy):
                    m.d.sync += [channel.eq(0), framing.eq(rec.framing)]
                    m.next = "RATIO"
            with m.State("RATIO"):
                m.d.comb += [div.dividend.eq(total.as_unsigned() << ratio_frac),
                             div.divisor.eq(first.as_unsigned()), div.start.eq(valid)]
                with m.If(valid):
                    m.next = "RATIO_WAIT"
                with m.Else():
                    m.d.sync += ratio.eq(0)
                    m.next = "LOOKUP"
            with m.State("RATIO_WAIT"):
                with m.If(div.done):
                    m.d.sync += ratio.eq(div.quotient)
                    m.next = "LOOKUP"
            with m.State("LOOKUP"):
                last_entry = spec.ratio_entries - 1
                m.d.comb += rom_rd.addr.eq(Mux(ratio > last_entry, last_entry, ratio))
                m.next = "STORE"
            with m.State("STORE"):
                with m.If(channel == 0):
                    m.d.sync += [tau1.eq(rom_rd.data), channel.eq(1)]
                    m.next = "RATIO"
                with m.Else():
                    m.d.sync += tau2.eq(rom_rd.data)
                    m.next = "FRACTION"
            with m.State("FRACTION"):
                m.d.comb += [div.dividend.eq(short.as_unsigned() << frac.frac_bits),
                             div.divisor.eq(denominator.as_unsigned()), div.start.eq(has_denominator)]
                with m.If(has_denominator):
                    m.next = "FRACTION_WAIT"
                with m.Else():
                    m.d.sync += a.eq(0)
                    m.next = "EMIT"
            with m.State("FRACTION_WAIT"):
                with m.If(div.done):
                    m.d.sync += a.eq(div.quotient)
                    m.next = "REST"
            with m.State("REST"):  # one subtraction, then one multiply per register, then the sum
                m.d.sync += rest.eq(one - a)
                m.next = "PRODUCTS"
            with m.State("PRODUCTS"):
                m.d.sync += [weight1.eq(a * tau1), weight2.eq(rest * tau2)]
                m.next = "MEAN"
            with m.State("MEAN"):
                m.d.sync += weighted.eq(weight1 + weight2)
                m.next = "EMIT"
            with m.State("EMIT"):
                mean = shift_round(weighted, frac.frac_bits, spec.rounding)
                m.d.comb += [res.tau1.eq(tau1), res.tau2.eq(tau2), res.a.eq(a), res.tau_mean.eq(mean),
                             res.framing_error.eq(framing), results.w_en.eq(1), queue.r_en.eq(1)]
                m.next = "IDLE"

        m.d.comb += [self.o.payload.data.eq(results.r_data), self.o.payload.last.eq(1),
                     self.o.valid.eq(results.r_rdy), results.r_en.eq(self.o.ready)]

    def _slot_rows(self) -> list[list[tuple[list[int], int]]]:
        """For each kind of slot, the (weights, aligned bias) of every row the lanes hold.

        PyTorch: [encoder, decoder, bridge], rows W_hh [r; z; n] (the bridge: the decoder's W_ih)
        then the head. Keras: [encoder r z, encoder n, decoder r z, decoder n, bridge r z, bridge n];
        the head rows ride with the r, z rows. The encoder's and the bridge's head rows are zero: the
        head only reads decoder states. No bridge without a RepeatVector decoder."""
        spec, golden, codes = self._spec, self._golden, self._model.codes
        H = spec.hidden
        head = [([int(w) for w in codes["head.w"][c]], int(golden.head.bias[c])) for c in range(SFD_CHANNELS)]
        idle_head = [([0] * H, 0)] * SFD_CHANNELS
        phases = [(codes["enc.w_hh"], golden.enc_h.bias, idle_head), (codes["dec.w_hh"], golden.dec_h.bias, head)]
        if self._repeat:
            phases.append((codes["dec.w_ih"], golden.dec_x.bias, idle_head))
        kinds = []
        for w_hh, bias, head_rows in phases:
            rows = [([int(w) for w in w_hh[r]], int(bias[r])) for r in range(3 * H)]
            if self._keras:
                kinds += [rows[:2 * H] + head_rows, rows[2 * H:]]
            else:
                kinds.append(rows + head_rows)
        return kinds

    def _lane_rom(self, lane: int) -> list[int]:
        """Weights of the rows lane `lane` owns (rows lane, lane + L, lane + 2L, ... of each kind
        of slot; zero rows fill the last pass), at address Cat(column, pass, kind): the address
        is wiring, not arithmetic, and the gaps of a hidden size or pass count that is no power of
        two are zeros."""
        H, L, P = self._spec.hidden, self._lanes, self._passes
        column_bits, pass_bits = (H - 1).bit_length(), (P - 1).bit_length()
        kinds = self._slot_rows()
        weights = [0] * (len(kinds) << (pass_bits + column_bits))
        for kind, rows in enumerate(kinds):
            for p in range(P):
                row = p * L + lane
                if row < len(rows):
                    base = ((kind << pass_bits) | p) << column_bits
                    weights[base:base + H] = rows[row][0]
        return weights
