"""Reading measured IRFs from .npy and .csv files."""

import numpy as np
import pytest

from flirtl.fli import load_irf, simulate

IRF = np.concatenate([np.zeros(10), np.hanning(12), np.zeros(113)])


@pytest.mark.parametrize("writer", ["npy", "csv column", "csv row"])
def test_load_normalises_to_unit_sum(tmp_path, writer):
    if writer == "npy":
        path = tmp_path / "irf.npy"
        np.save(path, IRF * 37)
    else:
        path = tmp_path / "irf.csv"
        np.savetxt(path, (IRF * 37)[:, None] if writer == "csv column" else (IRF * 37)[None, :],
                   delimiter=",")
    irf = load_irf(path, n_bins=135)
    np.testing.assert_allclose(irf, IRF / IRF.sum(), rtol=1e-12, atol=1e-15)
    data = simulate("ss3", n=3, seed=0, irf=irf, progress=False)
    np.testing.assert_allclose(data["irf"][0], irf, rtol=1e-6, atol=1e-9)


def _bad(values):
    def write(path):
        np.save(path, values)
    return write


@pytest.mark.parametrize("name, write, error, message", [
    ("missing.npy", None, FileNotFoundError, "IRF file '.*missing.npy' does not exist"),
    ("irf.txt", lambda path: path.write_text("1\n"), ValueError, "be .npy or .csv, not '.txt'"),
    ("irf.csv", lambda path: path.write_text("1,2\nx,4\n"), ValueError, "could not be read"),
    ("short.npy", _bad(IRF[:-5]), ValueError, r"short.npy' has shape \(130,\); expected \(135,\)"),
    ("square.npy", _bad(np.ones((2, 135))), ValueError, "one row or one column"),
    ("nan.npy", _bad(np.where(np.arange(135) == 7, np.nan, IRF)), ValueError, "NaN or inf"),
    ("negative.npy", _bad(IRF - 0.01), ValueError, "non-negative, found -0.01 at index \\(0,\\)"),
    ("zero.npy", _bad(np.zeros(135)), ValueError, "zero.npy' is all zero"),
])
def test_bad_files_are_named(tmp_path, name, write, error, message):
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(error, match=message):
        load_irf(path, n_bins=135)
