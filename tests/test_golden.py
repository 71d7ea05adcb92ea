"""The golden model against float references: torch.nn.GRU and a float64 NumPy GRU; and bit for
bit against the plain integer reference of the package (`flirtl.reference`).

At wide formats the golden model must agree closely (stated bounds below); at 8 bits the error is
measured and printed, not bounded tightly: that is what QAT is for.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from flirtl import arith
from flirtl.golden import GoldenModel
from flirtl.quant import activation_table, quantize_model
from flirtl.reference import PlainReference
from flirtl.spec import ActivationSpec, QFormat
from golden_util import float_seq2seq, random_counts, random_weights

N_BINS = 40
WIDE = dict(hidden_bits=24, bias_bits=24, preact_bits=28, sfd_bits=28,
            activation=ActivationSpec(addr_bits=16))
#: Largest |golden - float| of an SFD sample at 24 bits (table activations with 16 address bits).
WIDE_BOUND = 2e-3


def golden_and_float(bits, hidden=8, gru="pytorch", n=64, decoder_input="zeros", **build):
    weights = random_weights(hidden, seed=1, decoder_input=decoder_input)
    model, report = quantize_model(weights, bits, n_bins=N_BINS, gru=gru, decoder_input=decoder_input, **build)
    golden = GoldenModel(model)
    counts = random_counts(n, N_BINS, seed=2)
    result = golden.run(counts)
    x = result.values()["input"]
    return result.values()["sfd"], float_seq2seq(model.floats(), x, gru), model, report


@pytest.mark.parametrize("decoder_input", ["zeros", "encoder_state"])
@pytest.mark.parametrize("gru", ["pytorch", "keras"])
def test_wide_golden_matches_float(gru, decoder_input):
    golden_sfd, float_sfd, _, report = golden_and_float(24, gru=gru, decoder_input=decoder_input, **WIDE)
    error = np.abs(golden_sfd - float_sfd).max()
    print(f"\n24-bit golden vs float64 ({gru}, decoder input {decoder_input}): max |error| {error:.2e}, "
          f"saturated weights {report.total_saturated}")
    assert report.total_saturated == 0
    assert error < WIDE_BOUND


def test_wide_golden_matches_torch():
    torch = pytest.importorskip("torch")
    from flirtl.nn.model import Seq2Seq, Seq2SeqConfig

    golden_sfd, _, model, _ = golden_and_float(24, **WIDE)
    net = Seq2Seq(Seq2SeqConfig(hidden=8, n_bins=N_BINS)).double()
    net.load_weights(model.floats())
    net = net.double()
    x = GoldenModel(model).run(random_counts(64, N_BINS, seed=2)).values()["input"]
    with torch.no_grad():
        torch_sfd = net(torch.as_tensor(x, dtype=torch.float64)).numpy()
    error = np.abs(golden_sfd - torch_sfd).max()
    print(f"\n24-bit golden vs torch.nn.GRU: max |error| {error:.2e}")
    assert error < WIDE_BOUND


@pytest.mark.parametrize("bits", [4, 8, 12, 16])
def test_error_at_narrow_formats_is_measured(bits):
    """The error against float is measured (bounded only at 12 bits and up); the values themselves
    are held to the plain integer reference at every width."""
    golden_sfd, float_sfd, model, _ = golden_and_float(bits, hidden=16)
    rmse = np.sqrt(np.mean((golden_sfd - float_sfd) ** 2))
    print(f"\n{bits}-bit golden vs float64 (same quantized weights, random untrained model): "
          f"SFD RMSE {rmse:.4f}")
    counts = random_counts(64, N_BINS, seed=2)[:6]  # the first pixels of golden_and_float's
    assert_equals_reference(GoldenModel(model).run(counts), reference_result(model, counts))
    if bits >= 12:
        assert rmse < 0.01


def test_piecewise_linear_activation_is_close_to_float():
    golden_sfd, float_sfd, _, _ = golden_and_float(
        16, hidden_bits=16, activation=ActivationSpec(method="pwl", addr_bits=12, segment_bits=6))
    error = np.abs(golden_sfd - float_sfd).max()
    print(f"\n16-bit golden with 64-segment PWL activations vs float64: max |error| {error:.2e}")
    assert error < 0.02


def test_normalisation_within_one_lsb_of_exact():
    weights = random_weights(8)
    model, _ = quantize_model(weights, 8, n_bins=N_BINS)
    golden = GoldenModel(model)
    counts = random_counts(500, N_BINS, seed=3)
    counts[0] = 0  # an all-zero pixel normalises to zeros, not NaN
    x = golden.normalize(counts)
    bg = np.floor(counts[:, :4].sum(axis=1) / 4 + 0.5)
    signal = np.maximum(counts - bg[:, None], 0)
    peak = np.maximum(signal.max(axis=1, keepdims=True), 1)
    exact = signal / peak * 2 ** model.spec.fmt("input").frac_bits
    assert np.all(np.abs(x - exact) <= 1.0)
    assert np.all(x[0] == 0)
    assert x.max() == 1 << model.spec.fmt("input").frac_bits  # the peak is exactly 1.0


def test_chunks_and_threads_do_not_change_results():
    weights = random_weights(8)
    model, _ = quantize_model(weights, 8, n_bins=N_BINS)
    golden = GoldenModel(model)
    counts = random_counts(300, N_BINS, seed=4)
    one = golden.run(counts, chunk=300, threads=1)
    many = golden.run(counts, chunk=37, threads=2)
    for name in ("input", "sfd", "tau1", "tau2", "a", "tau_mean"):
        assert np.array_equal(getattr(one, name), getattr(many, name))


def test_golden_refuses_wrong_shape():
    model, _ = quantize_model(random_weights(8), 8, n_bins=N_BINS)
    with pytest.raises(ValueError, match=r"counts must have shape \(N, 40\), not \(3, 41\)"):
        GoldenModel(model).run(np.zeros((3, 41), int))


# -- bit for bit against the plain integer reference (flirtl.reference) ------------------------------

def reference_result(model, counts) -> dict:
    """`PlainReference` over pixels, stacked as the golden model's result arrays."""
    plain = PlainReference(model)
    runs = [plain.run(pixel) for pixel in counts]
    return {"input": np.array([r["input"] for r in runs]), "sfd": np.array([r["sfd"] for r in runs]),
            **{name: np.array([r[name] for r in runs]) for name in ("tau1", "tau2", "a", "tau_mean")}}


def assert_equals_reference(result, expected) -> None:
    for name, value in expected.items():
        assert np.array_equal(getattr(result, name), value), name


def edge_pixels(n_bins, count_max=65535):
    """All-zero pixel, a single photon, saturated counts, maximum background, a lone late peak."""
    pixels = np.zeros((5, n_bins), np.int64)
    pixels[1, n_bins // 2] = 1
    pixels[2] = count_max
    pixels[3] = count_max
    pixels[3, n_bins // 3:] = count_max - 1
    pixels[4, -1] = count_max
    return pixels


EXACT_BINS = 16
#: (build, hidden units, weight scale): 4..26 bits, every GRU variant, activation method, rounding
#: and overflow mode, float32, float64 and int64 datapaths; weights of scale 3 saturate everywhere.
EXACT_CASES = [
    pytest.param(dict(bits=bits, gru=gru, rounding=rounding, overflow=overflow,
                      activation=ActivationSpec(method, addr_bits=min(10, bits + 2))),
                 8, 3.0 if rounding == "floor" else 0.4,
                 id=f"b{bits}-{gru}-{method}-{rounding}-{overflow}")
    for bits in (4, 8, 12, 16) for gru in ("pytorch", "keras") for method in ("table", "pwl")
    for rounding in ("floor", "half_up") for overflow in ("saturate", "wrap")
] + [
    pytest.param(dict(bits=8), 32, 0.4, id="b8-h32"),
    pytest.param(dict(bits=8, hidden_bits=12, preact_bits=10), 8, 3.0, id="b8-hidden12-preact10"),
    pytest.param(dict(bits=8, overrides={"gate": "u2.8", "candidate": "s2.6"}), 8, 3.0, id="b8-gate-u2.8"),
    pytest.param(dict(bits=24, **WIDE), 8, 0.4, id="b24-wide"),
    pytest.param(dict(bits=24, gru="keras", overflow="wrap", **WIDE), 8, 3.0, id="b24-wide-keras-wrap"),
    pytest.param(dict(bits=26, hidden_bits=26, bias_bits=32, preact_bits=30, sfd_bits=30,
                      activation=ActivationSpec(addr_bits=16)), 8, 0.4, id="b26-int64"),
    pytest.param(dict(bits=26, hidden_bits=26, bias_bits=32, preact_bits=30, sfd_bits=30, gru="keras",
                      activation=ActivationSpec("pwl", addr_bits=16)), 8, 3.0, id="b26-int64-keras-pwl"),
] + [  # the decoder fed the encoder's state (RepeatVector)
    pytest.param(dict(bits=bits, gru=gru, overflow=overflow, decoder_input="encoder_state"), 8, scale,
                 id=f"b{bits}-{gru}-{overflow}-repeat-s{scale}")
    for bits in (4, 8, 16) for gru in ("pytorch", "keras") for overflow in ("saturate", "wrap")
    for scale in (0.4, 3.0)
] + [
    pytest.param(dict(bits=26, hidden_bits=26, bias_bits=32, preact_bits=30, sfd_bits=30,
                      decoder_input="encoder_state", activation=ActivationSpec(addr_bits=16)), 8, 0.4,
                 id="b26-int64-repeat"),
]


@pytest.mark.parametrize("build, hidden, scale", EXACT_CASES)
def test_golden_equals_plain_integer_reference(build, hidden, scale):
    build = dict(build)
    weights = random_weights(hidden, seed=build["bits"], scale=scale,
                             decoder_input=build.get("decoder_input", "zeros"))
    model, _ = quantize_model(weights, build.pop("bits"), n_bins=EXACT_BINS, **build)
    golden = GoldenModel(model)
    counts = np.concatenate([edge_pixels(EXACT_BINS), random_counts(7, EXACT_BINS, seed=7)])
    assert_equals_reference(golden.run(counts, chunk=5, threads=2), reference_result(model, counts))
    # single steps from arbitrary states, the format extremes included
    plain = PlainReference(model)
    rng = np.random.default_rng(0)
    hid, pre = model.spec.fmt("hidden"), model.spec.fmt("preact")
    h = np.concatenate([np.full((1, hidden), hid.min_code), np.full((1, hidden), hid.max_code),
                        rng.integers(hid.min_code, hid.max_code + 1, (6, hidden))])
    gx = rng.integers(pre.min_code, pre.max_code + 1, (8, 3 * hidden))
    gx[0], gx[1] = pre.min_code, pre.max_code
    for matvec, layer in ((golden.enc_h, "enc"), (golden.dec_h, "dec")):
        expected = [plain.gru_step(list(map(int, state)), list(map(int, x)), layer) for state, x in zip(h, gx)]
        assert np.array_equal(golden.gru_step(h, gx, matvec), expected)


def test_datapath_dtype_follows_the_formats():
    """float32 while every intermediate stays below 2**24, float64 below 2**53, else int64."""
    def dtype(bits, **build):
        model, _ = quantize_model(random_weights(8), bits, n_bins=EXACT_BINS, **build)
        return GoldenModel(model).dtype

    assert dtype(8) == np.float32
    assert dtype(16) == np.float64
    assert dtype(24, **WIDE) == np.float64
    assert dtype(26, hidden_bits=26, bias_bits=32, preact_bits=30, sfd_bits=30) == np.int64


@pytest.mark.parametrize("gru", ["pytorch", "keras"])
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_gates_above_one_overflow_as_the_reference_does(gru, overflow, monkeypatch):
    """A sigmoid ROM that overshoots 1 (the gate format reaches 2) lets r * gh, r * h and the
    blend leave their formats; the golden model skips their overflow only for gates up to 1."""
    import flirtl.golden
    import flirtl.reference

    def overshooting(spec, kind):
        table = plain_table(spec, kind)
        return np.minimum(table * 7 // 4, spec.fmt("gate").max_code) if kind == "sigmoid" else table

    plain_table = activation_table
    monkeypatch.setattr(flirtl.golden, "activation_table", overshooting)
    monkeypatch.setattr(flirtl.reference, "activation_table", overshooting)
    model, _ = quantize_model(random_weights(8, scale=3.0), 8, n_bins=EXACT_BINS, gru=gru,
                              overflow=overflow)
    golden = GoldenModel(model)
    assert golden.tables["sigmoid"].max() > 1 << model.spec.fmt("gate").frac_bits
    counts = np.concatenate([edge_pixels(EXACT_BINS), random_counts(19, EXACT_BINS, seed=7)])
    assert_equals_reference(golden.run(counts), reference_result(model, counts))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=20), st.integers(-12, 20),
       st.builds(lambda i, f, s: QFormat(i + s, f, s), st.integers(1, 12), st.integers(0, 12), st.booleans()),
       st.sampled_from(["floor", "half_up"]), st.sampled_from(["saturate", "wrap"]))
def test_arith_on_integer_valued_floats_gives_the_int_codes(values, shift, fmt, rounding, overflow):
    """The golden model's float datapaths rely on it: float64 holds these codes exactly."""
    ints = np.array(values, np.int64)
    floats = ints.astype(np.float64)
    assert np.array_equal(arith.wrap(floats, fmt), arith.wrap(ints, fmt))
    assert np.array_equal(arith.shift_round(floats, shift, rounding), arith.shift_round(ints, shift, rounding))
    src_frac = max(fmt.frac_bits + shift, 0)
    assert np.array_equal(arith.requantize(floats, src_frac, fmt, rounding, overflow),
                          arith.requantize(ints, src_frac, fmt, rounding, overflow))
    addr = QFormat(3, 4, True)
    table = np.arange(1 << addr.width) * 3 - 7
    assert np.array_equal(arith.table_lookup(floats, src_frac, addr, table, rounding),
                          arith.table_lookup(ints, src_frac, addr, table, rounding))


@pytest.mark.parametrize("counts, message", [
    (np.full((2, N_BINS), 65536), "counts reach 65536, beyond the IP's 16-bit input"),
    (-np.ones((2, N_BINS)), "non-negative"),
    (np.full((2, N_BINS), 0.5), "integer photon counts"),
    (np.full((2, N_BINS), np.nan), "NaN"),
])
def test_golden_refuses_counts_the_port_cannot_carry(counts, message):
    model, _ = quantize_model(random_weights(8), 8, n_bins=N_BINS)
    with pytest.raises(ValueError, match=message):
        GoldenModel(model).run(counts)
