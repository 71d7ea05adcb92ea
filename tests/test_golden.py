"""The golden model against float references: torch.nn.GRU and a float64 NumPy GRU.

At wide formats the golden model must agree closely (stated bounds below); at 8 bits the error is
measured and printed, not bounded tightly: that is what QAT is for.
"""

import numpy as np
import pytest

from flirtl.golden import GoldenModel
from flirtl.quant import quantize_model
from flirtl.spec import ActivationSpec
from golden_util import float_seq2seq, random_counts, random_weights

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
