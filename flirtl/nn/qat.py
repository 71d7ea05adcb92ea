"""Quantization-aware Seq2SeqLite: the IP's fixed-point datapath in torch, trainable.

`QuantSeq2Seq(spec, weights)` computes, in its forward pass, exactly the SFD codes that
`flirtl.golden.GoldenModel` computes for the same spec and weights (tests/test_qat.py holds the two
equal on every output beat): weights quantized to their formats, every accumulator requantized with
the spec's rounding and overflow, the sigmoid and tanh read from the same ROMs (`flirtl.quant`), the
state held at the spec's hidden width. A code is held as its real value, code * 2**-frac_bits, in a
float dtype in which every intermediate of the datapath is exact for any weights in their formats
(`exact_dtype`: the golden model's own bound, so float32 for 8-bit models, float64 for wider).

Training sees straight-through estimators: a requantization passes its gradient unchanged, an
activation ROM read passes the derivative of the float sigmoid / tanh at its input. The parameters
are float64 master weights (float64 so that they quantize to the codes `flirtl.quant.quantize`
gives their exported values); `quantized()` gives the `QuantizedModel` the RTL generator reads.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..golden import GoldenModel
from ..quant import (QuantizedModel, activation_io, activation_table, pwl_segments,
                     pwl_slope_frac, quantize_weights)
from ..spec import ModelSpec, QFormat


def exact_dtype(spec: ModelSpec) -> torch.dtype:
    """The float dtype in which the datapath of `spec` is exact for every weight its formats hold:
    the golden model's bound, taken at the extreme code of every tensor."""
    extreme = {name: np.full(shape, spec.fmt(name).min_code, np.int64)
               for name, shape in spec.weight_shapes().items()}
    dtype = GoldenModel(QuantizedModel(spec, extreme)).dtype
    if dtype.kind != "f":
        raise ValueError(f"the datapath of this spec needs integers beyond 2**53 ({spec.describe()}); "
                         f"quantization-aware training holds codes in float64 and cannot be exact")
    return torch.float32 if dtype == np.float32 else torch.float64


def _round(value: torch.Tensor, frac_bits: int, rounding: str) -> torch.Tensor:
    """Codes of `value` with `frac_bits` fractional bits: floor(value * 2**frac [+ 1/2]), the
    rounding right shift of `flirtl.arith.shift_round` (exact: a power-of-two scale)."""
    code = value * 2.0 ** frac_bits
    # in place on the fresh product: these run ~20 times per GRU step, allocation is their cost
    return (code.add_(0.5) if rounding == "half_up" else code).floor_()


def _overflow(code: torch.Tensor, fmt: QFormat, mode: str) -> torch.Tensor:
    if mode == "saturate":
        return code.clamp_(fmt.min_code, fmt.max_code)
    span = 2.0 ** fmt.width  # two's-complement wrap, as `flirtl.arith.wrap` on float codes
    return code - torch.floor((code - fmt.min_code) / span) * span


class _StraightThrough(torch.autograd.Function):
    """forward: fn(value); backward: the gradient unchanged."""

    @staticmethod
    def forward(ctx, value, fn):
        return fn(value)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _RomRead(torch.autograd.Function):
    """forward: the ROM's output for a pre-activation; backward: the float activation's slope."""

    @staticmethod
    def forward(ctx, preact, read, slope):
        ctx.save_for_backward(preact)
        ctx.slope = slope
        return read(preact)

    @staticmethod
    def backward(ctx, grad):
        (preact,) = ctx.saved_tensors
        return grad * ctx.slope(preact), None, None


class _ResetAfterStep(torch.autograd.Function):
    """One PyTorch-cell (reset-after) GRU step on the saturating datapath as a single autograd node:
    the forward pass is `QuantSeq2Seq._step`'s, op for op; the backward pass writes out the
    chain rule of its straight-through estimators (requantizations pass the gradient, ROM reads
    multiply by the float activation's slope), which the tests hold equal to autograd's. One node
    instead of ~40 per step is what brings QAT near the float GRU's training speed."""

    @staticmethod
    def forward(ctx, h, gx, w_hh, b_hh, qat, acc):
        H, steps = qat.spec.hidden, qat.steps
        gh = qat.fake_quant(h @ w_hh.T + b_hh, steps[acc].dst)
        a_rz = qat.fake_overflow(gx[:, :2 * H] + gh[:, :2 * H], "preact")
        rz = qat.read["sigmoid"](a_rz)
        r, z = rz[:, :H], rz[:, H:]
        a_n = qat.fake_overflow(gx[:, 2 * H:] + qat.fake_quant(r * gh[:, 2 * H:], steps["reset"].dst), "preact")
        n = qat.fake_quant(qat.read["tanh"](a_n), steps["candidate"].dst)
        ctx.save_for_backward(h, w_hh, gh, a_rz, rz, a_n, n)
        ctx.broadcast_gx = gx.shape[0] != h.shape[0]
        return qat.fake_quant(n + z * (h - n), steps["blend"].dst)

    @staticmethod
    def backward(ctx, grad):
        h, w_hh, gh, a_rz, rz, a_n, n = ctx.saved_tensors
        H = h.shape[1]
        r, z = rz[:, :H], rz[:, H:]
        d_a_n = grad * (1 - z) * _tanh_slope(a_n)
        d_a_rz = torch.cat([d_a_n * gh[:, 2 * H:], grad * (h - n)], dim=1) * _sigmoid_slope(a_rz)
        d_gh = torch.cat([d_a_rz, d_a_n * r], dim=1)
        d_h = grad * z + d_gh @ w_hh
        d_gx = torch.cat([d_a_rz, d_a_n], dim=1)
        if ctx.broadcast_gx:
            d_gx = d_gx.sum(dim=0, keepdim=True)
        return d_h, d_gx, d_gh.T @ h, d_gh.sum(dim=0), None, None


def _sigmoid_slope(x):
    s = torch.sigmoid(x)
    return s * (1 - s)


def _tanh_slope(x):
    return 1 - torch.tanh(x).square()


class QuantSeq2Seq(nn.Module):
    """Seq2SeqLite on the IP's fixed-point datapath; input: normalised TPSF as the IP computes it
    (`flirtl.golden.normalize_counts` codes times the input LSB), output: SFD values (N, T, 3)."""

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec
        self.dtype = exact_dtype(spec)
        # one autograd node per step (`_ResetAfterStep`) where its hand-written backward applies
        self.fused = spec.gru == "pytorch" and spec.overflow == "saturate"
        self._formats = dict(spec.formats)  # looked up ~10 times per GRU step
        self.steps = spec.requantizations()  # each rounding step's destination format
        missing = [name for name in spec.weight_names if name not in weights]
        if missing:
            raise ValueError(f"float weights lack tensor(s) {missing}")
        self.master = nn.ParameterDict({
            name.replace(".", "_"): nn.Parameter(torch.as_tensor(np.asarray(weights[name]), dtype=torch.float64))
            for name in spec.weight_names})
        self.read = {}
        for kind in ("sigmoid", "tanh"):
            self.read[kind] = self._read(kind)
            for name, rom in self._roms(kind).items():
                self.register_buffer(f"{kind}_{name}", torch.as_tensor(rom, dtype=self.dtype), persistent=False)
            if spec.activation.method == "table":  # the table's output values: one gather per read
                scale = 2.0 ** -activation_io(spec, kind)[1].frac_bits
                self.register_buffer(f"{kind}_values", getattr(self, f"{kind}_table") * scale, persistent=False)

    # -- ROMs ----------------------------------------------------------------------------------------

    def _roms(self, kind: str) -> dict[str, np.ndarray]:
        if self.spec.activation.method == "table":
            return {"table": activation_table(self.spec, kind)}
        base, slope = pwl_segments(self.spec, kind)
        return {"base": base, "slope": slope}

    def _read(self, kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """The ROM read of `flirtl.arith.table_lookup` / `pwl_lookup`: pre-activation values in,
        output values (gate or candidate format) out."""
        spec = self.spec
        addr, out = activation_io(spec, kind)

        def read(preact: torch.Tensor) -> torch.Tensor:
            index = _overflow(_round(preact, addr.frac_bits, spec.rounding), addr, "saturate").sub_(
                addr.min_code).long()
            if spec.activation.method == "table":
                return getattr(self, f"{kind}_values")[index]
            else:
                offset_bits = addr.width - spec.activation.segment_bits
                segment = index >> offset_bits
                offset = (index & ((1 << offset_bits) - 1)).to(self.dtype)
                step = _round(getattr(self, f"{kind}_slope")[segment] * offset,
                              out.frac_bits - pwl_slope_frac(spec, kind), spec.rounding)
                code = _overflow(getattr(self, f"{kind}_base")[segment] + step, out, "saturate")
            return code * 2.0 ** -out.frac_bits

        return read

    # -- fixed-point primitives with straight-through gradients ------------------------------------

    def fake_quant(self, value: torch.Tensor, fmt: QFormat | str) -> torch.Tensor:
        """The value of `arith.requantize` into `fmt` (rounding and overflow of the spec)."""
        spec = self.spec
        fmt = self._formats[fmt] if isinstance(fmt, str) else fmt
        return _overflow(_round(value, fmt.frac_bits, spec.rounding), fmt, spec.overflow).mul_(2.0 ** -fmt.frac_bits)

    def fake_overflow(self, value: torch.Tensor, fmt: str) -> torch.Tensor:
        """`arith.overflow` of a sum already on the grid of `fmt`."""
        fmt = self._formats[fmt]
        return _overflow(value * 2.0 ** fmt.frac_bits, fmt, self.spec.overflow).mul_(2.0 ** -fmt.frac_bits)

    def _requantize(self, value: torch.Tensor, fmt: QFormat | str) -> torch.Tensor:
        return _StraightThrough.apply(value, lambda v: self.fake_quant(v, fmt))

    def _wrap_or_saturate(self, value: torch.Tensor, fmt: str) -> torch.Tensor:
        return _StraightThrough.apply(value, lambda v: self.fake_overflow(v, fmt))

    def _activate(self, kind: str, preact: torch.Tensor) -> torch.Tensor:
        return _RomRead.apply(preact, self.read[kind], _sigmoid_slope if kind == "sigmoid" else _tanh_slope)

    def quantized_weights(self) -> dict[str, torch.Tensor]:
        """Every tensor at its format's value (saturating, as `flirtl.quant.quantize`); biases
        then aligned to their accumulator, as the hardware adds them."""
        spec, out = self.spec, {}
        for name in spec.weight_names:
            fmt = spec.fmt(name)
            master = self.master[name.replace(".", "_")]
            value = _StraightThrough.apply(master, lambda v, fmt=fmt: _overflow(
                _round(v, fmt.frac_bits, spec.rounding), fmt, "saturate") * 2.0 ** -fmt.frac_bits)
            out[name] = value.to(self.dtype)
        for acc, (_weight, _operand, bias, _terms) in spec.matvecs().items():
            frac = spec.fmt(acc).frac_bits
            out[bias] = _StraightThrough.apply(out[bias], lambda v, frac=frac: _round(
                v, frac, spec.rounding) * 2.0 ** -frac)
        if spec.decoder_input == "zeros":
            # the decoder reads zeros: its input term is the input bias, requantized once
            out["dec.b_ih"] = self._requantize(out["dec.b_ih"], self.steps["dec.gx"].dst)
        return out

    # -- the network ---------------------------------------------------------------------------------

    def _step(self, h: torch.Tensor, gx: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor,
              acc: str) -> torch.Tensor:
        """One GRU step on (N, H) state values with (N or 1, 3H) pre-activation input terms; `acc`
        names the recurrent product's accumulator (enc.acc_h, dec.acc_h)."""
        H, steps = self.spec.hidden, self.steps
        if self.fused and torch.is_grad_enabled():
            return _ResetAfterStep.apply(h, gx, w_hh, b_hh, self, acc)
        if self.spec.gru == "pytorch":
            gh = self._requantize(h @ w_hh.T + b_hh, steps[acc].dst)
            rz = self._activate("sigmoid", self._wrap_or_saturate(gx[:, :2 * H] + gh[:, :2 * H], "preact"))
            r, z = rz[:, :H], rz[:, H:]
            gh_n = self._requantize(r * gh[:, 2 * H:], steps["reset"].dst)  # reset-after
        else:
            gh = self._requantize(h @ w_hh[:2 * H].T + b_hh[:2 * H], steps[acc].dst)
            rz = self._activate("sigmoid", self._wrap_or_saturate(gx[:, :2 * H] + gh, "preact"))
            r, z = rz[:, :H], rz[:, H:]
            rh = self._requantize(r * h, steps["reset"].dst)  # reset-before
            gh_n = self._requantize(rh @ w_hh[2 * H:].T + b_hh[2 * H:], steps[acc].dst)
        candidate = self._activate("tanh", self._wrap_or_saturate(gx[:, 2 * H:] + gh_n, "preact"))
        n = self._requantize(candidate, steps["candidate"].dst)
        return self._requantize(n + z * (h - n), steps["blend"].dst)

    def forward(self, tpsf: torch.Tensor, *, with_state: bool = False):
        """(N, T) input values -> (N, T, 3) SFD values; with_state: also the encoder's final state
        values (N, hidden), as `Seq2Seq.forward`."""
        if tpsf.is_cuda and self.dtype == torch.float32 and (
                torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest"):
            # TF32 rounds products to 10 mantissa bits: the datapath would no longer be the IP's
            raise RuntimeError("QAT needs exact float32 products: torch.set_float32_matmul_precision('highest') "
                               "and torch.backends.cuda.matmul.allow_tf32 = False")
        w = self.quantized_weights()
        x = tpsf.to(self.dtype)
        h = x.new_zeros(x.shape[0], self.spec.hidden)
        # the input terms of every encoder step at once (no recurrence in them)
        steps = self.steps
        gx = self._requantize(x[:, :, None] * w["enc.w_ih"][:, 0] + w["enc.b_ih"], steps["enc.acc_x"].dst)
        for gx_t in gx.unbind(dim=1):  # one backward node for all slices (indexing makes T)
            h = self._step(h, gx_t, w["enc.w_hh"], w["enc.b_hh"], "enc.acc_h")
        encoded = h
        if self.spec.decoder_input == "encoder_state":  # RepeatVector: one input product, zero state
            gx = self._requantize(h @ w["dec.w_ih"].T + w["dec.b_ih"], steps["dec.acc_x"].dst)
            h = torch.zeros_like(h)
        else:
            gx = w["dec.b_ih"][None, :]
        states = []
        for _ in range(self.spec.n_bins):
            h = self._step(h, gx, w["dec.w_hh"], w["dec.b_hh"], "dec.acc_h")
            states.append(h)
        # the head reads each decoder state once: all steps in one product
        sfd = self._requantize(torch.stack(states, dim=1) @ w["head.w"].T + w["head.b"],
                               steps["head.acc"].dst).float()
        return (sfd, encoded.float()) if with_state else sfd

    # -- export --------------------------------------------------------------------------------------

    def export_weights(self) -> dict[str, np.ndarray]:
        """Float master weights in the names of `spec.weight_names`."""
        return {name: self.master[name.replace(".", "_")].detach().cpu().double().numpy().copy()
                for name in self.spec.weight_names}

    def quantized(self):
        """(QuantizedModel, QuantReport) of the master weights in this model's spec."""
        return quantize_weights(self.spec, self.export_weights())
