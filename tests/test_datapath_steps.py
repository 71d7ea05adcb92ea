"""The datapath's rounding steps come from one table, `ModelSpec.requantizations`: every copy of the
datapath reads it. Changed in one place, the table changes the integer copies (golden model, plain
reference, gateware) alike: if a copy restated a step's bits, it would part from the others here.
QAT holds real values, so a step's fractional bits are implicit there; it takes each step's
destination format from the table (tests/test_qat.py holds it equal to the golden model)."""

import numpy as np
import pytest

from flirtl.golden import GoldenModel
from flirtl.quant import quantize_model
from flirtl.reference import PlainReference
from flirtl.spec import ModelSpec, Requantization
from golden_util import random_counts, random_weights
from test_gateware_engine import engine_states, golden_states

N_BINS, HIDDEN = 12, 8


def test_steps_follow_the_formats():
    spec = ModelSpec.build(8, hidden=HIDDEN, overrides={"gate": "u2.8"})
    steps = spec.requantizations()
    frac = lambda name: spec.fmt(name).frac_bits  # noqa: E731
    assert steps["reset"] == Requantization(frac("gate") + frac("preact"), "preact")
    assert steps["blend"] == Requantization(frac("gate") + frac("hidden"), "hidden")
    assert steps["head.acc"] == Requantization(frac("head.acc"), "sfd")
    assert spec.replace(gru="keras").requantizations()["reset"] == Requantization(frac("gate") + frac("hidden"), "hidden")
    assert "dec.gx" not in spec.replace(decoder_input="encoder_state", formats=ModelSpec.build(
        8, hidden=HIDDEN, decoder_input="encoder_state").formats).requantizations()


def coarser_reset(monkeypatch):
    """The reset product rounded as if it carried one more fractional bit (halved): a different
    datapath that every copy must take from the table."""
    table = ModelSpec.requantizations

    def patched(spec):
        steps = table(spec)
        steps["reset"] = Requantization(steps["reset"].src_frac + 1, steps["reset"].dst)
        return steps

    monkeypatch.setattr(ModelSpec, "requantizations", patched)


@pytest.mark.parametrize("gru", ["pytorch", "keras"])
def test_integer_copies_read_the_table(gru, monkeypatch):
    model, _ = quantize_model(random_weights(HIDDEN, seed=3), 8, n_bins=N_BINS, gru=gru)
    counts = random_counts(6, N_BINS, seed=4)
    before = GoldenModel(model).run(counts).sfd
    coarser_reset(monkeypatch)
    golden = GoldenModel(model).run(counts)
    assert not np.array_equal(golden.sfd, before)  # the step matters
    plain = PlainReference(model)
    assert np.array_equal(golden.sfd, np.array([plain.run(pixel)["sfd"] for pixel in counts]))
    # the gateware: every state write of a pixel, unit by unit
    assert engine_states(model, counts[0]) == golden_states(GoldenModel(model), counts[0], model)
