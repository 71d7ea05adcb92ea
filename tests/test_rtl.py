"""The generated Verilog against the golden model, bit for bit, under Verilator (cocotb 2).

Each configuration (bits, hidden, lanes, engines) is exported into its own build directory under
build/sim/, linted with `verilator --lint-only -Wall`, and driven with random pixels across the photon
range plus edge cases, with random valid gaps, random backpressure and a reset mid-pixel. Every
result beat must equal the golden model's. The regression prints cycles per pixel and MAC-lane
utilisation for each configuration. CI runs the unmarked cases; `make regress` runs all.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flirtl.flow.rtl import generate  # noqa: E402
from flirtl.flow.toolchain import lint_verilog  # noqa: E402
from flirtl.golden import GoldenModel  # noqa: E402
from flirtl.ports import pack_results, pack_sfd  # noqa: E402
from flirtl.quant import QuantizedModel, quantize_model  # noqa: E402
from flirtl.spec import ActivationSpec  # noqa: E402
from golden_util import random_counts, random_weights  # noqa: E402
from tb.runner import icarus_missing, run_cocotb, sim_dir  # noqa: E402

SHIPPED = ROOT / "models" / "seq2seqlite-32x32"


def edge_case_pixels(n_bins: int, count_max: int) -> np.ndarray:
    """All-zero pixel, a single photon, saturated counts, maximum background, a lone peak."""
    zero = np.zeros(n_bins, np.int64)
    single = zero.copy()
    single[n_bins // 2] = 1
    saturated = np.full(n_bins, count_max)
    background = np.full(n_bins, count_max)
    background[n_bins // 3:] = count_max - 1  # the maximum background, hardly any signal
    spike = zero.copy()
    spike[-1] = count_max
    return np.stack([zero, single, saturated, background, spike])


def stimulus(model: QuantizedModel, n_random: int, seed: int, sfd_stream: bool = False):
    spec = model.spec
    counts = np.concatenate([edge_case_pixels(spec.n_bins, spec.fmt("counts").max_code),
                             random_counts(n_random, spec.n_bins, seed=seed, max_photons=10000)])
    result = GoldenModel(model).run(counts)
    fields = {name: getattr(result, name) for name in ("tau1", "tau2", "a", "tau_mean")}
    case = {"seed": seed, "counts": counts, "expected": pack_results(spec, fields)}
    if sfd_stream:
        case["sfd"] = pack_sfd(spec, result.sfd)
    return case


CONFIGS = [
    # (bits, hidden, lanes, engines, n_bins, spec options, SFD stream, marks)
    pytest.param(8, 8, None, 1, 24, {"gru": "pytorch"}, False, id="b8-h8-full"),
    pytest.param(8, 8, 5, 1, 24, {"gru": "keras"}, False, id="b8-h8-l5-keras"),
    pytest.param(4, 8, 3, 1, 24, {"gru": "pytorch"}, False, id="b4-h8-l3"),
    # background from the lesser end (the edge cases take both sides of the compare)
    pytest.param(8, 8, 4, 1, 24, {"background": "ends"}, False, id="b8-h8-l4-ends"),
    pytest.param(8, 8, None, 1, 24, {"activation": ActivationSpec(method="pwl", addr_bits=8, segment_bits=4),
                                     "rounding": "floor", "overflow": "wrap"}, False, id="b8-h8-pwl-floor-wrap"),
    pytest.param(12, 16, None, 2, 24, {"gru": "pytorch"}, True, id="b12-h16-full-e2-sfd"),
    pytest.param(16, 8, 1, 1, 16, {"gru": "pytorch"}, False, id="b16-h8-l1"),
    pytest.param(8, 8, None, 1, 135, {"gru": "keras"}, False, id="b8-h8-keras-T135"),
    # the decoder fed the encoder's state (RepeatVector): the bridge step and its gx buffer
    pytest.param(8, 8, 7, 1, 24, {"decoder_input": "encoder_state"}, True, id="b8-h8-l7-repeat-sfd"),
    pytest.param(8, 8, None, 2, 24, {"gru": "keras", "decoder_input": "encoder_state"}, False,
                 id="b8-h8-keras-repeat-e2"),
    pytest.param(8, 32, None, 1, 135, {"gru": "pytorch"}, True, id="b8-h32-full-sfd-T135", marks=pytest.mark.slow),
    pytest.param(16, 32, 33, 1, 135, {"gru": "pytorch"}, False, id="b16-h32-l33-T135", marks=pytest.mark.slow),
    pytest.param(4, 16, 7, 1, 135, {"gru": "pytorch"}, False, id="b4-h16-l7-T135", marks=pytest.mark.slow),
    pytest.param(12, 32, None, 1, 135, {"gru": "keras"}, False, id="b12-h32-full-keras-T135", marks=pytest.mark.slow),
]


def run_config(model, name, n_random, *, lanes=None, engines=1, sfd_stream=False, seed=1, testcase=None,
               simulator="verilator", test_filter=None):
    build = generate(model, sim_dir("rtl", name), lanes=lanes, engines=engines, sfd_stream=sfd_stream,
                     name="flirtl_top")
    warnings = lint_verilog(build.verilog, "flirtl_top")
    assert warnings == [], f"verilator -Wall warnings: {warnings}"
    contexts = build.metadata["performance"]["contexts"] * engines
    # the throughput is averaged over whole rotations of the contexts, after the first one
    case = stimulus(model, max(n_random, 2 * contexts), seed, sfd_stream)
    case["contexts"] = contexts
    build_dir = sim_dir("rtl", name, simulator)
    run_cocotb(build.verilog, "flirtl_top", "tb.flirtl_tb", build_dir, data=case, testcase=testcase,
               simulator=simulator, test_filter=test_filter)
    metrics_path = build_dir / "metrics.json"
    return build, (json.loads(metrics_path.read_text()) if metrics_path.exists() else {})


def report(name, build, metrics):
    perf = build.metadata["performance"]
    measured = metrics.get("cycles_per_pixel")
    lane_macs = perf["lane_utilisation"] * perf["lanes"] * perf["cycles_per_pixel_per_engine"]
    line = (f"\n{name}: lanes {perf['lanes']}, contexts {perf['contexts']}, "
            f"design {perf['cycles_per_pixel_per_engine']} cycles/pixel/engine")
    if measured:
        per_engine = measured * perf["engines"]
        line += (f", measured {measured:.1f} cycles/pixel ({per_engine:.1f} per engine), "
                 f"MAC-lane utilisation {lane_macs / (perf['lanes'] * per_engine):.1%}, "
                 f"lone-pixel latency {metrics['latency_cycles']} cycles "
                 f"(bound {perf['latency_cycles_bound']})")
    print(line)
    # the session summary (tests/conftest.py) prints these lines, also from xdist workers
    (sim_dir("rtl", name) / "report.txt").write_text(line.strip() + "\n")


@pytest.mark.parametrize("bits, hidden, lanes, engines, n_bins, options, sfd_stream", CONFIGS)
def test_rtl_equals_golden(bits, hidden, lanes, engines, n_bins, options, sfd_stream, request):
    weights = random_weights(hidden, seed=bits + hidden, decoder_input=options.get("decoder_input", "zeros"))
    model, _ = quantize_model(weights, bits, n_bins=n_bins, **options)
    name = request.node.callspec.id
    build, metrics = run_config(model, name, n_random=12 if hidden < 32 else 6, lanes=lanes,
                                engines=engines, sfd_stream=sfd_stream)
    report(name, build, metrics)
    assert metrics["latency_cycles"] <= build.metadata["performance"]["latency_cycles_bound"]


def small_model(bits=8, hidden=8, n_bins=24):
    return quantize_model(random_weights(hidden, seed=3), bits, n_bins=n_bins)[0]


def test_export_is_deterministic(tmp_path):
    first = generate(small_model(), tmp_path / "a", name="ip").verilog.read_bytes()
    second = generate(small_model(), tmp_path / "b", name="ip").verilog.read_bytes()
    assert first == second


def test_rtl_command_writes_the_contract_without_torch(tmp_path):
    """`flirtl rtl` on a model directory: Verilog, spec, port metadata, summary; torch never loaded."""
    import subprocess

    small_model().save(tmp_path / "model")
    script = ("import sys; from flirtl.cli import main; "
              f"code = main(['rtl', '--model', {str(tmp_path / 'model')!r}, '--out', {str(tmp_path / 'build')!r}, "
              "'--name', 'ip']); assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    out = tmp_path / "build" / "ip"
    assert sorted(p.name for p in out.iterdir()) == ["ip.v", "ports.json", "spec.json", "summary.md"]
    ports = json.loads((out / "ports.json").read_text())
    assert ports["m_axis"]["tdata"]["width"] % 8 == 0
    assert [f["name"] for f in ports["m_axis"]["tdata"]["fields"]] == ["tau1", "tau2", "a", "tau_mean", "framing_error"]
    verilog = (out / "ip.v").read_text()
    for port in ("clk", "rst", "s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast",
                 "m_axis_tdata", "m_axis_tvalid", "m_axis_tready", "m_axis_tlast"):
        assert f" {port};" in verilog, port


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # refused before elaboration
def test_engine_refuses_bad_parameters():
    from flirtl.gateware.engine import PixelEngine

    model = small_model()
    with pytest.raises(ValueError, match=r"lanes must be an int in 1\.\.27 \(rows per slot\), not 0"):
        PixelEngine(model, lanes=0)
    with pytest.raises(ValueError, match=r"contexts must be an int >= \d+ to hide the GRU update, not 1"):
        PixelEngine(model, contexts=1)
    keras = quantize_model(random_weights(8), 8, n_bins=24, gru="keras")[0]
    with pytest.raises(ValueError, match=r"lanes must be an int in 1\.\.19 \(rows per slot\), not 20"):
        PixelEngine(keras, lanes=20)


#: cocotb tests of tb/flirtl_tb.py run under Icarus: every random_pixels case (with and without valid
#: gaps and backpressure), or, for the shipped IP, the one with both (Icarus simulates the 32x32 IP at
#: about 1,000 cycles/s here, 8,672 cycles a pixel).
ALL_RANDOM, PAUSED = ("random_pixels", 4), ("random_pixels/idle=True/backpressure=True", 1)
ICARUS_CONFIGS = [
    # (bits, hidden, lanes, engines, n_bins, spec options, SFD stream, random pixels, tests, marks)
    pytest.param(8, 8, None, 1, 24, {"gru": "pytorch"}, True, 12, ALL_RANDOM, id="b8-h8-full-sfd"),
    pytest.param(4, 8, 3, 2, 24, {"gru": "keras"}, False, 12, ALL_RANDOM, id="b4-h8-l3-e2-keras",
                 marks=pytest.mark.slow),
    pytest.param(16, 8, None, 1, 16, {"activation": ActivationSpec(method="pwl", addr_bits=8, segment_bits=4),
                                      "rounding": "floor", "overflow": "wrap"}, False, 12, ALL_RANDOM,
                 id="b16-h8-pwl-floor-wrap", marks=pytest.mark.slow),
    pytest.param(8, None, None, 1, 135, {}, False, 1, PAUSED, id="shipped-b8", marks=pytest.mark.slow),
]


@pytest.mark.skipif(icarus_missing() is not None, reason=str(icarus_missing()))
@pytest.mark.parametrize("bits, hidden, lanes, engines, n_bins, options, sfd_stream, n_random, tests", ICARUS_CONFIGS)
def test_rtl_equals_golden_under_icarus(bits, hidden, lanes, engines, n_bins, options, sfd_stream, n_random,
                                        tests, request):
    """The same Verilog under the second simulator, Icarus Verilog: every beat equal to the golden
    model, edge cases and random pixels, with random valid gaps and backpressure."""
    name = request.node.callspec.id
    if hidden is None:
        if not (SHIPPED / "spec.json").is_file():
            pytest.skip(f"no shipped model at {SHIPPED}")
        from flirtl.modeldir import load_for_rtl

        model = load_for_rtl(SHIPPED, bits=bits)[0]
    else:
        model = quantize_model(random_weights(hidden, seed=bits + hidden), bits, n_bins=n_bins, **options)[0]
    test_filter, count = tests
    run_config(model, f"{name}-icarus", n_random=n_random, lanes=lanes, engines=engines, sfd_stream=sfd_stream,
               simulator="icarus", test_filter=test_filter)
    results = (sim_dir("rtl", f"{name}-icarus", "icarus") / "results.xml").read_text()
    assert results.count("<testcase") == count and "<failure" not in results


@pytest.mark.skipif(not (SHIPPED / "spec.json").is_file(), reason=f"no shipped model at {SHIPPED}")
def test_shipped_model_rtl_equals_golden():
    """`make rtl BITS=8`'s design: the shipped 32x32 model, bit-exact against the golden model."""
    from flirtl.modeldir import load_for_rtl

    model, _ = load_for_rtl(SHIPPED, bits=8)
    build, metrics = run_config(model, "shipped-b8", n_random=6)
    report("shipped-b8", build, metrics)
