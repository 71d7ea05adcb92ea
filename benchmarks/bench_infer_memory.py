"""Peak memory of `flirtl infer` on an integer and on a float .npy frame of the same counts.

Both files are memory-mapped and go through in blocks of rows, so the peak resident memory should be
about the same for both and far below the size of the file (page-cache pages of the mapped file
that the kernel keeps resident count too). Prints file sizes, peak RSS (from wait4) and wall time.

    .venv/bin/python benchmarks/bench_infer_memory.py [--pixels 500000]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def peak_run(argv: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one command."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.exit(f"{argv} failed (exit {process.returncode})")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=500_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="flirtl-bench-") as scratch:
        scratch = Path(scratch)
        # a decay over a background, Poisson counts: a plausible frame, written in pieces
        t = np.arange(135)
        rate = 2 + 200 * np.exp(-np.maximum(t - 20, 0) / 25.0) * (t >= 20)
        files = {"uint16": scratch / "counts_u16.npy", "float32": scratch / "counts_f32.npy"}
        maps = {np.uint16: np.lib.format.open_memmap(files["uint16"], "w+", np.uint16, (args.pixels, 135)),
                np.float32: np.lib.format.open_memmap(files["float32"], "w+", np.float32, (args.pixels, 135))}
        for first in range(0, args.pixels, 65536):
            block = rng.poisson(rate, (min(65536, args.pixels - first), 135))
            for dtype, array in maps.items():
                array[first:first + len(block)] = block.astype(dtype)
        for array in maps.values():
            array.flush()
        del maps
        print(f"{args.pixels:,} pixels of 135 bins; load average {os.getloadavg()[0]:.1f}")
        for name, path in files.items():
            peak, seconds = peak_run([sys.executable, "-m", "flirtl", "infer", str(path), "-o",
                                      str(scratch / f"{name}.npz"), "--no-sfd", "--no-pictures", "--quiet"])
            print(f"{name:>8} .npy: {path.stat().st_size / 2 ** 20:7.0f} MiB file, peak RSS {peak:6.0f} MiB, "
                  f"{seconds:5.1f} s")


if __name__ == "__main__":
    main()
