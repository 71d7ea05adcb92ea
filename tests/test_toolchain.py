"""The tool chain end to end on a tiny design: Amaranth -> Verilog -> Verilator lint -> cocotb
(random valid gaps and backpressure, every beat compared with a Python model), plus the same
design in Amaranth's simulator and checks that export is reproducible and names ports exactly."""

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `tb/` is a top-level folder, not part of the installed package
    sys.path.insert(0, str(ROOT))

from flirtl.flow.export import AXIStreamTop, write_verilog  # noqa: E402
from flirtl.flow.simstream import stream_get_all, stream_put_all  # noqa: E402
from flirtl.flow.toolchain import lint_verilog, tool_command, verilator_env  # noqa: E402
from tb.runner import run_cocotb, sim_dir  # noqa: E402

WIDTH = 16
OFFSET = 1234
PORTS = {"clk", "rst", "s_axis_tdata", "s_axis_tlast", "s_axis_tvalid", "s_axis_tready",
         "m_axis_tdata", "m_axis_tlast", "m_axis_tvalid", "m_axis_tready"}


class AddConstant(wiring.Component):
    """Registered stream stage: `m.data = s.data + offset` (wrapping, signed), `last` passes through.

    A full-throughput skid-less register: `s.ready` is high whenever the output register is empty
    or being emptied.
    """

    def __init__(self, *, width: int, offset: int):
        self._offset = offset
        beat = data.StructLayout({"data": signed(width), "last": 1})
        super().__init__({"s_axis": In(stream.Signature(beat)), "m_axis": Out(stream.Signature(beat))})

    def elaborate(self, platform):
        m = Module()
        s, o = self.s_axis, self.m_axis
        m.d.comb += s.ready.eq(o.ready | ~o.valid)
        with m.If(s.ready):
            m.d.sync += [
                o.valid.eq(s.valid),
                o.payload.data.eq(s.payload.data + self._offset),
                o.payload.last.eq(s.payload.last),
            ]
        return m


def model(beats, *, width=WIDTH, offset=OFFSET):
    half = 1 << (width - 1)
    return [(((value + offset + half) % (2 * half)) - half, last) for value, last in beats]


def random_beats(rng, count, width=WIDTH):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = [lo, hi, -1, 0] + [rng.randint(lo, hi) for _ in range(count - 4)]
    return [(value, int(rng.random() < 0.2 or i == count - 1)) for i, value in enumerate(values)]


def top():
    return AXIStreamTop(AddConstant(width=WIDTH, offset=OFFSET))


@pytest.fixture(scope="module")
def verilog_path():
    return write_verilog(top(), "add_constant", sim_dir("toolchain", "add_constant.v"))


def test_tools_found():
    env = verilator_env()
    root = Path(env["VERILATOR_ROOT"])
    assert env["PATH"].split(os.pathsep)[:2] == [str(root / "bin"), str(Path(sys.executable).parent)]
    assert (root / "include" / "verilated.h").is_file()
    for tool in ("yosys", "nextpnr-ecp5", "ecppack"):
        assert Path(tool_command(tool)[0]).is_file()
    with pytest.raises(ValueError, match="'vivado'"):
        tool_command("vivado")


def test_port_names(verilog_path):
    header = re.search(r"^module add_constant\(([^)]*)\);", verilog_path.read_text(), re.MULTILINE)
    assert {port.strip() for port in header.group(1).split(",")} == PORTS


def test_export_reproducible(tmp_path):
    first = write_verilog(top(), "add_constant", tmp_path / "a.v").read_bytes()
    second = write_verilog(top(), "add_constant", tmp_path / "b.v").read_bytes()
    assert first == second
    # another process, hash seed and working directory give the same bytes
    script = ("import sys; sys.path[:0] = sys.argv[1:]; import test_toolchain as t; "
              "from flirtl.flow.export import to_verilog; sys.stdout.write(to_verilog(t.top(), 'add_constant'))")
    other = subprocess.run([sys.executable, "-c", script, str(ROOT), str(ROOT / "tests")],
                           cwd=tmp_path, env={**os.environ, "PYTHONHASHSEED": "12345"},
                           capture_output=True, check=True).stdout
    assert other == first
    assert str(ROOT).encode() not in first and b"site-packages" not in first


def test_lint_clean(verilog_path):
    assert lint_verilog(verilog_path, "add_constant") == []


def test_amaranth_sim():
    rng = random.Random(7)
    beats = random_beats(rng, 100)
    dut = AddConstant(width=WIDTH, offset=OFFSET)
    received = []

    async def source(ctx):
        await stream_put_all(ctx, dut.s_axis, [{"data": v, "last": last} for v, last in beats],
                             rng=rng, idle=0.3)

    async def sink(ctx):
        payloads = await stream_get_all(ctx, dut.m_axis, len(beats), rng=rng, backpressure=0.4)
        received.extend((p.data, p.last) for p in payloads)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert received == model(beats)


def test_cocotb_verilator(verilog_path):
    beats = random_beats(random.Random(11), 300)
    run_cocotb(verilog_path, "add_constant", "tb.toolchain_tb", sim_dir("toolchain", "add_constant"),
               data={"seed": 3, "stimulus": beats, "expected": model(beats)})
