"""cocotb testbench for the toolchain proof in tests/test_toolchain.py: a registered AXI4-Stream
stage that adds a constant to each signed beat. Stimulus and expected beats come from the host
(`tb_data()`); every output beat is compared with `==`.

Coroutines are not named `test_*`, so pytest never collects them.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from tb.axis import AxisSink, AxisSource, Beat, first_mismatch, random_pauses
from tb.runner import tb_data


class TB:
    def __init__(self, dut):
        self.dut = dut
        Clock(dut.clk, 10, unit="ns").start()
        self.source = AxisSource(dut, "s_axis", dut.clk, reset=dut.rst)
        self.sink = AxisSink(dut, "m_axis", dut.clk, reset=dut.rst, signed=True)

    def set_pauses(self, idle=None, backpressure=None):
        self.source.set_pauses(idle)
        self.sink.set_pauses(backpressure)

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)


async def run_test(dut, idle: bool, backpressure: bool):
    case = tb_data()
    rng = random.Random(case["seed"])
    tb = TB(dut)
    tb.set_pauses(random_pauses(rng, 0.3) if idle else None,
                  random_pauses(rng, 0.4) if backpressure else None)
    await tb.reset()

    beats = [Beat(data, bool(last)) for data, last in case["stimulus"]]
    expected = [Beat(data, bool(last)) for data, last in case["expected"]]
    cocotb.start_soon(tb.source.send(beats))
    received = await tb.sink.recv(len(expected))
    assert received == expected, first_mismatch(received, expected)
    await ClockCycles(dut.clk, 8)
    assert len(tb.sink) == 0, "beats beyond the expected ones"


@cocotb.test(timeout_time=1, timeout_unit="ms")
@cocotb.parametrize(idle=[False, True], backpressure=[False, True])
async def passthrough_random(dut, idle, backpressure):
    await run_test(dut, idle, backpressure)
