"""`flirtl rtl`: a quantized model -> one self-contained Verilog file plus its contract.

Writes into `<out>/<name>/`: `<name>.v` (weights and tables baked in as ROMs), `spec.json` (every
tensor's format), `ports.json` (names, widths, tdata packing, cycles per pixel, latency bound) and
`summary.md`. Needs Amaranth, not torch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..ports import port_metadata
from ..files import atomic_write, check_output_dir
from ..quant import QuantizedModel
from ..spec import SFD_CHANNELS
from .export import AXIStreamTop, to_verilog


@dataclass
class RtlBuild:
    name: str
    directory: Path
    verilog: Path
    metadata: dict


#: What `--name` may be: a plain Verilog identifier, which is also a safe directory name.
VERILOG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def design_name(model: QuantizedModel, lanes: int, engines: int) -> str:
    spec = model.spec
    return f"flirtl_s2s{spec.hidden}x{spec.hidden}_b{spec.bits}_l{lanes}_e{engines}"


def performance(core) -> dict:
    """Cycle figures of the design as built (the regression measures them in simulation)."""
    engine, spec = core.engine, core.engine.spec
    H, T = spec.hidden, spec.n_bins
    macs = 3 * H * (1 + H) * T + 3 * H * H * T + SFD_CHANNELS * H * T
    lane_macs = (3 * H * H * 2 + SFD_CHANNELS * H) * T  # the W_ih products run beside the lanes
    cycles = engine.cycles_per_pixel
    return {
        "lanes": engine.lanes, "engines": core.engines, "contexts": engine.contexts,
        "slot_cycles": engine.slot_cycles,
        "cycles_per_pixel_per_engine": cycles,
        "macs_per_pixel": macs,
        "lane_utilisation": lane_macs / (engine.lanes * cycles),
        "latency_cycles_bound": engine.latency_bound,
    }


def generate(model: QuantizedModel, out, *, lanes: int | None = None, engines: int = 1,
             sfd_stream: bool = False, name: str | None = None) -> RtlBuild:
    from ..gateware.top import FlirtlCore

    # everything that can be refused is refused before a directory is made
    if name is not None and not (isinstance(name, str) and VERILOG_NAME.fullmatch(name)):
        raise ValueError(f"name must be a Verilog module name (a letter or _, then letters, digits, _), "
                         f"not {name!r}")
    check_output_dir(out, what="--out")
    core = FlirtlCore(model, lanes=lanes, engines=engines, sfd_stream=sfd_stream)
    name = name or design_name(model, core.engine.lanes, engines)
    directory = Path(out) / name
    check_output_dir(directory, what="output directory")
    verilog_text = to_verilog(AXIStreamTop(core), name)
    metadata = {"module": name, **port_metadata(model.spec, sfd_stream=sfd_stream),
                "performance": performance(core)}
    directory.mkdir(parents=True, exist_ok=True)
    verilog = directory / f"{name}.v"
    atomic_write(verilog, verilog_text.encode())
    atomic_write(directory / "spec.json", model.spec.dumps().encode())
    atomic_write(directory / "ports.json", (json.dumps(metadata, indent=2) + "\n").encode())
    atomic_write(directory / "summary.md", summary(model, metadata).encode())
    return RtlBuild(name, directory, verilog, metadata)


def summary(model: QuantizedModel, metadata: dict) -> str:
    spec, perf = model.spec, metadata["performance"]
    fields = ", ".join(f"{f['name']} [{f['lsb'] + f['width'] - 1}:{f['lsb']}]"
                       for f in metadata["m_axis"]["tdata"]["fields"])
    return "\n".join([
        f"# {metadata['module']}",
        "",
        f"Seq2SeqLite {spec.hidden}x{spec.hidden}, {spec.bits}-bit weights, {spec.fmt('hidden').width}-bit "
        f"state, T = {spec.n_bins} bins x {spec.dt} ns, GRU {spec.gru}, activation {spec.activation.method}.",
        "",
        f"- Ports: clk, rst (synchronous, active high); s_axis_tdata[{spec.fmt('counts').width - 1}:0] "
        f"(raw counts, {spec.n_bins} beats per pixel, tlast on the last); "
        f"m_axis_tdata[{metadata['m_axis']['tdata']['width'] - 1}:0] (one beat per pixel).",
        f"- Result packing: {fields}.",
        f"- {perf['engines']} engine(s) x {perf['lanes']} MAC lanes, {perf['contexts']} pixels in flight per engine.",
        f"- {perf['cycles_per_pixel_per_engine']} cycles per pixel per engine; MAC-lane utilisation "
        f"{perf['lane_utilisation']:.1%}; latency at most {perf['latency_cycles_bound']} cycles.",
        "",
        "```",
        spec.describe(),
        "```",
        "",
    ])
