"""The integer golden model: what the RTL must compute, bit for bit, on every output beat.

Raw photon counts in, tau1 / tau2 / a / mean lifetime out, through the same steps as the hardware:

1. normalisation: background = mean of the first `bg_bins` bins (a shift), subtract and clip at 0,
   one reciprocal of the peak per pixel (a divide), one multiply per bin;
2. encoder: GRU over the T normalised samples (input size 1);
3. decoder: GRU from the encoder's final state over T all-zero inputs, so its input product is
   skipped and gx is its bias; a linear head gives the 3 SFD channels after every step;
4. lifetime extraction: running sums of each channel, one divide per quantity, and a table that
   maps sum / first sample to the lifetime, corrected for the truncated time window.

Only integers after quantization: int64 codes, arithmetic shifts, saturation, table reads. Matrix
products go through float64 BLAS when every partial sum stays below 2**53 (then they are exact),
otherwise through int64.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import arith
from .quant import (QuantizedModel, activation_io, activation_table, lifetime_table,
                    pwl_segments, pwl_slope_frac)
from .spec import SFD_CHANNELS, ModelSpec

RESULTS = ("tau1", "tau2", "a", "tau_mean")


@dataclass
class GoldenResult:
    """Codes of everything the IP emits, plus the normalised input for inspection."""

    spec: ModelSpec
    input: np.ndarray      # (N, T) input format
    sfd: np.ndarray        # (N, T, 3) sfd format: total, short, long
    tau1: np.ndarray       # (N,) lifetime format
    tau2: np.ndarray
    a: np.ndarray          # (N,) fraction format
    tau_mean: np.ndarray   # (N,) lifetime format, amplitude-weighted a*tau1 + (1-a)*tau2

    def values(self) -> dict[str, np.ndarray]:
        """Real values (ns for lifetimes) of the codes."""
        spec = self.spec
        out = {name: getattr(self, name) * spec.fmt("lifetime").lsb for name in ("tau1", "tau2", "tau_mean")}
        out["a"] = self.a * spec.fmt("fraction").lsb
        out["sfd"] = self.sfd * spec.fmt("sfd").lsb
        out["input"] = self.input * spec.fmt("input").lsb
        return out


class _MatVec:
    """One weight matrix with its bias aligned to the accumulator; exact products."""

    def __init__(self, spec: ModelSpec, acc: str, weight: np.ndarray, bias: np.ndarray,
                 bias_frac: int, operand_max: int):
        self.acc = spec.fmt(acc)
        self.bias = arith.shift_round(bias, bias_frac - self.acc.frac_bits, spec.rounding)
        worst = int(np.abs(weight).sum(axis=1).max(initial=0)) * operand_max + int(np.abs(self.bias).max(initial=0))
        self.exact_in_float = worst < 2 ** 53
        self.weight_t = weight.T.astype(np.float64 if self.exact_in_float else np.int64)

    def __call__(self, vector: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        weight_t, bias = self.weight_t[:, rows], self.bias[rows]
        if self.exact_in_float:
            return (vector.astype(np.float64) @ weight_t).astype(np.int64) + bias
        return vector @ weight_t + bias


class GoldenModel:
    """Integer reference of the Seq2SeqLite IP; `run(counts)` is the whole pixel pipeline."""

    def __init__(self, model: QuantizedModel):
        spec = self.spec = model.spec
        codes = model.codes
        self.hidden = spec.hidden
        hid = spec.fmt("hidden")
        state_max = max(-hid.min_code, hid.max_code)
        self.enc_h = _MatVec(spec, "enc.acc_h", codes["enc.w_hh"], codes["enc.b_hh"],
                             spec.fmt("enc.b_hh").frac_bits, state_max)
        self.dec_h = _MatVec(spec, "dec.acc_h", codes["dec.w_hh"], codes["dec.b_hh"],
                             spec.fmt("dec.b_hh").frac_bits, state_max)
        self.head = _MatVec(spec, "head.acc", codes["head.w"], codes["head.b"],
                            spec.fmt("head.b").frac_bits, state_max)
        acc_x = spec.fmt("enc.acc_x")
        self.enc_w_ih = codes["enc.w_ih"][:, 0]
        self.enc_b_ih = arith.shift_round(codes["enc.b_ih"], spec.fmt("enc.b_ih").frac_bits - acc_x.frac_bits,
                                          spec.rounding)
        # Zero decoder input: gx is the input bias, requantized once to the pre-activation format.
        self.dec_gx = self._requant(codes["dec.b_ih"], spec.fmt("dec.b_ih").frac_bits, "preact")
        self.tables = {kind: self._activation_rom(kind) for kind in ("sigmoid", "tanh")}
        self.lifetime_rom = lifetime_table(spec)

    # -- primitives bound to the spec ------------------------------------------------------------

    def _requant(self, code, src_frac: int, dst: str):
        spec = self.spec
        return arith.requantize(code, src_frac, spec.fmt(dst), spec.rounding, spec.overflow)

    def _activation_rom(self, kind: str):
        if self.spec.activation.method == "table":
            return activation_table(self.spec, kind)
        return pwl_segments(self.spec, kind)

    def activate(self, kind: str, preact: np.ndarray) -> np.ndarray:
        """sigmoid (gate format) or tanh (candidate format) of pre-activation codes."""
        spec = self.spec
        addr, out = activation_io(spec, kind)
        src = spec.fmt("preact").frac_bits
        if spec.activation.method == "table":
            return arith.table_lookup(preact, src, addr, self.tables[kind], spec.rounding)
        base, slope = self.tables[kind]
        return arith.pwl_lookup(preact, src, addr, base, slope, pwl_slope_frac(spec, kind),
                                spec.activation.segment_bits, out, spec.rounding)

    # -- pipeline stages --------------------------------------------------------------------------

    def normalize(self, counts: np.ndarray) -> np.ndarray:
        """(N, T) raw counts -> (N, T) input codes: (counts - background) * (1 / peak)."""
        spec = self.spec
        counts = np.asarray(counts, dtype=np.int64)
        shift = spec.bg_bins.bit_length() - 1
        background = arith.shift_round(counts[:, :spec.bg_bins].sum(axis=1), shift, "half_up")
        signal = np.maximum(counts - background[:, None], 0)
        peak = signal.max(axis=1)
        recip = np.where(peak > 0, (1 << spec.recip_frac) // np.maximum(peak, 1), 0)
        return self._requant(arith.multiply(signal, recip[:, None]), spec.recip_frac, "input")

    def gru_step(self, h: np.ndarray, gx: np.ndarray, matvec: _MatVec) -> np.ndarray:
        """One GRU step on (N, H) state codes with (N or 1, 3H) pre-activation input terms."""
        spec, H = self.spec, self.hidden
        preact, gate, hid = spec.fmt("preact"), spec.fmt("gate"), spec.fmt("hidden")
        ovf = spec.overflow
        if spec.gru == "pytorch":
            gh = self._requant(matvec(h), matvec.acc.frac_bits, "preact")
            r = self.activate("sigmoid", arith.overflow(gx[:, :H] + gh[:, :H], preact, ovf))
            z = self.activate("sigmoid", arith.overflow(gx[:, H:2 * H] + gh[:, H:2 * H], preact, ovf))
            # Reset-after: r scales W_hn h + b_hn.
            rgh = self._requant(arith.multiply(r, gh[:, 2 * H:]), gate.frac_bits + preact.frac_bits, "preact")
            n = self.activate("tanh", arith.overflow(gx[:, 2 * H:] + rgh, preact, ovf))
        else:
            gh_rz = self._requant(matvec(h, slice(0, 2 * H)), matvec.acc.frac_bits, "preact")
            r = self.activate("sigmoid", arith.overflow(gx[:, :H] + gh_rz[:, :H], preact, ovf))
            z = self.activate("sigmoid", arith.overflow(gx[:, H:2 * H] + gh_rz[:, H:], preact, ovf))
            # Reset-before: r scales h before W_hn.
            rh = self._requant(arith.multiply(r, h), gate.frac_bits + hid.frac_bits, "hidden")
            gh_n = self._requant(matvec(rh, slice(2 * H, None)), matvec.acc.frac_bits, "preact")
            n = self.activate("tanh", arith.overflow(gx[:, 2 * H:] + gh_n, preact, ovf))
        n = self._requant(n, spec.fmt("candidate").frac_bits, "hidden")
        # h' = n + z * (h - n), kept at gate.frac + hidden.frac bits until one final rounding.
        blend = np.left_shift(n, gate.frac_bits) + arith.multiply(z, h - n)
        return self._requant(blend, gate.frac_bits + hid.frac_bits, "hidden")

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(N, T) input codes -> (N, H) final encoder state."""
        spec = self.spec
        src = spec.fmt("enc.acc_x").frac_bits
        h = np.zeros((x.shape[0], self.hidden), np.int64)
        for t in range(x.shape[1]):
            acc = arith.multiply(x[:, t:t + 1], self.enc_w_ih[None, :]) + self.enc_b_ih
            h = self.gru_step(h, self._requant(acc, src, "preact"), self.enc_h)
        return h

    def decode(self, h: np.ndarray) -> np.ndarray:
        """(N, H) encoder state -> (N, T, 3) SFD codes, one head output after every decoder step."""
        sfd = np.empty((h.shape[0], self.spec.n_bins, SFD_CHANNELS), np.int64)
        gx = self.dec_gx[None, :]
        src = self.head.acc.frac_bits
        for t in range(self.spec.n_bins):
            h = self.gru_step(h, gx, self.dec_h)
            sfd[:, t] = self._requant(self.head(h), src, "sfd")
        return sfd

    def lifetimes(self, sfd: np.ndarray) -> dict[str, np.ndarray]:
        """Running sums and first samples of each channel -> tau1, tau2, a, tau_mean codes."""
        spec = self.spec
        first = sfd[:, 0, :]
        total = sfd.sum(axis=1)

        def tau(channel: int) -> np.ndarray:
            # ratio = sum / first sample, one sequential divide; undefined ratios read entry 0 (0 ns)
            valid = (first[:, channel] > 0) & (total[:, channel] > 0)
            dividend = np.where(valid, total[:, channel], 0) << spec.fmt("ratio").frac_bits
            ratio = dividend // np.where(valid, first[:, channel], 1)
            return self.lifetime_rom[np.minimum(ratio, spec.ratio_entries - 1)]

        tau1, tau2 = tau(1), tau(2)
        frac = spec.fmt("fraction")
        short, long_ = np.maximum(first[:, 1], 0), np.maximum(first[:, 2], 0)
        denominator = short + long_
        a = np.where(denominator > 0, (short << frac.frac_bits) // np.maximum(denominator, 1), 0)
        one = 1 << frac.frac_bits
        mean = arith.shift_round(a * tau1 + (one - a) * tau2, frac.frac_bits, spec.rounding)
        return {"tau1": tau1, "tau2": tau2, "a": a, "tau_mean": mean}

    # -- whole pipeline ---------------------------------------------------------------------------

    def _run_chunk(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        x = self.normalize(counts)
        sfd = self.decode(self.encode(x))
        return x, sfd, self.lifetimes(sfd)

    def run(self, counts: np.ndarray, *, chunk: int = 2048, threads: int | None = None,
            progress: bool = False) -> GoldenResult:
        """Raw counts (N, T) -> GoldenResult. Pixels are independent: chunks run on threads
        (NumPy releases the GIL inside its kernels)."""
        counts = np.asarray(counts)
        if counts.ndim != 2 or counts.shape[1] != self.spec.n_bins:
            raise ValueError(f"counts must have shape (N, {self.spec.n_bins}), not {counts.shape}")
        starts = range(0, counts.shape[0], chunk)
        threads = threads or min(os.cpu_count() or 1, 8)
        with ThreadPoolExecutor(threads) as pool:
            parts = pool.map(lambda s: self._run_chunk(counts[s:s + chunk]), starts)
            if progress:
                from tqdm import tqdm
                parts = tqdm(parts, total=len(starts), unit="chunk", desc="golden model")
            parts = list(parts)
        if not parts:
            parts = [self._run_chunk(counts)]
        x = np.concatenate([p[0] for p in parts])
        sfd = np.concatenate([p[1] for p in parts])
        res = {name: np.concatenate([p[2][name] for p in parts]) for name in RESULTS}
        return GoldenResult(self.spec, x, sfd, **res)

