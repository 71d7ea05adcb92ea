"""Golden-model throughput: pixels per second through the whole integer pipeline (raw counts in,
lifetimes out) for a Seq2SeqLite H x H model at T bins, on this machine's cores."""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from golden_util import random_counts, random_weights  # noqa: E402

from flirtl.golden import GoldenModel  # noqa: E402
from flirtl.quant import quantize_model  # noqa: E402
from timing import load_average, timed  # noqa: E402  (beside this script)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=40000, help="pixels")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--n-bins", type=int, default=135)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--chunk", type=int, help="most pixels per chunk (default: the model's)")
    args = parser.parse_args()
    model, _ = quantize_model(random_weights(args.hidden), args.bits, n_bins=args.n_bins)
    golden = GoldenModel(model)
    chunk = args.chunk or golden.chunk
    counts = random_counts(args.n, args.n_bins, seed=5, max_photons=10000)
    golden.run(counts[:256], threads=1)  # warm up BLAS and the tables
    _, elapsed, cpu = timed(golden.run, counts, chunk=chunk, threads=args.threads)
    print(f"golden model {args.hidden}x{args.hidden}, {args.bits}-bit, T={args.n_bins} "
          f"({golden.dtype} datapath): {args.n} pixels in {elapsed:.2f} s = "
          f"{args.n / elapsed:,.0f} pixels/s (CPU time {cpu:.2f} s) on {args.threads} threads, "
          f"chunks of at most {chunk}, load average {load_average():.1f}")


if __name__ == "__main__":
    main()
