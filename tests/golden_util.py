"""Shared test helpers: random Seq2SeqLite weights, random pixels, float references."""

import numpy as np

from flirtl import arith
from flirtl.quant import activation_io, activation_table, pwl_segments, pwl_slope_frac
from flirtl.spec import ModelSpec, weight_shapes


def random_weights(hidden: int, seed: int = 0, scale: float = 0.4,
                   decoder_input: str = "zeros") -> dict[str, np.ndarray]:
    """Float weights in PyTorch layout, of the magnitude a trained Seq2SeqLite has."""
    rng = np.random.default_rng(seed)
    weights = {name: rng.normal(0, scale, shape) for name, shape in weight_shapes(hidden, decoder_input).items()}
    # keep the SFD inside its [-2, 2) format, as a trained head's is
    weights["head.w"] *= 1 / np.sqrt(hidden)
    return weights


def random_counts(n: int, n_bins: int, seed: int = 0, max_photons: float = 5000.0) -> np.ndarray:
    """Gated-SPAD-like pixels: background, a rise, an exponential decay, Poisson noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_bins)
    start = rng.uniform(n_bins / 10, n_bins / 3, (n, 1))
    tau = rng.uniform(n_bins / 40, n_bins / 4, (n, 1))
    shape = np.where(t >= start, np.exp(-(t - start) / tau), 0.0)
    photons = np.exp(rng.uniform(np.log(50), np.log(max_photons), (n, 1)))
    rate = photons * shape / shape.sum(axis=1, keepdims=True) + rng.uniform(0, 2, (n, 1))
    return rng.poisson(rate)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def float_seq2seq(weights: dict, x: np.ndarray, gru: str = "pytorch") -> np.ndarray:
    """Float64 reference of the encoder-decoder on (N, T) inputs; both GRU variants, and the
    RepeatVector wiring where the weights hold the decoder's W_ih."""
    hidden = weights["enc.w_hh"].shape[1]

    def step(h, gx, w_hh, b_hh):
        H = hidden
        if gru == "pytorch":
            gh = h @ w_hh.T + b_hh
            r = sigmoid(gx[:, :H] + gh[:, :H])
            z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
            n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        else:
            gh = h @ w_hh[:2 * H].T + b_hh[:2 * H]
            r = sigmoid(gx[:, :H] + gh[:, :H])
            z = sigmoid(gx[:, H:2 * H] + gh[:, H:])
            n = np.tanh(gx[:, 2 * H:] + (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:])
        return n + z * (h - n)

    h = np.zeros((x.shape[0], hidden))
    for t in range(x.shape[1]):
        gx = x[:, t:t + 1] @ weights["enc.w_ih"].T + weights["enc.b_ih"]
        h = step(h, gx, weights["enc.w_hh"], weights["enc.b_hh"])
    gx = weights["dec.b_ih"][None, :]
    if "dec.w_ih" in weights:  # the decoder reads the encoder's state at every step, from zero
        gx, h = h @ weights["dec.w_ih"].T + gx, np.zeros_like(h)
    out = []
    for _ in range(x.shape[1]):
        h = step(h, gx, weights["dec.w_hh"], weights["dec.b_hh"])
        out.append(h @ weights["head.w"].T + weights["head.b"])
    return np.stack(out, axis=1)


def reference_activation(spec: ModelSpec, kind: str, preact: np.ndarray) -> np.ndarray:
    """sigmoid / tanh codes of pre-activation codes, straight from the primitives and the ROMs."""
    addr, out = activation_io(spec, kind)
    src = spec.fmt("preact").frac_bits
    if spec.activation.method == "table":
        return arith.table_lookup(preact, src, addr, activation_table(spec, kind), spec.rounding)
    base, slope = pwl_segments(spec, kind)
    return arith.pwl_lookup(preact, src, addr, base, slope, pwl_slope_frac(spec, kind),
                            spec.activation.segment_bits, out, spec.rounding)
