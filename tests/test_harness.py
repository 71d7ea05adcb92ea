"""`flirtl infer --engine rtl`: the generated Verilog under Verilator through the compiled C++
harness (no cocotb), equal to the golden model on every result beat and every SFD beat.

Harnesses are cached in the checkout's build/harness, as `flirtl infer` run from the checkout does,
so a second session compiles nothing.
"""

import subprocess

import numpy as np
import pytest

from flirtl.cli import DEFAULT_MODEL, main
from flirtl.flow.harness import build_harness, run_rtl
from flirtl.golden import GoldenModel
from flirtl.infer import infer
from flirtl.quant import quantize_model
from golden_util import random_counts, random_weights
from test_rtl import ROOT, edge_case_pixels

CACHE = ROOT / "build" / "harness"
RESULTS = ("tau1", "tau2", "a", "tau_mean")


def small_model(n_bins=24, **options):
    return quantize_model(random_weights(8, seed=3), 8, n_bins=n_bins, **options)[0]


def pixels(model, n_random=300, seed=5):
    spec = model.spec
    return np.concatenate([edge_case_pixels(spec.n_bins, spec.fmt("counts").max_code),
                           random_counts(n_random, spec.n_bins, seed=seed, max_photons=10000)])


@pytest.fixture(scope="module")
def sfd_harness():
    return build_harness(small_model(), sfd_stream=True, cache_dir=CACHE)


@pytest.mark.parametrize("options, lanes, engines, sfd_stream", [
    pytest.param({"gru": "pytorch"}, None, 1, True, id="h8-full-sfd"),
    pytest.param({"gru": "keras"}, 5, 2, False, id="h8-keras-l5-e2"),
])
def test_harness_equals_golden(options, lanes, engines, sfd_stream):
    model = small_model(**options)
    counts = pixels(model)
    harness = build_harness(model, lanes=lanes, engines=engines, sfd_stream=sfd_stream, cache_dir=CACHE)
    # small chunks on two processes: results must come back in input order
    result = harness.run(counts, chunk=64, jobs=2)
    golden = GoldenModel(model).run(counts)
    for name in RESULTS:
        assert np.array_equal(getattr(result, name), getattr(golden, name)), name
    if sfd_stream:
        assert np.array_equal(result.sfd, golden.sfd)
    else:
        assert result.sfd is None
    perf = harness.metadata["performance"]
    # the IP's throughput, plus at most one pixel's latency per chunk to fill and drain
    steady = len(counts) * perf["cycles_per_pixel_per_engine"] / engines
    chunks = -(-len(counts) // 64)
    assert steady <= result.cycles <= steady + chunks * perf["latency_cycles_bound"]


def test_harness_is_built_once(sfd_harness):
    again = build_harness(small_model(), sfd_stream=True, cache_dir=CACHE)
    assert again.executable == sfd_harness.executable and again.compile_seconds == 0


def test_no_pixels(sfd_harness):
    result = sfd_harness.run(np.zeros((0, 24), np.int64))
    assert result.tau1.shape == (0,) and result.sfd.shape == (0, 24, 3) and result.cycles == 0


@pytest.mark.parametrize("counts, error, message", [
    (np.ones((3, 23)), ValueError, r"counts must have shape \(N, 24\), not \(3, 23\)"),
    (np.ones((2, 3, 24)), ValueError, r"counts must have shape \(N, 24\)"),
    (np.where(np.eye(3, 24) > 0, np.nan, 1.0), ValueError, "NaN"),
    (-np.ones((2, 24)), ValueError, "non-negative"),
    (np.full((2, 24), 1.5), ValueError, "integer photon counts"),
    (np.full((2, 24), 70000), ValueError, r"counts reach 70000, beyond the IP's 16-bit input \(max 65535\)"),
])
def test_bad_counts_are_refused_before_building(tmp_path, counts, error, message):
    with pytest.raises(error, match=message):
        run_rtl(counts, small_model(), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_bad_arguments_are_refused(tmp_path, sfd_harness):
    with pytest.raises(TypeError, match="model must be a QuantizedModel, not PosixPath"):
        run_rtl(np.ones((1, 24)), tmp_path, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="chunk must be a positive int, not 0"):
        sfd_harness.run(np.ones((1, 24)), chunk=0)
    with pytest.raises(ValueError, match="jobs must be a positive int, not 0"):
        sfd_harness.run(np.ones((1, 24)), jobs=0)


def test_harness_executable_refuses_bad_files(tmp_path, sfd_harness):
    exe = str(sfd_harness.executable)
    odd = tmp_path / "odd.counts"
    odd.write_bytes(bytes(4 * 24 + 2))
    out = [str(tmp_path / "r"), str(tmp_path / "s")]
    for argv, message in [([str(odd), *out], "not whole pixels of 24 4-byte counts"),
                          ([str(tmp_path / "missing"), *out], "cannot read"),
                          ([str(odd)], "usage:")]:
        done = subprocess.run([exe, *argv], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr, done.stderr


def test_infer_rtl_engine_equals_golden(tmp_path, monkeypatch, sfd_harness):
    """The same design as `sfd_harness`, through `infer` on an image: every output, sfd included."""
    monkeypatch.chdir(ROOT)  # infer's default cache, build/harness, is the one the tests fill
    small_model().save(tmp_path / "model")
    counts = pixels(small_model(), n_random=15)[:20].reshape(4, 5, 24)
    rtl = infer(counts, tmp_path / "model", engine="rtl")
    golden = infer(counts, tmp_path / "model", engine="golden")
    assert rtl.keys() == golden.keys()
    for name in golden:
        assert rtl[name].dtype == golden[name].dtype and np.array_equal(rtl[name], golden[name]), name


@pytest.mark.skipif(not (ROOT / DEFAULT_MODEL / "spec.json").is_file(), reason=f"no shipped model at {DEFAULT_MODEL}")
def test_cli_infer_rtl_on_the_shipped_model(tmp_path, monkeypatch, capsys):
    """`flirtl infer --engine rtl` on the shipped 32x32 model: the same maps as `--engine golden`."""
    monkeypatch.chdir(ROOT)
    np.save(tmp_path / "counts.npy", np.concatenate([edge_case_pixels(135, 65535),
                                                     random_counts(6, 135, seed=9, max_photons=10000)]))
    maps = {}
    for engine in ("rtl", "golden"):
        code = main(["infer", str(tmp_path / "counts.npy"), "--engine", engine,
                     "-o", str(tmp_path / f"{engine}.npz"), "--quiet"])
        assert code == 0, capsys.readouterr().err
        with np.load(tmp_path / f"{engine}.npz") as archive:
            maps[engine] = dict(archive)
    assert maps["rtl"].keys() == maps["golden"].keys()
    for name, golden in maps["golden"].items():
        assert np.array_equal(maps["rtl"][name], golden), name
