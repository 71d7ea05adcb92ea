"""Simulation tests of the activation pipeline and the sequential divider against NumPy references.

The activation reference is `GoldenModel.activate` spelled with the same primitives
(`arith.table_lookup` / `arith.pwl_lookup` over the ROMs from `flirtl.quant`), so these tests do not
need the rest of the golden model; `test_reference_is_golden_activate` ties the two together.
"""

import gc
import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings, strategies as st

from flirtl.gateware.activation import Activation
from flirtl.gateware.arith import fmt_shape
from flirtl.gateware.divider import Divider
from flirtl.spec import ActivationSpec, ModelSpec
from golden_util import reference_activation

# A constructor that raises still leaves an object Amaranth warns about when it is collected;
# so does one only inspected; such tests collect it (gc.collect()) while this filter is in force.
ignore_unused = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


# -- activation -------------------------------------------------------------------------------

EXHAUSTIVE_BITS = 12  # preact formats up to this width are driven with every code
SAMPLED_CODES = 3000  # random codes (plus the edges) for wider preact formats


def expected_activation(spec: ModelSpec, kind: str, preact: np.ndarray) -> np.ndarray:
    """`GoldenModel.activate(kind, preact)`, from the same primitives and ROMs."""
    return reference_activation(spec, kind, preact)


def preact_codes(spec: ModelSpec, seed: int = 0, exhaustive_bits: int = EXHAUSTIVE_BITS) -> np.ndarray:
    """Every preact code, or the extremes, zero and a random sample when the format is wide."""
    fmt = spec.fmt("preact")
    if fmt.width <= exhaustive_bits:
        return np.arange(fmt.min_code, fmt.max_code + 1)
    rng = np.random.default_rng(seed)
    edges = [fmt.min_code, fmt.min_code + 1, -1, 0, 1, fmt.max_code - 1, fmt.max_code]
    return np.concatenate([edges, rng.integers(fmt.min_code, fmt.max_code + 1, SAMPLED_CODES)])


def run_activation(dut: Activation, codes, idle_probability: float = 0.0, seed: int = 0):
    """Stream `codes` through `dut` (one per cycle, with random idle cycles if asked); return the
    results in order and the cycles each took from `en` to `valid`."""
    rng = random.Random(seed)
    fmt = dut.spec.fmt("preact")
    results, latencies, sent = [], [], []

    async def testbench(ctx):
        cycle, pending = 0, [int(code) for code in codes]
        while pending or len(results) < len(codes):
            idle = not pending or rng.random() < idle_probability
            # garbage on idle cycles: `en` must keep it out of the results
            ctx.set(dut.preact, rng.randint(fmt.min_code, fmt.max_code) if idle else pending.pop(0))
            ctx.set(dut.en, not idle)
            if not idle:
                sent.append(cycle)
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.valid):
                results.append(ctx.get(dut.out))
                latencies.append(cycle - sent[len(results) - 1])
            elif results:
                assert ctx.get(dut.out) == results[-1], "out must hold between results"
            assert cycle < 4 * len(codes) + 100, "the pipeline lost inputs"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(results, dtype=np.int64), set(latencies)


def make_spec(bits, addr_bits, rounding="half_up", segment_bits=4, **ranges):
    activation_specs = {method: ActivationSpec(method, addr_bits, segment_bits=segment_bits, **ranges)
                        for method in ("table", "pwl")}
    return {method: ModelSpec.build(bits, hidden=4, rounding=rounding, activation=act)
            for method, act in activation_specs.items()}


SPECS = {
    "4bit-addr8": make_spec(4, 8),
    "8bit-addr10": make_spec(8, 10),
    "8bit-addr10-floor-seg3": make_spec(8, 10, "floor", segment_bits=3),
    "8bit-addr8-narrow-ranges": make_spec(8, 8, segment_bits=5, sigmoid_range=4, tanh_range=2),
    "12bit-addr12-seg6": make_spec(12, 12, segment_bits=6),
}


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
@pytest.mark.parametrize("method", ["table", "pwl"])
@pytest.mark.parametrize("name", list(SPECS))
def test_activation_matches_golden(name, method, kind):
    spec = SPECS[name][method]
    dut = Activation(spec, kind)
    codes = preact_codes(spec)
    got, latencies = run_activation(dut, codes)
    assert latencies == {dut.latency}
    expected = expected_activation(spec, kind, codes)
    wrong = np.flatnonzero(got != expected)
    assert wrong.size == 0, (f"{wrong.size} wrong codes, e.g. preact {codes[wrong[:5]]}: "
                             f"gateware {got[wrong[:5]]}, golden {expected[wrong[:5]]}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
@pytest.mark.parametrize("method", ["table", "pwl"])
def test_activation_matches_golden_on_every_16bit_code(method, kind):
    spec = SPECS["12bit-addr12-seg6"][method]
    assert spec.fmt("preact").width == 16
    dut = Activation(spec, kind)
    codes = preact_codes(spec, exhaustive_bits=16)
    got, latencies = run_activation(dut, codes)
    assert latencies == {dut.latency}
    assert np.array_equal(got, expected_activation(spec, kind, codes))


@pytest.mark.parametrize("method", ["table", "pwl"])
def test_activation_tolerates_idle_cycles(method):
    spec = SPECS["8bit-addr10"][method]
    dut = Activation(spec, "tanh")
    codes = preact_codes(spec)[::3]
    got, latencies = run_activation(dut, codes, idle_probability=0.3, seed=1)
    assert latencies == {dut.latency}
    assert np.array_equal(got, expected_activation(spec, "tanh", codes))


@ignore_unused
def test_activation_ports_and_latency():
    spec = SPECS["8bit-addr10"]
    for method, latency in (("table", 1), ("pwl", 2)):
        for kind, out in (("sigmoid", "gate"), ("tanh", "candidate")):
            dut = Activation(spec[method], kind)
            assert dut.latency == Activation.latency_for(spec[method]) == latency
            assert dut.out.shape() == fmt_shape(spec[method].fmt(out))
            assert dut.preact.shape() == fmt_shape(spec[method].fmt("preact"))
    del dut
    gc.collect()


@ignore_unused
def test_activation_rejects_bad_parameters():
    spec = SPECS["8bit-addr10"]["table"]
    with pytest.raises(ValueError, match="'relu'"):
        Activation(spec, "relu")
    with pytest.raises(TypeError, match="None"):
        Activation(None, "tanh")
    gc.collect()


def test_reference_is_golden_activate():
    from flirtl.golden import GoldenModel
    from flirtl.quant import quantize_model
    from golden_util import random_weights

    for method in ("table", "pwl"):
        act = ActivationSpec(method, 10)
        model, _ = quantize_model(random_weights(4), 8, activation=act)
        golden = GoldenModel(model)
        codes = preact_codes(model.spec)
        for kind in ("sigmoid", "tanh"):
            assert np.array_equal(golden.activate(kind, codes),
                                  expected_activation(model.spec, kind, codes))


# -- divider ----------------------------------------------------------------------------------

divider_settings = settings(max_examples=30, deadline=None,
                            suppress_health_check=[HealthCheck.too_slow])


def run_divider(dut: Divider, operands, gap: int = 0):
    """Divide each (dividend, divisor) pair, starting the next one `gap` cycles after the previous
    `done` (0: in the `done` cycle itself); return the quotients and the start-to-done latencies."""
    quotients, latencies = [], []

    async def testbench(ctx):
        for dividend, divisor in operands:
            ctx.set(dut.dividend, dividend)
            ctx.set(dut.divisor, divisor)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            # operands are sampled at start: scribble over them while the divider works
            ctx.set(dut.dividend, ~dividend)
            ctx.set(dut.divisor, ~divisor)
            cycles = 1
            while not ctx.get(dut.done):
                assert ctx.get(dut.busy)
                await ctx.tick()
                cycles += 1
                assert cycles <= dut.latency, "the divider never finished"
            assert not ctx.get(dut.busy)
            latencies.append(cycles)
            quotients.append(ctx.get(dut.quotient))
            for _ in range(gap):
                await ctx.tick()
                assert not ctx.get(dut.done), "done must pulse for one cycle only"
                assert ctx.get(dut.quotient) == quotients[-1], "the quotient must hold until start"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return quotients, set(latencies)


def expected_quotient(dividend, divisor, width):
    return dividend // divisor if divisor else (1 << width) - 1


@st.composite
def divisions(draw):
    """Widths and a batch of operand pairs, always with the edge cases."""
    dividend_width = draw(st.integers(1, 24))
    divisor_width = draw(st.integers(1, 24))
    top_n, top_d = (1 << dividend_width) - 1, (1 << divisor_width) - 1
    edges = [(0, 1), (top_n, 1), (top_n, top_d), (0, top_d), (top_n // 2, top_d),
             (min(top_n, top_d) - 1 if min(top_n, top_d) else 0, min(top_n, top_d)),
             (min(top_n, top_d), min(top_n, top_d) or 1), (top_n, 0), (0, 0)]
    pairs = st.tuples(st.integers(0, top_n), st.integers(1, top_d))
    small_divisors = st.tuples(st.integers(0, top_n), st.integers(1, min(top_d, 7)))
    drawn = draw(st.lists(st.one_of(pairs, small_divisors), max_size=8))
    return dividend_width, divisor_width, edges + drawn


@divider_settings
@given(divisions(), st.integers(0, 2))
def test_divider_matches_floor_division(division, gap):
    dividend_width, divisor_width, operands = division
    dut = Divider(dividend_width, divisor_width)
    quotients, latencies = run_divider(dut, operands, gap)
    assert latencies == {dut.latency} and dut.latency == dividend_width + 1
    assert quotients == [expected_quotient(n, d, dividend_width) for n, d in operands]


def test_divider_restarts_when_started_while_busy():
    dut = Divider(12, 8)

    async def testbench(ctx):
        ctx.set(dut.dividend, 4000)
        ctx.set(dut.divisor, 3)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await ctx.tick().repeat(5)
        ctx.set(dut.dividend, 1000)
        ctx.set(dut.divisor, 7)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await ctx.tick().repeat(dut.latency - 1)
        assert ctx.get(dut.done) and ctx.get(dut.quotient) == 1000 // 7

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


@ignore_unused
def test_divider_rejects_bad_widths():
    with pytest.raises(ValueError, match="dividend_width must be at least 1, not 0"):
        Divider(0, 8)
    with pytest.raises(ValueError, match="not -3"):
        Divider(8, -3)
    with pytest.raises(TypeError, match="'8'"):
        Divider("8", 8)
    gc.collect()
