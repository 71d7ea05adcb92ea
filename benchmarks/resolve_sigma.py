"""Do labels that follow the Cramer-Rao bound (`flirtl train --resolve-sigma K`) stop single
exponentials from splitting, and what do they cost the separable pixels?

    .venv/bin/python benchmarks/resolve_sigma.py [--epochs 15] [--sigmas 1 2] [--json PATH]

A pixel whose lifetimes lie fewer than K bound deviations apart, at its own photons, background
and IRF, is labelled as one component (a = 1, tau1 = tau2 = tau_mean): labels a model can learn
from the counts, where the drawn labels (a uniform, tau1 < tau2 any distance apart) ask it to split
a dim or nearly single decay in a way the counts do not hold. Fine-tunes the pulse-anywhere model
by 8-bit QAT (the set-up of benchmarks/resolve_labels.py, one thread) for the same number of
epochs with the drawn labels (the control) and with each K; then scores the base and every run
through the golden model on 6000 fresh pixels with their drawn labels at >= 1000 photons
(`resolve_labels.scores`). Also prints the share of labels each K merges. About 3.5 min per run
on one core. Written to --json (default build/resolve_sigma.json); checkpoints and caches go to
build/resolve_sigma/.
"""

import argparse
from pathlib import Path

import numpy as np
from resolve_labels import BASE, BRIGHT, POSITIONS, fine_tune, scores

from flirtl.fli import get_instrument, separable, simulate
from flirtl.quant import QuantizedModel, dump_json


def merged_share(sigma: float, n: int) -> dict:
    """Share of the bi-exponential pixels whose labels K merges: all, >= BRIGHT photons, separable."""
    drawn = simulate(get_instrument("ss3", background="ends", irf_position_range=POSITIONS), n=n, seed=11,
                     progress=False)
    merged = simulate(get_instrument("ss3", background="ends", irf_position_range=POSITIONS, resolve_sigma=sigma),
                      n=n, seed=11, progress=False)
    two = drawn["a"] < 1
    one = two & (merged["a"] == 1)
    bright = drawn["photons"] >= BRIGHT
    sep = bright & separable(drawn)
    return {"all": float(one.sum() / two.sum()), "bright": float((one & bright).sum() / (two & bright).sum()),
            "bright_separable": float((one & sep).sum() / sep.sum())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15, help="epochs of every run")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[1.0, 2.0], help="values of --resolve-sigma")
    parser.add_argument("--n", type=int, default=6000, help="test pixels")
    parser.add_argument("--json", default="build/resolve_sigma.json")
    args = parser.parse_args()
    work = Path("build/resolve_sigma")
    shares = {sigma: merged_share(sigma, 20_000) for sigma in args.sigmas}
    for sigma, share in shares.items():
        print(f"--resolve-sigma {sigma:g} merges {share['all']:.0%} of the bi-exponential labels "
              f"({share['bright']:.0%} at >= {BRIGHT} photons, {share['bright_separable']:.0%} of the separable)")
    models = {"base": QuantizedModel.load(BASE),
              "drawn labels": fine_tune(work, f"drawn-{args.epochs}", epochs=args.epochs, threads=1)}
    models.update({f"--resolve-sigma {s:g}": fine_tune(work, f"sigma-{s:g}-{args.epochs}", epochs=args.epochs,
                                                        threads=1, resolve_sigma=s) for s in args.sigmas})
    test = simulate(get_instrument("ss3", background="ends", irf_position_range=POSITIONS), n=args.n, seed=777,
                    progress=False)
    results = {label: scores(model, test) for label, model in models.items()}
    print("| run | mono a | mono tau_mean MAE | bright tau_mean MAE / bias | separable tau1 MAE / bias | "
          "separable tau2 MAE / bias | separable a MAE |\n|---|---|---|---|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['mono_a_mean']:.3f} | {r['mono_tau_mean']['mae']:.3f} | "
              f"{r['bright_tau_mean']['mae']:.3f} / {r['bright_tau_mean']['bias']:+.3f} | "
              f"{r['separable_tau1']['mae']:.3f} / {r['separable_tau1']['bias']:+.3f} | "
              f"{r['separable_tau2']['mae']:.3f} / {r['separable_tau2']['bias']:+.3f} | {r['separable_a_mae']:.3f} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    dump_json(args.json, {"epochs": args.epochs, "pixels": args.n, "merged_share": {str(k): v for k, v in shares.items()},
                          "results": results})


if __name__ == "__main__":
    main()
