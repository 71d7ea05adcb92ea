"""ECP5 multipliers with their registers inside the MULT18X18D (`absorb_dsp_registers`), checked
with the block's simulation model sim/ecp5_mult18x18d.v.

* A small design of the lanes' kinds (signed weight x shared broadcast register -> product register,
  an enabled unsigned multiply, an operand register that also drives a port, an operand from logic,
  an operand register behind a carry chain)
  is synthesised with synth_ecp5, rewritten, and proven equal to its Verilog by Yosys (miter + SAT,
  every input sequence of `_DEPTH` cycles from reset-state zeros).
* The proof fails with a wrong model (input register deaf to its enable, output register to its reset)
  and with a wrong rewrite (the output register left off): the check can fail.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flirtl.flow.synth import absorb_dsp_registers, synthesize  # noqa: E402
from flirtl.flow.toolchain import tool_command  # noqa: E402

MODEL = ROOT / "sim" / "ecp5_mult18x18d.v"

# Every register of the design is at most two (enabled) cycles deep, so every state both sides can
# reach is reached within three cycles of zeros and shows at the outputs a cycle or two later:
# six cycles of any inputs cover them all. Narrow operands keep the multipliers easy for SAT.
_DEPTH = 6

LANES = """
module lanes(input clk, rst, en, input signed [3:0] w0, w1, x, input [4:0] u, v,
             output reg signed [7:0] p0, p1, p2, p3, output reg [9:0] q, output signed [3:0] w0_seen);
  reg signed [3:0] w0_r, w1_r, x_r, s_r;
  reg [4:0] u_r, v_r;
  assign w0_seen = w0_r;  // an operand register that also drives other logic stays beside its copy
  always @(posedge clk)
    if (rst) begin
      w0_r <= 0; w1_r <= 0; x_r <= 0; s_r <= 0; u_r <= 0; v_r <= 0; p0 <= 0; p1 <= 0; p2 <= 0; p3 <= 0; q <= 0;
    end else begin
      w0_r <= w0; w1_r <= w1; x_r <= x;
      s_r <= w0 + w1 + x + v[3:0];  // a register behind a carry chain stays in the fabric
      p0 <= w0_r * x_r;           // x_r is the operand of four multipliers
      p1 <= w1_r * x_r;
      p2 <= (w1_r ^ w0_r) * x_r;  // an operand from logic: that input stays unregistered
      p3 <= s_r * x_r;
      if (en) begin u_r <= u; v_r <= v; q <= u_r * v_r; end
    end
endmodule
"""


def _yosys(script: str, cwd: Path, name: str) -> tuple[int, str]:
    (cwd / f"{name}.ys").write_text(script)
    result = subprocess.run([*tool_command("yosys"), "-q", "-l", f"{name}.log", f"{name}.ys"], cwd=cwd,
                            capture_output=True, text=True)
    return result.returncode, (cwd / f"{name}.log").read_text(errors="replace") if (cwd / f"{name}.log").exists() else result.stderr


def _read_gate(netlist: str, model: str, top: str) -> list[str]:
    """Yosys commands that load a synth_ecp5 JSON netlist (module `top`) with simulation models,
    Yosys' own for the fabric cells and `model` for MULT18X18D, and flatten it."""
    # the JSON carries the cell libraries as blackboxes, derived ones too: the models replace them
    return [f"read_json {netlist}", "delete =A:blackbox", "read_verilog -overwrite +/ecp5/cells_sim.v", f"read_verilog -overwrite {model}",
            f"hierarchy -top {top}", "proc", "flatten", "opt_clean"]


@pytest.fixture(scope="module")
def lanes_netlist(tmp_path_factory):
    work = tmp_path_factory.mktemp("lanes")
    (work / "lanes.v").write_text(LANES)
    figures = synthesize(work / "lanes.v", "lanes", "ecp5", work, netlist=True)
    return work, figures


def _prove(work: Path, netlist: str, model_text: str) -> tuple[bool, str]:
    (work / "model.v").write_text(model_text)
    rc, log = _yosys("\n".join([
        *_read_gate(netlist, "model.v", "lanes"), "rename lanes gate", "read_verilog lanes.v", "proc",
        "rename lanes gold",
        "miter -equiv -flatten -make_outputs -ignore_gold_x gold gate miter", "hierarchy -top miter",
        f"sat -verify -prove trigger 0 -set-init-zero -enable_undef -set-def-inputs -seq {_DEPTH} -show-ports miter"]) + "\n", work, "prove")
    return rc == 0 and "SAT proof finished - no model found: SUCCESS!" in log, log


def test_registers_move_into_the_multipliers(lanes_netlist):
    work, figures = lanes_netlist
    absorbed = figures["dsp_registers"]
    # five multipliers: every output register, both operands of three, one operand of the other two
    # (the one from logic and the one behind a carry chain; Yosys picks which operand goes to A)
    registers = absorbed["registers"]
    assert absorbed["blocks"] == 5 and registers["P"] == 5 and registers["A"] + registers["B"] == 8, absorbed
    # gone from the fabric: the product registers (4 x 8 + 10 bits), x_r, u_r and v_r; w0_r stays
    # for its port, w1_r for the XOR, s_r behind its adders
    assert absorbed["flip_flops_removed"] == 4 * 8 + 10 + 4 + 2 * 5, absorbed
    assert figures["ff"] == figures["cells"]["TRELLIS_FF"] == 3 * 4
    cells = json.loads((work / figures["netlist"]).read_text())["modules"]["lanes"]["cells"]
    assert {name.split("_TRELLIS_FF")[0] for name, cell in cells.items() if cell["type"] == "TRELLIS_FF"} == \
        {"w0_seen", "w1_r", "s_r"}
    # a second pass finds nothing left to move
    assert absorb_dsp_registers(work / figures["netlist"])["blocks"] == 0


def test_rewritten_netlist_equals_its_verilog(lanes_netlist):
    work, figures = lanes_netlist
    proven, log = _prove(work, figures["netlist"], MODEL.read_text())
    assert proven, log[-3000:]


@pytest.mark.parametrize("wrong, right", [
    ("else if (ce[A_CE])", "else if (1'b1)"),  # input register A deaf to its clock enable
    ("if (rst[P_RST])", "if (1'b0)"),   # the output register ignores its reset
])
def test_a_wrong_model_is_caught(lanes_netlist, wrong, right):
    work, figures = lanes_netlist
    text = MODEL.read_text()
    assert right not in text and text.count(wrong) == 1
    proven, _ = _prove(work, figures["netlist"], text.replace(wrong, right))
    assert not proven


def test_a_wrong_rewrite_is_caught(lanes_netlist):
    """The output flip-flops removed but the block's output register left off: a cycle early."""
    work, figures = lanes_netlist
    design = json.loads((work / figures["netlist"]).read_text())
    for cell in design["modules"]["lanes"]["cells"].values():
        if cell["type"] == "MULT18X18D":
            cell["parameters"]["REG_OUTPUT_CLK"] = "NONE"
    (work / "wrong.json").write_text(json.dumps(design))
    proven, _ = _prove(work, "wrong.json", MODEL.read_text())
    assert not proven
