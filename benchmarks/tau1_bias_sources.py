"""Where the pulse-anywhere model's long tau1 comes from, and why single exponentials split.

    .venv/bin/python benchmarks/tau1_bias_sources.py [--model DIR] [--n 6000] [--json PATH]

Simulates `--n` fresh ss3 pixels (pulse 0-7 ns, background 'ends', seed 777: the test set of
benchmarks/resolve_labels.py) and, at >= 1000 photons, prints:
- tau1 bias on separable pixels (`flirtl.fli.separable`) of the 8-bit golden model and of its float
  parent: equal biases rule quantization out;
- the short channel's first sample and sum against the truth, and tau1 recomputed with the true
  sum or the true first sample: which of the two the ratio rule (`tau_from_ratio`) inherits its
  error from;
- the bias by true tau2/tau1 beside the Cramer-Rao bound of tau1 (`flirtl.fli.crlb`): whether
  the counts hold the information the network misses;
- the predicted tau2/tau1 on single-exponential and separable pixels, and the share of each a
  rule "predicted ratio < k -> one component" would merge.
Written to --json too (default build/tau1_bias_sources.json).
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from flirtl.fli import crlb, get_instrument, separable, simulate
from flirtl.fli.lifetime import lifetimes_from_sfd, tau_from_ratio
from flirtl.fli.preprocess import normalize_tpsf
from flirtl.golden import GoldenModel
from flirtl.nn.model import load_float_model, predict
from flirtl.quant import QuantizedModel, dump_json

POSITIONS = (0.0, 7.0)
BRIGHT = 1000
RATIO_BINS = ((2, 3), (3, 5), (5, np.inf))
MERGE_RATIOS = (1.2, 1.3, 1.5, 2.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/seq2seqlite-32x32-anywhere", help="8-bit model directory")
    parser.add_argument("--float-model", default="models/seq2seqlite-32x32-anywhere-float")
    parser.add_argument("--n", type=int, default=6000, help="test pixels")
    parser.add_argument("--json", default="build/tau1_bias_sources.json")
    args = parser.parse_args()
    if args.n < 1:
        parser.error(f"--n must be a positive int, not {args.n}")
    torch.set_num_threads(1)
    instrument = get_instrument("ss3", background="ends", irf_position_range=POSITIONS)
    test = simulate(instrument, n=args.n, seed=777, progress=False)
    dt = float(test["dt"])
    golden = GoldenModel(QuantizedModel.load(args.model)).run(test["counts"]).values()
    tpsf = torch.from_numpy(normalize_tpsf(test["counts"], bg_bins=instrument.bg_bins, background="ends"))
    floating = lifetimes_from_sfd(predict(load_float_model(args.float_model), tpsf).numpy(), dt=dt)
    bright = test["photons"] >= BRIGHT
    sep, mono = bright & separable(test), bright & (test["a"] >= 1)
    tau1 = test["tau1"]
    out = {"pixels": {"separable": int(sep.sum()), "mono": int(mono.sum())},
           "tau1_bias": {"golden": float(np.mean(golden["tau1"][sep] - tau1[sep])),
                         "float": float(np.mean(floating["tau1"][sep] - tau1[sep]))}}

    short, true_short = golden["sfd"][..., 1].astype(np.float64), test["sfd"][..., 1].astype(np.float64)
    n_bins = short.shape[1]
    out["short_channel"] = {
        "first_over_true_median": float(np.median(short[sep, 0] / true_short[sep, 0])),
        "sum_over_true_median": float(np.median(short[sep].sum(1) / true_short[sep].sum(1))),
        "tau1_bias_true_sum": float(np.mean(
            dt * tau_from_ratio(true_short[sep].sum(1) / short[sep, 0], n_bins=n_bins) - tau1[sep])),
        "tau1_bias_true_first": float(np.mean(
            dt * tau_from_ratio(short[sep].sum(1) / true_short[sep, 0], n_bins=n_bins) - tau1[sep]))}

    labels = {k: (v[sep] if np.ndim(v) else v) for k, v in test.items()}
    bound = crlb(instrument, labels)["tau1"]
    ratio = (test["tau2"] / test["tau1"])[sep]
    out["by_ratio"] = []
    for lo, hi in RATIO_BINS:
        s = (ratio >= lo) & (ratio < hi)
        out["by_ratio"].append({"ratio": [lo, hi], "pixels": int(s.sum()), "true_tau1_mean": float(tau1[sep][s].mean()),
                                "tau1_bias": float(np.mean(golden["tau1"][sep][s] - tau1[sep][s])),
                                "crlb_tau1_median": float(np.nanmedian(bound[s]))})

    predicted = golden["tau2"] / np.maximum(golden["tau1"], 1e-3)
    out["predicted_ratio"] = {name: [float(q) for q in np.percentile(predicted[sel], (10, 50, 90))]
                              for name, sel in (("mono", mono), ("separable", sep))}
    out["merged"] = {f"{k:g}": {"mono": float(np.mean(predicted[mono] < k)), "separable": float(np.mean(predicted[sep] < k))}
                     for k in MERGE_RATIOS}

    print(f"pixels >= {BRIGHT} photons: {out['pixels']['separable']} separable, {out['pixels']['mono']} mono")
    print(f"separable tau1 bias: golden {out['tau1_bias']['golden']:+.3f} ns, float {out['tau1_bias']['float']:+.3f} ns")
    c = out["short_channel"]
    print(f"short channel: first sample / truth {c['first_over_true_median']:.2f}, sum / truth "
          f"{c['sum_over_true_median']:.2f}; tau1 bias with the true sum {c['tau1_bias_true_sum']:+.3f} ns, "
          f"with the true first sample {c['tau1_bias_true_first']:+.3f} ns")
    print("| true tau2/tau1 | pixels | true tau1 mean [ns] | tau1 bias [ns] | CRLB std tau1, median [ns] |\n|---|---|---|---|---|")
    for row in out["by_ratio"]:
        print(f"| {row['ratio'][0]:g}-{row['ratio'][1]:g} | {row['pixels']} | {row['true_tau1_mean']:.2f} | "
              f"{row['tau1_bias']:+.3f} | {row['crlb_tau1_median']:.3f} |")
    for name, (p10, p50, p90) in out["predicted_ratio"].items():
        print(f"predicted tau2/tau1 on {name} pixels: median {p50:.2f} (10-90%: {p10:.2f}-{p90:.2f})")
    for k, share in out["merged"].items():
        print(f"rule 'predicted ratio < {k}' merges {share['mono']:.0%} of mono, {share['separable']:.0%} of separable")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    dump_json(args.json, out)


if __name__ == "__main__":
    main()
