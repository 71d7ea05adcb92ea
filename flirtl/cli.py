"""`flirtl` command line: simulate FLI data, show a fixed-point spec, generate the RTL.

Every error that names a bad input exits with status 2 and one line on stderr, before any output
is written: outputs are checked before the work starts, written through temporary files, and
never written over an input or into a model directory. Ctrl-C (exit 130) and SIGTERM (exit 143)
remove the temporary files and print one line, no traceback.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import numpy as np

from .arguments import BITS, Parser, int_in, positive_float, reporting_errors

DEFAULT_MODEL = "models/seq2seqlite-32x32"
#: Subcommands whose options are parsed by their own module (torch is imported only for them).
DELEGATED = {"train": "flirtl.nn.train", "eval": "flirtl.nn.evaluate", "calibrate": "flirtl.nn.calibrate"}


def _override(text: str) -> tuple[str, object]:
    """`field=value` on the command line, value read as a Python literal when it is one."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def cmd_simulate(args) -> None:
    from .files import check_output_file
    from .fli import get_instrument, load_irf, simulate, write_npz

    out = check_output_file(args.out, suffix=".npz", what="--out", keep=[args.irf] if args.irf else [])
    overrides = dict(args.set or [])
    if args.counting:
        overrides["counting"] = args.counting
    instrument = get_instrument(args.preset, **overrides)
    irf = load_irf(args.irf, n_bins=instrument.n_bins) if args.irf else None
    data = simulate(instrument, n=args.n, seed=args.seed, irf=irf, progress=not args.quiet)
    write_npz(out, data)
    print(f"wrote {args.n} {instrument.name} pixels ({instrument.n_bins} bins x {instrument.dt} ns) to {out}")


def cmd_spec(args) -> None:
    from .spec import ActivationSpec, ModelSpec

    spec = ModelSpec.build(args.bits, hidden=args.hidden, hidden_bits=args.hidden_bits, n_bins=args.n_bins,
                           dt=args.dt, activation=ActivationSpec(method=args.activation))
    print(spec.dumps() if args.json else spec.describe())


def cmd_rtl(args) -> None:
    from .flow.rtl import generate
    from .modeldir import load_for_rtl

    model, note = load_for_rtl(args.model, bits=args.bits)
    if note:
        print(f"flirtl: note: {note}", file=sys.stderr)
    build = generate(model, args.out, lanes=args.lanes, engines=args.engines, sfd_stream=args.sfd_stream,
                     name=args.name)
    perf = build.metadata["performance"]
    print(f"wrote {build.verilog}")
    print(f"  {perf['engines']} engine(s) x {perf['lanes']} MAC lanes, "
          f"{perf['cycles_per_pixel_per_engine']} cycles/pixel/engine, "
          f"MAC-lane utilisation {perf['lane_utilisation']:.1%} (design); "
          f"spec.json, ports.json, summary.md beside it")


def cmd_infer(args) -> None:
    from .infer import infer_file

    done = infer_file(args.counts, args.model, args.output, engine=args.engine, bits=args.bits,
                      dt=args.dt, channel=args.channel, frame=args.frame, time_axis=args.time_axis,
                      peak_bin=args.peak_bin, sfd=args.sfd, pictures=args.pictures,
                      progress=not args.quiet)
    bright = done["intensity"] >= 50
    median = float(np.median(done["tau_mean"][bright])) if bright.any() else float("nan")
    print(f"wrote {', '.join(str(f) for f in done['files'])}: {done['pixels']} pixels in "
          f"{done['seconds']:.1f} s, median mean lifetime {median:.3f} ns over {int(bright.sum())} "
          f"pixels with >= 50 photons ({args.engine} engine)")


def cmd_import(args) -> None:
    """`flirtl import`: a foreign model into a model directory (flirtl.importers)."""
    from .importers import import_model

    out, meta = import_model(args.file, args.out, bits=args.bits, n_bins=args.bins, dt=args.dt,
                             input_scale=args.input_scale, calibrate=args.calibrate,
                             command="flirtl import " + " ".join(sys.argv[2:]))
    print(f"wrote {out}: {meta['source']} GRU ({meta['gru']} cell, {meta['gate']} / "
          f"{meta['candidate']}), {meta['quantization']}")


def run_delegated(command: str, argv: list[str]) -> int:
    """`flirtl train ...` / `flirtl eval ...`: the module's own parser reads every argument (so
    --help and options before or after the model paths work); torch is imported only here, since
    `flirtl rtl` and `flirtl simulate` must work without it."""
    import importlib

    return importlib.import_module(DELEGATED[command]).main(argv) or 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="flirtl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    sim = sub.add_parser("simulate", help="simulate time-resolved fluorescence pixels into a .npz")
    sim.add_argument("--preset", default="ss3", help="instrument preset: ss3, iccd160, tcspc256")
    sim.add_argument("--n", type=int_in(1), required=True, help="number of pixels")
    sim.add_argument("--seed", type=int_in(0, 2 ** 63 - 1), required=True)
    sim.add_argument("--out", required=True, help="output .npz")
    sim.add_argument("--irf", help="measured IRF (.npy or .csv, T values) replacing the preset's family")
    sim.add_argument("--counting", choices=["poisson", "binomial"], help="photon statistics")
    sim.add_argument("--set", type=_override, action="append", metavar="FIELD=VALUE",
                     help="override an instrument field, e.g. --set dt=0.05 --set 'tau_range=(0.1,5)'")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=cmd_simulate)

    spec = sub.add_parser("spec", help="print the fixed-point spec built from one bit width")
    spec.add_argument("--bits", type=BITS, default=8)
    spec.add_argument("--hidden", type=int_in(1, 1024), default=32)
    spec.add_argument("--hidden-bits", type=BITS)
    spec.add_argument("--n-bins", type=int_in(2, 65536), default=135)
    spec.add_argument("--dt", type=positive_float, default=0.09)
    spec.add_argument("--activation", choices=["table", "pwl"], default="table")
    spec.add_argument("--json", action="store_true")
    spec.set_defaults(func=cmd_spec)

    rtl = sub.add_parser("rtl", help="generate the Verilog IP of a model")
    rtl.add_argument("--model", default=DEFAULT_MODEL, help="model directory")
    rtl.add_argument("--bits", type=BITS, default=8)
    rtl.add_argument("--lanes", type=int_in(1), help="MAC lanes per engine (default 3H+3)")
    rtl.add_argument("--engines", type=int_in(1, 256), default=1)
    rtl.add_argument("--sfd-stream", action="store_true",
                     help="also emit the IRF-free decay (T beats per pixel) on m_sfd_axis")
    rtl.add_argument("--out", default="build")
    rtl.add_argument("--name", help="module and directory name (default from the configuration)")
    rtl.set_defaults(func=cmd_rtl)
    infer = sub.add_parser("infer", help="lifetime maps from a FLIM file (.sdt, .ptu, .tif, .npy)")
    infer.add_argument("counts", help="photon counts: Becker & Hickl .sdt, PicoQuant .ptu, TIFF stack, "
                                      "or .npy of shape (N, T) or (H, W, T)")
    infer.add_argument("--model", default=DEFAULT_MODEL, help="model directory")
    infer.add_argument("--engine", choices=["float", "golden", "rtl"], default="golden",
                       help="golden: the integer model the FPGA computes; rtl: the generated Verilog "
                            "under Verilator (bit-exact with golden, slow); float: the torch model")
    infer.add_argument("--bits", type=BITS, default=8)
    infer.add_argument("-o", "--output", required=True,
                       help="output .npz (maps; a .png page of maps and a .md summary go beside it)")
    infer.add_argument("--dt", type=lambda text: text if text == "model" else positive_float(text),
                       help="bin width in ns, for files that record none (.npy, plain TIFF); 'model' "
                            "confirms the model's (a file without it is refused)")
    infer.add_argument("--channel", type=int, help="detector channel / data block of a multi-channel file")
    infer.add_argument("--frame", type=int, help="one frame of a PTU file (default: all frames summed)")
    infer.add_argument("--time-axis", type=int, help="the time axis of a TIFF or .npy (default: TIFF first, .npy last)")
    infer.add_argument("--peak-bin", type=int,
                       help="crop (or pad with each pixel's background level, with a warning) the time "
                            "axis so that the image's decay peak sits at this bin")
    infer.add_argument("--no-sfd", dest="sfd", action="store_false",
                       help="leave the decay curves (T x 3 floats per pixel) out of the .npz")
    infer.add_argument("--no-pictures", dest="pictures", action="store_false", help="no .png and .md")
    infer.add_argument("--quiet", action="store_true")
    infer.set_defaults(func=cmd_infer)

    # listed for `flirtl --help`; main() hands their arguments to their own parsers
    sub.add_parser("train", add_help=False,
                   help="train models: `flirtl train student --help` lists the options")
    sub.add_parser("eval", add_help=False,
                   help="score models, quantization steps and baselines: `flirtl eval --help`")
    sub.add_parser("calibrate", add_help=False,
                   help="fine-tune a shipped model for your instrument from a file and its IRF or a "
                        "reference sample: `flirtl calibrate --help`")

    imp = sub.add_parser("import", help="a GRU encoder-decoder from ONNX, Keras 3 (.keras) or Keras 2 / "
                                        "QKeras (.h5) into a model directory")
    imp.add_argument("file", help="model file: .onnx, .keras or .h5")
    imp.add_argument("--out", required=True, help="new model directory, e.g. models/mine (must not exist)")
    imp.add_argument("--bits", type=BITS, help="width of float weights' post-training quantization "
                                               "(default 8; a QKeras file fixes its own)")
    imp.add_argument("--calibrate", help="data .npz (`flirtl simulate`) choosing the pre-activation "
                                         "and SFD formats from the float model's ranges")
    imp.add_argument("--bins", type=int_in(2), help="time bins, when the file leaves them open")
    imp.add_argument("--dt", type=positive_float, default=0.09, help="bin width in ns (lifetime table)")
    imp.add_argument("--input-scale", type=positive_float, default=1.0,
                     help="the model was trained on the background-subtracted, peak-normalised TPSF "
                          "times this factor (folded into the encoder's input weights)")
    imp.set_defaults(func=cmd_import)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def run() -> int:
        if argv[:1] and argv[0] in DELEGATED:
            return run_delegated(argv[0], argv[1:])
        args = build_parser().parse_args(argv)
        args.func(args)
        return 0
    return reporting_errors(run)


if __name__ == "__main__":
    sys.exit(main())
