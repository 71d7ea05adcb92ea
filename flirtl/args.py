"""Command-line argument types shared by `flirtl` and the subcommands that parse their own options
(train, eval, calibrate): one-line errors and ranges named in the message. A module of its own so
that flirtl.nn imports no part of the command line it is called from."""

from __future__ import annotations

import argparse

import numpy as np


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_in(low: int, high: int | None = None):
    """argparse type: an int in low..high (high None: no upper end), the range in the message."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"in {low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {span}, not {value}")
        return value
    parse.__name__ = "int"
    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


BITS = int_in(2, 32)
