"""The quantization-aware model's forward pass is the golden model, code for code; it trains."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flirtl.golden import GoldenModel, normalize_counts
from flirtl.nn.qat import QuantSeq2Seq, exact_dtype
from flirtl.quant import quantize_model
from flirtl.spec import ActivationSpec, ModelSpec

from golden_util import random_counts, random_weights


def sfd_codes(model: QuantSeq2Seq, counts: np.ndarray) -> np.ndarray:
    spec = model.spec
    x = torch.as_tensor(normalize_counts(spec, counts) * spec.fmt("input").lsb)
    with torch.no_grad():
        return model(x).double().numpy() / spec.fmt("sfd").lsb


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bits=st.sampled_from([4, 6, 8, 12, 16]), hidden_bits=st.sampled_from([None, 6, 8, 12, 16]),
       gru=st.sampled_from(["pytorch", "keras"]), rounding=st.sampled_from(["half_up", "floor"]),
       overflow=st.sampled_from(["saturate", "wrap"]), method=st.sampled_from(["table", "pwl"]),
       scale=st.sampled_from([0.2, 0.6, 1.5]), seed=st.integers(0, 2 ** 16),
       decoder_input=st.sampled_from(["zeros", "encoder_state"]))
def test_forward_equals_golden_model(bits, hidden_bits, gru, rounding, overflow, method, scale, seed, decoder_input):
    """Random weights (large scales drive the sums into saturation or wrap-around), random pixels,
    both decoder wirings: every SFD code equals the golden model's."""
    hidden, n_bins = 6, 16
    weights = random_weights(hidden, seed=seed, scale=scale, decoder_input=decoder_input)
    quantized, _ = quantize_model(weights, bits=bits, hidden_bits=hidden_bits, n_bins=n_bins, gru=gru,
                                  rounding=rounding, overflow=overflow, decoder_input=decoder_input,
                                  activation=ActivationSpec(method=method, addr_bits=8))
    counts = random_counts(64, n_bins, seed=seed)
    counts[0] = 0  # an empty pixel
    golden = GoldenModel(quantized).run(counts, threads=1)
    np.testing.assert_array_equal(sfd_codes(QuantSeq2Seq(quantized.spec, weights), counts), golden.sfd)


def test_shipped_model_equals_golden_model():
    """The 8-bit 32x32 model on simulated pixels, in float32 (its exact dtype)."""
    from flirtl.modeldir import load_for_rtl
    from flirtl.nn.model import load_float_model

    quantized, _ = load_for_rtl("models/seq2seqlite-32x32", bits=8)
    weights = load_float_model("models/seq2seqlite-32x32").export_weights()
    model = QuantSeq2Seq(quantized.spec, weights)
    assert model.dtype == torch.float32
    counts = random_counts(48, 135, seed=5)
    np.testing.assert_array_equal(sfd_codes(model, counts), GoldenModel(quantized).run(counts).sfd)
    # the exported codes are the shipped ones
    for name, code in model.quantized()[0].codes.items():
        np.testing.assert_array_equal(code, quantized.codes[name], err_msg=name)


def test_exact_dtype_follows_the_widths():
    assert exact_dtype(ModelSpec.build(8)) == torch.float32
    assert exact_dtype(ModelSpec.build(16)) == torch.float64


def test_gradients_reach_every_weight_and_training_lowers_the_loss():
    hidden, n_bins = 8, 24
    weights = random_weights(hidden, seed=1)
    quantized, _ = quantize_model(weights, bits=8, n_bins=n_bins)
    model = QuantSeq2Seq(quantized.spec, weights)
    counts = random_counts(128, n_bins, seed=2)
    x = torch.as_tensor(normalize_counts(quantized.spec, counts) * quantized.spec.fmt("input").lsb,
                        dtype=torch.float32)
    target = torch.linspace(0, 1, n_bins)[None, :, None].expand(128, n_bins, 3)
    loss = torch.nn.functional.mse_loss(model(x), target)
    loss.backward()
    for name, parameter in model.master.items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(loss.detach())
    for _ in range(15):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.8 * first


def test_refuses_incomplete_weights():
    weights = random_weights(4)
    spec = quantize_model(weights, bits=8)[0].spec
    del weights["head.b"]
    with pytest.raises(ValueError, match="head.b"):
        QuantSeq2Seq(spec, weights)


@pytest.mark.parametrize("bits, hidden", [(8, 8), (12, 16)])
def test_fused_step_backward_equals_autograd(bits, hidden):
    """The hand-written backward of the one-node GRU step (`_ResetAfterStep`) gives the gradients
    autograd gives through the step's ~40 straight-through nodes; the forward pass is the same."""
    weights = random_weights(hidden, seed=bits)
    spec = quantize_model(weights, bits, n_bins=12)[0].spec
    torch.manual_seed(bits)
    x = torch.rand(32, 12)
    target = torch.rand(32, 12, 3)
    results = []
    for fused in (True, False):
        model = QuantSeq2Seq(spec, weights)
        assert model.fused
        model.fused = fused
        out = model(x)
        torch.nn.functional.mse_loss(out, target).backward()
        results.append((out.detach(), {k: p.grad for k, p in model.master.items()}))
    (out_fused, grad_fused), (out_plain, grad_plain) = results
    assert torch.equal(out_fused, out_plain)
    for name, grad in grad_plain.items():
        scale = float(grad.abs().max()) or 1.0
        assert float((grad_fused[name] - grad).abs().max()) <= 1e-5 * scale, name
