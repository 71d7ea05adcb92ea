"""What every flirtl command line shares: argparse with one-line errors, argument types, and the
error reporting (`reporting_errors`): every error that names a bad input is one line on stderr and
exit status 2; Ctrl-C (exit 130) and SIGTERM (exit 143) remove the temporary files and print one
line, no traceback. `flirtl` and the modules run with `python -m` (flirtl.nn.train) both use it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from typing import Callable

import numpy as np


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that temporary files are removed on the way out."""


def _terminate(signum, frame):
    raise Terminated()


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


def _message(error: BaseException) -> str:
    """One line for an error: ours carry their sentence; the system's name the file."""
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename!r}" if error.filename else ""
        return f"{error.strerror}{where}"
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    if isinstance(error, MemoryError):
        return str(error) or "out of memory: work on fewer pixels at a time"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def reporting_errors(run: Callable[[], int]) -> int:
    """run()'s exit status, or the status of its error after one line on stderr
    (FLIRTL_TRACEBACK=1 raises it instead)."""
    # a warning is one line, like an error (not Python's file:line and source echo)
    warnings.formatwarning = lambda message, category, *where, **_: f"flirtl: warning: {message}\n"
    main_thread = threading.current_thread() is threading.main_thread()
    # Ctrl-C raises KeyboardInterrupt even where the parent started us with SIGINT ignored
    # (Python then installs no handler of its own), so temporary files are removed on the way out
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)} if main_thread else {}
    try:
        return run()
    except KeyboardInterrupt:
        print("flirtl: interrupted (Ctrl-C); no output was left half-written", file=sys.stderr)
        return 130
    except Terminated:
        print("flirtl: terminated (SIGTERM); no output was left half-written", file=sys.stderr)
        return 143
    except (ValueError, TypeError, OSError, KeyError, RuntimeError, ArithmeticError, MemoryError) as error:
        if os.environ.get("FLIRTL_TRACEBACK"):
            raise
        print(f"flirtl: error: {_message(error)}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
