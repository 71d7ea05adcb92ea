"""The command line: each bad input exits non-zero, names the problem, and writes nothing."""

import numpy as np
import pytest

from flirtl.cli import main


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse refuses an argument of the wrong kind
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_simulate_writes_a_reproducible_file(tmp_path, capsys):
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    for path in (first, second):
        code, out, _ = run(capsys, "simulate", "--preset", "ss3", "--n", "300", "--seed", "7",
                           "--out", str(path), "--quiet")
        assert code == 0 and "wrote 300 ss3 pixels" in out
    with np.load(first) as a, np.load(second) as b:
        for key in ("counts", "sfd", "tau1", "tau2", "a", "photons", "irf", "dt"):
            assert np.array_equal(a[key], b[key]), key
        assert a["counts"].shape == (300, 135) and a["sfd"].shape == (300, 135, 3)


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nope"], "nope"),
    (["--set", "dt=-1"], "dt"),
    (["--set", "no_such_field=3"], "no_such_field"),
    (["--n", "0"], "n"),
    (["--irf", "{tmp}/missing.npy"], "missing.npy"),
    (["--irf", "{tmp}/bad_irf.npy"], "NaN"),
    (["--irf", "{tmp}/short_irf.npy"], "shape"),
])
def test_simulate_refuses_bad_input_and_writes_nothing(tmp_path, capsys, argv, message):
    np.save(tmp_path / "bad_irf.npy", np.full(135, np.nan))
    np.save(tmp_path / "short_irf.npy", np.ones(100))
    out = tmp_path / "out.npz"
    args = {"--n": "100", "--seed": "1", "--out": str(out), "--quiet": None}
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    for i in range(0, len(argv), 2):
        args[argv[i]] = argv[i + 1]
    flat = [x for k, v in args.items() for x in ((k,) if v is None else (k, v))]
    code, _, err = run(capsys, "simulate", *flat)
    assert code == 2
    assert "error:" in err and message in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".npy"] == []


def test_simulate_refuses_a_non_npz_output(tmp_path, capsys):
    code, _, err = run(capsys, "simulate", "--n", "10", "--seed", "1", "--out", str(tmp_path / "x.txt"))
    assert code == 2 and "must name a .npz file" in err and not (tmp_path / "x.txt").exists()


def test_spec_refuses_impossible_bits(capsys):
    code, _, err = run(capsys, "spec", "--bits", "33")
    assert code == 2 and "--bits: must be in 2..32, not 33" in err


def test_spec_prints_json(capsys):
    code, out, _ = run(capsys, "spec", "--bits", "6", "--json")
    assert code == 0 and '"bits": 6' in out


def test_rtl_refuses_missing_model(tmp_path, capsys):
    code, _, err = run(capsys, "rtl", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "build"))
    assert code == 2 and "does not exist" in err and not (tmp_path / "build").exists()


def test_rtl_refuses_model_without_codes(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "rtl", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "build"))
    assert code == 2 and "no 8-bit codes" in err and not (tmp_path / "build").exists()


@pytest.fixture
def tiny_model(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from golden_util import random_weights
    from flirtl.quant import quantize_model

    weights = random_weights(8, seed=2)
    model, _ = quantize_model(weights, 8, n_bins=30)
    model.save(tmp_path / "model")
    np.savez(tmp_path / "model" / "float_weights.npz", **weights)
    return tmp_path / "model"


@pytest.mark.parametrize("engine", ["golden", "float"])
def test_infer_maps_an_image(tmp_path, capsys, tiny_model, engine):
    counts = np.random.default_rng(0).poisson(20, (4, 5, 30))
    np.save(tmp_path / "counts.npy", counts)
    code, out, err = run(capsys, "infer", str(tmp_path / "counts.npy"), "--model", str(tiny_model),
                         "--engine", engine, "-o", str(tmp_path / "out.npz"), "--quiet", "--dt", "model")
    assert code == 0, err
    with np.load(tmp_path / "out.npz") as result:
        for name in ("tau1", "tau2", "a", "tau_mean"):
            assert result[name].shape == (4, 5)
            # the integer model saturates; the float extraction reports a flat channel as inf
            assert engine == "float" or np.all(np.isfinite(result[name]))
        assert result["sfd"].shape == (4, 5, 30, 3)


@pytest.mark.parametrize("make_counts, message", [
    (lambda: np.ones((3, 29)), "spans 29 bins of 0.09 ns, shorter than the model.s 30 bins"),
    (lambda: np.where(np.eye(3, 30) > 0, np.nan, 1.0), "NaN"),
    (lambda: -np.ones((2, 30)), "non-negative"),
    (lambda: np.full((2, 30), 70000), "beyond the IP's 16-bit input"),
    (lambda: np.ones(30), r"shape \(N, T\) or \(H, W, T\)"),
])
def test_infer_refuses_bad_counts(tmp_path, capsys, tiny_model, make_counts, message):
    np.save(tmp_path / "counts.npy", make_counts())
    code, _, err = run(capsys, "infer", str(tmp_path / "counts.npy"), "--model", str(tiny_model),
                       "-o", str(tmp_path / "out.npz"), "--dt", "model")
    assert code == 2
    import re
    assert re.search(message, err), err
    assert not (tmp_path / "out.npz").exists()
