"""Does labelling unresolvable pixels as one component stop single exponentials from splitting?

    .venv/bin/python benchmarks/resolve_labels.py [--minutes 10] [--json PATH]

Fine-tunes the pulse-anywhere model by 8-bit QAT on ss3 pixels (pulse 0-7 ns, background 'ends')
twice, for the same time budget: once with the labels as drawn, once with `--resolve-ratio 1.25
--resolve-fraction 0.1` (pixels whose components a decay cannot tell apart labelled a = 1). Then
scores the base and both runs through the golden model on fresh pixels of the same instrument with
their drawn labels, at >= 1000 photons: single-exponential pixels (mean a, should be 1), all pixels,
and the separable ones (`flirtl.fli.separable`). The time budget is wall-clock: on a loaded machine
a run gets fewer epochs (each run prints how many). Written to --json (default
build/resolve_labels.json); checkpoints and caches go to build/resolve_labels/.
"""

import argparse
from pathlib import Path

import numpy as np

from flirtl.fli import get_instrument, separable, simulate
from flirtl.golden import GoldenModel
from flirtl.nn.config import TrainConfig
from flirtl.nn.loop import train_student
from flirtl.nn.metrics import lifetime_error
from flirtl.quant import QuantizedModel, dump_json

BASE = "models/seq2seqlite-32x32-anywhere"
POSITIONS = (0.0, 7.0)
RESOLVE = {"resolve_ratio": 1.25, "resolve_fraction": 0.1}
BRIGHT = 1000


def fine_tune(work: Path, name: str, *, minutes: float | None = None, epochs: int | None = None,
              threads: int = 2, **changes) -> QuantizedModel:
    """The base model fine-tuned by 8-bit QAT on 20k pixels of the benchmarks' instrument, for a
    wall-clock budget (`minutes`, early stopping on) or a fixed number of `epochs`; `changes`:
    further TrainConfig fields (label rules, loss terms)."""
    stop = dict(patience=epochs, lr_patience=epochs, max_epochs=epochs) if epochs else \
        dict(patience=4, lr_patience=2, max_epochs=200, max_minutes=minutes)
    config = TrainConfig(hidden=32, preset="ss3", background="ends", irf_position=POSITIONS, n_train=20_000,
                         n_val=2_000, n_test=512, lr=3e-4, bits=8, qat=True, init=BASE, out=str(work / name),
                         checkpoint_dir=str(work / "checkpoints"), data_dir=str(work / "data"), threads=threads,
                         **stop, **changes)
    train_student(config, progress=False)
    return QuantizedModel.load(work / name)


def scores(model: QuantizedModel, test: dict) -> dict:
    values = GoldenModel(model).run(test["counts"]).values()
    bright = test["photons"] >= BRIGHT
    mono = bright & (test["a"] >= 1)
    sep = bright & separable(test)
    return {"mono_a_mean": float(values["a"][mono].mean()),
            "mono_tau_mean": lifetime_error(values["tau_mean"][mono], test["tau_mean"][mono]),
            "bright_tau_mean": lifetime_error(values["tau_mean"][bright], test["tau_mean"][bright]),
            "separable_tau1": lifetime_error(values["tau1"][sep], test["tau1"][sep]),
            "separable_tau2": lifetime_error(values["tau2"][sep], test["tau2"][sep]),
            "separable_a_mae": float(np.abs(values["a"][sep] - test["a"][sep]).mean())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each run")
    parser.add_argument("--n", type=int, default=6000, help="test pixels")
    parser.add_argument("--json", default="build/resolve_labels.json")
    args = parser.parse_args()
    work = Path("build/resolve_labels")
    models = {"base": QuantizedModel.load(BASE),
              "drawn labels": fine_tune(work, "drawn", minutes=args.minutes),
              "resolved labels": fine_tune(work, "resolved", minutes=args.minutes, **RESOLVE)}
    test = simulate(get_instrument("ss3", background="ends", irf_position_range=POSITIONS), n=args.n, seed=777,
                    progress=False)
    results = {label: scores(model, test) for label, model in models.items()}
    print(f"| run | mono a | mono tau_mean MAE | bright tau_mean MAE / bias | separable tau1 MAE / bias | "
          f"separable a MAE |\n|---|---|---|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['mono_a_mean']:.3f} | {r['mono_tau_mean']['mae']:.3f} | "
              f"{r['bright_tau_mean']['mae']:.3f} / {r['bright_tau_mean']['bias']:+.3f} | "
              f"{r['separable_tau1']['mae']:.3f} / {r['separable_tau1']['bias']:+.3f} | {r['separable_a_mae']:.3f} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    dump_json(args.json, {"minutes": args.minutes, "resolve": RESOLVE, "pixels": args.n, "results": results})


if __name__ == "__main__":
    main()
