"""cocotb testbench of the flirtl IP top: raw counts in, one result beat per pixel out.

Stimulus and the golden model's expected beats come from the host (`tb_data()`); every result beat
is compared with `==`. Random valid gaps and random backpressure are options of every test.
Figures measured here (cycles per pixel, latency) go to `metrics.json` in the build directory.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from tb.axis import AxisSink, AxisSource, Beat, first_mismatch, random_pauses
from tb.runner import tb_data

CLOCK_NS = 10


class TB:
    """Clock, reset, the count source, the result sink and (when the IP has one) the SFD sink."""

    def __init__(self, dut):
        self.dut = dut
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        self.source = AxisSource(dut, "s_axis", dut.clk, reset=dut.rst)
        self.sink = AxisSink(dut, "m_axis", dut.clk, reset=dut.rst)
        self.sfd_sink = AxisSink(dut, "m_sfd_axis", dut.clk, reset=dut.rst) if "sfd" in tb_data() else None

    def set_pauses(self, idle=None, backpressure=None, sfd_backpressure=None):
        self.source.set_pauses(idle)
        self.sink.set_pauses(backpressure)
        if self.sfd_sink is not None:
            self.sfd_sink.set_pauses(sfd_backpressure)

    async def reset(self, cycles: int = 4):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def now(self) -> int:
        return int(get_sim_time(unit="ns")) // CLOCK_NS


def pixel_beats(pixel):
    return [Beat(int(count), index == len(pixel) - 1) for index, count in enumerate(pixel)]


def write_metrics(**figures):
    path = os.path.join(os.getcwd(), "metrics.json")
    found = json.load(open(path)) if os.path.exists(path) else {}
    found.update(figures)
    with open(path, "w") as f:
        json.dump(found, f)


async def run_test(dut, idle_inserter=None, backpressure_inserter=None, sfd_backpressure_inserter=None):
    case = tb_data()
    tb = TB(dut)
    tb.set_pauses(idle_inserter, backpressure_inserter, sfd_backpressure_inserter)
    await tb.reset()
    await send_and_check(tb, case)
    await ClockCycles(dut.clk, 16)
    assert len(tb.sink) == 0, "result beats beyond the expected ones"
    assert tb.sfd_sink is None or len(tb.sfd_sink) == 0, "SFD beats beyond the expected ones"


async def send_and_check(tb, case):
    """Send every pixel; every result beat, and every SFD beat when there is an SFD stream, must
    equal the golden model's."""
    expected = [Beat(word, True) for word in case["expected"]]
    cocotb.start_soon(tb.source.send([b for pixel in case["counts"] for b in pixel_beats(pixel)]))
    sfd = None
    if tb.sfd_sink is not None:  # (a sink with no beats waiting is falsy)
        n_bins = len(case["counts"][0])
        expected_sfd = [Beat(word, (i + 1) % n_bins == 0) for i, word in enumerate(case["sfd"])]
        sfd = cocotb.start_soon(tb.sfd_sink.recv(len(expected_sfd)))
    received = await tb.sink.recv(len(expected))
    assert received == expected, first_mismatch(received, expected)
    if sfd is not None:
        received_sfd = await sfd
        assert received_sfd == expected_sfd, "SFD " + first_mismatch(received_sfd, expected_sfd)


@cocotb.test()
@cocotb.parametrize(idle=[False, True], backpressure=[False, True])
async def random_pixels(dut, idle, backpressure):
    rng = random.Random(tb_data()["seed"])
    await run_test(dut, random_pauses(rng, 0.3) if idle else None,
                   random_pauses(rng, 0.5) if backpressure else None,
                   random_pauses(rng, 0.7) if backpressure else None)


@cocotb.test()
async def reset_mid_pixel(dut):
    """Half a pixel, a reset, then clean operation: only the whole pixels give results."""
    case = tb_data()
    tb = TB(dut)
    await tb.reset()
    half = pixel_beats(case["counts"][0])[: len(case["counts"][0]) // 2]
    cocotb.start_soon(tb.source.send(half))
    await ClockCycles(dut.clk, len(half) + 5)
    await tb.reset()
    await send_and_check(tb, case)


@cocotb.test()
async def throughput(dut):
    """Back-to-back pixels, no gaps, no backpressure: cycles between results in steady state,
    and the latency of a lone pixel."""
    case = tb_data()
    tb = TB(dut)
    await tb.reset()
    # latency of one pixel into an empty engine
    first = case["counts"][0]
    await tb.source.send(pixel_beats(first))
    sent = tb.now()
    received = await tb.sink.recv(1)
    latency = tb.now() - sent
    assert received == [Beat(case["expected"][0], True)], first_mismatch(received, [Beat(case["expected"][0], True)])
    # steady state
    expected = [Beat(word, True) for word in case["expected"]]
    cocotb.start_soon(tb.source.send([b for pixel in case["counts"] for b in pixel_beats(pixel)]))
    times, received = [], []
    for _ in expected:
        received += await tb.sink.recv(1)
        times.append(tb.now())
    assert received == expected, first_mismatch(received, expected)
    # Results leave in groups, one per context in flight: average over whole rotations of the
    # contexts, after the pipeline has filled.
    contexts = case["contexts"]
    intervals = (len(times) - 1 - contexts) // contexts * contexts
    assert intervals > 0, f"send more than {2 * contexts} pixels to measure throughput"
    steady = (times[-1] - times[-1 - intervals]) / intervals
    write_metrics(cycles_per_pixel=steady, latency_cycles=latency, pixels=len(times))
