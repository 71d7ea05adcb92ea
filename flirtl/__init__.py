"""flirtl: fixed-point GRU IP for real-time fluorescence lifetime imaging.

Simulator (`flirtl.fli`), one fixed-point specification (`flirtl.spec`), the integer golden model
(`flirtl.golden`), torch training (`flirtl.nn`) and the Amaranth RTL generator (`flirtl.gateware`).
"""

__version__ = "0.1.0"
