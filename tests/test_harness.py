"""`flirtl infer --engine rtl`: the generated Verilog under Verilator through the compiled C++
harness (no cocotb), equal to the golden model on every result beat and every SFD beat.

Harnesses are cached in the checkout's build/harness, as `flirtl infer` run from the checkout does,
so a second session compiles nothing.
"""

import json
import subprocess
import time

import numpy as np
import pytest

from flirtl.cli import DEFAULT_MODEL, main
from flirtl.flow.harness import build_harness, run_rtl
from flirtl.golden import GoldenModel
from flirtl.infer import infer
from flirtl.quant import quantize_model
from flirtl.spec import ActivationSpec
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
    with pytest.raises(ValueError, match=r"backpressure must be a probability in \[0, 1\), not 1.0"):
        sfd_harness.run(np.ones((1, 24)), backpressure=1.0)


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
                     "-o", str(tmp_path / f"{engine}.npz"), "--quiet", "--dt", "model"])
        assert code == 0, capsys.readouterr().err
        with np.load(tmp_path / f"{engine}.npz") as archive:
            maps[engine] = dict(archive)
    assert maps["rtl"].keys() == maps["golden"].keys()
    for name, golden in maps["golden"].items():
        assert np.array_equal(maps["rtl"][name], golden), name


# -- the large random regression (`make regress`) ---------------------------------------------------

#: (bits, hidden, GRU, lanes, engines, T, SFD stream, spec options, pixels): over 100,000 pixels in
#: all, through the compiled Verilator harness (the cocotb benches above run a few dozen per design).
REGRESSION = [
    pytest.param(8, 8, "pytorch", None, 1, 24, True, {}, 16_000, id="b8-h8-pytorch-full-sfd"),
    pytest.param(4, 8, "keras", 5, 2, 24, False, {}, 16_000, id="b4-h8-keras-l5-e2"),
    pytest.param(16, 8, "pytorch", 3, 3, 16, True, {}, 16_000, id="b16-h8-pytorch-l3-e3-sfd"),
    pytest.param(8, 8, "pytorch", None, 2, 24, False,
                 {"activation": ActivationSpec(method="pwl", addr_bits=8, segment_bits=4), "rounding": "floor",
                  "overflow": "wrap"}, 16_000, id="b8-h8-pwl-floor-wrap-e2"),
    pytest.param(8, 16, "keras", None, 2, 32, True, {}, 12_000, id="b8-h16-keras-full-e2-sfd"),
    pytest.param(16, 16, "pytorch", 7, 1, 24, False, {}, 12_000, id="b16-h16-pytorch-l7"),
    pytest.param(4, 16, "pytorch", None, 2, 40, True, {}, 12_000, id="b4-h16-pytorch-full-e2-sfd"),
    pytest.param(8, None, "pytorch", None, 2, 135, False, {}, 2_000, id="shipped-b8-e2"),
]


def count_mismatches(result, golden, sfd_stream: bool) -> tuple[int, int]:
    """(result beats that differ in any field, SFD beats that differ in any channel)."""
    beats = np.zeros(len(golden.tau1), bool)
    for name in RESULTS:
        beats |= getattr(result, name) != getattr(golden, name)
    sfd = int(np.any(result.sfd != golden.sfd, axis=-1).sum()) if sfd_stream else 0
    return int(beats.sum()), sfd


@pytest.mark.slow
@pytest.mark.parametrize("bits, hidden, gru, lanes, engines, n_bins, sfd_stream, options, n_pixels", REGRESSION)
def test_random_regression(bits, hidden, gru, lanes, engines, n_bins, sfd_stream, options, n_pixels, request):
    """Random pixels across the photon range plus the edge cases, half of them with random source
    pauses and random backpressure on every output, half at full throughput: every result beat
    and every SFD beat equal to the golden model's. Prints what was compared and how fast."""
    name = request.node.callspec.id
    if hidden is None:
        if not (ROOT / DEFAULT_MODEL / "spec.json").is_file():
            pytest.skip(f"no shipped model at {DEFAULT_MODEL}")
        from flirtl.modeldir import load_for_rtl

        model = load_for_rtl(ROOT / DEFAULT_MODEL, bits=bits)[0]
    else:
        model = quantize_model(random_weights(hidden, seed=bits * hidden), bits, n_bins=n_bins, gru=gru,
                               **options)[0]
    seed = sum(map(ord, name))  # a different, fixed stream per configuration
    counts = pixels(model, n_random=n_pixels - 5, seed=seed)
    started = time.perf_counter()
    harness = build_harness(model, lanes=lanes, engines=engines, sfd_stream=sfd_stream, cache_dir=CACHE)
    half = len(counts) // 2
    paused = harness.run(counts[:half], jobs=2, idle=0.2, backpressure=0.3, seed=seed)
    full = harness.run(counts[half:], jobs=2)
    seconds = time.perf_counter() - started
    mismatches = [0, 0]
    for part, rows in ((paused, slice(0, half)), (full, slice(half, None))):
        expected = GoldenModel(model).run(counts[rows])
        beats, sfd = count_mismatches(part, expected, sfd_stream)
        mismatches[0] += beats
        mismatches[1] += sfd
    n, T = counts.shape
    figures = {"pixels": n, "result_beats": n, "sfd_beats": n * T if sfd_stream else 0, "input_beats": n * T,
               "mismatches": sum(mismatches), "seconds": seconds, "compile_seconds": harness.compile_seconds,
               "cycles": paused.cycles + full.cycles}
    line = (f"random regression {name}: {n} pixels, {n} result beats + {figures['sfd_beats']} SFD beats "
            f"compared ({n * T} input beats), {figures['mismatches']} mismatches; {seconds:.1f} s "
            f"(compile {harness.compile_seconds:.1f} s, {figures['cycles'] / 1e6:.1f} M cycles), "
            f"half with random idle 0.2 / backpressure 0.3")
    print("\n" + line)
    report = ROOT / "build" / "sim" / "rtl" / f"regress-{name}"
    report.mkdir(parents=True, exist_ok=True)
    (report / "report.txt").write_text(line + "\n")
    (report / "regression.json").write_text(json.dumps(figures))
    assert len(paused.tau1) + len(full.tau1) == n
    assert paused.cycles / half > full.cycles / (n - half), "the pauses cost no cycles: were there any?"
    assert mismatches == [0, 0], f"{mismatches[0]} result beats and {mismatches[1]} SFD beats differ"
