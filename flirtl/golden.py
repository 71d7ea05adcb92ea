"""The integer golden model: what the RTL must compute, bit for bit, on every output beat.

Raw photon counts in, tau1 / tau2 / a / mean lifetime out, through the same steps as the hardware:

1. normalisation: background = mean of the first `bg_bins` bins (a shift), subtract and clip at 0,
   one reciprocal of the peak per pixel (a divide), one multiply per bin;
2. encoder: GRU over the T normalised samples (input size 1);
3. decoder: GRU from the encoder's final state over T all-zero inputs, so its input product is
   skipped and gx is its bias; a linear head gives the 3 SFD channels after every step;
4. lifetime extraction: running sums of each channel, one divide per quantity, and a table that
   maps sum / first sample to the lifetime, corrected for the truncated time window.

Only integers after quantization: codes, arithmetic shifts, saturation, table reads. The GRU holds
its codes in float32 when every intermediate of the datapath is provably below 2**24, float64 below
2**53, int64 otherwise (`datapath_dtype`, decided once per model from the formats and the weights):
integer-valued floats are exact there, BLAS multiplies them and NumPy vectorises them. The GRU works
on (units, pixels) arrays so that the r, z and n rows are contiguous blocks.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import arith
from .quant import (QuantizedModel, activation_io, activation_table, lifetime_table,
                    pwl_segments, pwl_slope_frac)
from .spec import SFD_CHANNELS, ModelSpec, QFormat

RESULTS = ("tau1", "tau2", "a", "tau_mean")

#: Pixels per chunk: the GRU's working arrays of a chunk stay in a core's L2 cache.
CHUNK = 512
#: Widest pre-activation whose every gx + gh sum gets its own activation table entry (2**17 entries).
SUM_TABLE_MAX_BITS = 16


def datapath_dtype(magnitude: int) -> np.dtype:
    """The cheapest dtype in which every integer up to `magnitude` is exact."""
    for dtype in (np.float32, np.float64):
        if magnitude <= 2 ** (np.finfo(dtype).nmant + 1):
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _magnitude(fmt: QFormat) -> int:
    return max(-fmt.min_code, fmt.max_code)


def _rounding_half(shift: int, rounding: str) -> int:
    """What `arith.shift_round` adds before shifting right by `shift`."""
    return 1 << (shift - 1) if rounding == "half_up" and shift > 0 else 0


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
    """One weight matrix and its bias, requantized into `dst`: overflow(shift_round(W v + b)).

    `bias` is aligned to the accumulator (the constant the hardware adds). The operand carries a
    row of ones, so the bias is the matrix's last column. In a float datapath the requantizing shift
    and its rounding half are folded into the matrix (powers of two: exact), so requantizing the
    accumulator is one floor.
    """

    def __init__(self, spec: ModelSpec, acc: str, weight: np.ndarray, bias: np.ndarray,
                 bias_frac: int, operand_max: int, dst: QFormat):
        self.spec, self.acc, self.dst = spec, spec.fmt(acc), dst
        self.bias = arith.shift_round(bias, bias_frac - self.acc.frac_bits, spec.rounding)
        self.shift = self.acc.frac_bits - dst.frac_bits
        self.half = _rounding_half(self.shift, spec.rounding)
        #: The largest partial sum of the accumulator, in its LSBs, with the rounding half.
        self.worst = (int(np.abs(weight).sum(axis=1).max(initial=0)) * operand_max
                      + int(np.abs(self.bias).max(initial=0)) + self.half)
        self.codes = np.column_stack([weight, self.bias]).astype(np.int64)
        self.use(np.dtype(np.int64))

    def use(self, dtype: np.dtype) -> None:
        """Multiply in the datapath's dtype: folded floats, or exact float64 BLAS / int64 products
        for an int64 datapath."""
        self.dtype = dtype
        if dtype.kind == "f":
            folded = self.codes.copy()
            folded[:, -1] += self.half
            self.matrix = (folded * 2.0 ** -self.shift).astype(dtype)
        else:
            self.matrix = self.codes.astype(np.float64 if self.worst < 2 ** 53 else np.int64)

    def __call__(self, operand: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """(rows, N) codes in `dst` of the (K + 1, N) operand whose last row is ones."""
        spec, acc = self.spec, self.matrix[rows] @ operand
        if self.dtype.kind == "f":
            code = np.floor(acc)
        else:
            code = arith.shift_round(acc.astype(np.int64), self.shift, spec.rounding)
        return arith.overflow(code, self.dst, spec.overflow)


class GoldenModel:
    """Integer reference of the Seq2SeqLite IP; `run(counts)` is the whole pixel pipeline."""

    def __init__(self, model: QuantizedModel):
        spec = self.spec = model.spec
        codes = model.codes
        self.hidden = spec.hidden
        preact, hid = spec.fmt("preact"), spec.fmt("hidden")
        state_max = _magnitude(hid)

        def recurrent(acc: str, weight: str, bias: str, dst: QFormat) -> _MatVec:
            return _MatVec(spec, acc, codes[weight], codes[bias], spec.fmt(bias).frac_bits,
                           state_max, dst)

        self.enc_h = recurrent("enc.acc_h", "enc.w_hh", "enc.b_hh", preact)
        self.dec_h = recurrent("dec.acc_h", "dec.w_hh", "dec.b_hh", preact)
        self.head = recurrent("head.acc", "head.w", "head.b", spec.fmt("sfd"))
        self.enc_x = _MatVec(spec, "enc.acc_x", codes["enc.w_ih"], codes["enc.b_ih"],
                             spec.fmt("enc.b_ih").frac_bits, spec.fmt("input").max_code, preact)
        self.enc_w_ih = codes["enc.w_ih"][:, 0]
        self.enc_b_ih = self.enc_x.bias
        # Zero decoder input: gx is the input bias, requantized once to the pre-activation format.
        self.dec_gx = self._requant(codes["dec.b_ih"], spec.fmt("dec.b_ih").frac_bits, "preact")
        self.tables = {kind: self._activation_rom(kind) for kind in ("sigmoid", "tanh")}
        self.lifetime_rom = lifetime_table(spec)

        self.dtype = datapath_dtype(self._worst_intermediate())
        for matvec in (self.enc_h, self.dec_h, self.head, self.enc_x):
            matvec.use(self.dtype)
        self._sum_tables, self._sum_low = {}, 0
        self._sum_tables = self._build_sum_tables()
        # gx enters the GRU step counted from the lowest sum, so gx + gh indexes a sum table
        self._sum_low = 2 * preact.min_code if self._sum_tables else 0
        # pixels per block: each block's products stay small GEMMs that BLAS runs on the
        # calling thread (OpenBLAS threads above ~2**18 multiply-adds, which oversubscribes the
        # cores that run chunks in parallel)
        self.lanes = int(np.clip(2 ** 18 // (3 * self.hidden * (self.hidden + 1)), 8, 64))

    def _worst_intermediate(self) -> int:
        """A bound on every integer the GRU datapath holds, in the LSBs of its finest step."""
        spec, rounding = self.spec, self.spec.rounding
        preact, gate, cand, hid = (spec.fmt(n) for n in ("preact", "gate", "candidate", "hidden"))
        g = gate.frac_bits
        addr_shift = preact.frac_bits - min(spec.activation.sigmoid_addr.frac_bits,
                                            spec.activation.tanh_addr.frac_bits)
        cand_shift = cand.frac_bits - hid.frac_bits
        bounds = [
            *(m.worst for m in (self.enc_h, self.dec_h, self.head, self.enc_x)),
            2 * _magnitude(preact),                                      # gx + gh
            _magnitude(gate) * _magnitude(preact) + (1 << g),            # r * gh (pytorch)
            _magnitude(gate) * _magnitude(hid) + (1 << g),               # r * h (keras)
            (_magnitude(hid) << g) + _magnitude(gate) * 2 * _magnitude(hid) + (1 << g),  # blend
            # activations computed without a sum table: address and candidate requantization
            (2 * _magnitude(preact) << max(-addr_shift, 0)) + _rounding_half(addr_shift, rounding),
            (_magnitude(cand) << max(-cand_shift, 0)) + _rounding_half(cand_shift, rounding),
        ]
        return 2 * max(bounds)  # headroom: wrapping subtracts the format's minimum first

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

    def _activate_sum(self, kind: str, gx: np.ndarray, gh: np.ndarray) -> np.ndarray:
        """sigmoid (gate codes) or tanh (requantized to hidden codes) of overflow(gx + gh)."""
        spec = self.spec
        table = self._sum_tables.get(kind)
        if table is not None:
            # int32 converts from float fastest; indices are in range by construction, and 'wrap'
            # is take's fastest mode
            return np.take(table, (gx + gh).astype(np.int32), mode="wrap")
        value = self.activate(kind, arith.overflow(gx + gh, spec.fmt("preact"), spec.overflow))
        if kind == "tanh":
            value = self._requant(value, spec.fmt("candidate").frac_bits, "hidden")
        return value.astype(self.dtype)

    def _build_sum_tables(self) -> dict[str, np.ndarray]:
        """`_activate_sum` as one table read per sum for narrow pre-activations: the table is that
        function evaluated at every possible gx + gh, so it is the same function by construction."""
        preact = self.spec.fmt("preact")
        if preact.width > SUM_TABLE_MAX_BITS:
            return {}
        sums = np.arange(2 * preact.min_code, 2 * preact.max_code + 1)
        return {kind: self._activate_sum(kind, sums, 0) for kind in ("sigmoid", "tanh")}

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

    def _blocks(self, codes: np.ndarray, rows: int | None = None) -> np.ndarray:
        """(N, C) codes -> (blocks, rows, lanes) working array, pixel p in block p // lanes,
        padded with zero pixels; rows beyond C (the state's bias input) are ones."""
        n, columns = codes.shape
        blocks = -(-n // self.lanes)
        padded = np.zeros((blocks * self.lanes, columns), self.dtype)
        padded[:n] = codes
        out = np.ones((blocks, rows or columns, self.lanes), self.dtype)
        out[:, :columns] = padded.reshape(blocks, self.lanes, columns).transpose(0, 2, 1)
        return out

    def _state(self, h: np.ndarray) -> np.ndarray:
        """(N, H) codes -> the GRU's working state, whose last row of ones is the bias input of
        the matrix-vector products."""
        return self._blocks(h, self.hidden + 1)

    def _pixels(self, state: np.ndarray, n: int) -> np.ndarray:
        """Working (blocks, rows, lanes) array -> (N, rows) int64 codes."""
        return state.transpose(0, 2, 1).reshape(-1, state.shape[1])[:n].astype(np.int64)

    def _step(self, h: np.ndarray, gx: np.ndarray, matvec: _MatVec) -> np.ndarray:
        """One GRU step on the working state with (..., 3H, lanes) input terms gx; returns the
        next working state."""
        spec, H = self.spec, self.hidden
        preact, gate, hid = spec.fmt("preact"), spec.fmt("gate"), spec.fmt("hidden")
        state = h[:, :H]
        if spec.gru == "pytorch":
            gh = matvec(h)
            rz = self._activate_sum("sigmoid", gx[:, :2 * H], gh[:, :2 * H])
            # Reset-after: r scales W_hn h + b_hn.
            rgh = self._requant(arith.multiply(rz[:, :H], gh[:, 2 * H:]), gate.frac_bits + preact.frac_bits, "preact")
            n = self._activate_sum("tanh", gx[:, 2 * H:], rgh)
        else:
            rz = self._activate_sum("sigmoid", gx[:, :2 * H], matvec(h, slice(0, 2 * H)))
            # Reset-before: r scales h before W_hn.
            rh = np.ones_like(h)
            rh[:, :H] = self._requant(arith.multiply(rz[:, :H], state), gate.frac_bits + hid.frac_bits, "hidden")
            n = self._activate_sum("tanh", gx[:, 2 * H:], matvec(rh, slice(2 * H, None)))
        # h' = n + z * (h - n), kept at gate.frac + hidden.frac bits until one final rounding.
        blend = arith.shift_round(n, -gate.frac_bits, spec.rounding) + arith.multiply(rz[:, H:], state - n)
        nxt = np.ones_like(h)
        nxt[:, :H] = self._requant(blend, gate.frac_bits + hid.frac_bits, "hidden")
        return nxt

    def gru_step(self, h: np.ndarray, gx: np.ndarray, matvec: _MatVec) -> np.ndarray:
        """One GRU step on (N, H) state codes with (N or 1, 3H) pre-activation input terms."""
        h, gx = np.asarray(h), np.asarray(gx)
        if gx.shape[0] == 1:
            gx = np.repeat(gx, h.shape[0], axis=0)
        gx = self._blocks(gx) - self._sum_low
        return self._pixels(self._step(self._state(h), gx, matvec), h.shape[0])[:, :-1]

    def _encode(self, x: np.ndarray) -> np.ndarray:
        """(N, T) input codes -> working state after the last encoder step."""
        h = self._state(np.zeros((x.shape[0], self.hidden), np.int64))
        xs = self._blocks(x)  # (blocks, T, lanes)
        operand = np.ones((h.shape[0], 2, self.lanes), self.dtype)  # [x_t; 1]
        for t in range(x.shape[1]):
            operand[:, 0] = xs[:, t]
            h = self._step(h, self.enc_x(operand) - self._sum_low, self.enc_h)
        return h

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(N, T) input codes -> (N, H) final encoder state."""
        x = np.asarray(x)
        return self._pixels(self._encode(x), x.shape[0])[:, :-1]

    def _decode(self, h: np.ndarray, n: int) -> np.ndarray:
        """Working state -> (N, T, 3) SFD codes."""
        sfd = np.empty((self.spec.n_bins, h.shape[0], SFD_CHANNELS, self.lanes), self.dtype)
        gx = np.repeat(self.dec_gx[None, :, None] - self._sum_low, self.lanes, axis=2).astype(self.dtype)
        for t in range(self.spec.n_bins):
            h = self._step(h, gx, self.dec_h)
            sfd[t] = self.head(h)
        return sfd.transpose(1, 3, 0, 2).reshape(-1, self.spec.n_bins, SFD_CHANNELS)[:n].astype(np.int64)

    def decode(self, h: np.ndarray) -> np.ndarray:
        """(N, H) encoder state -> (N, T, 3) SFD codes, one head output after every decoder step."""
        h = np.asarray(h)
        return self._decode(self._state(h), h.shape[0])

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
        sfd = self._decode(self._encode(x), x.shape[0])
        return x, sfd, self.lifetimes(sfd)

    def run(self, counts: np.ndarray, *, chunk: int = CHUNK, threads: int | None = None,
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
