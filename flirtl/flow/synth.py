"""FPGA flow: Yosys synthesis (Xilinx 7-series, Lattice ECP5), nextpnr-ecp5, ecppack.

Every tool comes from a YoWASP wheel (`toolchain.tool_command`). Each step writes its script, log
and a JSON of figures into a work directory and returns the figures:

* `synthesize(verilog, top, "xc7" | "ecp5", workdir)`: `synth_xilinx -family xc7` or `synth_ecp5`,
  then `stat -json`; LUT / FF / DSP / BRAM counts in `synth_<target>.json`.
* `place_and_route(netlist, lpf, workdir, freq_mhz=)`: nextpnr-ecp5 for an LFE5U-85F (CABGA381);
  achieved Fmax and utilisation from nextpnr's `--report` in `pnr.json`.
* `bitstream(textcfg, bit)`: `ecppack` turns the routed design into a bitstream.
* `demo_top(ip_build, workdir)`: the ECP5 demo top (`DemoTop`): the IP between an LFSR count
  source and a sink that folds every result into the LEDs, so synthesis keeps all of it and the
  board's few pins suffice.

Command line (what `make synth`, `make pnr` and `make bitstream` run)::

    python -m flirtl.flow.synth synth     --model models/seq2seqlite-32x32 --bits 8 --out build/fpga
    python -m flirtl.flow.synth pnr       ...   (synthesises the ECP5 demo top, then nextpnr)
    python -m flirtl.flow.synth bitstream ...   (all of the above, then ecppack)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..files import atomic_write
from .export import to_verilog
from .toolchain import tool_command

__all__ = [
    "TARGETS", "DEVICES", "FAMILIES", "ToolError", "DoesNotFit", "Unroutable", "synthesize", "resources",
    "place_and_route", "bitstream",
    "absorb_dsp_registers", "KEEP_REGISTER_COPIES",
    "DemoTop", "demo_top", "demo_place_and_route", "CONSTRAINTS", "xc7_logic_depth", "vivado_script", "KINTEX_MHZ",
]

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints"

#: Yosys synthesis command per target. `-flatten` so `stat` counts the whole design in one module.
TARGETS = {
    "xc7": "synth_xilinx -family xc7 -flatten -top {top}",
    "ecp5": "synth_ecp5 -top {top}",
    "nexus": "synth_nexus -top {top}",
    "gowin": "synth_gowin -top {top}",
}

#: Run before each synthesis: the IP marks `keep` the register copies that split a large fan-out
#: (each copy drives a few lanes). Those copies are equal, and Yosys merges equal flip-flops
#: whatever their wire's attribute says (Vivado honours KEEP on a register): the flip-flop cells
#: behind `keep` wires are marked too.
KEEP_REGISTER_COPIES = "proc; setattr -set keep 1 w:* a:keep %i %ci1:+$dff,$adff[Q] c:* %i"

#: The parts the report compares against: capacity of each resource class.
DEVICES = {
    # Kintex-7 xc7k410t (the reference design's part): 63,550 slices x 4 LUT6 / 8 FF
    "xc7": {"part": "xc7k410t", "lut": 254_200, "ff": 508_400, "dsp": 1_540, "bram": 795},
    # ECP5 LFE5U-85F: LUT4 / FF per slice pair, 18x18 multipliers, 18-kbit DP16KD blocks
    "ecp5": {"part": "LFE5U-85F", "lut": 83_640, "ff": 83_640, "dsp": 156, "bram": 208},
    # CrossLink-NX / Certus-NX LIFCL-40: LUT4s, 9x9 multipliers (two per 18x18), 18-kbit EBR
    "nexus": {"part": "LIFCL-40", "lut": 39_600, "ff": 39_600, "dsp": 112, "bram": 84},
    # Gowin GW2A-18C (Tang Primer 20K): LUT4s, 18x18 multipliers, 18-kbit BSRAM
    "gowin": {"part": "GW2A-18C", "lut": 20_736, "ff": 15_552, "dsp": 48, "bram": 46},
}

#: Place-and-route per FPGA family (`make pnr FAMILY=...`): the nextpnr tool and its device
#: arguments, the demo top's pin constraints (None: nextpnr places the three ports), and the
#: packer that turns the routed design into a bitstream.
FAMILIES = {
    "ecp5": {"nextpnr": "nextpnr-ecp5", "device": "LFE5U-85F-8BG381C",
             "args": ["--85k", "--package", "CABGA381", "--speed", "8"],
             "constraints": ("--lpf", "flirtl_ecp5_demo.lpf"), "routed": ("--textcfg", "pnr.config"),
             "pack": "ecppack"},
    "nexus": {"nextpnr": "nextpnr-nexus", "device": "LIFCL-40-9BG400C",
              "args": ["--device", "LIFCL-40-9BG400C"],
              "constraints": ("--pdc", "flirtl_nexus_demo.pdc"), "routed": ("--fasm", "pnr.fasm"),
              "pack": "prjoxide", "oscillator": True},
    "gowin": {"nextpnr": "nextpnr-himbaechel-gowin", "device": "GW2A-LV18PG256C8/I7",
              "args": ["--device", "GW2A-LV18PG256C8/I7", "--vopt", "family=GW2A-18C"],
              "constraints": ("--vopt", "flirtl_gowin_demo.cst"), "routed": ("--write", "pnr_routed.json"),
              "pack": "gowin_pack"},
}

# LUTs that Xilinx distributed RAM and shift-register primitives occupy (UG474).
_XC7_LUTRAM = {"RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1S": 4,
               "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "SRL16E": 1, "SRLC32E": 1, "SRLC16E": 1}
_XC7_FF = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")


class ToolError(RuntimeError):
    """A Yosys / nextpnr / ecppack run failed; the message names its log."""


def _rel(path, workdir: Path) -> str:
    # YoWASP tools see the host through WASI preopens: relative paths always resolve, while
    # absolute ones under /tmp land in the runtime's own temporary directory.
    return os.path.relpath(Path(path).resolve(), workdir)


def _run(tool: str, args: list, log: Path, *, cwd: Path, timeout: float | None = None) -> float:
    """Run a YoWASP tool with its output in `log`; returns the wall time in seconds."""
    start = time.monotonic()
    with open(log, "w") as out:
        result = subprocess.run([*tool_command(tool), *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd, timeout=timeout)
    if result.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
        raise ToolError(f"{tool} failed (exit {result.returncode}); see {log}:\n{tail}")
    return time.monotonic() - start


def resources(target: str, cells: dict) -> dict:
    """LUT / FF / DSP / BRAM figures of a flattened netlist's `stat` cell counts.

    xc7: `lut` counts LUT1..LUT6 plus the LUTs distributed RAM occupies (`lutram`, also given
    alone); `bram` is in RAMB36 units (a RAMB18 is half). ecp5: `lut` counts LUT4s, two per CCU2C
    carry cell and the LUTs of TRELLIS_DPR16X4 distributed RAM (two each); `bram` counts DP16KD.
    """
    count = lambda *names: sum(int(cells.get(n, 0)) for n in names)  # noqa: E731
    if target == "xc7":
        lutram = sum(int(cells.get(n, 0)) * luts for n, luts in _XC7_LUTRAM.items())
        logic = count(*(f"LUT{i}" for i in range(1, 7)))
        return {"lut": logic + lutram, "lut_logic": logic, "lutram": lutram, "ff": count(*_XC7_FF),
                "dsp": count("DSP48E1"), "bram": count("RAMB36E1") + count("RAMB18E1") / 2,
                "carry": count("CARRY4")}
    if target == "nexus":
        lutram = 2 * count("DPR16X4")
        logic = count("LUT4", "WIDEFN9") + 2 * count("CCU2")
        return {"lut": logic + lutram, "lut_logic": logic, "lutram": lutram,
                "ff": count("FD1P3IX", "FD1P3DX", "FD1P3BX", "FD1P3JX"),
                "dsp": count("MULT9X9") + 2 * count("MULT18X18") + 8 * count("MULT36X36"),
                # PDPSC16K: the single-clock pseudo dual port EBR that synth_nexus maps the IP's buffers to
                "bram": count("DP16K", "PDP16K", "PDPSC16K", "SP16K"), "carry": count("CCU2")}
    if target == "gowin":
        lutram = 4 * count("RAM16SDP4", "RAM16SDP2", "RAM16SDP1")
        logic = count("LUT1", "LUT2", "LUT3", "LUT4") + count("ALU")
        return {"lut": logic + lutram, "lut_logic": logic, "lutram": lutram,
                "ff": count("DFF", "DFFE", "DFFR", "DFFRE", "DFFS", "DFFSE", "DFFP", "DFFPE", "DFFC", "DFFCE"),
                "dsp": count("MULT9X9") / 2 + count("MULT18X18") + 4 * count("MULT36X36"),
                "bram": count("DPB", "DPX9B", "SDPB", "SDPX9B", "SP", "SPX9", "pROM", "pROMX9"),
                "carry": count("ALU")}
    if target == "ecp5":
        lutram = 2 * count("TRELLIS_DPR16X4")
        logic = count("LUT4") + 2 * count("CCU2C")
        return {"lut": logic + lutram, "lut_logic": logic, "lutram": lutram, "ff": count("TRELLIS_FF"),
                "dsp": count("MULT18X18D"), "bram": count("DP16KD"), "carry": count("CCU2C")}
    raise ValueError(f"unknown target {target!r}; expected one of {sorted(TARGETS)}")


#: Run before synth_nexus: every multiplier whose operands fit 9 bits (the IP's 8-bit lanes, w_ih * x,
#: z * (h - n)) becomes a MULT9X9, a quarter of a sysDSP block. synth_nexus itself puts each of them
#: on a MULT18X18 (two MULT9 cores): the shipped IP then needs 214 of the LIFCL-40's 112 MULT9
#: cores, and all 112 this way. Their operand and product registers stay in the fabric. (`wreduce`
#: first: the Verilog widens each operand to the product's width.)
NEXUS_NARROW_MULTIPLIERS = ("wreduce t:$mul; techmap -map +/mul2dsp.v -map +/lattice/dsp_map_nexus.v "
                            "-D DSP_A_MAXWIDTH=9 -D DSP_B_MAXWIDTH=9 -D DSP_A_MINWIDTH=4 -D DSP_B_MINWIDTH=4 "
                            "-D DSP_NAME=$__NX_MUL9X9 "
                            "t:$mul r:A_WIDTH>=4 %i r:A_WIDTH<=9 %i r:B_WIDTH>=4 %i r:B_WIDTH<=9 %i")


def synthesize(verilog, top: str, target: str, workdir, *, extra_verilog=(), options: str = "",
               netlist: bool = False) -> dict:
    """Synthesise `verilog` (module `top`) for `target` ("xc7" or "ecp5") in `workdir`.

    `options` are appended to the synth command (e.g. "-nodsp" to map multipliers to LUTs).
    `netlist=True` also writes the JSON netlist `<top>_<target>.json` that nextpnr reads.
    Returns (and writes to `synth_<target>[_<tag>].json`) the resource figures, the raw cell
    counts, the wall time and the file names.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {sorted(TARGETS)}")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sources = [Path(v).resolve() for v in (verilog, *extra_verilog)]
    for source in sources:
        if not source.is_file():
            raise FileNotFoundError(f"no Verilog file at {str(source)!r}")
    tag = target + ("_" + re.sub(r"[^A-Za-z0-9]+", "", options) if options else "")
    stat_path = workdir / f"stat_{tag}.json"
    script = [f"read_verilog {_rel(s, workdir)}" for s in sources]
    script.append(KEEP_REGISTER_COPIES)
    if target == "nexus" and "-nodsp" not in options:
        script.append(NEXUS_NARROW_MULTIPLIERS)
    script.append(TARGETS[target].format(top=top) + (f" {options}" if options else ""))
    if netlist:
        script.append(f"write_json {top}_{target}.json")
    script.append(f"tee -q -o {stat_path.name} stat -json")
    script_path = workdir / f"synth_{tag}.ys"
    atomic_write(script_path, ("\n".join(script) + "\n").encode())
    seconds = _run("yosys", ["-q", "-l", f"synth_{tag}.log", script_path.name],
                   workdir / f"synth_{tag}.out", cwd=workdir)
    stat = json.loads(stat_path.read_text())
    cells = {k: v for k, v in stat["design"]["num_cells_by_type"].items() if not k.startswith("$scopeinfo")}
    figures = {"target": target, "part": DEVICES[target]["part"], "top": top, "options": options,
               **resources(target, cells), "cells": cells, "yosys_seconds": round(seconds, 1)}
    if netlist:
        figures["netlist"] = f"{top}_{target}.json"
        if target == "nexus":
            _detach_constant_carry_in(workdir / figures["netlist"])
        if target == "ecp5":
            absorbed = absorb_dsp_registers(workdir / figures["netlist"])
            cells = {**cells, "TRELLIS_FF": cells.get("TRELLIS_FF", 0) - absorbed["flip_flops_removed"]}
            figures.update(resources(target, cells), cells=cells, dsp_registers=absorbed)
    atomic_write(workdir / f"synth_{tag}.json", (json.dumps(figures, indent=2) + "\n").encode())
    return figures


#: Kintex-7 clock of the reference design, which no open tool can time after routing.
KINTEX_MHZ = 222.0
_STA_STEP = re.compile(r"^\s+(\d+) (\S+) \((\w+)\.(\w+)->(\w+)\)$")
_STA_LATEST = re.compile(r"Latest arrival time in '.*' is (\d+):")
_DSP_REGISTERS = ("AREG", "BREG", "MREG", "PREG")
# Yosys' FDRE/FDSE/FDCE/FDPE models give their clock-to-Q only under parameter conditions that
# `sta` does not evaluate, so every flip-flop would be invisible to it. The netlist's flip-flops
# are renamed to these cells, which restate the same figures (clock-to-Q 303 ps, CE setup 109 ps,
# reset setup 404 ps; D setup -46 ps, taken as 0) without conditions.
_STA_FLOPS = {"FDRE": "R", "FDSE": "S", "FDCE": "CLR", "FDPE": "PRE"}
_STA_FLOP_MODELS = "".join(
    f"module FLIRTL_STA_{ff} (input C, CE, D, {reset}, output Q);\n"
    f"  parameter INIT = 0; parameter IS_C_INVERTED = 0; parameter IS_D_INVERTED = 0; "
    f"parameter IS_{reset}_INVERTED = 0;\n"
    f"  specify\n    (posedge C => (Q : 1'bx)) = 303;\n    $setup(D, posedge C, 1);\n"
    f"    $setup(CE, posedge C, 109);\n    $setup({reset}, posedge C, 404);\n  endspecify\nendmodule\n"
    for ff, reset in _STA_FLOPS.items())


def xc7_logic_depth(verilog, top: str, workdir) -> dict:
    """The deepest register-to-register path of the Kintex-7 netlist, from its logic alone.

    Yosys `sta` over the `synth_xilinx` netlist with the cell delays Yosys ships for 7-series
    (`cells_sim.v` specify blocks, Artix-7 figures from Project X-Ray: slower than a Kintex-7 -2,
    so pessimistic for the logic). Routing is not in it: no open router exists for 7-series, and
    distributed-RAM reads are not timed (Yosys has no model for them). Returns the latest arrival
    [ns] (launch clock-to-out to capture setup), the cells on that path (LUT levels, CARRY4 length,
    DSP48E1s), the DSP48E1 register use (AREG/BREG/MREG/PREG per cell) and what a 222 MHz period
    leaves for each routed net of the path.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    netlist, report = f"{top}_xc7_depth.json", "sta_xc7.txt"
    atomic_write(workdir / "sta_flops.v", _STA_FLOP_MODELS.encode())
    script = [f"read_verilog {_rel(verilog, workdir)}", TARGETS["xc7"].format(top=top), f"write_json {netlist}",
              *(f"chtype -map {ff} FLIRTL_STA_{ff}" for ff in _STA_FLOPS),
              "read_verilog -lib -specify +/xilinx/cells_sim.v", "read_verilog -lib -specify sta_flops.v",
              f"tee -q -o {report} sta"]
    atomic_write(workdir / "sta_xc7.ys", ("\n".join(script) + "\n").encode())
    seconds = _run("yosys", ["-q", "-l", "sta_xc7.log", "sta_xc7.ys"], workdir / "sta_xc7.out", cwd=workdir)
    text = (workdir / report).read_text()
    latest = _STA_LATEST.search(text)
    path = [{"arrival_ns": int(m[1]) / 1000, "cell": m[3].removeprefix("FLIRTL_STA_"), "arc": f"{m[4]}->{m[5]}"}
            for m in map(_STA_STEP.match, text.splitlines()) if m]
    if latest is None or not path:
        raise ToolError(f"no critical path in Yosys' sta report; see {workdir / report}")
    path.reverse()  # sta lists the path from its end
    dsp = {}
    for module in json.loads((workdir / netlist).read_text())["modules"].values():
        for cell in module.get("cells", {}).values():
            if cell["type"] == "DSP48E1":
                use = " ".join(f"{r}={int(str(cell['parameters'].get(r, '1')), 2)}" for r in _DSP_REGISTERS)
                dsp[use] = dsp.get(use, 0) + 1
    (workdir / netlist).unlink()  # tens of MB; the figures are what is kept
    # the clock's own insertion delay (IBUF, BUFG) reaches the capturing register too
    launch = max((i for i, step in enumerate(path) if step["arc"].split("->")[0] in ("C", "CLK")), default=0)
    arrival = round(int(latest[1]) / 1000 - (path[launch - 1]["arrival_ns"] if launch else 0.0), 3)
    # a routed net into each cell after the launching register, except carry-chain links
    # (CI, dedicated wires), plus the net into the capturing register
    path = path[launch:]
    hops = 1 + sum(not step["arc"].startswith("CI->") for step in path[1:])
    period = 1000 / KINTEX_MHZ
    return {"arrival_ns": arrival, "path": path,
            "lut_levels": sum(step["cell"].startswith("LUT") for step in path),
            "carry4": sum(step["cell"] == "CARRY4" for step in path),
            "dsp_on_path": sum(step["cell"] == "DSP48E1" for step in path),
            "dsp_registers": dsp, "period_ns": round(period, 3), "routed_hops": hops,
            "routing_budget_ns_per_hop": round((period - arrival) / hops, 3), "yosys_seconds": round(seconds, 1)}


def vivado_script(verilog, top: str, xdc, path, *, part: str = "xc7k410tffg900-2") -> Path:
    """A Vivado batch script (not run here: Vivado is not open) that synthesises, places and routes
    the IP out of context on `part` with the XDC (copied beside it), and writes the timing summary
    and utilisation there: `vivado -mode batch -source <path>`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path.parent / Path(xdc).name, Path(xdc).read_bytes())  # the script's directory travels whole
    here = lambda f: os.path.relpath(Path(f).resolve(), path.parent.resolve())  # noqa: E731
    tcl = f"""# flirtl: Vivado out-of-context implementation of {top} (generated by `make vivado`)
# run from this directory: vivado -mode batch -source {path.name}
set here [file dirname [file normalize [info script]]]
create_project -in_memory -part {part}
read_verilog [file join $here {{{here(verilog)}}}]
read_xdc [file join $here {{{Path(xdc).name}}}]
synth_design -top {top} -part {part} -mode out_of_context
opt_design
place_design
phys_opt_design
route_design
report_timing_summary -file [file join $here {top}_timing.rpt]
report_utilization -file [file join $here {top}_utilization.rpt]
write_checkpoint -force [file join $here {top}_routed.dcp]
"""
    atomic_write(path, tcl.encode())
    return path


def _detach_constant_carry_in(netlist: Path) -> int:
    """Leave unconnected the carry input of each CCU2 that a constant-0 (VLO) cell drives.

    synth_nexus starts some carry chains from a VLO cell, which nextpnr-nexus rejects ("CIN net
    driven by non-CCU2 cell"; Yosys issue 4081); an unconnected CIN is the chain's start, a carry
    of 0, so the logic is the same. Returns the number of cells changed."""
    design = json.loads(netlist.read_text())
    changed = 0
    for module in design["modules"].values():
        cells = module.get("cells", {})
        zero = {bit for cell in cells.values() if cell["type"] == "VLO" for bit in cell["connections"].get("Z", [])}
        for cell in cells.values():
            cin = cell["connections"].get("CIN") if cell["type"] == "CCU2" else None
            if cin and all(bit in zero or bit == "0" for bit in cin):
                del cell["connections"]["CIN"]
                changed += 1
    if changed:
        atomic_write(netlist, json.dumps(design).encode())
    return changed


#: MULT18X18D register groups that `absorb_dsp_registers` fills: its parameter prefix and pins.
_MULT18_REGISTERS = {"A": "REG_INPUTA", "B": "REG_INPUTB", "P": "REG_OUTPUT"}


#: The cells of a "shallow" operand register's D input (`absorb_dsp_registers`), and how many deep:
#: a LUT4, then the PFUMX and L6MUX21 that widen it (a 64-word LUT ROM is all three).
_LUT_CELLS = ("LUT4", "PFUMX", "L6MUX21")
_OPERAND_LOGIC_LEVELS = 3


def _ff_controls(cell: dict):
    """(clock, clock enable, reset, GSR) of a TRELLIS_FF that a MULT18X18D register can stand in for,
    or None: rising clock, a synchronous reset to 0 that wins over the enable (SRMODE LSR_OVER_CE,
    REGSET RESET, active-high LSR: what Amaranth's `sync` domain becomes), enable high or active-high."""
    params = {k: str(v).strip() for k, v in cell.get("parameters", {}).items()}
    conn = cell["connections"]
    if (params.get("CLKMUX", "CLK"), params.get("LSRMUX", "LSR"), params.get("REGSET", "RESET"),
            params.get("SRMODE", "LSR_OVER_CE"), params.get("LSRMODE", "LSR")) != ("CLK", "LSR", "RESET", "LSR_OVER_CE", "LSR"):
        return None
    enable = {"1": "1", "CE": (conn.get("CE") or ["1"])[0]}.get(params.get("CEMUX", "1"))
    if enable is None or "CLK" not in conn:
        return None
    return conn["CLK"][0], enable, (conn.get("LSR") or ["0"])[0], params.get("GSR", "ENABLED")


def absorb_dsp_registers(netlist) -> dict:
    """ECP5: move the flip-flops around each MULT18X18D of a `synth_ecp5` JSON netlist into the
    block's own registers, so that no multiply pays two fabric <-> DSP routes in one cycle.

    synth_ecp5 maps `a * b` to a MULT18X18D with every register off (REG_*_CLK "NONE") and
    nextpnr-ecp5 packs no flip-flop into it. Here, per block: an operand (A or B) whose 18 pins are
    each constant 0 or driven by a TRELLIS_FF takes those flip-flops' D nets and turns its input
    register on (REG_INPUTA / REG_INPUTB); an output whose used P pins each drive one TRELLIS_FF's
    DI and nothing else takes those flip-flops' place (REG_OUTPUT). Moving an operand register into
    the block moves the route from the fabric to the block into the stage before the register, so
    only a register whose D is shallow moves: a constant, a flip-flop, or at most three LUT / mux
    cells from those (a LUT ROM of up to 64 words, a multiplexer). One behind a block RAM's read
    (a DP16KD's clock-to-out is about 4 ns without its output register), a carry chain or deeper
    logic stays in the fabric, where the placer can put it beside that logic. All registers of a block run on
    its CLK0 (nextpnr times a registered MULT18X18D from CLK0 only); each group gets the enable and
    the reset of its flip-flops on one of CE0..CE3 / RST0..RST3, RESETMODE "SYNC". A flip-flop that
    also drives other logic stays (the block holds a copy); one that drives nothing any more goes.
    Register for register and cycle for cycle the same design (tests/test_ecp5_dsp.py checks it
    with sim/ecp5_mult18x18d.v). Returns the blocks changed, the registers turned on per group and
    the flip-flops removed; the netlist is rewritten in place."""
    netlist = Path(netlist)
    design = json.loads(netlist.read_text())
    summary = {"blocks": 0, "registers": {group: 0 for group in _MULT18_REGISTERS}, "flip_flops_removed": 0}
    for module in design["modules"].values():
        cells = module.get("cells", {})
        dsps = [name for name, c in cells.items() if c["type"] == "MULT18X18D"
                and all(str(c.get("parameters", {}).get(f"{reg}_CLK", "NONE")).strip() == "NONE"
                        for reg in (*_MULT18_REGISTERS.values(), "REG_PIPELINE"))]
        if not dsps:
            continue
        driver, loads = {}, {}  # net bit -> the cell driving it / the input pins it drives
        for name, cell in cells.items():
            for port, bits in cell["connections"].items():
                output = cell["port_directions"].get(port) == "output"
                for bit in bits:
                    if output:
                        driver[bit] = name
                    else:
                        loads.setdefault(bit, []).append((name, port))
        ff_q = {bit: name for bit, name in driver.items() if cells[name]["type"] == "TRELLIS_FF"
                and cells[name]["connections"]["Q"][0] == bit}

        def shallow(bit, levels=_OPERAND_LOGIC_LEVELS) -> bool:
            """Whether `bit` is a constant, an input, a flip-flop's Q, or at most `levels` LUT / mux cells
            from those."""
            cell = cells.get(driver.get(bit))
            if cell is None or cell["type"] == "TRELLIS_FF":
                return True
            return levels > 0 and cell["type"] in _LUT_CELLS and all(
                shallow(b, levels - 1) for port, bits in cell["connections"].items()
                if cell["port_directions"].get(port) == "input" for b in bits)

        plans = {}
        for name in dsps:
            conn, groups = cells[name]["connections"], {}
            for group in "AB":
                bits = [conn.get(f"{group}{i}", ["0"])[0] for i in range(18)]
                sources = [ff_q.get(bit) for bit in bits]
                # a pin from logic, or a constant 1 (the register's reset would clear it), keeps it off
                if not any(sources) or any(src is None and bit != "0" for src, bit in zip(sources, bits)):
                    continue
                # a register behind deep logic stays in the fabric (see above)
                if not all(shallow(cells[src]["connections"]["DI"][0]) for src in set(sources) - {None}):
                    continue
                controls = {_ff_controls(cells[src]) for src in sources if src}
                if len(controls) == 1 and None not in controls:
                    groups[group] = (controls.pop(), {f"{group}{i}": src for i, src in enumerate(sources) if src})
            used = [f"P{i}" for i in range(36) if conn.get(f"P{i}") and loads.get(conn[f"P{i}"][0])]
            sinks = [loads[conn[pin][0]] for pin in used]
            if used and all(len(s) == 1 and s[0][1] == "DI" and cells[s[0][0]]["type"] == "TRELLIS_FF" for s in sinks):
                controls = {_ff_controls(cells[s[0][0]]) for s in sinks}
                if len(controls) == 1 and None not in controls:
                    groups["P"] = (controls.pop(), {pin: s[0][0] for pin, s in zip(used, sinks)})
            plans[name] = groups
        # a flip-flop copied into an input register keeps its Q: it cannot also become an output register
        copied = {ff for groups in plans.values() for g in "AB" if g in groups for ff in groups[g][1].values()}
        removed = set()
        for name, groups in plans.items():
            if "P" in groups and copied & set(groups["P"][1].values()):
                del groups["P"]
            # one clock (CLK0) and one GSR setting per block: the output register's, else A's
            first = groups.get("P", groups.get("A", groups.get("B")))
            groups = {g: v for g, v in groups.items() if (v[0][0], v[0][3]) == (first[0][0], first[0][3])} if first else {}
            if not groups:
                continue
            dsp = cells[name]
            conn, params, dirs = dsp["connections"], dsp.setdefault("parameters", {}), dsp["port_directions"]
            enables, resets = [], []
            for group, ((clock, enable, reset, gsr), pins) in groups.items():
                enables += [enable] * (enable not in enables)
                resets += [reset] * (reset not in resets)
                prefix = _MULT18_REGISTERS[group]
                params.update({f"{prefix}_CLK": "CLK0", f"{prefix}_CE": f"CE{enables.index(enable)}",
                               f"{prefix}_RST": f"RST{resets.index(reset)}"})
                for pin, ff in pins.items():
                    if group == "P":  # the block's register drives what the flip-flop drove
                        conn[pin] = cells[ff]["connections"]["Q"][:1]
                        removed.add(ff)
                    else:  # the block's register loads what the flip-flop loads
                        loads[conn[pin][0]].remove((name, pin))
                        conn[pin] = cells[ff]["connections"]["DI"][:1]
                summary["registers"][group] += 1
            params.update({"RESETMODE": "SYNC", "GSR": first[0][3]})
            for port, nets in (("CLK", [first[0][0]]), ("CE", enables), ("RST", resets)):
                for index, net in enumerate(nets):  # at most three distinct ones: three groups
                    conn[f"{port}{index}"], dirs[f"{port}{index}"] = [net], "input"
            summary["blocks"] += 1
        removed |= {ff for ff in copied if not loads.get(cells[ff]["connections"]["Q"][0])}
        for ff in removed:
            del cells[ff]
        summary["flip_flops_removed"] += len(removed)
    if summary["blocks"]:
        atomic_write(netlist, json.dumps(design).encode())
    return summary


_FMAX_LINE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+) MHz")


class DoesNotFit(ToolError):
    """nextpnr found the design larger than the device; the message names the resource."""


class Unroutable(ToolError):
    """nextpnr placed the design with every seed tried (`seeds`) and found no route for some
    connection each time; `reason` is nextpnr's error line."""

    def __init__(self, message: str, *, reason: str, seeds: list):
        super().__init__(message)
        self.reason, self.seeds = reason, list(seeds)


# nextpnr's words for a design larger than the device: the placer runs out of sites of a cell type
_OVERUSE = re.compile(r"no BELs remaining to implement cell type '([^']+)'|"
                      r"[Dd]esign uses (\d+) ([A-Za-z0-9_]+?)s?,? (?:while|but) (?:the )?device (?:only )?has (?:only )?(\d+)")
#: nextpnr's router found no path for a connection. On the LIFCL-40 the on-chip oscillator's wire
#: to its clock buffer (DCC) is such an arc for some placements and not for others: another seed.
_UNROUTABLE = re.compile(r"ERROR: Failed to route arc")


def place_and_route(netlist, workdir, *, family: str = "ecp5", constraints=None, freq_mhz: float = 100.0,
                    seed: int = 1, attempts: int = 3, timeout: float | None = None) -> dict:
    """nextpnr for `family` (a key of `FAMILIES`) on that family's synthesis JSON netlist.

    `constraints`: the demo top's pin file (default: the family's file in constraints/, None
    where the family has none). Writes the routed design (`FAMILIES[family]["routed"]`), `pnr.log`
    and `pnr.json`; returns the achieved Fmax per clock (MHz, from nextpnr's timing report),
    whether `freq_mhz` was met, and the utilisation of each resource class (used / available).
    A design larger than the device raises `DoesNotFit`. The previous run's `pnr.json` is removed
    first, so a failed run leaves no figures that look current. A placement whose routing has no
    path for some connection is placed again with the next seed, `attempts` seeds in all; the
    figures name the seed that routed and the ones that did not (`unrouted_seeds`, their logs kept
    as `pnr.seed<N>.out`).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown FPGA family {family!r}; expected one of {sorted(FAMILIES)}")
    if not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be a positive int, not {attempts!r}")
    spec = FAMILIES[family]
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("pnr.json", "nextpnr_report.json", spec["routed"][1], *workdir.glob("pnr.seed*.out")):
        (workdir / stale).unlink(missing_ok=True)
    netlist = Path(netlist).resolve()
    if constraints is None and spec["constraints"] and (CONSTRAINTS / spec["constraints"][1]).is_file():
        constraints = CONSTRAINTS / spec["constraints"][1]
    for path in (netlist, constraints):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"no file at {str(path)!r}")
    report_path = workdir / "nextpnr_report.json"
    pins = []
    if constraints is not None:
        flag, _ = spec["constraints"]
        local = workdir / Path(constraints).name
        if Path(constraints).resolve() != local:
            atomic_write(local, Path(constraints).read_bytes())
        rel = local.name
        pins = [flag, f"cst={rel}"] if flag == "--vopt" else [flag, rel]
    unrouted = []
    for seed in range(seed, seed + attempts):
        # --timing-allow-fail: a missed target is a figure to report (Fmax), not a failed run
        args = [*spec["args"], "--freq", f"{freq_mhz:g}", "--seed", str(seed), "--timing-allow-fail",
                "--json", _rel(netlist, workdir), *pins, *spec["routed"],
                "--report", report_path.name, "--log", "pnr.log"]
        try:
            seconds = _run(spec["nextpnr"], args, workdir / "pnr.out", cwd=workdir, timeout=timeout)
            break
        except ToolError as error:
            log = (workdir / "pnr.out").read_text(errors="replace")
            over = _OVERUSE.search(log)
            if over:
                need = (f"more {over[1]} sites than it has" if over[1] else
                        f"{over[2]} {over[3]}, it has {over[4]}")
                raise DoesNotFit(f"the design does not fit the {spec['device']}: it needs {need} "
                                 f"(log: {workdir / 'pnr.out'})") from None
            unroutable = _UNROUTABLE.search(log)
            if not unroutable:
                raise
            unrouted.append(seed)
            if len(unrouted) == attempts:  # the first line (what the command line prints) names every seed
                first, _, tail = str(error).partition("\n")
                reason = log[unroutable.start():].splitlines()[0]
                raise Unroutable(f"{first} (no route with seeds {', '.join(map(str, unrouted))})\n{tail}",
                                 reason=reason, seeds=unrouted) from None
            (workdir / "pnr.out").replace(workdir / f"pnr.seed{seed}.out")  # the next seed's run overwrites it
    report = json.loads(report_path.read_text())
    fmax = {clock: round(v["achieved"], 2) for clock, v in report.get("fmax", {}).items()}
    if not fmax:  # older reports: the log's last timing summary
        for clock, mhz in _FMAX_LINE.findall((workdir / "pnr.log").read_text()):
            fmax[clock] = float(mhz)
    utilisation = {kind: {"used": u["used"], "available": u["available"]}
                   for kind, u in report.get("utilization", {}).items() if u["used"]}
    figures = {"family": family, "device": spec["device"], "target_mhz": freq_mhz,
               "fmax_mhz": min(fmax.values()) if fmax else None, "fmax_by_clock": fmax,
               "met": bool(fmax) and min(fmax.values()) >= freq_mhz, "utilisation": utilisation,
               "critical_path": _critical_path(workdir / "pnr.log"),
               "seed": seed, "unrouted_seeds": unrouted, "nextpnr_seconds": round(seconds, 1),
               "routed": spec["routed"][1],
               "tool": _tool_version(spec["nextpnr"])}
    atomic_write(workdir / "pnr.json", (json.dumps(figures, indent=2) + "\n").encode())
    return figures


def _critical_path(log: Path) -> dict | None:
    """Source and sink of the slowest path of nextpnr's last timing report, and its delay split."""
    text = log.read_text(errors="replace")
    start = text.rfind("Critical path report for clock")
    if start < 0:
        return None
    block = text[start:text.find("\n\n", start) if text.find("\n\n", start) > 0 else None].splitlines()
    totals = re.search(r"([0-9.]+) ns logic, ([0-9.]+) ns routing", text[start:])
    cells = re.findall(r"(?:Source|Sink) (\S+)", "\n".join(block))
    return {"from": cells[0] if cells else None, "to": cells[-1] if cells else None,
            "logic_ns": float(totals[1]) if totals else None, "routing_ns": float(totals[2]) if totals else None}


def _tool_version(tool: str) -> str:
    """The YoWASP package version of a tool (part of the report cache's key)."""
    from importlib.metadata import PackageNotFoundError, version

    from .toolchain import _YOWASP
    try:
        return f"{_YOWASP[tool][1]} {version(_YOWASP[tool][1])}"
    except (KeyError, PackageNotFoundError):
        return tool


def bitstream(routed, bit, *, family: str = "ecp5") -> dict:
    """The family's open packer on the routed design `routed` (nextpnr's output): `ecppack` (ECP5,
    compressed), `prjoxide pack` (Nexus), `gowin_pack` (Gowin) into the bitstream `bit`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown FPGA family {family!r}; expected one of {sorted(FAMILIES)}")
    routed, bit = Path(routed).resolve(), Path(bit).resolve()
    if not routed.is_file():
        raise FileNotFoundError(f"no routed design at {str(routed)!r}")
    bit.unlink(missing_ok=True)
    source = _rel(routed, bit.parent)
    args = {"ecp5": ["--compress", source, "--bit", bit.name],
            "nexus": ["pack", source, bit.name],
            "gowin": ["-d", FAMILIES["gowin"]["args"][-1].split("=")[1], "-o", bit.name, source]}[family]
    tool = FAMILIES[family]["pack"]
    seconds = _run(tool, args, bit.with_suffix(".log"), cwd=bit.parent)
    return {"bitstream": bit.name, "bytes": bit.stat().st_size, "pack_seconds": round(seconds, 1), "packer": tool}


class DemoTop(wiring.Component):
    """ECP5 demo top: the generated IP (module `ip_name`, by `Instance`) between a count source and
    a result sink, with only a clock, a reset button and eight LEDs as pins.

    Source: a 32-bit Galois LFSR gives each count (its low bits) and the `tvalid` gaps (one cycle
    in eight idle); `tlast` on every `n_bins`-th accepted count. Sink: `m_axis_tready` follows
    another LFSR bit (random backpressure); every accepted result word is folded by XOR into an
    8-bit register that drives the LEDs, so no output bit of the IP is unobserved.
    """

    def __init__(self, ip_name: str, *, count_width: int, result_width: int, n_bins: int,
                 sfd_width: int | None = None, oscillator: bool = False):
        for label, value in (("count_width", count_width), ("result_width", result_width), ("n_bins", n_bins)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, not {value!r}")
        self._ip_name, self._count_width, self._result_width = ip_name, count_width, result_width
        self._n_bins, self._sfd_width, self._oscillator = n_bins, sfd_width, oscillator
        super().__init__({"leds": Out(8), **({"rst": In(1)} if oscillator else {})})

    def elaborate(self, platform):
        m = Module()
        if self._oscillator:
            # Nexus: the on-chip oscillator (450 MHz / (2 + 1) = 150 MHz) reaches the clock tree on
            # dedicated wires; nextpnr-nexus routes no general I/O pin of the LIFCL-40-9BG400C to it
            m.domains.sync = ClockDomain("sync")
            m.submodules.osc = Instance("OSC_CORE", p_HF_CLK_DIV="2", i_HFOUTEN=Const(1, 1),
                                        o_HFCLKOUT=ClockSignal("sync"))
            m.d.comb += ResetSignal("sync").eq(self.rst)
        lfsr = Signal(32, init=0xACE1_2468)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], Const(0, 1)) ^ (Const(0x8020_0003, 32) & -lfsr[0].as_signed()))
        count, valid, ready = Signal(self._count_width), Signal(), Signal()
        beat = Signal(range(self._n_bins))
        m.d.comb += [count.eq(lfsr[: self._count_width]), valid.eq(lfsr[29:32] != 0)]
        with m.If(valid & ready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(beat == self._n_bins - 1):
                m.d.sync += beat.eq(0)
        result, result_valid, result_last = Signal(self._result_width), Signal(), Signal()
        result_ready = Signal()
        m.d.comb += result_ready.eq(lfsr[17])
        folded = Signal(8)
        fold = Const(0, 8)
        for lsb in range(0, self._result_width, 8):
            fold = fold ^ result[lsb:lsb + 8]
        with m.If(result_valid & result_ready):
            m.d.sync += folded.eq(folded ^ fold ^ Cat(Const(0, 7), result_last))
        instance_ports = {
            "i_clk": ClockSignal(), "i_rst": ResetSignal(),
            "i_s_axis_tdata": count, "i_s_axis_tvalid": valid, "o_s_axis_tready": ready,
            "i_s_axis_tlast": beat == self._n_bins - 1,
            "o_m_axis_tdata": result, "o_m_axis_tvalid": result_valid, "i_m_axis_tready": result_ready,
            "o_m_axis_tlast": result_last,
        }
        if self._sfd_width:
            sfd, sfd_valid, sfd_last = Signal(self._sfd_width), Signal(), Signal()
            sfd_fold = Const(0, 8)
            for lsb in range(0, self._sfd_width, 8):
                sfd_fold = sfd_fold ^ sfd[lsb:lsb + 8]
            sfd_folded = Signal(8)
            with m.If(sfd_valid):  # always ready
                m.d.sync += sfd_folded.eq(sfd_folded ^ sfd_fold ^ Cat(Const(0, 7), sfd_last))
            instance_ports.update({"o_m_sfd_axis_tdata": sfd, "o_m_sfd_axis_tvalid": sfd_valid,
                                   "i_m_sfd_axis_tready": Const(1, 1), "o_m_sfd_axis_tlast": sfd_last})
            m.d.comb += self.leds.eq(folded ^ sfd_folded)
        else:
            m.d.comb += self.leds.eq(folded)
        m.submodules.ip = Instance(self._ip_name, **instance_ports)
        return m


def demo_top(ip_build, workdir, *, name: str = "flirtl_demo", oscillator: bool = False) -> Path:
    """Write the Verilog of `DemoTop` around `ip_build` (an `RtlBuild`) to `<workdir>/<name>.v`.
    Ports: `clk` (unless `oscillator`: the Nexus on-chip oscillator clocks it), `rst` (active
    high), `leds[7:0]`; synthesise it together with the IP's file."""
    meta = ip_build.metadata
    sfd = meta.get("m_sfd_axis")
    top = DemoTop(ip_build.name, count_width=meta["s_axis"]["tdata"]["width"],
                  result_width=meta["m_axis"]["tdata"]["width"], n_bins=_n_bins(ip_build),
                  sfd_width=sfd["tdata"]["width"] if sfd else None, oscillator=oscillator)
    path = Path(workdir) / f"{name}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, to_verilog(top, name, emit_src=False).encode())
    return path


def demo_place_and_route(ip_build, work, *, family: str, freq_mhz: float, seed: int = 1,
                         timeout: float | None = None, on_synthesis=lambda figures: None) -> dict:
    """The IP in the demo top, synthesised for `family` and placed and routed on its device:
    {"synth": Yosys figures, "pnr": `place_and_route` figures}. `DoesNotFit` names the resource."""
    work = Path(work)
    demo = demo_top(ip_build, work, oscillator=FAMILIES[family].get("oscillator", False))
    synth = synthesize(demo, "flirtl_demo", family, work, extra_verilog=[ip_build.verilog], netlist=True)
    on_synthesis(synth)
    # a part too small is named from Yosys' counts before nextpnr spends minutes finding out
    # (nextpnr-nexus reports it only as a region it "failed to expand")
    capacity = DEVICES[family]
    over = [f"{synth[kind]:g} {kind.upper()}, it has {capacity[kind]:g}" for kind in ("lut", "ff", "dsp", "bram")
            if synth[kind] > capacity[kind]]
    if over:
        raise DoesNotFit(f"the design does not fit the {FAMILIES[family]['device']}: it needs {'; '.join(over)} "
                         f"by Yosys' counts (log: {work / f'synth_{family}.log'})")
    pnr = place_and_route(work / synth["netlist"], work, family=family, freq_mhz=freq_mhz, seed=seed, timeout=timeout)
    return {"synth": {k: v for k, v in synth.items() if k != "cells"}, "pnr": pnr}


def _n_bins(ip_build) -> int:
    spec = json.loads((Path(ip_build.directory) / "spec.json").read_text())
    return int(spec["n_bins"])


def _generate(args):
    from ..modeldir import load_for_rtl
    from .rtl import generate

    model, note = load_for_rtl(args.model, bits=args.bits)
    if note:
        print(f"flirtl: note: {note}", file=sys.stderr)
    return generate(model, Path(args.out) / "ip", lanes=args.lanes, engines=args.engines,
                    sfd_stream=args.sfd_stream)


def _print_resources(figures: dict) -> None:
    capacity = DEVICES[figures["target"]]
    share = lambda key: f"{figures[key]:g} ({figures[key] / capacity[key]:.1%})"  # noqa: E731
    print(f"  {figures['target']:<5} {figures['part']:<9} LUT {share('lut')}, FF {share('ff')}, "
          f"DSP {share('dsp')}, BRAM {share('bram')}  [yosys {figures['yosys_seconds']} s]")


def _depth_line(depth: dict) -> str:
    cells = " -> ".join(step["cell"] for step in depth["path"] if step["cell"] not in ("IBUF", "BUFG"))
    return (f"  xc7 deepest path (logic only, Yosys sta, Artix-7 cell delays): {depth['arrival_ns']:.2f} ns of "
            f"{depth['period_ns']:.3f} ns at {KINTEX_MHZ:g} MHz, {depth['lut_levels']} LUT levels, "
            f"{depth['carry4']} CARRY4: {cells}; leaves {depth['routing_budget_ns_per_hop']:.2f} ns per routed net "
            f"({depth['routed_hops']} nets)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flirtl.flow.synth", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["synth", "pnr", "bitstream", "vivado"],
                        help="synth: Yosys for Kintex-7 and ECP5 and the Kintex-7 logic depth; pnr: + nextpnr "
                             "on the demo top of --family; bitstream: + the family's packer; vivado: a Vivado "
                             "batch script for the IP with the Kintex-7 XDC (for users who have Vivado)")
    parser.add_argument("--model", default="models/seq2seqlite-32x32", help="model directory")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--lanes", type=int, help="MAC lanes per engine (default 3H+3)")
    parser.add_argument("--engines", type=int, default=1)
    parser.add_argument("--sfd-stream", action="store_true")
    parser.add_argument("--family", default="ecp5", help=f"FPGA family for pnr/bitstream: {', '.join(FAMILIES)}")
    parser.add_argument("--freq", type=float, default=100.0, help="nextpnr Fmax target in MHz")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    parser.add_argument("--out", default="build/fpga", help="work directory")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.step != "synth" and args.family not in FAMILIES:
        print(f"flirtl: error: unknown FPGA family {args.family!r}; expected one of {', '.join(FAMILIES)}",
              file=sys.stderr)
        return 2
    summary_path = out / (f"{args.step}.json" if args.step in ("synth", "vivado") else f"{args.step}_{args.family}.json")
    summary_path.unlink(missing_ok=True)  # a failed run leaves no figures that look current
    try:
        ip = _generate(args)
        print(f"IP {ip.name}: {ip.verilog}")
        summary = {"ip": ip.name, "performance": ip.metadata["performance"]}
        if args.step == "synth":
            for target in ("xc7", "ecp5"):
                summary[target] = synthesize(ip.verilog, ip.name, target, out / "synth")
                _print_resources(summary[target])
            summary["xc7_depth"] = depth = xc7_logic_depth(ip.verilog, ip.name, out / "synth")
            print(_depth_line(depth))
        elif args.step == "vivado":
            script = vivado_script(ip.verilog, ip.name, CONSTRAINTS / "flirtl_kintex7.xdc",
                                   out / "vivado" / f"{ip.name}.tcl")
            summary["vivado_script"] = str(script)
            print(f"wrote {script}: run `vivado -mode batch -source {script.name}` in {script.parent} "
                  f"(timing in {ip.name}_timing.rpt)")
        else:
            family = args.family
            work = out / f"demo_{family}"
            demo = demo_place_and_route(ip, work, family=family, freq_mhz=args.freq, seed=args.seed,
                                        on_synthesis=_print_resources)
            summary[f"{family}_demo"], summary["pnr"] = demo["synth"], demo["pnr"]
            pnr = demo["pnr"]
            used = ", ".join(f"{k} {u['used']}/{u['available']}" for k, u in pnr["utilisation"].items())
            print(f"  {FAMILIES[family]['nextpnr']} {pnr['device']}: {used} [{pnr['nextpnr_seconds']} s]")
            if pnr["unrouted_seeds"]:
                print(f"  routed with seed {pnr['seed']}; seeds {', '.join(map(str, pnr['unrouted_seeds']))} "
                      f"left a connection without a route")
            print(f"Fmax {pnr['fmax_mhz']} MHz")
            if args.step == "bitstream":
                bit = work / f"flirtl_demo_{family}.bit"
                summary["bitstream"] = bitstream(work / pnr["routed"], bit, family=family)
                print(f"  {summary['bitstream']['packer']}: {bit} ({summary['bitstream']['bytes']} bytes)")
        atomic_write(summary_path, (json.dumps(summary, indent=2) + "\n").encode())
        print(f"figures in {summary_path}")
    except (ToolError, FileNotFoundError, ValueError) as error:
        print(f"flirtl: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
