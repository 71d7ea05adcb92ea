"""The golden model against float references: torch.nn.GRU and a float64 NumPy GRU; and bit for
bit against a plain integer reference.

At wide formats the golden model must agree closely (stated bounds below); at 8 bits the error is
measured and printed, not bounded tightly: that is what QAT is for.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from flirtl import arith
from flirtl.golden import GoldenModel
from flirtl.quant import activation_table, quantize_model
from flirtl.spec import ActivationSpec, QFormat, matvecs
from golden_util import float_seq2seq, random_counts, random_weights, reference_activation

N_BINS = 40
WIDE = dict(hidden_bits=24, bias_bits=24, preact_bits=28, sfd_bits=28,
            activation=ActivationSpec(addr_bits=16))
#: Largest |golden - float| of an SFD sample at 24 bits (table activations with 16 address bits).
WIDE_BOUND = 2e-3


def golden_and_float(bits, hidden=8, gru="pytorch", n=64, **build):
    weights = random_weights(hidden, seed=1)
    model, report = quantize_model(weights, bits, n_bins=N_BINS, gru=gru, **build)
    golden = GoldenModel(model)
    counts = random_counts(n, N_BINS, seed=2)
    result = golden.run(counts)
    x = result.values()["input"]
    return result.values()["sfd"], float_seq2seq(model.floats(), x, gru), model, report


@pytest.mark.parametrize("gru", ["pytorch", "keras"])
def test_wide_golden_matches_float(gru):
    golden_sfd, float_sfd, _, report = golden_and_float(24, gru=gru, **WIDE)
    error = np.abs(golden_sfd - float_sfd).max()
    print(f"\n24-bit golden vs float64 ({gru}): max |error| {error:.2e}, saturated weights {report.total_saturated}")
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
    golden_sfd, float_sfd, _, _ = golden_and_float(bits, hidden=16)
    rmse = np.sqrt(np.mean((golden_sfd - float_sfd) ** 2))
    print(f"\n{bits}-bit golden vs float64 (same quantized weights, random untrained model): "
          f"SFD RMSE {rmse:.4f}")
    assert np.isfinite(rmse)
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


# -- bit for bit against a plain integer reference --------------------------------------------------

class PlainGRU:
    """The encoder-decoder spelled out on int64 codes with the `arith` primitives, gate by gate and
    step by step, as the spec describes it: slow and plain, sharing nothing with the golden model's
    datapath (float codes, folded scales, composed tables, in-place buffers)."""

    def __init__(self, model):
        self.spec, self.codes = model.spec, model.codes

    def requant(self, code, src_frac, dst):
        spec = self.spec
        return arith.requantize(code, src_frac, spec.fmt(dst), spec.rounding, spec.overflow)

    def product(self, layer, operand, rows=slice(None)):
        """Exact W v + b of `layer` ("enc.acc_h", ...), requantized to `preact` (or `sfd`)."""
        weight, _, bias, _ = matvecs(self.spec.hidden)[layer]
        fmt = self.spec.fmt
        bias_code = arith.shift_round(self.codes[bias][rows], fmt(bias).frac_bits - fmt(layer).frac_bits,
                                      self.spec.rounding)
        acc = operand @ self.codes[weight][rows].T + bias_code
        return self.requant(acc, fmt(layer).frac_bits, "sfd" if layer == "head.acc" else "preact")

    def activate(self, kind, code):
        return reference_activation(self.spec, kind, code)

    def step(self, h, gx, layer):
        spec, H, fmt = self.spec, self.spec.hidden, self.spec.fmt
        g = fmt("gate").frac_bits

        def rows(k):  # gate k: 0 r, 1 z, 2 n
            return slice(k * H, (k + 1) * H)

        def preact(k, gh):
            return arith.overflow(gx[:, rows(k)] + gh, fmt("preact"), spec.overflow)

        r = self.activate("sigmoid", preact(0, self.product(layer, h, rows(0))))
        z = self.activate("sigmoid", preact(1, self.product(layer, h, rows(1))))
        if spec.gru == "pytorch":  # reset after: r scales W_hn h + b_hn
            gh_n = self.product(layer, h, rows(2))
            reset = self.requant(r * gh_n, g + fmt("preact").frac_bits, "preact")
        else:  # reset before: r scales h
            rh = self.requant(r * h, g + fmt("hidden").frac_bits, "hidden")
            reset = self.product(layer, rh, rows(2))
        n = self.activate("tanh", preact(2, reset))
        n = self.requant(n, fmt("candidate").frac_bits, "hidden")
        return self.requant((n << g) + z * (h - n), g + fmt("hidden").frac_bits, "hidden")

    def sfd(self, x):
        spec, fmt = self.spec, self.spec.fmt
        h = np.zeros((x.shape[0], spec.hidden), np.int64)
        for t in range(x.shape[1]):
            h = self.step(h, self.product("enc.acc_x", x[:, t:t + 1]), "enc.acc_h")
        dec_gx = self.requant(self.codes["dec.b_ih"], fmt("dec.b_ih").frac_bits, "preact")[None, :]
        out = []
        for _ in range(spec.n_bins):
            h = self.step(h, dec_gx, "dec.acc_h")
            out.append(self.product("head.acc", h))
        return np.stack(out, axis=1)


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
]


@pytest.mark.parametrize("build, hidden, scale", EXACT_CASES)
def test_golden_equals_plain_integer_reference(build, hidden, scale):
    build = dict(build)
    model, _ = quantize_model(random_weights(hidden, seed=build["bits"], scale=scale),
                              build.pop("bits"), n_bins=EXACT_BINS, **build)
    golden = GoldenModel(model)
    counts = np.concatenate([edge_pixels(EXACT_BINS), random_counts(19, EXACT_BINS, seed=7)])
    result = golden.run(counts, chunk=10, threads=2)
    plain = PlainGRU(model)
    expected = plain.sfd(golden.normalize(counts))
    assert np.array_equal(result.sfd, expected)
    for name, value in golden.lifetimes(expected).items():
        assert np.array_equal(getattr(result, name), value), name
    # single steps from arbitrary states, the format extremes included
    rng = np.random.default_rng(0)
    hid, pre = model.spec.fmt("hidden"), model.spec.fmt("preact")
    h = np.concatenate([np.full((1, hidden), hid.min_code), np.full((1, hidden), hid.max_code),
                        rng.integers(hid.min_code, hid.max_code + 1, (6, hidden))])
    gx = rng.integers(pre.min_code, pre.max_code + 1, (8, 3 * hidden))
    gx[0], gx[1] = pre.min_code, pre.max_code
    for matvec, layer in ((golden.enc_h, "enc.acc_h"), (golden.dec_h, "dec.acc_h")):
        assert np.array_equal(golden.gru_step(h, gx, matvec), plain.step(h, gx, layer))


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
    import golden_util

    def overshooting(spec, kind):
        table = plain_table(spec, kind)
        return np.minimum(table * 7 // 4, spec.fmt("gate").max_code) if kind == "sigmoid" else table

    plain_table = activation_table
    monkeypatch.setattr(flirtl.golden, "activation_table", overshooting)
    monkeypatch.setattr(golden_util, "activation_table", overshooting)  # PlainGRU's tables
    model, _ = quantize_model(random_weights(8, scale=3.0), 8, n_bins=EXACT_BINS, gru=gru,
                              overflow=overflow)
    golden = GoldenModel(model)
    assert golden.tables["sigmoid"].max() > 1 << model.spec.fmt("gate").frac_bits
    counts = np.concatenate([edge_pixels(EXACT_BINS), random_counts(19, EXACT_BINS, seed=7)])
    assert np.array_equal(golden.run(counts).sfd, PlainGRU(model).sfd(golden.normalize(counts)))


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
