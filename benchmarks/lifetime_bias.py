"""Where a model's lifetime error comes from above 1000 photons: its mean error (bias) on the
separable pixels of `flirtl eval`'s test set, overall and by the true tau1, beside RMSE / sqrt(CRLB).

    .venv/bin/python benchmarks/lifetime_bias.py [MODEL_DIR ...] [--engine golden|float] [--json PATH]

Same pixels as `make eval` (100k of the model's instrument, seed 20241125; the separable ones at
1000-10000 photons, about 10k). A positive tau1 bias that grows as tau1 shrinks is the network's
pull towards its training prior where the gate hides the short component. The figures printed
are written to --json too (default build/lifetime_bias.json).
"""

import argparse
from pathlib import Path

import numpy as np

from flirtl.fli import crlb, separable, simulate
from flirtl.infer import infer
from flirtl.nn.data import trained_source
from flirtl.nn.evaluate import DEFAULT_SEED, LIFETIMES
from flirtl.quant import dump_json

TAU1_EDGES = (0.05, 0.2, 0.4, 0.7, 1.0, 1.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=["models/seq2seqlite-32x32"])
    parser.add_argument("--engine", choices=("golden", "float"), default="golden")
    parser.add_argument("--n", type=int, default=100_000, help="test pixels before selection")
    parser.add_argument("--json", default="build/lifetime_bias.json", help="where the figures go")
    args = parser.parse_args()
    out = Path(args.json)
    if out.suffix != ".json" or out.is_dir():
        parser.error(f"--json must name a .json file, not {args.json!r}")
    for model in args.models:
        if not (Path(model) / "weights.npz").is_file():
            parser.error(f"{model!r} is not a quantized model directory (no weights.npz)")
    source = trained_source(Path(args.models[0]))
    test = simulate(source.instrument, n=args.n, seed=DEFAULT_SEED, irf=source.irf, progress=False)
    keep = (test["photons"] >= 1000) & separable(test)
    pixels = {k: v[keep] for k, v in test.items() if isinstance(v, np.ndarray) and v.shape[:1] == keep.shape}
    bound = crlb(source.instrument, pixels)
    print(f"{keep.sum()} separable pixels at 1000-10000 photons (of {args.n}, seed {DEFAULT_SEED})")
    figures = {"pixels": int(keep.sum()), "n": args.n, "seed": DEFAULT_SEED, "engine": args.engine, "models": {}}
    for model in args.models:
        est = infer(pixels["counts"], model, engine=args.engine)
        error = {q: np.asarray(est[q], np.float64) - pixels[q] for q in LIFETIMES}
        mine = figures["models"][Path(model).name] = {"lifetimes": {}, "by_tau1": []}
        print(f"\n{Path(model).name} ({args.engine}): mean error / RMSE / RMSE-to-sqrt(CRLB) ratio")
        for q in LIFETIMES:
            e, z = error[q], error[q] / bound[q]
            mine["lifetimes"][q] = {"bias": float(e.mean()), "rmse": float(np.sqrt(np.mean(e ** 2))),
                                    "ratio": float(np.sqrt(np.nanmean(z ** 2)))}
            print(f"  {q:8s} {mine['lifetimes'][q]['bias']:+.3f} / {mine['lifetimes'][q]['rmse']:.3f} / "
                  f"{mine['lifetimes'][q]['ratio']:.2f}")
        print("  by true tau1 [ns]: pixels, mean error of tau1 and tau_mean")
        for lo, hi in zip(TAU1_EDGES[:-1], TAU1_EDGES[1:]):
            rows = (pixels["tau1"] >= lo) & (pixels["tau1"] < hi)
            cell = {"lo": lo, "hi": hi, "pixels": int(rows.sum()), "tau1_bias": float(error["tau1"][rows].mean()),
                    "tau_mean_bias": float(error["tau_mean"][rows].mean())}
            mine["by_tau1"].append(cell)
            print(f"  {lo:.2f}-{hi:.2f}: {cell['pixels']:5d}  {cell['tau1_bias']:+.3f}  {cell['tau_mean_bias']:+.3f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    dump_json(out, figures)
    print(f"\n{out}")


if __name__ == "__main__":
    main()
