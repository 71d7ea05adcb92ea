"""The pixel engine in Amaranth's own simulator: every GRU state write of one pixel, unit by unit,
equals the golden model's state after the same step (encoder and decoder, both GRU cells)."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from flirtl.gateware.engine import PixelEngine
from flirtl.golden import GoldenModel
from flirtl.quant import quantize_model
from flirtl.reference import PlainReference
from golden_util import random_counts, random_weights

N_BINS, HIDDEN = 12, 8


def golden_states(golden: GoldenModel, counts: np.ndarray, model) -> list[list[int]]:
    """h after each of the 2T steps of one pixel (encoder then decoder); a RepeatVector decoder's
    bridge step between them writes the decoder's zero initial state."""
    spec = golden.spec
    x = golden.normalize(counts[None, :])
    h = np.zeros((1, spec.hidden), np.int64)
    states = []
    for t in range(spec.n_bins):
        acc = x[:, t:t + 1] * golden.enc_w_ih[None, :] + golden.enc_b_ih
        gx = golden._requant(acc, "enc.acc_x")
        h = golden.gru_step(h, gx, golden.enc_h)
        states.append(h[0].tolist())
    if spec.decoder_input == "encoder_state":
        gx = [PlainReference(model).affine("dec.acc_x", h[0].tolist(), range(3 * spec.hidden))]
        h = np.zeros_like(h)
        states.append(h[0].tolist())
    else:
        gx = golden.dec_gx[None, :]
    for _ in range(spec.n_bins):
        h = golden.gru_step(h, gx, golden.dec_h)
        states.append(h[0].tolist())
    return states


def engine_states(model, counts: np.ndarray, lanes=None) -> list[list[int]]:
    """Every GRU state write of the engine for one pixel, grouped by step (H units each)."""
    engine = PixelEngine(model, lanes=lanes)
    fragment = Fragment.get(engine, None)  # elaborates, so that engine.probes exists
    probes = engine.probes
    writes = []

    async def testbench(ctx):
        for t, count in enumerate(counts):
            ctx.set(engine.i.payload.data, int(count))
            ctx.set(engine.i.payload.last, t == len(counts) - 1)
            ctx.set(engine.i.valid, 1)
            await ctx.tick()
        ctx.set(engine.i.valid, 0)
        for _ in range(engine.cycles_per_pixel * engine.contexts + 500):
            if ctx.get(probes["write"]):
                writes.append((ctx.get(probes["unit"]), ctx.get(probes["h"])))
            await ctx.tick()

    sim = Simulator(fragment)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    hidden = model.spec.hidden
    assert [u for u, _ in writes] == list(range(hidden)) * engine.steps_per_pixel
    return [[h for _, h in writes[i:i + hidden]] for i in range(0, len(writes), hidden)]


@pytest.mark.parametrize("gru, lanes, decoder_input", [("pytorch", None, "zeros"), ("keras", 7, "zeros"),
                                                       ("pytorch", 13, "encoder_state"),
                                                       ("keras", None, "encoder_state")])
def test_state_writes_follow_the_golden_model(gru, lanes, decoder_input):
    model, _ = quantize_model(random_weights(HIDDEN, seed=5, decoder_input=decoder_input), 8, n_bins=N_BINS,
                              gru=gru, decoder_input=decoder_input)
    counts = random_counts(1, N_BINS, seed=6, max_photons=5000)[0]
    assert engine_states(model, counts, lanes) == golden_states(GoldenModel(model), counts, model)
