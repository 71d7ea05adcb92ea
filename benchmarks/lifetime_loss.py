"""Does a loss in lifetime space (`flirtl train --lifetime-loss W`) beside the SFD MSE bring the
8-bit model's lifetimes closer to the truth?

    .venv/bin/python benchmarks/lifetime_loss.py [--epochs 15] [--weights 0 0.1 1] [--photon-weight P]
                                                  [--json PATH]

Fine-tunes the pulse-anywhere model by 8-bit QAT on 20k ss3 pixels (pulse 0-7 ns, background
'ends'; the set-up of benchmarks/resolve_labels.py) for the same number of epochs at each weight
(0 is the control: the same fine-tuning on the SFD MSE alone), each picking its best epoch by its own
validation objective (`--photon-weight P` draws the training pixels with a chance proportional
to photons**P in every run, as `flirtl train --photon-weight`: the bright pixels, whose lifetimes
are measurable, weigh more); then scores the base and every run through the golden model on 6000 fresh
pixels at >= 1000 photons with `resolve_labels.scores` (mono-exponential a, tau_mean, separable
tau1 / tau2 / a). About 3.5 min per run on one core. Written to --json (default
build/lifetime_loss.json); checkpoints and caches go to build/lifetime_loss/.
"""

import argparse
from pathlib import Path

from resolve_labels import BASE, POSITIONS, fine_tune, scores

from flirtl.fli import get_instrument, simulate
from flirtl.quant import QuantizedModel, dump_json


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15, help="epochs of every run")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 1.0], help="lifetime-loss weights")
    parser.add_argument("--photon-weight", type=float, default=0.0, help="training pixels drawn by photons**P")
    parser.add_argument("--n", type=int, default=6000, help="test pixels")
    parser.add_argument("--json", default="build/lifetime_loss.json")
    args = parser.parse_args()
    work = Path("build/lifetime_loss")
    models = {"base": QuantizedModel.load(BASE)}
    tail = f" --photon-weight {args.photon_weight:g}" if args.photon_weight else ""
    models.update({f"--lifetime-loss {w:g}{tail}": fine_tune(work, f"weight-{w:g}-photons-{args.photon_weight:g}",
                                                             epochs=args.epochs, threads=1, lifetime_weight=w,
                                                             photon_weight=args.photon_weight)
                   for w in args.weights})
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
    dump_json(args.json, {"epochs": args.epochs, "photon_weight": args.photon_weight, "pixels": args.n,
                          "results": results})


if __name__ == "__main__":
    main()
