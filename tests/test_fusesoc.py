"""The FuseSoC core: `fusesoc run --target lint` generates the IP through the core's generator
and Verilator parses the result, as a camera FPGA project would pull it in."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flirtl.flow import toolchain

ROOT = Path(__file__).resolve().parent.parent


def test_core_generates_and_lints(tmp_path):
    fusesoc = Path(sys.executable).with_name("fusesoc")
    if not fusesoc.is_file():
        pytest.skip("fusesoc is not installed (make setup installs it)")
    env = toolchain.verilator_env()  # its PATH also leads with this interpreter: the generator's python3
    result = subprocess.run([str(fusesoc), "--cores-root", str(ROOT / "fusesoc"), "run", "--target", "lint",
                             "flirtl:fli:gru_ip"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    generated = list(tmp_path.glob("build/*/lint-verilator/generator_cache/*/flirtl_ip/flirtl_ip.v"))
    assert len(generated) == 1 and "module flirtl_ip" in generated[0].read_text()
    assert (generated[0].parent / "ports.json").is_file()
