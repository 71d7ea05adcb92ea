"""The integer golden model: what the RTL must compute, bit for bit, on every output beat.

Raw photon counts in, tau1 / tau2 / a / mean lifetime out, through the same steps as the hardware:

1. normalisation: background = mean of `bg_bins` bins (a shift; the first ones, or the lesser of the
   first and last ones: `spec.background`), subtract and clip at 0,
   one reciprocal of the peak per pixel (a divide), one multiply per bin;
2. encoder: GRU over the T normalised samples (input size 1);
3. decoder: GRU from the encoder's final state over T all-zero inputs, so its input product is
   skipped and gx is its bias (or, `spec.decoder_input` 'encoder_state', from a zero state over the
   encoder's final state repeated: gx = W_ih h_enc + b_ih, one product per pixel); a linear head
   gives the 3 SFD channels after every step;
4. lifetime extraction: running sums of each channel, one divide per quantity, and a table that
   maps sum / first sample to the lifetime, corrected for the truncated time window.

Only integers after quantization: codes, arithmetic shifts, saturation, table reads. How the GRU
computes them is free as long as every code comes out the same, so for speed it holds codes in
float32 when every intermediate of the datapath is provably below 2**24, float64 below 2**53, int64
otherwise (`datapath_dtype`, decided once per model from the formats and the weights): integer-valued
floats are exact there, BLAS multiplies them and NumPy vectorises them. It folds each requantizing
shift into the weights, reads each activation from a table indexed by the sum gx + gh, and works in
place on (units, pixels) arrays. `tests/test_golden.py` holds it to a plain int64 reference.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import arith
from .fli.preprocess import background_sum, validate_counts
from .quant import (QuantizedModel, activation_io, activation_table, lifetime_table,
                    pwl_segments, pwl_slope_frac)
from .spec import SFD_CHANNELS, ModelSpec, QFormat

RESULTS = ("tau1", "tau2", "a", "tau_mean")

#: Pixels times hidden units per chunk (a thread's unit of work), 4096 pixels of a 32-unit model:
#: enough that NumPy's fixed cost per call (about a microsecond, some 25 calls per GRU step) is small
#: next to each call's work, few enough that a chunk's scratch arrays stay around 10 MB.
CHUNK_UNITS = 2 ** 17
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


def _overflow_into(code: np.ndarray, fmt: QFormat, mode: str) -> None:
    """`arith.overflow`, in place."""
    if mode == "saturate":
        code.clip(fmt.min_code, fmt.max_code, out=code)
    else:
        code[...] = arith.wrap(code, fmt)


def _requantize_into(out: np.ndarray, code: np.ndarray, src_frac: int, dst: QFormat,
                     rounding: str, overflow_mode: str | None) -> None:
    """`arith.requantize` into `out`; float codes in place, without temporaries. Overflow mode
    None: the result provably lies in `dst`.

    A float code may carry a fraction below its LSB (a product with a gate held as its real value):
    floor(code * 2**-shift [+ 1/2]) rounds it, as `arith.shift_round` rounds the right shift of an
    integer, and leaves an integer code with shift <= 0 as it is.
    """
    shift = src_frac - dst.frac_bits
    if out.dtype.kind == "f":
        if shift:
            code = np.multiply(code, 2.0 ** -shift, out=out)
        if rounding == "half_up":
            code = np.add(code, 0.5, out=out)
        np.floor(code, out=out)
    else:
        out[...] = arith.shift_round(code, shift, rounding)
    if overflow_mode:
        _overflow_into(out, dst, overflow_mode)


def normalize_counts(spec: ModelSpec, counts: np.ndarray) -> np.ndarray:
    """(N, T) raw counts -> (N, T) input codes: (counts - background) * (1 / peak), as the IP
    normalises them. Depends on the spec's formats only, not on the weights, so training can
    compute it once per data set."""
    counts = np.asarray(counts, dtype=np.int64)
    shift = spec.bg_bins.bit_length() - 1
    background = arith.shift_round(background_sum(counts, bg_bins=spec.bg_bins, rule=spec.background),
                                   shift, "half_up")
    signal = np.maximum(counts - background[:, None], 0)
    peak = signal.max(axis=1)
    recip = np.where(peak > 0, (1 << spec.recip_frac) // np.maximum(peak, 1), 0)
    step = spec.requantizations()["input"]
    return arith.requantize(arith.multiply(signal, recip[:, None]), step.src_frac,
                            spec.fmt(step.dst), spec.rounding, spec.overflow)


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


def _blocked_matmul(matrix: np.ndarray, operand: np.ndarray, out: np.ndarray, lanes: int) -> None:
    """out = matrix @ operand for (K, N) operands, as N / lanes small products: BLAS runs small
    products on the calling thread (OpenBLAS spreads larger ones over every core, oversubscribing
    the cores that already run one chunk each)."""
    def blocks(a: np.ndarray) -> np.ndarray:
        return a.reshape(a.shape[0], -1, lanes).transpose(1, 0, 2)

    np.matmul(matrix, blocks(operand), out=blocks(out))


class _MatVec:
    """One weight matrix and its bias, requantized as the spec's step of accumulator `acc` says:
    overflow(shift_round(W v + b)).

    `bias` is aligned to the accumulator (the constant the hardware adds). The operand carries a
    row of ones, so the bias is the matrix's last column. In a float datapath the requantizing shift
    and its rounding half are folded into the matrix (powers of two: exact), so requantizing the
    accumulator is one floor.
    """

    def __init__(self, spec: ModelSpec, acc: str, weight: np.ndarray, bias: np.ndarray,
                 bias_frac: int, operand_max: int):
        step = spec.requantizations()[acc]
        self.spec, self.dst = spec, spec.fmt(step.dst)
        self.bias = arith.shift_round(bias, bias_frac - step.src_frac, spec.rounding)
        self.shift = step.src_frac - self.dst.frac_bits
        self.half = _rounding_half(self.shift, spec.rounding)
        #: The largest partial sum of the accumulator, in its LSBs, with the rounding half.
        self.worst = (int(np.abs(weight).sum(axis=1).max(initial=0)) * operand_max
                      + int(np.abs(self.bias).max(initial=0)) + self.half)
        largest = (self.worst >> self.shift) + 1 if self.shift > 0 else self.worst << -self.shift
        #: Whether a result can leave `dst` at all (if not, overflow handling is skipped).
        self.overflows = largest > min(-self.dst.min_code, self.dst.max_code)
        self.codes = np.column_stack([weight, self.bias]).astype(np.int64)
        self.use(np.dtype(np.int64), 1)

    def use(self, dtype: np.dtype, lanes: int) -> None:
        """Multiply in the datapath's dtype, `lanes` pixels per product: folded floats, or exact
        float64 BLAS / int64 products for an int64 datapath."""
        self.dtype, self.lanes = dtype, lanes
        if dtype.kind == "f":
            folded = self.codes.copy()
            folded[:, -1] += self.half
            self.matrix = (folded * 2.0 ** -self.shift).astype(dtype)
        else:
            self.matrix = self.codes.astype(np.float64 if self.worst < 2 ** 53 else np.int64)

    def __call__(self, operand: np.ndarray, out: np.ndarray, rows: slice = slice(None)) -> None:
        """Codes in `dst` of the matrix's `rows` times the (K + 1, N) operand, whose last row is
        ones, into `out`."""
        spec, matrix = self.spec, self.matrix[rows]
        if self.dtype.kind == "f":
            _blocked_matmul(matrix, operand, out, self.lanes)
            np.floor(out, out=out)
        else:
            acc = np.empty(out.shape, matrix.dtype)
            _blocked_matmul(matrix, operand.astype(matrix.dtype), acc, self.lanes)
            out[...] = arith.shift_round(acc.astype(np.int64), self.shift, spec.rounding)
        if self.overflows:
            _overflow_into(out, self.dst, spec.overflow)


class _Workspace:
    """Scratch arrays of the GRU for one chunk of N pixels, (units, N) each, allocated once so that
    the time loop allocates nothing (large short-lived arrays cost page faults). Every operand of an
    elementwise pass is a contiguous block of rows: NumPy is several times slower on strided views."""

    def __init__(self, hidden: int, pixels: int, dtype: np.dtype, gru: str):
        # W_h h + b_h in preact codes, then in place gx + gh, r * gh and the blend
        self.gh = np.empty((3 * hidden, pixels), dtype)
        # the encoder's gx, then the gates r, z and the candidate n (in hidden codes)
        self.gates = np.empty((3 * hidden, pixels), dtype)
        self.rz, self.n = self.gates[:2 * hidden], self.gates[2 * hidden:]
        # activation table indices: float -> int32 -> intp is 2x faster than float -> intp
        self.index32 = np.empty((2 * hidden, pixels), np.int32)
        self.index = np.empty((2 * hidden, pixels), np.intp)
        # Keras: r * h, with the bias row
        self.rh = np.ones((hidden + 1, pixels), dtype) if gru == "keras" else None


class GoldenModel:
    """Integer reference of the Seq2SeqLite IP; `run(counts)` is the whole pixel pipeline."""

    def __init__(self, model: QuantizedModel):
        spec = self.spec = model.spec
        codes = model.codes
        self.hidden = spec.hidden
        self.steps = spec.requantizations()
        state_max = _magnitude(spec.fmt("hidden"))

        def recurrent(acc: str) -> _MatVec:
            weight, _operand, bias, _terms = spec.matvecs()[acc]
            return _MatVec(spec, acc, codes[weight], codes[bias], spec.fmt(bias).frac_bits, state_max)

        self.enc_h, self.dec_h, self.head = recurrent("enc.acc_h"), recurrent("dec.acc_h"), recurrent("head.acc")
        self.enc_x = _MatVec(spec, "enc.acc_x", codes["enc.w_ih"], codes["enc.b_ih"],
                             spec.fmt("enc.b_ih").frac_bits, spec.fmt("input").max_code)
        self.enc_w_ih = codes["enc.w_ih"][:, 0]
        self.enc_b_ih = self.enc_x.bias
        if spec.decoder_input == "encoder_state":
            self.dec_x = recurrent("dec.acc_x")
        else:
            # Zero decoder input: gx is the input bias, requantized once to the pre-activation format.
            self.dec_x = None
            self.dec_gx = self._requant(codes["dec.b_ih"], "dec.gx")
        self.tables = {kind: self._activation_rom(kind) for kind in ("sigmoid", "tanh")}
        self.lifetime_rom = lifetime_table(spec)

        self.dtype = datapath_dtype(self._worst_intermediate())
        # pixels per BLAS product (a power of two), small enough to run on the calling thread
        lanes = 2 ** 18 // (3 * self.hidden * (self.hidden + 1))
        self.lanes = 1 << max(3, min(6, lanes.bit_length() - 1))
        for matvec in self._matvecs():
            matvec.use(self.dtype, self.lanes)
        #: Most pixels per chunk unless `run` is told otherwise.
        self.chunk = max(self.lanes, CHUNK_UNITS // self.hidden)
        # A float datapath holds a gate as its real value, code * 2**-frac_bits (exact: a power of
        # two), so products with gates need no shift before rounding; int64 holds codes.
        self._gate_frac = 0 if self.dtype.kind == "f" else spec.fmt("gate").frac_bits
        #: Fractional bits of gate products as the datapath holds them, for the steps that round them.
        gate_applied = spec.fmt("gate").frac_bits - self._gate_frac
        self._gate_steps = {name: (self.steps[name].src_frac - gate_applied, spec.fmt(self.steps[name].dst))
                            for name in ("reset", "blend")}
        self._sum_tables = self._build_sum_tables()
        # Gates of at most 1 keep r * gh, r * h and n + z * (h - n) within their formats: their
        # requantization can skip overflow handling.
        gates = self._sum_tables.get("sigmoid")
        below_one = gates is not None and gates.max() <= 1 << self._gate_frac
        self._product_overflow = None if below_one else spec.overflow

    def _matvecs(self) -> list[_MatVec]:
        return [m for m in (self.enc_h, self.dec_h, self.head, self.enc_x, self.dec_x) if m is not None]

    def _worst_intermediate(self) -> int:
        """A bound on every integer the GRU datapath holds, in the LSBs of its finest step."""
        spec, rounding = self.spec, self.spec.rounding
        preact, gate, hid = (spec.fmt(name) for name in ("preact", "gate", "hidden"))
        g = gate.frac_bits
        bounds = [
            *(_magnitude(spec.fmt(name)) for name in ("input", "preact", "gate", "hidden", "sfd")),
            *(m.worst for m in self._matvecs()),
            2 * _magnitude(preact),                                     # gx + gh
            _magnitude(gate) * _magnitude(preact) + (1 << g),           # r * gh (PyTorch)
            _magnitude(gate) * _magnitude(hid) + (1 << g),              # r * h (Keras)
            (_magnitude(hid) << g) + _magnitude(gate) * 2 * _magnitude(hid) + (1 << g),  # blend
        ]
        for addr in (spec.activation.sigmoid_addr, spec.activation.tanh_addr):
            # activations read without a sum table requantize the pre-activation to the address
            shift = preact.frac_bits - addr.frac_bits
            bounds.append((_magnitude(preact) << max(-shift, 0)) + _rounding_half(shift, rounding))
        return 2 * max(bounds)  # headroom: wrapping subtracts the format's minimum first

    # -- primitives bound to the spec ------------------------------------------------------------

    def _requant(self, code, step: str):
        """`code` rounded as the spec's step `step` (`ModelSpec.requantizations`)."""
        spec, step = self.spec, self.steps[step]
        return arith.requantize(code, step.src_frac, spec.fmt(step.dst), spec.rounding, spec.overflow)

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

    def _activate_sum(self, kind: str, sums: np.ndarray) -> np.ndarray:
        """sigmoid (gates as the datapath holds them, see `_gate_frac`) or tanh (the candidate
        requantized to hidden codes) of overflow(gx + gh), for sums gx + gh of preact codes."""
        spec = self.spec
        value = self.activate(kind, arith.overflow(sums, spec.fmt("preact"), spec.overflow))
        if kind == "tanh":
            return self._requant(value, "candidate")
        if self.dtype.kind == "f":  # the gate's real value
            return value * 2.0 ** -spec.fmt("gate").frac_bits
        return value

    def _build_sum_tables(self) -> dict[str, np.ndarray]:
        """`_activate_sum` at every possible sum, for narrow pre-activations: the same function by
        construction, one table read per code. Sum s is entry s mod len(table), so a negative sum
        indexes from the end as `np.take(mode="wrap")` does."""
        preact = self.spec.fmt("preact")
        if preact.width > SUM_TABLE_MAX_BITS:
            return {}
        sums = np.arange(2 * preact.min_code, 2 * preact.max_code + 1)
        tables = {}
        for kind in ("sigmoid", "tanh"):
            tables[kind] = np.zeros(2 << preact.width, self.dtype)
            tables[kind][sums % len(tables[kind])] = self._activate_sum(kind, sums)
        return tables

    def _activate_into(self, kind: str, sums: np.ndarray, out: np.ndarray, work: _Workspace) -> None:
        """`_activate_sum(kind, sums)` into `out`."""
        table = self._sum_tables.get(kind)
        if table is None:
            out[...] = self._activate_sum(kind, sums)
            return
        index, index32 = work.index[:sums.shape[0]], work.index32[:sums.shape[0]]
        np.copyto(index32, sums, casting="unsafe")
        np.copyto(index, index32)
        np.take(table, index, mode="wrap", out=out)

    # -- pipeline stages --------------------------------------------------------------------------

    def normalize(self, counts: np.ndarray) -> np.ndarray:
        """(N, T) raw counts -> (N, T) input codes (`normalize_counts`)."""
        return normalize_counts(self.spec, counts)

    def _units(self, codes: np.ndarray, rows: int | None = None) -> np.ndarray:
        """(N, C) codes -> (rows, N') working array in the datapath's dtype, N' a multiple of
        `lanes` (zero pixels pad it); rows beyond C are ones (the bias input of a product)."""
        n, columns = codes.shape
        out = np.zeros((rows or columns, -(-n // self.lanes) * self.lanes), self.dtype)
        out[:columns, :n] = codes.T
        out[columns:] = 1
        return out

    def _pixels(self, units: np.ndarray, n: int) -> np.ndarray:
        """(rows, N') working array -> (N, rows) int64 codes."""
        return units[:, :n].T.astype(np.int64)

    def _workspace(self, pixels: int) -> _Workspace:
        return _Workspace(self.hidden, pixels, self.dtype, self.spec.gru)

    def _step(self, h: np.ndarray, gx_rz: np.ndarray, gx_n: np.ndarray, matvec: _MatVec,
              work: _Workspace) -> None:
        """One GRU step, in place on the (H + 1, N) working state `h`, with pre-activation input
        terms gx_rz (2H, N or 1) and gx_n (H, N or 1); they may be `work.rz` and `work.n`."""
        spec, H, g = self.spec, self.hidden, self._gate_frac
        rounding, overflow = spec.rounding, self._product_overflow
        reset_frac, reset_fmt = self._gate_steps["reset"]
        state, gh, r, z, n = h[:H], work.gh, work.rz[:H], work.rz[H:], work.n
        gh_rz, gh_n = gh[:2 * H], gh[2 * H:]
        if spec.gru == "pytorch":
            matvec(h, gh)
            self._activate_into("sigmoid", np.add(gx_rz, gh_rz, out=gh_rz), work.rz, work)
            # Reset-after: r scales W_hn h + b_hn.
            np.multiply(r, gh_n, out=gh_n)
            _requantize_into(gh_n, gh_n, reset_frac, reset_fmt, rounding, overflow)
        else:
            matvec(h, gh_rz, slice(0, 2 * H))
            self._activate_into("sigmoid", np.add(gx_rz, gh_rz, out=gh_rz), work.rz, work)
            # Reset-before: r scales h before W_hn.
            rh = work.rh[:H]
            np.multiply(r, state, out=rh)
            _requantize_into(rh, rh, reset_frac, reset_fmt, rounding, overflow)
            matvec(work.rh, gh_n, slice(2 * H, None))
        self._activate_into("tanh", np.add(gx_n, gh_n, out=gh_n), n, work)
        # h' = n + z * (h - n), kept at g + hidden.frac bits until one final rounding.
        blend = gh[:H]  # free again
        np.multiply(np.subtract(state, n, out=blend), z, out=blend)
        if g:
            np.left_shift(n, g, out=n)
        np.add(blend, n, out=blend)
        _requantize_into(state, blend, *self._gate_steps["blend"], rounding, overflow)

    def gru_step(self, h: np.ndarray, gx: np.ndarray, matvec: _MatVec) -> np.ndarray:
        """One GRU step on (N, H) state codes with (N or 1, 3H) pre-activation input terms."""
        h, H = np.asarray(h), self.hidden
        state = self._units(h, H + 1)
        gx = self._units(np.broadcast_to(gx, (h.shape[0], 3 * H)))
        self._step(state, gx[:2 * H], gx[2 * H:], matvec, self._workspace(state.shape[1]))
        return self._pixels(state[:H], h.shape[0])

    def _encode(self, x: np.ndarray) -> np.ndarray:
        """(N, T) input codes -> the (H + 1, N') working state after the last encoder step."""
        H = self.hidden
        xs = self._units(x)  # (T, N')
        h = self._units(np.zeros((x.shape[0], H)), H + 1)
        work = self._workspace(h.shape[1])
        operand = np.ones((2, h.shape[1]), self.dtype)  # [x_t; 1]
        for x_t in xs:
            operand[0] = x_t
            self.enc_x(operand, work.gates)
            self._step(h, work.rz, work.n, self.enc_h, work)
        return h

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(N, T) input codes -> (N, H) final encoder state."""
        x = np.asarray(x)
        return self._pixels(self._encode(x)[:self.hidden], x.shape[0])

    def _decode(self, h: np.ndarray, n: int) -> np.ndarray:
        """(H + 1, N') working state -> (N, T, 3) SFD codes; `h` is advanced in place."""
        T, H = self.spec.n_bins, self.hidden
        sfd = np.empty((T, SFD_CHANNELS, h.shape[1]), self.dtype)
        work = self._workspace(h.shape[1])
        if self.dec_x is None:
            gx = self.dec_gx[:, None].astype(self.dtype)
        else:  # the encoder's state repeated: one input product per pixel, then a zero state
            gx = np.empty((3 * H, h.shape[1]), self.dtype)
            self.dec_x(h, gx)
            h[:H] = 0
        for t in range(T):
            self._step(h, gx[:2 * H], gx[2 * H:], self.dec_h, work)
            self.head(h, sfd[t])
        return sfd[:, :, :n].transpose(2, 0, 1).astype(np.int64)

    def decode(self, h: np.ndarray) -> np.ndarray:
        """(N, H) encoder final state -> (N, T, 3) SFD codes, one head output after every decoder
        step."""
        h = np.asarray(h)
        return self._decode(self._units(h, self.hidden + 1), h.shape[0])

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

    def run(self, counts: np.ndarray, *, chunk: int | None = None, threads: int | None = None,
            progress: bool = False) -> GoldenResult:
        """Raw counts (N, T) -> GoldenResult. Pixels are independent: chunks of at most `chunk`
        pixels (default `self.chunk`) run on threads (NumPy and BLAS release the GIL inside their
        kernels)."""
        counts = np.asarray(counts)
        if counts.ndim != 2 or counts.shape[1] != self.spec.n_bins:
            raise ValueError(f"counts must have shape (N, {self.spec.n_bins}), not {counts.shape}")
        # what the IP's input port can carry: whole, non-negative counts of its width
        counts = validate_counts(counts, n_bins=self.spec.n_bins)
        port = self.spec.fmt("counts")
        if counts.size and counts.max() > port.max_code:
            raise ValueError(f"counts reach {int(counts.max())}, beyond the IP's {port.width}-bit input "
                             f"(max {port.max_code})")
        n, chunk = counts.shape[0], chunk or self.chunk
        threads = threads or min(os.cpu_count() or 1, 8)
        # equal chunks of at most `chunk` pixels, as many for every thread
        pieces = min(-(-n // (chunk * threads)) * threads, n)
        bounds = [n * i // pieces for i in range(pieces + 1)] if n else []
        with ThreadPoolExecutor(threads) as pool:
            parts = pool.map(lambda i: self._run_chunk(counts[bounds[i]:bounds[i + 1]]), range(pieces))
            if progress:
                from tqdm import tqdm
                parts = tqdm(parts, total=pieces, unit="chunk", desc="golden model")
            parts = list(parts)
        if not parts:
            parts = [self._run_chunk(counts)]
        x = np.concatenate([p[0] for p in parts])
        sfd = np.concatenate([p[1] for p in parts])
        res = {name: np.concatenate([p[2][name] for p in parts]) for name in RESULTS}
        return GoldenResult(self.spec, x, sfd, **res)
