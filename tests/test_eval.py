"""`flirtl eval`: metrics, the quantization rows and the report on a small test set."""

import json

import numpy as np
import pytest
import torch

from flirtl.cli import main as cli_main
from flirtl.nn.evaluate import (LIFETIMES, PHOTON_BINS, Row, conditional_spread, evaluate, lifetime_scores,
                                reference_tables, tables, weight_only_ptq)
from flirtl.nn.metrics import sfd_scores
from flirtl.nn.model import load_float_model

FLOAT_MODEL = "models/seq2seqlite-32x32-float"


def test_sfd_scores_of_a_perfect_and_an_offset_prediction():
    rng = np.random.default_rng(0)
    true = np.exp(-np.arange(20)[None, :, None] / rng.uniform(2, 8, (5, 1, 3)))
    perfect = sfd_scores(true, true)
    assert all(m["rmse"] == 0 and m["r2"] == 1 and m["l2"] == 0 for m in perfect.values())
    shifted = sfd_scores(true + 0.1, true)["total"]
    assert shifted["rmse"] == pytest.approx(0.1) and shifted["l2"] == pytest.approx(0.1 * np.sqrt(20))
    assert shifted["r2"] < 1


def test_lifetime_scores_count_failed_fits():
    truth = {name: np.array([1.0, 2.0, 3.0]) for name in LIFETIMES}
    estimate = {name: np.array([1.5, np.nan, 2.0]) for name in LIFETIMES}
    scores = lifetime_scores(estimate, truth)["tau_mean"]
    assert scores["nonfinite"] == 1 and scores["mae"] == pytest.approx(0.75)
    assert scores["rmse"] == pytest.approx(np.sqrt((0.25 + 1) / 2))


def test_conditional_spread_separates_a_pull_to_the_prior_from_noise():
    rng = np.random.default_rng(1)
    n = 40_000
    truth = {"tau1": rng.uniform(0.05, 1.5, n), "tau2": rng.uniform(1.5, 3, n), "a": rng.uniform(0.2, 0.8, n)}
    noise = rng.normal(0, 1, n)
    # pure noise: the spread is the whole ratio
    assert conditional_spread(noise, truth) == pytest.approx(1, rel=0.02)
    # a smooth pull towards the prior mean of tau1 adds bias, not spread: the spread stays near 1
    # (what is left is the pull's variation inside a quartile cell) while the RMS grows to ~2
    pulled = noise + 3 * (0.775 - truth["tau1"]) / 0.725
    assert np.sqrt(np.mean(pulled ** 2)) > 1.9 and conditional_spread(pulled, truth) < 1.25
    # as many cells as pixels: nothing is left to measure a spread with
    assert np.isnan(conditional_spread(noise[:3], {k: v[:3] for k, v in truth.items()}))


def test_weight_only_ptq_rounds_every_tensor_to_a_power_of_two_grid():
    model = load_float_model(FLOAT_MODEL)
    fine, coarse = weight_only_ptq(model, 16), weight_only_ptq(model, 4)
    for name, value in model.state_dict().items():
        assert torch.allclose(fine.state_dict()[name], value, atol=2e-4), name
        levels = torch.unique(coarse.state_dict()[name]).numel()
        assert levels <= (2 ** 8 if "bias" in name else 2 ** 4), name


def test_eval_writes_tables_plots_and_results(tmp_path):
    out = evaluate([FLOAT_MODEL], n=600, bits=[8, 4], out=tmp_path, threads=1, lma_pixels=150,
                   progress=False)
    results = json.loads((out / "results.json").read_text())
    labels = [row["label"] for row in results["rows"]]
    assert labels == ["seq2seqlite-32x32-float float", "seq2seqlite-32x32-float ptq 8-bit",
                      "seq2seqlite-32x32-float ptq 4-bit", "seq2seqlite-32x32-float golden 8-bit",
                      "seq2seqlite-32x32-float golden 4-bit", "prior mean baseline",
                      "phasor (phasorpy) baseline", "LMA fit (FLIMLib) baseline"]
    rmse = {row["label"]: row["sfd"]["total"]["rmse"] for row in results["rows"] if "sfd" in row}
    # 8-bit weights alone cost little; 4 bits and integer arithmetic cost more
    assert rmse["seq2seqlite-32x32-float ptq 8-bit"] < 1.2 * rmse["seq2seqlite-32x32-float float"]
    assert rmse["seq2seqlite-32x32-float golden 4-bit"] > rmse["seq2seqlite-32x32-float golden 8-bit"]
    prior = results["rows"][5]["lifetimes_all"]["tau_mean"]["rmse"]
    fit = results["rows"][-1]["lifetimes_all"]["tau_mean"]
    assert fit["nonfinite"] >= 450 and fit["rmse"] < prior  # fitted: the first 150 pixels
    assert results["rows"][0]["lifetimes_all"]["tau_mean"]["rmse"] < prior
    tables = (out / "tables.md").read_text()
    assert "| seq2seqlite-32x32-float | " in tables and "golden 8 (integer)" in tables
    assert "| 32x32 | " in tables and "(PTQ)" in tables  # the reference work's student table
    assert results["rows"][0]["network"] == {"layers": 1, "hidden": 32, "kd": False,
                                              "init": "seq2seqlite-32x32-float"}
    assert "RMSE / sqrt(CRLB)" in tables and "LMA fit on the first 150 of 600 pixels" in tables
    limit = results["rows"][0]["crlb"]["1000-10000"]["tau_mean"]
    assert limit["pixels"] > 20 and 0 < limit["crlb_median"] < limit["rmse"] * 10 and limit["ratio"] > 0
    assert "Spread part" in tables and 0 < limit["spread"] < 2 * limit["ratio"]
    for name in ("error_vs_bits.png", "error_vs_photons.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_compression_table_columns_match_without_ptq_widths():
    """QAT directories alone give no PTQ/golden columns: header, separator and rows stay aligned."""
    score = {"rmse": 0.05, "r2": 0.9, "l2": 0.3}
    lifetime = {"mae": 0.1, "rmse": 0.2, "nonfinite": 0}
    metrics = {"sfd": {c: score for c in ("total", "short", "long")},
               "lifetimes": {f"{lo}-{hi}": {q: lifetime for q in LIFETIMES} for lo, hi in PHOTON_BINS},
               "lifetimes_all": {q: lifetime for q in LIFETIMES}}
    rows = [Row("student", method, bits, {}, sfd=np.zeros(1), metrics=metrics)
            for method, bits in (("float", None), ("qat", 8))]
    test = {"photons": np.array([100.0, 500.0, 2000.0]), "preset": "ss3", "seed": 1}
    table = tables(rows, test).split("## SFD channel-0 RMSE by compression step\n\n")[1].splitlines()[:3]
    assert table[0] == "| model | float | QAT (golden) |"
    assert [line.count("|") for line in table] == [4, 4, 4]


def test_reference_tables_pick_qat_where_scored_and_ptq_elsewhere():
    def row(model, method, bits, rmse, **network):
        return Row(model, method, bits, {}, sfd=np.zeros(1), network=network,
                   metrics={"sfd": {"total": {"rmse": rmse}}})

    teacher = {"layers": 2, "hidden": 128, "kd": False, "init": "teacher"}
    student = {"layers": 1, "hidden": 32, "kd": False, "init": "s-float"}
    kd = {"layers": 1, "hidden": 32, "kd": True, "init": "s-float"}
    other = {"layers": 1, "hidden": 32, "kd": False, "init": "s-more-data"}
    rows = [row("teacher", "float", None, 0.041, **teacher), row("teacher", "ptq", 16, 0.042, **teacher),
            row("teacher", "ptq", 8, 0.043, **teacher),
            row("s-float", "float", None, 0.045, **student), row("s-float", "golden", 8, 0.058, **student),
            row("s-float", "golden", 4, 0.29, **student),
            row("s", "float", None, 0.056, **student), row("s", "qat", 8, 0.046, **student),
            row("s-kd", "float", None, 0.057, **kd), row("s-kd", "qat", 8, 0.047, **kd),
            row("s-more", "float", None, 0.051, **other), row("s-more", "qat", 8, 0.044, **other),
            Row("prior mean", "baseline", None, {})]
    lines = reference_tables(rows)
    assert "| teacher | 2 x GRU(128) | 0.0410 | 0.0420 | 0.0430 |" in lines
    assert "| student | from float | float | 8 bits | 4 bits |" in lines
    # the QAT model's float twin is not the float student
    assert "| 32x32 | s-float | 0.0450 | 0.0460 (QAT) | 0.2900 (PTQ) |" in lines
    assert "| 32x32 + KD | s-float | - | 0.0470 (QAT) | - |" in lines
    # a student of the same width trained from another float model gets its own line
    assert "| 32x32 | s-more-data | - | 0.0440 (QAT) | - |" in lines
    assert reference_tables(rows[-1:]) == []


def test_eval_command_refuses_a_missing_model(tmp_path, capsys):
    assert cli_main(["eval", str(tmp_path / "nope"), "-n", "10", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "nope' does not exist" in err and "ablation" not in err
    assert not (tmp_path / "e").exists()


def test_eval_command_names_every_missing_ablation_and_how_to_make_it(tmp_path, capsys):
    """models/ ships no ablation: `make eval-ablations` on a fresh clone says which and how."""
    from flirtl.modeldir import ABLATIONS

    names = sorted(p.name for p in ABLATIONS.iterdir())[:2]
    argv = ["eval", "models/teacher", *(str(tmp_path / name) for name in names), "--out", str(tmp_path / "e")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "make models" in err and "docs/eval/ablations/" in err
    assert all(f"{name}'" in err for name in names) and "they are ablations" in err
    assert not (tmp_path / "e").exists()


def test_eval_scores_a_teacher_without_golden_rows(tmp_path):
    """A multi-layer teacher gets float and weight-only PTQ rows (16 and 8 bits), never a golden
    model: the IP runs one-layer students only."""
    from flirtl.nn.config import TrainConfig
    from flirtl.nn.loop import train_student

    teacher = train_student(TrainConfig(hidden=8, layers=2, n_train=256, n_val=64, n_test=64, batch=64,
                                        max_epochs=1, out=str(tmp_path / "teacher"),
                                        checkpoint_dir=str(tmp_path / "ckpt"), data_dir=str(tmp_path / "data"),
                                        device="cpu", threads=1), progress=False)
    out = evaluate([teacher], n=300, bits=[16, 8, 4], out=tmp_path / "eval", threads=1, baselines=False,
                   progress=False)
    labels = [row["label"] for row in json.loads((out / "results.json").read_text())["rows"]]
    assert labels == ["teacher float", "teacher ptq 16-bit", "teacher ptq 8-bit", "prior mean baseline"]
