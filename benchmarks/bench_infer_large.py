"""A frame larger than the engine's working set through `flirtl infer`: peak memory and time.

Writes an (H, W, T) uint16 .npy of gated-SPAD-like decays (default 2048 x 2048 x 256, 2 GB),
then maps it with the shipped model through `infer_file` (memory-mapped input, row blocks, SFD
streamed into the .npz or left out) and prints pixels/s and the peak resident memory of the
process (which counts the input's mapped pages too).
"""

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from golden_util import random_counts  # noqa: E402

from flirtl.infer import infer_file  # noqa: E402
from timing import load_average  # noqa: E402  (beside this script)


def write_frame(path: Path, height: int, width: int, n_bins: int) -> None:
    """Row by row into a memory-mapped file: the frame never sits in memory whole."""
    frame = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(height, width, n_bins))
    rows = random_counts(64 * width, n_bins, seed=1, max_photons=5000).astype(np.uint16)
    for y in range(height):
        frame[y] = rows[(y % 64) * width:(y % 64 + 1) * width]
    frame.flush()
    del frame


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2048, help="frame height and width")
    parser.add_argument("--bins", type=int, default=256)
    parser.add_argument("--model", default="models/seq2seqlite-32x32")
    parser.add_argument("--sfd", action="store_true", help="stream the SFD into the .npz too (T x 3 floats per pixel)")
    parser.add_argument("--dir", help="where the frame and the maps go (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        frame = Path(work) / "frame.npy"
        write_frame(frame, args.size, args.size, args.bins)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        # the model's 0.09 ns bins: the file's first T bins are the window
        done = infer_file(frame, args.model, Path(work) / "maps.npz", dt=0.09, sfd=args.sfd,
                          pictures=False, progress=True)
        seconds = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size = (Path(work) / "maps.npz").stat().st_size
    print(f"{args.size}x{args.size}x{args.bins} frame ({frame.name}, {args.size ** 2 * args.bins * 2 / 2 ** 30:.1f} GiB), "
          f"model {args.model}: {done['pixels']:,} pixels in {seconds:.0f} s = {done['pixels'] / seconds:,.0f} pixels/s; "
          f"peak resident memory {peak / 2 ** 20:.2f} GiB (before inference {before / 2 ** 20:.2f} GiB); "
          f".npz {size / 2 ** 30:.2f} GiB{' with the SFD' if args.sfd else ''}; load average {load_average():.1f}")


if __name__ == "__main__":
    main()
