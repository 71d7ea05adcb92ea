"""Training speed, float against quantization-aware: pixels per second of one training step
(forward, backward, Adam) of a Seq2SeqLite H x H model at T bins, the same batches, side by side."""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from golden_util import random_weights  # noqa: E402

from flirtl.nn.model import Seq2Seq, Seq2SeqConfig  # noqa: E402
from flirtl.nn.qat import QuantSeq2Seq  # noqa: E402
from flirtl.quant import quantize_model  # noqa: E402
from timing import load_average  # noqa: E402  (beside this script)


def pixels_per_second(model, tpsf, target, batch, steps):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(i):
        rows = slice(i * batch % len(tpsf), i * batch % len(tpsf) + batch)
        loss = torch.nn.functional.mse_loss(model(tpsf[rows]), target[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(0)  # warm-up: allocations, kernels
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(1, steps + 1):
        step(i)
    # CPU time too: on a loaded machine it is the steadier measure of the work done
    return steps * batch / (time.perf_counter() - started), steps * batch / (time.process_time() - cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--n-bins", type=int, default=135)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    weights = random_weights(args.hidden)
    spec = quantize_model(weights, args.bits, n_bins=args.n_bins)[0].spec
    n = args.batch * 4
    rng = np.random.default_rng(1)
    tpsf = torch.as_tensor(np.floor(rng.uniform(0, 1, (n, args.n_bins)) * 2 ** spec.fmt("input").frac_bits)
                           * spec.fmt("input").lsb, dtype=torch.float32)
    target = torch.as_tensor(rng.uniform(0, 1, (n, args.n_bins, 3)), dtype=torch.float32)
    float_model = Seq2Seq(Seq2SeqConfig(hidden=args.hidden, n_bins=args.n_bins))
    qat_model = QuantSeq2Seq(spec, weights)
    rates = {name: pixels_per_second(model, tpsf, target, args.batch, args.steps)
             for name, model in (("float", float_model), ("QAT", qat_model))}
    print(f"training step, {args.hidden}x{args.hidden}, T={args.n_bins}, {args.bits}-bit QAT "
          f"({qat_model.dtype}), batch {args.batch}, {args.threads} thread(s), load average {load_average():.1f}: "
          f"float {rates['float'][0]:,.0f} px/s, QAT {rates['QAT'][0]:,.0f} px/s wall-clock "
          f"(QAT {rates['float'][0] / rates['QAT'][0]:.2f}x slower); per CPU-second float "
          f"{rates['float'][1]:,.0f} px, QAT {rates['QAT'][1]:,.0f} px "
          f"(QAT {rates['float'][1] / rates['QAT'][1]:.2f}x slower)")


if __name__ == "__main__":
    main()
