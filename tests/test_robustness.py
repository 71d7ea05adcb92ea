"""`flirtl eval --robustness`: error against where the decay sits, on the shipped models."""

import json
from pathlib import Path

import numpy as np

from flirtl.fli import get_instrument
from flirtl.nn.robustness import anywhere, evaluate_robustness

ROOT = Path(__file__).resolve().parents[1]


def test_anywhere_spans_the_window_from_bin_0():
    inst = anywhere(get_instrument("ss3"))
    assert inst.background == "ends"
    assert inst.irf_position_range == (0.0, 12.15 - 5.0)
    # never narrower than the preset's own range (ICCD's window is short)
    assert anywhere(get_instrument("iccd160")).irf_position_range[1] >= 1.6


def test_robust_model_holds_where_the_shipped_one_fails(tmp_path):
    """On one test set over the whole window, the model trained with the pulse anywhere (and the
    'ends' background) beats the shipped, narrow one where the decay starts early and keeps an even
    error over positions; the narrow one is worse than a constant guess there (issue 15's finding)."""
    table = evaluate_robustness([ROOT / "models/seq2seqlite-32x32", ROOT / "models/seq2seqlite-32x32-anywhere"],
                                n=2500, seed=11, out=tmp_path, lma_pixels=0, threads=2, progress=False)
    assert table == tmp_path / "robustness.md"
    assert (tmp_path / "robustness.png").stat().st_size > 10_000
    result = json.loads((tmp_path / "robustness.json").read_text())
    narrow = result["results"]["seq2seqlite-32x32 (golden 8-bit)"]["pulse position"]
    robust = result["results"]["seq2seqlite-32x32-anywhere (golden 8-bit)"]["pulse position"]
    prior = result["results"]["prior mean (constant)"]["pulse position"]
    early = slice(0, 3)  # decay starting in the first 2.7 ns
    mae = lambda cells: np.array([c["tau_mean"]["mae"] for c in cells[early]])
    assert (mae(robust) < 0.5 * mae(narrow)).all()
    assert (mae(narrow) > mae(prior)).any()
    assert result["spread"]["seq2seqlite-32x32-anywhere (golden 8-bit)"] < 2.0 < result["spread"]["seq2seqlite-32x32 (golden 8-bit)"]
    text = table.read_text()
    for label in ("phasor (phasorpy)", "prior mean (constant)", "against gate width", "against background"):
        assert label in text
