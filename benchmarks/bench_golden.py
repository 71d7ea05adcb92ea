"""Golden-model throughput: pixels per second through the whole integer pipeline (raw counts in,
lifetimes out) for a Seq2SeqLite H x H model at T bins, on this machine's cores."""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from golden_util import random_counts, random_weights  # noqa: E402

from flirtl.golden import GoldenModel  # noqa: E402
from flirtl.quant import quantize_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=40000, help="pixels")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--n-bins", type=int, default=135)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--chunk", type=int, default=2048)
    args = parser.parse_args()
    model, _ = quantize_model(random_weights(args.hidden), args.bits, n_bins=args.n_bins)
    golden = GoldenModel(model)
    counts = random_counts(args.n, args.n_bins, seed=5, max_photons=10000)
    golden.run(counts[:256], threads=1)  # warm up BLAS and the tables
    start = time.perf_counter()
    golden.run(counts, chunk=args.chunk, threads=args.threads)
    elapsed = time.perf_counter() - start
    print(f"golden model {args.hidden}x{args.hidden}, {args.bits}-bit, T={args.n_bins}: "
          f"{args.n} pixels in {elapsed:.2f} s = {args.n / elapsed:,.0f} pixels/s "
          f"({args.threads} threads, chunks of {args.chunk})")


if __name__ == "__main__":
    main()
