"""A plain integer reference of the IP: one pixel at a time, Python integers, every step spelled out.

It computes what `flirtl.golden` computes (raw counts -> normalised input -> GRU encoder-decoder ->
SFD -> tau1, tau2, a, tau_mean codes) in the most direct way there is, to check the golden model
against something that shares none of its code: no NumPy arithmetic, no float datapaths, no folded
scales, no `flirtl.arith`, its own normalisation and lifetime extraction. What it takes from the
package is the specification itself: the spec's formats, modes and rounding steps
(`ModelSpec.requantizations`), the weight codes, and the ROM contents (activation tables, PWL
segments, lifetime table), which are data both must read.

Slow by design (about a millisecond per GRU step of a 32-unit model): tests run it on a few pixels.
"""

from __future__ import annotations

from .quant import QuantizedModel, activation_io, activation_table, lifetime_table, pwl_segments, pwl_slope_frac
from .spec import SFD_CHANNELS, QFormat

__all__ = ["PlainReference"]


# -- fixed-point steps on Python integers ------------------------------------------------------------

def shift(code: int, amount: int, rounding: str) -> int:
    """code * 2**-amount: a right shift rounding half up (add half an LSB, then floor) or down
    (floor), or an exact left shift for a negative amount. Python's >> floors, as hardware does."""
    if amount <= 0:
        return code << -amount
    if rounding == "half_up":
        code += 1 << (amount - 1)
    return code >> amount


def fit(code: int, fmt: QFormat, overflow: str) -> int:
    """A code brought into `fmt`: clamped (saturate) or its low bits kept (wrap, two's complement)."""
    if overflow == "saturate":
        return min(max(code, fmt.min_code), fmt.max_code)
    low = code & ((1 << fmt.width) - 1)
    if fmt.signed and low >> (fmt.width - 1):
        low -= 1 << fmt.width
    return low


def requantize(code: int, src_frac: int, dst: QFormat, rounding: str, overflow: str) -> int:
    return fit(shift(code, src_frac - dst.frac_bits, rounding), dst, overflow)


class PlainReference:
    """The IP of a quantized model, pixel by pixel: `run(pixel)` maps T raw counts to a dict of
    `input` (T codes), `sfd` (T x 3 codes) and `tau1`, `tau2`, `a`, `tau_mean` codes."""

    def __init__(self, model: QuantizedModel):
        self.spec = spec = model.spec
        self.codes = {name: code.tolist() for name, code in model.codes.items()}  # nested Python ints
        self.rounding, self.overflow = spec.rounding, spec.overflow
        self.steps = spec.requantizations()
        self.tables = {}
        for kind in ("sigmoid", "tanh"):
            if spec.activation.method == "table":
                self.tables[kind] = activation_table(spec, kind).tolist()
            else:
                base, slope = pwl_segments(spec, kind)
                self.tables[kind] = (base.tolist(), slope.tolist(), pwl_slope_frac(spec, kind))
        self.lifetime_rom = lifetime_table(spec).tolist()

    def fmt(self, name: str) -> QFormat:
        return self.spec.fmt(name)

    def requantize(self, code: int, step: str) -> int:
        """`code` rounded as the spec's step `step` (`ModelSpec.requantizations`)."""
        step = self.steps[step]
        return requantize(code, step.src_frac, self.fmt(step.dst), self.rounding, self.overflow)

    # -- 1. normalisation: (counts - background) * (1 / peak) ------------------------------------

    def normalize(self, counts: list[int]) -> list[int]:
        spec = self.spec
        # background: mean of the first bg_bins (a power of two) counts, rounded half up
        background = shift(sum(counts[:spec.bg_bins]), spec.bg_bins.bit_length() - 1, "half_up")
        signal = [max(count - background, 0) for count in counts]
        peak = max(signal)
        reciprocal = (1 << spec.recip_frac) // peak if peak > 0 else 0  # the one divide per pixel
        return [self.requantize(s * reciprocal, "input") for s in signal]

    # -- 2. and 3. the GRU encoder-decoder and the head ----------------------------------------------

    def affine(self, acc: str, operand: list[int], rows: range) -> list[int]:
        """Rows of accumulator `acc`'s W v + b, exact in the accumulator (bias aligned to it),
        then rounded as its step."""
        weight, _operand, bias, _terms = self.spec.matvecs()[acc]
        acc_frac = self.steps[acc].src_frac
        out = []
        for row in rows:
            total = shift(self.codes[bias][row], self.fmt(bias).frac_bits - acc_frac, self.rounding)
            for w, v in zip(self.codes[weight][row], operand):
                total += w * v
            out.append(self.requantize(total, acc))
        return out

    def activate(self, kind: str, preact: int) -> int:
        addr, out = activation_io(self.spec, kind)
        index = requantize(preact, self.fmt("preact").frac_bits, addr, self.rounding, "saturate") - addr.min_code
        if self.spec.activation.method == "table":
            return self.tables[kind][index]
        base, slope, slope_frac = self.tables[kind]
        offset_bits = addr.width - self.spec.activation.segment_bits
        segment, offset = index >> offset_bits, index & ((1 << offset_bits) - 1)
        step = shift(slope[segment] * offset, slope_frac - out.frac_bits, self.rounding)
        return fit(base[segment] + step, out, "saturate")

    def gru_step(self, h: list[int], gx: list[int], layer: str) -> list[int]:
        """h' = n + z (h - n), r = sig(gx_r + gh_r), z = sig(gx_z + gh_z), and n = tanh(gx_n + r gh_n)
        (PyTorch, reset after) or n = tanh(gx_n + W_hn (r h) + b_hn) (Keras, reset before)."""
        H, fmt = self.spec.hidden, self.fmt
        acc = f"{layer}.acc_h"
        g = fmt("gate").frac_bits

        def preact(value: int) -> int:
            return fit(value, fmt("preact"), self.overflow)

        gh_rz = self.affine(acc, h, range(2 * H))
        r = [self.activate("sigmoid", preact(gx[i] + gh_rz[i])) for i in range(H)]
        z = [self.activate("sigmoid", preact(gx[H + i] + gh_rz[H + i])) for i in range(H)]
        if self.spec.gru == "pytorch":
            gh_n = self.affine(acc, h, range(2 * H, 3 * H))
            reset = [self.requantize(r[i] * gh_n[i], "reset") for i in range(H)]
        else:
            rh = [self.requantize(r[i] * h[i], "reset") for i in range(H)]
            reset = self.affine(acc, rh, range(2 * H, 3 * H))
        new = []
        for i in range(H):
            n = self.requantize(self.activate("tanh", preact(gx[2 * H + i] + reset[i])), "candidate")
            new.append(self.requantize((n << g) + z[i] * (h[i] - n), "blend"))
        return new

    def sfd(self, x: list[int]) -> list[list[int]]:
        H, T = self.spec.hidden, self.spec.n_bins
        h = [0] * H
        for sample in x:  # encoder: input size 1
            gx = self.affine("enc.acc_x", [sample], range(3 * H))
            h = self.gru_step(h, gx, "enc")
        if self.spec.decoder_input == "encoder_state":
            # decoder: the encoder's final state at every step (RepeatVector), from a zero state
            gx = self.affine("dec.acc_x", h, range(3 * H))
            h = [0] * H
        else:
            # decoder: all-zero inputs, so gx is its input bias
            gx = [self.requantize(b, "dec.gx") for b in self.codes["dec.b_ih"]]
        out = []
        for _ in range(T):
            h = self.gru_step(h, gx, "dec")
            out.append(self.affine("head.acc", h, range(SFD_CHANNELS)))
        return out

    # -- 4. lifetimes: running sums, one divide each, the lifetime table ----------------------------

    def lifetimes(self, sfd: list[list[int]]) -> dict[str, int]:
        spec, ratio_frac = self.spec, self.fmt("ratio").frac_bits
        first = sfd[0]
        sums = [sum(step[channel] for step in sfd) for channel in range(SFD_CHANNELS)]

        def tau(channel: int) -> int:
            if first[channel] <= 0 or sums[channel] <= 0:
                return self.lifetime_rom[0]  # undefined ratio: entry 0 (0 ns)
            ratio = (sums[channel] << ratio_frac) // first[channel]
            return self.lifetime_rom[min(ratio, spec.ratio_entries - 1)]

        tau1, tau2 = tau(1), tau(2)
        fraction_bits = self.fmt("fraction").frac_bits
        short, long_ = max(first[1], 0), max(first[2], 0)
        a = (short << fraction_bits) // (short + long_) if short + long_ > 0 else 0
        mean = shift(a * tau1 + ((1 << fraction_bits) - a) * tau2, fraction_bits, self.rounding)
        return {"tau1": tau1, "tau2": tau2, "a": a, "tau_mean": mean}

    def run(self, pixel) -> dict:
        x = self.normalize([int(count) for count in pixel])
        sfd = self.sfd(x)
        return {"input": x, "sfd": sfd, **self.lifetimes(sfd)}
