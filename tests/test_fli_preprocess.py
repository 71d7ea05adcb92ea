"""Model-input normalisation and count validation."""

import numpy as np
import pytest

from flirtl.fli import normalize_tpsf, validate_counts
from flirtl.fli.preprocess import background_sum


def test_background_subtracted_clipped_and_peak_normalised():
    counts = np.array([[2, 4, 3, 3, 23, 13, 1, 3],
                       [0, 0, 0, 0, 0, 0, 0, 0],
                       [5, 5, 5, 5, 5, 5, 5, 5]], dtype=np.uint16)
    tpsf = normalize_tpsf(counts, bg_bins=4)
    assert tpsf.dtype == np.float32
    np.testing.assert_allclose(tpsf[0], [0, 1, 0, 0, 20, 10, 0, 0] / np.float32(20))
    np.testing.assert_array_equal(tpsf[1:], 0)  # no peak above background: zeros, never NaN


def test_any_leading_shape():
    counts = np.random.default_rng(0).poisson(20, (3, 4, 16))
    tpsf = normalize_tpsf(counts, bg_bins=2)
    assert tpsf.shape == (3, 4, 16)
    np.testing.assert_array_equal(tpsf[1, 2], normalize_tpsf(counts[1, 2], bg_bins=2))
    np.testing.assert_allclose(tpsf.max(axis=-1), 1.0)


@pytest.mark.parametrize("counts, message", [
    (np.array([1.0, np.nan, 2.0, 3.0]), "NaN/inf"),
    (np.array([1.0, np.inf, 2.0, 3.0]), "NaN/inf"),
    (np.array([1, -2, 2, 3]), "non-negative, found -2 at flat index 1"),
    (np.array(5), "scalar"),
    (np.array(["a", "b"]), "numeric"),
])
def test_bad_counts_are_named(counts, message):
    with pytest.raises(ValueError, match=message):
        normalize_tpsf(counts, bg_bins=1)


def test_bad_bg_bins_is_named():
    with pytest.raises(ValueError, match=r"bg_bins must be an int in \[1, 3\], not 4"):
        normalize_tpsf(np.ones(4), bg_bins=4)


def test_validate_counts():
    counts = np.ones((2, 135), dtype=np.uint16)
    assert validate_counts(counts, n_bins=135) is counts
    validate_counts(np.ones(135), n_bins=135)  # integer-valued floats are counts too
    with pytest.raises(ValueError, match="counts has 140 time bins, the model expects 135"):
        validate_counts(np.ones((2, 140)), n_bins=135)
    with pytest.raises(ValueError, match="integer photon counts, found 0.5"):
        validate_counts(np.full(135, 0.5), n_bins=135)
    with pytest.raises(ValueError, match="non-negative"):
        validate_counts(-np.ones(135, dtype=int), n_bins=135)


def test_background_from_the_lesser_end():
    """Rule 'ends': an early decay fills the head, so the tail (the end with fewer counts) is the
    background; a late one the reverse; the head rule takes the first bins whatever they hold."""
    early = np.array([[9, 8, 7, 6, 5, 4, 3, 2, 1, 1]])   # decay from bin 0, tail near background 1
    late = early[:, ::-1]
    for counts, level in ((early, 1.0), (late, 1.0)):
        tpsf = normalize_tpsf(counts, bg_bins=2, background="ends")
        expected = np.clip(counts - level, 0, None) / (counts.max() - level)
        np.testing.assert_allclose(tpsf, expected, rtol=1e-6)
    head = normalize_tpsf(early, bg_bins=2)
    np.testing.assert_allclose(head[0, :2], [1.0, 0.0])  # 8.5 taken as background: signal lost
    with pytest.raises(ValueError, match="background rule"):
        normalize_tpsf(early, bg_bins=2, background="tail")


def test_golden_normalisation_follows_the_spec_rule():
    """The IP's integer normalisation picks the same bins as the float reference."""
    from flirtl.golden import normalize_counts
    from flirtl.spec import ModelSpec

    rng = np.random.default_rng(5)
    counts = rng.poisson(rng.uniform(0, 50, (200, 1)) * np.exp(-np.arange(24) / rng.uniform(2, 9, (200, 1))))
    counts[::2] = counts[::2, ::-1]  # half the pixels decay towards the head instead
    for rule in ("head", "ends"):
        spec = ModelSpec.build(8, hidden=4, n_bins=24, background=rule)
        ours = normalize_counts(spec, counts) * spec.fmt("input").lsb
        ref = normalize_tpsf(counts, bg_bins=4, background=rule)
        # the integer background rounds the mean to whole counts; compare where it is whole
        whole = (background_sum(counts, bg_bins=4, rule=rule) % 4 == 0)
        np.testing.assert_allclose(ours[whole], ref[whole], atol=2 * spec.fmt("input").lsb)
    assert ModelSpec.from_json(spec.to_json()).background == "ends"
    older = spec.to_json()
    del older["background"]
    assert ModelSpec.from_json(older).background == "head"  # spec.json written before the rule
