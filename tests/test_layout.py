"""The package's layout: every flirtl.nn module imports on its own, the command lines answer
--help, and `flirtl` and `flirtl.nn.train` do not import each other."""

import pkgutil
import subprocess
import sys

import pytest

import flirtl.nn

NN_MODULES = sorted(f"flirtl.nn.{info.name}" for info in pkgutil.iter_modules(flirtl.nn.__path__))


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("module", NN_MODULES)
def test_each_nn_module_imports_alone(module):
    result = _python("-c", f"import {module}")
    assert result.returncode == 0, result.stderr


def test_cli_and_train_do_not_import_each_other():
    check = ("import sys, {first}; "
             "assert '{second}' not in sys.modules, '{first} imported {second}'")
    for first, second in (("flirtl.cli", "flirtl.nn.train"), ("flirtl.nn.train", "flirtl.cli")):
        result = _python("-c", check.format(first=first, second=second))
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("argv", [["-m", "flirtl", "train", "--help"],
                                  ["-m", "flirtl", "train", "student", "--help"],
                                  ["-m", "flirtl", "train", "teacher", "--help"],
                                  ["-m", "flirtl", "eval", "--help"],
                                  ["-m", "flirtl", "calibrate", "--help"],
                                  ["-m", "flirtl.nn.train", "student", "--help"]])
def test_help_exits_zero(argv):
    result = _python(*argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")


def test_train_module_reports_a_bad_option_in_one_line():
    result = _python("-m", "flirtl.nn.train", "student", "--hidden", "0", "--out", "/nonexistent/x")
    assert result.returncode == 2
    assert result.stderr.startswith("flirtl: error:") and len(result.stderr.splitlines()) == 1, result.stderr
