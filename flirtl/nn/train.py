"""`flirtl train`: train the teacher and the Seq2SeqLite students on simulated data; write model
directories.

    python -m flirtl.nn.train student --hidden 32 --n-train 50000 --epochs 100 --max-minutes 31 \\
        --out models/seq2seqlite-32x32-float --seed 1 --threads 1
    python -m flirtl.nn.train student --qat --bits 8 --init models/seq2seqlite-32x32-float \\
        --teacher models/teacher --kd-alpha 0.6 --out models/seq2seqlite-32x32
    python -m flirtl.nn.train teacher --out models/teacher

Running the same command again resumes at the next epoch. This module is the command line only;
the work is done by:

    config.py      TrainConfig (what a run trains) and its flags (OPTIONS, command_line)
    loop.py        train_student: the epochs, early stopping, torchrun's process group, the loss hook
    checkpoint.py  <checkpoint_dir>/<name>/last.pt: save, load (weights-only), resume
    model_dir.py   the model directory: weights, config.json, spec.json + weights.npz, history.json,
                   metrics.json (held_out_metrics), model_card.md
    card.py        the model card's text
    metrics.py     RMSE, pooled and per-pixel R2, lifetime errors: shared with `flirtl eval`
"""

from __future__ import annotations

import argparse
import sys
import typing

from ..arguments import Parser, reporting_errors
from .config import MODEL_KINDS, OPTIONS, TrainConfig
from .loop import train_student


def add_train_parser(subparsers) -> None:
    """Register the `student` and `teacher` subcommands (they set `func=main_train`)."""
    hints = typing.get_type_hints(TrainConfig)
    for kind, (help_line, changes) in MODEL_KINDS.items():
        parser = subparsers.add_parser(
            kind, help=help_line, description=__doc__.split("\n\n")[0],
            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        defaults = TrainConfig(**changes)
        for flag, name, help_text in OPTIONS:
            # `int | None` fields take an int on the command line
            kind_type = next(t for t in (typing.get_args(hints[name]) or (hints[name],))
                             if t is not type(None))
            if kind_type is bool:
                parser.add_argument(flag, dest=name, action="store_true", help=help_text)
            elif typing.get_origin(kind_type) is tuple:
                parser.add_argument(flag, dest=name, type=float, nargs=2, metavar=("LO", "HI"),
                                    default=getattr(defaults, name), help=help_text)
            else:
                parser.add_argument(flag, dest=name, type=kind_type, default=getattr(defaults, name),
                                    help=help_text)
        parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
        parser.add_argument("--no-progress", dest="progress", action="store_false",
                            help="no progress bars (epoch summaries still print)")
        parser.set_defaults(func=main_train)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {name: getattr(args, name) for _flag, name, _help in OPTIONS}
    return TrainConfig(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()})


def main_train(args: argparse.Namespace) -> int:
    path = train_student(config_from_args(args), fresh=args.fresh, progress=args.progress)
    print(path)
    return 0


def main(argv=None) -> int:
    parser = Parser(prog="flirtl train", description="Train flirtl's torch models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # with `flirtl`'s error reporting (one line, exit 2)
    sys.exit(reporting_errors(lambda: main(sys.argv[1:])))
