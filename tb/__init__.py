"""cocotb testbench infrastructure for the generated Verilog, run under Verilator.

A new testbench is one file `tb/<design>_tb.py` holding cocotb coroutines (not named `test_*`):

    @cocotb.test()
    async def pixels_random(dut):
        case = tb_data()                                  # whatever the host passed as data=
        Clock(dut.clk, 10, unit="ns").start()
        source = AxisSource(dut, "s_axis", dut.clk, reset=dut.rst, pauses=random_pauses(rng, 0.3))
        sink = AxisSink(dut, "m_axis", dut.clk, reset=dut.rst, pauses=random_pauses(rng, 0.3))
        ...reset...
        cocotb.start_soon(source.send(Beat(x, i == T - 1) for i, x in enumerate(tpsf)))
        received = await sink.recv(len(case["expected"]))
        assert received == expected, first_mismatch(received, expected)

and a pytest entry point in tests/ that exports the design and calls
`run_cocotb(verilog, top, "tb.<design>_tb", sim_dir(<design>, <config>), data={...})`.
"""
