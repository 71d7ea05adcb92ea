"""Simulation speed: `python benchmarks/bench_simulate.py [--n 1000000] [--preset ss3]`.

Prints the wall time and samples/s of `flirtl.fli.simulate` for one preset (target: a million ss3
samples in under 30 s on 2 cores).
"""

import argparse
import os

from flirtl.fli import PRESETS, simulate
from timing import load_average, timed  # beside this script


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="samples to simulate")
    parser.add_argument("--preset", default="ss3", choices=sorted(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="threads (default: all CPUs)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    data, elapsed, cpu = timed(simulate, args.preset, n=args.n, seed=args.seed,
                               workers=args.workers, progress=not args.no_progress)
    print(f"preset {args.preset}: {args.n} samples x {data['counts'].shape[1]} bins "
          f"({data['counts'].dtype}) in {elapsed:.2f} s = {args.n / elapsed:,.0f} samples/s "
          f"(CPU time {cpu:.2f} s) on {args.workers or cpus} thread(s), {cpus} CPU(s), "
          f"load average {load_average():.1f}")


if __name__ == "__main__":
    main()
