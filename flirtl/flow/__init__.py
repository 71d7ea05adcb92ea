"""The tool flow around the generated gateware: tools shipped as Python packages, Verilog export,
and Amaranth-simulator stream helpers. cocotb testbench infrastructure lives in the top-level `tb/`."""
