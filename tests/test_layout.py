"""The package's shape: every module imports on its own, flirtl.nn imports nothing of the command
line it is called from, and every subcommand's --help works."""

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


def test_every_module_imports_alone():
    """One fresh interpreter per module: no import order hides a cycle or a missing import."""
    failed = {}
    for name in MODULES:
        result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True)
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


@pytest.mark.parametrize("argv", [["train", "--help"], ["train", "student", "--help"], ["train", "teacher", "--help"],
                                  ["eval", "--help"], ["calibrate", "--help"], ["simulate", "--help"],
                                  ["rtl", "--help"], ["infer", "--help"], ["import", "--help"]],
                         ids=" ".join)
def test_every_help_works(argv):
    result = subprocess.run([sys.executable, "-m", "flirtl", *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: flirtl {argv[0]}")
