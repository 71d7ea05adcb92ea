"""The package's layout: every flirtl module imports on its own, flirtl.nn imports nothing of the
command line it is called from, `flirtl` and `flirtl.nn.train` do not import each other, and every
command line answers --help."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import flirtl

PACKAGE = Path(flirtl.__file__).parent
# (`flirtl.__main__` runs the command line when imported: it is what `python -m flirtl` runs)
MODULES = sorted(info.name for info in pkgutil.walk_packages([str(PACKAGE)], "flirtl.") if info.name != "flirtl.__main__")


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


def test_every_module_imports_alone():
    """One fresh interpreter per module: no import order hides a cycle or a missing import."""
    failed = {}
    for name in MODULES:
        result = _python("-c", f"import {name}")
        if result.returncode:
            failed[name] = result.stderr.strip().splitlines()[-1]
    assert not failed, failed


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module imported, line) of every import in `path` outside its `if __name__ == "__main__"` block."""
    tree = ast.parse(path.read_text())
    main_blocks = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
    skip = {id(n) for block in main_blocks for n in ast.walk(block)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            found.append(("." * node.level + (node.module or ""), node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
    return found


def test_training_code_does_not_import_the_command_line():
    offenders = [f"{path.name}:{line} imports {module}" for path in sorted((PACKAGE / "nn").glob("*.py"))
                 for module, line in _imports(path) if module in ("..cli", "flirtl.cli")]
    assert not offenders, offenders


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
                                  ["-m", "flirtl", "simulate", "--help"],
                                  ["-m", "flirtl", "rtl", "--help"],
                                  ["-m", "flirtl", "infer", "--help"],
                                  ["-m", "flirtl", "import", "--help"],
                                  ["-m", "flirtl.nn.train", "student", "--help"]], ids=" ".join)
def test_help_exits_zero(argv):
    result = _python(*argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")


def test_train_module_reports_a_bad_option_in_one_line():
    result = _python("-m", "flirtl.nn.train", "student", "--hidden", "0", "--out", "/nonexistent/x")
    assert result.returncode == 2
    assert result.stderr.startswith("flirtl: error:") and len(result.stderr.splitlines()) == 1, result.stderr
