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

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from ..files import atomic_write
from .export import to_verilog
from .toolchain import tool_command

__all__ = [
    "TARGETS", "DEVICES", "ToolError", "synthesize", "resources", "place_and_route", "bitstream",
    "DemoTop", "demo_top", "CONSTRAINTS",
]

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints"

#: Yosys synthesis command per target. `-flatten` so `stat` counts the whole design in one module.
TARGETS = {
    "xc7": "synth_xilinx -family xc7 -flatten -top {top}",
    "ecp5": "synth_ecp5 -top {top}",
}

#: The parts the report compares against: capacity of each resource class.
DEVICES = {
    # Kintex-7 xc7k410t (the reference design's part): 63,550 slices x 4 LUT6 / 8 FF
    "xc7": {"part": "xc7k410t", "lut": 254_200, "ff": 508_400, "dsp": 1_540, "bram": 795},
    # ECP5 LFE5U-85F: LUT4 / FF per slice pair, 18x18 multipliers, 18-kbit DP16KD blocks
    "ecp5": {"part": "LFE5U-85F", "lut": 83_640, "ff": 83_640, "dsp": 156, "bram": 208},
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
    if target == "ecp5":
        lutram = 2 * count("TRELLIS_DPR16X4")
        logic = count("LUT4") + 2 * count("CCU2C")
        return {"lut": logic + lutram, "lut_logic": logic, "lutram": lutram, "ff": count("TRELLIS_FF"),
                "dsp": count("MULT18X18D"), "bram": count("DP16KD"), "carry": count("CCU2C")}
    raise ValueError(f"unknown target {target!r}; expected one of {sorted(TARGETS)}")


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
    atomic_write(workdir / f"synth_{tag}.json", (json.dumps(figures, indent=2) + "\n").encode())
    return figures


_FMAX_LINE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+) MHz")


def place_and_route(netlist, lpf, workdir, *, freq_mhz: float = 100.0, device: str = "85k",
                    package: str = "CABGA381", seed: int = 1, timeout: float | None = None) -> dict:
    """nextpnr-ecp5 on a `synth_ecp5` JSON netlist with the pin constraints `lpf`.

    Writes `<workdir>/pnr.config` (the textual configuration `ecppack` reads), `pnr.log` and
    `pnr.json`; returns the achieved Fmax per clock (MHz, from nextpnr's timing report), whether
    `freq_mhz` was met, and the utilisation of each resource class (used / available).
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    netlist, lpf = Path(netlist).resolve(), Path(lpf).resolve()
    for path in (netlist, lpf):
        if not path.is_file():
            raise FileNotFoundError(f"no file at {str(path)!r}")
    report_path, textcfg = workdir / "nextpnr_report.json", workdir / "pnr.config"
    # --timing-allow-fail: a missed target is a figure to report (Fmax), not a failed run
    args = [f"--{device}", "--package", package, "--freq", f"{freq_mhz:g}", "--seed", str(seed),
            "--timing-allow-fail",
            "--json", _rel(netlist, workdir), "--lpf", _rel(lpf, workdir), "--textcfg", textcfg.name,
            "--report", report_path.name, "--log", "pnr.log"]
    seconds = _run("nextpnr-ecp5", args, workdir / "pnr.out", cwd=workdir, timeout=timeout)
    report = json.loads(report_path.read_text())
    fmax = {clock: round(v["achieved"], 2) for clock, v in report.get("fmax", {}).items()}
    if not fmax:  # older reports: the log's last timing summary
        for clock, mhz in _FMAX_LINE.findall((workdir / "pnr.log").read_text()):
            fmax[clock] = float(mhz)
    utilisation = {kind: {"used": u["used"], "available": u["available"]}
                   for kind, u in report.get("utilization", {}).items() if u["used"]}
    figures = {"device": f"LFE5U-{device.upper().rstrip('K')}F", "package": package, "target_mhz": freq_mhz,
               "fmax_mhz": min(fmax.values()) if fmax else None, "fmax_by_clock": fmax,
               "met": bool(fmax) and min(fmax.values()) >= freq_mhz, "utilisation": utilisation,
               "seed": seed, "nextpnr_seconds": round(seconds, 1), "textcfg": textcfg.name}
    atomic_write(workdir / "pnr.json", (json.dumps(figures, indent=2) + "\n").encode())
    return figures


def bitstream(textcfg, bit) -> dict:
    """`ecppack` of nextpnr's textual configuration into the bitstream `bit` (compressed)."""
    textcfg, bit = Path(textcfg).resolve(), Path(bit).resolve()
    if not textcfg.is_file():
        raise FileNotFoundError(f"no nextpnr configuration at {str(textcfg)!r}")
    seconds = _run("ecppack", ["--compress", _rel(textcfg, bit.parent), "--bit", bit.name],
                   bit.with_suffix(".log"), cwd=bit.parent)
    return {"bitstream": bit.name, "bytes": bit.stat().st_size, "ecppack_seconds": round(seconds, 1)}


class DemoTop(wiring.Component):
    """ECP5 demo top: the generated IP (module `ip_name`, by `Instance`) between a count source and
    a result sink, with only a clock, a reset button and eight LEDs as pins.

    Source: a 32-bit Galois LFSR gives each count (its low bits) and the `tvalid` gaps (one cycle
    in eight idle); `tlast` on every `n_bins`-th accepted count. Sink: `m_axis_tready` follows
    another LFSR bit (random backpressure); every accepted result word is folded by XOR into an
    8-bit register that drives the LEDs, so no output bit of the IP is unobserved.
    """

    def __init__(self, ip_name: str, *, count_width: int, result_width: int, n_bins: int,
                 sfd_width: int | None = None):
        for label, value in (("count_width", count_width), ("result_width", result_width), ("n_bins", n_bins)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, not {value!r}")
        self._ip_name, self._count_width, self._result_width = ip_name, count_width, result_width
        self._n_bins, self._sfd_width = n_bins, sfd_width
        super().__init__({"leds": Out(8)})

    def elaborate(self, platform):
        m = Module()
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


def demo_top(ip_build, workdir, *, name: str = "flirtl_demo") -> Path:
    """Write the Verilog of `DemoTop` around `ip_build` (an `RtlBuild`) to `<workdir>/<name>.v`.
    Ports: `clk`, `rst` (active high), `leds[7:0]`; synthesise it together with the IP's file."""
    meta = ip_build.metadata
    sfd = meta.get("m_sfd_axis")
    top = DemoTop(ip_build.name, count_width=meta["s_axis"]["tdata"]["width"],
                  result_width=meta["m_axis"]["tdata"]["width"], n_bins=_n_bins(ip_build),
                  sfd_width=sfd["tdata"]["width"] if sfd else None)
    path = Path(workdir) / f"{name}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, to_verilog(top, name, emit_src=False).encode())
    return path


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flirtl.flow.synth", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["synth", "pnr", "bitstream"],
                        help="synth: Yosys for xc7 and ecp5; pnr: + nextpnr-ecp5 on the demo top; "
                             "bitstream: + ecppack")
    parser.add_argument("--model", default="models/seq2seqlite-32x32", help="model directory")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--lanes", type=int, help="MAC lanes per engine (default 3H+3)")
    parser.add_argument("--engines", type=int, default=1)
    parser.add_argument("--sfd-stream", action="store_true")
    parser.add_argument("--freq", type=float, default=100.0, help="nextpnr Fmax target in MHz")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    parser.add_argument("--out", default="build/fpga", help="work directory")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        ip = _generate(args)
        print(f"IP {ip.name}: {ip.verilog}")
        summary = {"ip": ip.name, "performance": ip.metadata["performance"]}
        if args.step == "synth":
            for target in TARGETS:
                summary[target] = synthesize(ip.verilog, ip.name, target, out / "synth")
                _print_resources(summary[target])
        else:
            demo = demo_top(ip, out / "demo")
            summary["ecp5_demo"] = synthesize(demo, "flirtl_demo", "ecp5", out / "demo",
                                              extra_verilog=[ip.verilog], netlist=True)
            _print_resources(summary["ecp5_demo"])
            pnr = place_and_route(out / "demo" / summary["ecp5_demo"]["netlist"],
                                  CONSTRAINTS / "flirtl_ecp5_demo.lpf", out / "demo",
                                  freq_mhz=args.freq, seed=args.seed)
            summary["pnr"] = pnr
            used = ", ".join(f"{k} {u['used']}/{u['available']}" for k, u in pnr["utilisation"].items()
                             if k in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD", "TRELLIS_RAMW"))
            print(f"  nextpnr-ecp5 {pnr['device']}: Fmax {pnr['fmax_mhz']} MHz "
                  f"({'meets' if pnr['met'] else 'misses'} {args.freq:g} MHz); {used} "
                  f"[{pnr['nextpnr_seconds']} s]")
            if args.step == "bitstream":
                summary["bitstream"] = bitstream(out / "demo" / pnr["textcfg"], out / "demo" / "flirtl_demo.bit")
                print(f"  ecppack: {out / 'demo' / 'flirtl_demo.bit'} ({summary['bitstream']['bytes']} bytes)")
        atomic_write(out / f"{args.step}.json", (json.dumps(summary, indent=2) + "\n").encode())
        print(f"figures in {out / (args.step + '.json')}")
    except (ToolError, FileNotFoundError, ValueError) as error:
        print(f"flirtl: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
