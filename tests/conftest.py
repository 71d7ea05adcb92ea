"""Session summary: the figures the RTL regression measured (cycles per pixel, utilisation)."""

import time
from pathlib import Path

_START = time.time()
_REPORTS = Path(__file__).resolve().parents[1] / "sim" / "rtl"


def pytest_terminal_summary(terminalreporter):
    fresh = sorted(p for p in _REPORTS.glob("*/report.txt") if p.stat().st_mtime >= _START)
    if fresh:
        terminalreporter.section("RTL regression: measured in Verilator simulation")
        for path in fresh:
            terminalreporter.write_line(path.read_text().strip())
