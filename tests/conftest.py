"""Session summary: the figures the RTL regression measured (cycles per pixel, utilisation), and
the totals of the random regression (pixels and beats compared, mismatches)."""

import json
import time
from pathlib import Path

_START = time.time()
_REPORTS = Path(__file__).resolve().parents[1] / "build" / "sim" / "rtl"  # tb.runner.sim_dir("rtl")


def pytest_terminal_summary(terminalreporter):
    fresh = sorted(p for p in _REPORTS.glob("*/report.txt") if p.stat().st_mtime >= _START)
    if fresh:
        terminalreporter.section("RTL regression: measured in Verilator simulation")
        for path in fresh:
            terminalreporter.write_line(path.read_text().strip())
        totals = [json.loads(p.with_name("regression.json").read_text()) for p in fresh
                  if p.with_name("regression.json").is_file()]
        if totals:
            total = {key: sum(t[key] for t in totals) for key in ("pixels", "result_beats", "sfd_beats", "mismatches")}
            terminalreporter.write_line(
                f"random regression total: {total['pixels']} pixels, {total['result_beats']} result beats and "
                f"{total['sfd_beats']} SFD beats compared over {len(totals)} configurations, "
                f"{total['mismatches']} mismatches")
