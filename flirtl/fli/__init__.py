"""Fluorescence lifetime data: simulation, model input, lifetime extraction, measured IRFs.

`simulate` draws TPSFs of an `Instrument` (a preset from `PRESETS` via `get_instrument`) with their
labels and SFD targets; `normalize_tpsf` turns raw counts into model input; `lifetimes_from_sfd`
turns an SFD into tau1, tau2, a and the mean lifetime; `expected_counts` is the noise-free forward
model (for fitting); `load_irf` reads a measured IRF; `crlb` gives the Cramer-Rao bound of each
pixel's lifetimes (the physical limit of any unbiased estimator), `separable` the pixels whose two
components can be told apart.
"""

from .crlb import crlb, fisher_information, separable
from .forward import expected_counts
from .instrument import COUNTING_MODELS, IRF_KINDS, PRESETS, Instrument, check_measured_irf, get_instrument
from .irf_io import check_irf, load_irf
from .lifetime import lifetimes_from_sfd, tau_from_ratio, tau_mean
from .preprocess import normalize_tpsf, validate_counts
from .simulate import BLOCK, counts_dtype, load_npz, simulate, write_npz

__all__ = [
    "BLOCK", "COUNTING_MODELS", "IRF_KINDS", "PRESETS", "Instrument", "check_irf", "check_measured_irf", "counts_dtype",
    "crlb", "fisher_information", "separable",
    "expected_counts", "get_instrument", "lifetimes_from_sfd", "load_irf", "load_npz",
    "normalize_tpsf", "simulate", "tau_from_ratio", "tau_mean", "validate_counts", "write_npz",
]
