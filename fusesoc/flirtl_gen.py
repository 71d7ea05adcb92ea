#!/usr/bin/env python3
"""FuseSoC generator: `flirtl rtl` for the parameters of the core's `generate` section.

FuseSoC calls it with a YAML file (gapi 1.0) naming `files_root`, `parameters` and `vlnv`; model
paths are relative to this repository; it writes `<name>.core` in the working directory with the generated Verilog as its
fileset. The module is always named `flirtl_ip`, so the core's toplevel does not depend on the
parameters. Run it with the interpreter that has flirtl installed (`.venv/bin/python`).
"""

import subprocess
import sys
from pathlib import Path

import yaml  # FuseSoC depends on PyYAML, so a generator may too


def main(config_path: str) -> int:
    config = yaml.safe_load(Path(config_path).read_text())
    root = Path(__file__).resolve().parent.parent  # the repository (files_root is fusesoc/)
    params = config.get("parameters", {})
    out = Path.cwd()
    command = [sys.executable, "-m", "flirtl", "rtl", "--model", str(root / params.get("model", "models/seq2seqlite-32x32")),
               "--bits", str(params.get("bits", 8)), "--engines", str(params.get("engines", 1)),
               "--out", str(out), "--name", "flirtl_ip"]
    if params.get("lanes"):
        command += ["--lanes", str(params["lanes"])]
    if params.get("sfd_stream"):
        command.append("--sfd-stream")
    subprocess.run(command, check=True, cwd=root)
    name = config["vlnv"].split(":")[2] if config["vlnv"].count(":") >= 2 else "flirtl_ip"
    (out / f"{name}.core").write_text(
        "CAPI=2:\n"
        f"name: {config['vlnv']}\n"
        "filesets:\n"
        "  rtl:\n"
        "    files:\n"
        "      - flirtl_ip/flirtl_ip.v: {file_type: verilogSource}\n"
        "      - flirtl_ip/ports.json: {file_type: user, copyto: flirtl_ip_ports.json}\n"
        "targets:\n"
        "  default:\n"
        "    filesets: [rtl]\n"
        "    toplevel: flirtl_ip\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
