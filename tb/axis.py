"""Small AXI4-Stream source and sink for cocotb 2, after alexforencich's cocotbext-axi.

Ports are found by prefix: `<prefix>_tdata`, `_tvalid`, `_tready` and optionally `_tlast`.
Both drivers work one clock at a time: after each rising edge they drive their outputs, then, in
the read-only phase of that same time step, see the settled values that the *next* edge will
sample; a transfer happens there when tvalid and tready are both 1. Sampling settled values at
ReadOnly does not depend on whether a simulator shows pre- or post-edge register values at
RisingEdge (cocotb 2.1 + Verilator 5.048 show pre-edge values; that has differed between
simulators). While nothing moves, both drivers sleep instead of waking every cycle (a 4x faster
simulation through long compute phases).
"""

import itertools
from collections import deque
from typing import NamedTuple

import cocotb
from cocotb.triggers import Event, ReadOnly, RisingEdge

__all__ = ["Beat", "AxisSource", "AxisSink", "random_pauses", "first_mismatch", "pack_lanes",
           "unpack_lanes"]


class Beat(NamedTuple):
    """One AXI4-Stream transfer. `Beat(5, True) == Beat(5, 1)`; compare lists of beats with `==`."""
    data: int
    last: bool = False


def random_pauses(rng, probability: float):
    """Endless pause pattern: each cycle paused with `probability` (use a seeded `random.Random`)."""
    return (rng.random() < probability for _ in itertools.count())


def first_mismatch(received, expected) -> str:
    """Where two beat lists part, for the message of `assert received == expected, first_mismatch(...)`."""
    for index, (got, want) in enumerate(zip(received, expected)):
        if got != want:
            return f"beat {index}: got {got!r}, expected {want!r}"
    return f"got {len(received)} beats, expected {len(expected)}"


def pack_lanes(values, width: int) -> int:
    """Pack lane values (lane 0 in the low bits; negative values two's complement) into one tdata."""
    word = 0
    for lane, value in enumerate(values):
        if not -(1 << (width - 1)) <= value < (1 << width):
            raise ValueError(f"lane {lane} value {value!r} does not fit in {width} bits")
        word |= (value & ((1 << width) - 1)) << (lane * width)
    return word


def unpack_lanes(word: int, width: int, count: int, *, signed: bool = False) -> list:
    """Inverse of `pack_lanes`: `count` lanes of `width` bits, lane 0 from the low bits."""
    lanes = [(word >> (lane * width)) & ((1 << width) - 1) for lane in range(count)]
    if signed:
        lanes = [v - (1 << width) if v >> (width - 1) else v for v in lanes]
    return lanes


class _AxisPort:
    def __init__(self, dut, prefix, clock, reset):
        self.prefix = prefix
        self.tdata = getattr(dut, f"{prefix}_tdata")
        self.tvalid = getattr(dut, f"{prefix}_tvalid")
        self.tready = getattr(dut, f"{prefix}_tready")
        self.tlast = getattr(dut, f"{prefix}_tlast", None)
        self.clock = clock
        self.reset = reset
        self.width = len(self.tdata)

    def in_reset(self) -> bool:
        return self.reset is not None and int(self.reset.value) == 1


class _AxisDriver:
    """What a source and a sink share: the port, and the pause pattern consulted once per cycle."""

    def __init__(self, dut, prefix: str, clock, reset, pauses):
        self._port = _AxisPort(dut, prefix, clock, reset)
        self._pauses = pauses

    @property
    def width(self) -> int:
        return self._port.width

    def set_pauses(self, pauses) -> None:
        self._pauses = pauses


class AxisSource(_AxisDriver):
    """Drives `<prefix>_t*` of `dut`. `await send(beats)` queues beats and returns once all are taken.

    `pauses` is an iterator of truthy/falsy values consulted once per cycle while beats wait and
    none is on the bus; truthy keeps tvalid low that cycle (random gaps). A presented beat is never
    withdrawn and never changes until accepted. Nothing is presented while `reset` is high.
    """

    def __init__(self, dut, prefix: str, clock, *, reset=None, pauses=None):
        super().__init__(dut, prefix, clock, reset, pauses)
        self._queue = deque()
        self._queued = Event()
        self._idle = Event()
        self._idle.set()
        self._port.tvalid.value = 0
        self._task = cocotb.start_soon(self._run())

    async def send(self, beats) -> None:
        """Queue `beats` (`Beat`s, or ints meaning `Beat(int)`) and wait until all are accepted."""
        for beat in beats:
            beat = beat if isinstance(beat, Beat) else Beat(beat)
            if beat.last and self._port.tlast is None:
                raise ValueError(f"{beat!r} has last set but the port has no tlast")
            self._queue.append(beat)
        if self._queue:
            self._idle.clear()
            self._queued.set()
        await self._idle.wait()

    async def _run(self):
        port = self._port
        pending = False  # a beat is on the bus, not yet accepted
        accepted = False
        while True:
            await RisingEdge(port.clock)
            if port.in_reset():
                port.tvalid.value = 0
                pending = accepted = False
                continue
            if pending and accepted:
                pending = False
                if not self._queue:
                    self._idle.set()
            if not pending:
                if not self._queue:  # sleep until send(): no wake-up per idle cycle
                    port.tvalid.value = 0
                    self._queued.clear()
                    await self._queued.wait()
                    continue
                paused = bool(next(self._pauses, False)) if self._pauses is not None else False
                if paused:
                    port.tvalid.value = 0
                else:
                    beat = self._queue.popleft()
                    port.tdata.value = beat.data
                    if port.tlast is not None:
                        port.tlast.value = int(beat.last)
                    port.tvalid.value = 1
                    pending = True
            await ReadOnly()
            accepted = pending and int(port.tready.value) == 1


class AxisSink(_AxisDriver):
    """Collects beats from `<prefix>_t*` of `dut`; `await recv(n)` returns the next n `Beat`s.

    `pauses` is an iterator consulted once per cycle; truthy drops tready that cycle (random
    backpressure). `signed=True` reads tdata as two's complement. Checks the DUT's side of the
    protocol: a beat offered and not taken must stay offered, unchanged, the next cycle.
    """

    def __init__(self, dut, prefix: str, clock, *, reset=None, pauses=None, signed: bool = False):
        super().__init__(dut, prefix, clock, reset, pauses)
        self._signed = signed
        self._beats = deque()
        self._arrived = Event()
        self._port.tready.value = 0
        self._task = cocotb.start_soon(self._run())

    def __len__(self) -> int:
        """Beats received and not yet returned by `recv`."""
        return len(self._beats)

    async def recv(self, count: int) -> list:
        """The next `count` beats, waiting for them to arrive."""
        while len(self._beats) < count:
            self._arrived.clear()
            await self._arrived.wait()
        return [self._beats.popleft() for _ in range(count)]

    async def recv_packet(self) -> list:
        """Beats up to and including the next one with last set."""
        packet = []
        while not packet or not packet[-1].last:
            packet += await self.recv(1)
        return packet

    async def _run(self):
        port = self._port
        stalled = None  # the beat offered last cycle but not taken
        wake = RisingEdge(port.clock)
        while True:
            await wake
            wake = RisingEdge(port.clock)
            if port.in_reset():
                port.tready.value = 0
                stalled = None
                continue
            paused = bool(next(self._pauses, False)) if self._pauses is not None else False
            port.tready.value = 0 if paused else 1
            await ReadOnly()
            offered = None
            if int(port.tvalid.value) == 1:
                value = port.tdata.value
                data = value.to_signed() if self._signed else value.to_unsigned()
                offered = Beat(data, port.tlast is not None and int(port.tlast.value) == 1)
            if stalled is not None and offered != stalled:
                raise AssertionError(f"{port.prefix}: stalled {stalled!r} became {offered!r}")
            if offered is not None and not paused:
                self._beats.append(offered)
                self._arrived.set()
            stalled = offered if paused else None
            if offered is None:  # sleep until the DUT offers a beat: no wake-up per idle cycle
                wake = RisingEdge(port.tvalid)
