"""Model-input normalisation and count validation."""

import numpy as np
import pytest

from flirtl.fli import normalize_tpsf, validate_counts


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
