"""Real data: a model's mean-lifetime map of a sample file against phasor analysis of the same
pixels (`make data` fetches the samples; the model must be trained for the file's instrument, e.g.
the tcspc256 preset for the Becker & Hickl sample).

The sample files come without their IRF. The phasor is calibrated with a stand-in: a Gaussian of
the preset's mid-range FWHM centred at the steepest rise of the image's summed decay (where the
IRF of a decay convolved with it peaks, to within a fraction of the FWHM). Agreement is reported
on pixels with at least --min-photons photons above background: median of each map, median and
90th percentile of |difference|, Pearson r, printed and written to <name>.json; <name>.png shows both
maps and the scatter.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from flirtl.baselines import phasor_lifetimes
from flirtl.files import atomic_write
from flirtl.fli import get_instrument
from flirtl.fli.irf_io import stand_in_irf
from flirtl.infer import infer_file
from flirtl.readers import match_time_axis, read_decay
from flirtl.modeldir import load_for_rtl
from flirtl.quant import dump_json


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sample", help="e.g. data/samples/seminal_receptacle_FLIM_single_image.sdt")
    parser.add_argument("--model", help="a model trained for the sample's instrument")
    parser.add_argument("--write-irf", metavar="IRF.npy", help="only write the stand-in IRF on the file's own "
                        "time axis (for `flirtl train --irf` when the file comes without its IRF) and exit")
    parser.add_argument("--preset", default="tcspc256", help="the preset whose IRF width stands in")
    parser.add_argument("--min-photons", type=float, default=500)
    parser.add_argument("--out", default="build/sample_vs_phasor")
    parser.add_argument("--name", default="sample_vs_phasor", help="stem of the figures' .json and .png in --out")
    args = parser.parse_args()
    fwhm = float(np.mean(get_instrument(args.preset).fwhm_range))
    if args.write_irf:
        decay = read_decay(args.sample)
        atomic_write(Path(args.write_irf), lambda file: np.save(file, stand_in_irf(decay.counts, dt=decay.dt, fwhm=fwhm)))
        print(f"{args.write_irf}: stand-in IRF, {decay.counts.shape[-1]} bins of {decay.dt:.5g} ns, FWHM {fwhm:.3f} ns")
        return
    if not args.model:
        parser.error("--model is required (unless --write-irf)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = load_for_rtl(args.model, bits=8)[0].spec
    started = time.monotonic()
    done = infer_file(args.sample, args.model, out / "maps.npz", sfd=False, progress=True)
    model_s = time.monotonic() - started
    counts = match_time_axis(read_decay(args.sample), spec.n_bins, spec.dt).counts
    bright = done["intensity"] >= args.min_photons
    # the IRF the model was trained with, when it carries one; else the stand-in
    carried = Path(args.model) / "irf.npy"
    if carried.is_file():
        irf, irf_name = np.load(carried), str(carried)
    else:
        irf, irf_name = stand_in_irf(counts, dt=spec.dt, fwhm=fwhm), f"stand-in Gaussian, FWHM {fwhm:.3f} ns"
    started = time.monotonic()
    phasor = phasor_lifetimes(counts[bright], dt=spec.dt, irf=irf)
    phasor_s = time.monotonic() - started
    model_tau = done["tau_mean"][bright].astype(np.float64)
    keep = np.isfinite(phasor["tau_mean"]) & np.isfinite(model_tau)
    a, b = model_tau[keep], phasor["tau_mean"][keep]
    diff = np.abs(a - b)
    r = float(np.corrcoef(a, b)[0, 1]) if keep.sum() > 2 else float("nan")
    figures = {"sample": Path(args.sample).name, "model": Path(args.model).name, "n_bins": spec.n_bins,
               "dt": spec.dt, "irf": irf_name, "min_photons": args.min_photons, "pixels": int(keep.sum()),
               "median_model_ns": float(np.median(a)), "median_phasor_ns": float(np.median(b)),
               "difference_median_ns": float(np.median(diff)), "difference_p90_ns": float(np.percentile(diff, 90)),
               "pearson_r": r, "model_px_per_s": done["pixels"] / model_s, "phasor_px_per_s": bright.sum() / phasor_s}
    print(f"{args.sample} with {args.model} ({spec.n_bins} bins of {spec.dt} ns): "
          f"{figures['pixels']} pixels >= {args.min_photons:g} photons; mean lifetime median "
          f"model {figures['median_model_ns']:.3f} ns, phasor {figures['median_phasor_ns']:.3f} ns; |difference| "
          f"median {figures['difference_median_ns']:.3f} ns, 90th percentile {figures['difference_p90_ns']:.3f} ns; "
          f"Pearson r {r:.3f}; model {figures['model_px_per_s']:,.0f} px/s over the whole frame, phasor "
          f"{figures['phasor_px_per_s']:,.0f} px/s (IRF: {irf_name})")
    dump_json(out / f"{args.name}.json", figures)
    print(out / f"{args.name}.json")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = [np.where(bright, done["tau_mean"], np.nan), np.full(bright.shape, np.nan)]
    maps[1][bright] = phasor["tau_mean"]
    lo, hi = np.nanpercentile(np.concatenate([a, b]), [1, 99])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    for ax, image, title in zip(axes, maps, ("model (golden engine)", "phasor (phasorpy)")):
        im = ax.imshow(image, cmap="turbo", vmin=lo, vmax=hi)
        ax.set_title(f"mean lifetime, {title}")
        fig.colorbar(im, ax=ax, fraction=0.046, label="ns")
        ax.set_xticks([]), ax.set_yticks([])
    axes[2].hist2d(b, a, bins=120, range=[[lo, hi], [lo, hi]], cmap="magma", cmin=1)
    axes[2].plot([lo, hi], [lo, hi], "c--", lw=0.8)
    axes[2].set(xlabel="phasor tau_mean (ns)", ylabel="model tau_mean (ns)", title=f"Pearson r {r:.3f}")
    fig.savefig(out / f"{args.name}.png", dpi=100, bbox_inches="tight")
    print(out / f"{args.name}.png")


if __name__ == "__main__":
    main()
