"""Time-resolved instruments: bins, instrument response family, photon budget, counting model.

An `Instrument` describes a class of acquisitions, not one measurement: every range is sampled per
pixel by `flirtl.fli.simulate`, so a model trained on it generalises across the class.

Time axis. Bin k starts at t = k*dt, measured from the start of the window. For a gated detector
(`irf_kind` 'gate' or 'iccd') bin k is the gate position: the gate opens at k*dt and stays open for
the gate width, so `counts[k] = integral decay(t) * gate(t - k*dt) dt`. For TCSPC ('gaussian') bin k
holds the photons that arrive in [k*dt, (k+1)*dt). The decay starts at the laser pulse, time t0
(`irf_position_range`), with the instrument response centred on it:

- 'gate' / 'iccd': gate(s) = a box of width W over [0, W] whose edges are blurred by Gaussian
  laser + timing jitter of standard deviation sigma (`gate_width_range`, `jitter_range`). The TPSF
  rises over the gate width, from gate position t0 - W to t0, then decays.
- 'gaussian': a Gaussian IRF with full width at half maximum `fwhm_range`, centred on t0.

Ranges not used by `irf_kind` are ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from ..spec import BACKGROUND_RULES

IRF_KINDS = ("gate", "iccd", "gaussian")
COUNTING_MODELS = ("poisson", "binomial")

#: Gaussian FWHM = FWHM_PER_SIGMA * sigma.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: The IRF counts as zero beyond this many sigma of an edge (Phi(-4) = 3e-5); the background bins
#: must lie that far before the rise.
EDGE_SIGMAS = 4.0

_RANGE_FIELDS = (
    "irf_position_range", "gate_width_range", "jitter_range", "fwhm_range",
    "tau_range", "photons_range", "background_range",
)


@dataclass(frozen=True)
class Instrument:
    """A class of time-resolved acquisitions; times in ns, counts in photons.

    Fields:
        name: preset name, stored with every simulated data set.
        n_bins: T, the number of time bins (gate positions for gated detectors).
        dt: bin width (gate step) in ns.
        irf_kind: 'gate' (gated SPAD), 'iccd' (intensified CCD gate) or 'gaussian' (TCSPC).
        irf_position_range: (lo, hi) of t0, the laser pulse = decay start, in ns from bin 0.
        gate_width_range: (lo, hi) gate width in ns ('gate', 'iccd').
        jitter_range: (lo, hi) standard deviation in ns of the Gaussian blur of both gate edges
            (laser pulse width and timing jitter together; 'gate', 'iccd').
        fwhm_range: (lo, hi) FWHM in ns of the Gaussian IRF ('gaussian').
        tau_range: (lo, hi) of both lifetimes in ns, drawn uniformly.
        photons_range: (lo, hi) expected signal photons per pixel (sum over bins), log-uniform.
        background_range: (lo, hi) expected background counts per bin (dark counts and ambient
            light, flat in time), drawn uniformly per pixel.
        mono_fraction: fraction of pixels that are mono-exponential (a = 1, tau2 = tau1).
        resolve_ratio, resolve_fraction: the labels (not the counts) of a pixel whose components
            are closer than tau2 / tau1 < resolve_ratio, or one of whose amplitude fractions is
            below resolve_fraction, are those of one component (a = 1, tau1 = tau2 = the
            amplitude-weighted lifetime): its decay cannot tell the two apart, and labels a decay
            cannot tell apart teach a model to split a single exponential into both (1.0 and 0.0:
            every pixel keeps its drawn labels).
        resolve_sigma: the same for a pixel whose lifetimes lie fewer than this many Cramer-Rao
            standard deviations apart, (tau2 - tau1) < resolve_sigma * hypot(sd tau1, sd tau2),
            its own photons, background and IRF deciding (`flirtl.fli.crlb`): a dim pixel or a weak
            component is one component, a bright well-split pixel keeps both (0.0: off).
        bg_bins: bins whose mean is the background estimate of the model input; a power of two (the
            hardware divides by a shift).
        background: which bins ('head': the first bg_bins, and the rise must come after them;
            'ends': the lesser of the first and the last bg_bins, so the decay may start anywhere,
            from bin 0 on).
        irf_measured: the response is a measured IRF (simulate(irf=...)): it places the decay
            itself, so irf_position_range and the IRF family's ranges play no part and the
            position check is the IRF's own (`check_measured_irf`).
        counting: 'poisson' (photon counting) or 'binomial' (1-bit SPAD frames with pile-up: per
            gate, `frames` binary frames, each detecting >= 1 photon with probability
            p = 1 - exp(-lambda/frames) for lambda expected photons over all of them).
        frames: binary frames per gate position for 'binomial' counting.
    """

    name: str
    n_bins: int
    dt: float
    irf_kind: str
    irf_position_range: tuple[float, float]
    gate_width_range: tuple[float, float] | None = None
    jitter_range: tuple[float, float] | None = None
    fwhm_range: tuple[float, float] | None = None
    tau_range: tuple[float, float] = (0.05, 3.0)
    photons_range: tuple[float, float] = (50.0, 10000.0)
    background_range: tuple[float, float] = (0.0, 2.0)
    mono_fraction: float = 0.2
    resolve_ratio: float = 1.0
    resolve_fraction: float = 0.0
    resolve_sigma: float = 0.0
    bg_bins: int = 4
    background: str = "head"
    irf_measured: bool = False
    counting: str = "poisson"
    frames: int = 10000

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Instrument.name must be a non-empty string, not {self.name!r}")
        _check_int("n_bins", self.n_bins, minimum=2)
        _check_positive("dt", self.dt)
        if self.irf_kind not in IRF_KINDS:
            raise ValueError(
                f"Instrument.irf_kind must be one of {IRF_KINDS}, not {self.irf_kind!r}")
        if self.counting not in COUNTING_MODELS:
            raise ValueError(
                f"Instrument.counting must be one of {COUNTING_MODELS}, not {self.counting!r}")
        _check_int("frames", self.frames, minimum=1)
        _check_int("bg_bins", self.bg_bins, minimum=1)
        if self.bg_bins & (self.bg_bins - 1):
            raise ValueError(f"Instrument.bg_bins must be a power of two, not {self.bg_bins!r}")
        if self.bg_bins >= self.n_bins:
            raise ValueError(
                f"Instrument.bg_bins ({self.bg_bins}) must be less than n_bins ({self.n_bins})")
        if self.background not in BACKGROUND_RULES:
            raise ValueError(
                f"Instrument.background must be one of {BACKGROUND_RULES}, not {self.background!r}")
        if (not isinstance(self.mono_fraction, (int, float)) or isinstance(self.mono_fraction, bool)
                or not 0.0 <= self.mono_fraction <= 1.0):
            raise ValueError(
                f"Instrument.mono_fraction must be a number in [0, 1], not {self.mono_fraction!r}")
        if (not isinstance(self.resolve_ratio, (int, float)) or isinstance(self.resolve_ratio, bool)
                or not 1.0 <= self.resolve_ratio < math.inf):
            raise ValueError(f"Instrument.resolve_ratio must be a number >= 1, not {self.resolve_ratio!r}")
        if (not isinstance(self.resolve_fraction, (int, float)) or isinstance(self.resolve_fraction, bool)
                or not 0.0 <= self.resolve_fraction < 0.5):
            raise ValueError(
                f"Instrument.resolve_fraction must be a number in [0, 0.5), not {self.resolve_fraction!r}")
        if (not isinstance(self.resolve_sigma, (int, float)) or isinstance(self.resolve_sigma, bool)
                or not 0.0 <= self.resolve_sigma < math.inf):
            raise ValueError(f"Instrument.resolve_sigma must be a finite number >= 0, not {self.resolve_sigma!r}")
        for name in _RANGE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                # frozen: normalise lists (e.g. from JSON) to tuples of floats once, here
                object.__setattr__(self, name, _check_range(name, value))
        if self.irf_position_range is None:
            raise ValueError("Instrument.irf_position_range is required")
        self._check_ranges()

    def _check_ranges(self):
        for name in ("tau_range", "photons_range"):
            if getattr(self, name)[0] <= 0:
                raise ValueError(
                    f"Instrument.{name} must lie inside (0, inf), not {getattr(self, name)!r}")
        if self.background_range[0] < 0:
            raise ValueError(
                f"Instrument.background_range must be >= 0, not {self.background_range!r}")
        if self.irf_kind == "gaussian":
            needed = ("fwhm_range",)
        else:
            needed = ("gate_width_range", "jitter_range")
        for name in needed:
            value = getattr(self, name)
            if value is None:
                raise ValueError(f"Instrument.{name} is required for irf_kind {self.irf_kind!r}")
            if value[0] <= 0:
                raise ValueError(f"Instrument.{name} must lie inside (0, inf), not {value!r}")
        t0_lo, t0_hi = self.irf_position_range
        if t0_hi >= self.window:
            raise ValueError(
                f"Instrument.irf_position_range {self.irf_position_range!r} must end before the "
                f"window ends at {self.window:g} ns ({self.n_bins} bins x {self.dt:g} ns)")
        if self.background == "ends" or self.irf_measured:
            # the tail's bins stand in for a head the decay has filled: any start inside the window
            if t0_lo < 0:
                raise ValueError(
                    f"Instrument.irf_position_range {self.irf_position_range!r} starts before the window")
            return
        # Earliest time at which the IRF rises: the background bins must all lie before it.
        if self.irf_kind == "gaussian":
            rise = t0_lo - EDGE_SIGMAS * self.fwhm_range[1] / FWHM_PER_SIGMA
        else:
            rise = t0_lo - self.gate_width_range[1] - EDGE_SIGMAS * self.jitter_range[1]
        if rise < self.bg_bins * self.dt - 1e-9:
            raise ValueError(
                f"Instrument.irf_position_range {self.irf_position_range!r} lets the TPSF rise at "
                f"{rise:.3g} ns, inside the {self.bg_bins} background bins "
                f"(0..{self.bg_bins * self.dt:.3g} ns); start it later, use fewer bg_bins, or "
                f"background='ends'")

    @property
    def window(self) -> float:
        """Length of the time window in ns."""
        return self.n_bins * self.dt

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Instrument":
        fields = json.loads(text)
        _check_fields(fields)
        return cls(**fields)


def check_measured_irf(instrument: Instrument, irf, *, source: str = "the measured IRF") -> None:
    """A measured IRF under the head background rule must rise after the background bins (its
    first sample above 1% of its peak), or the background estimate takes signal for background."""
    import numpy as np

    if instrument.background != "head":
        return
    irf = np.asarray(irf, np.float64)
    rise = int(np.argmax(irf >= 0.01 * irf.max()))
    if rise < instrument.bg_bins:
        raise ValueError(
            f"{source} rises at bin {rise} ({rise * instrument.dt:.3g} ns), inside the "
            f"{instrument.bg_bins} background bins (0..{instrument.bg_bins * instrument.dt:.3g} ns): the "
            f"background estimate would take signal for background; use --background ends")


def _check_fields(fields: dict):
    known = {f.name for f in dataclasses.fields(Instrument)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"unknown Instrument field(s) {', '.join(map(repr, unknown))}; "
            f"fields are {', '.join(sorted(known))}")


def _check_int(name, value, *, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"Instrument.{name} must be an int >= {minimum}, not {value!r}")


def _check_positive(name, value):
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or value <= 0):
        raise ValueError(f"Instrument.{name} must be a finite number > 0, not {value!r}")


def _check_range(name, value) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"Instrument.{name} must be a (lo, hi) pair of numbers, not {value!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"Instrument.{name} must be finite with lo <= hi, not {value!r}")
    return (lo, hi)


PRESETS: dict[str, Instrument] = {
    # Gated SPAD (SwissSPAD3, as the reference work): 135 gate positions 0.09 ns apart, 1-3 ns
    # gates. The laser pulse comes late enough for the widest, most blurred gate to rise after
    # the 4 background bins.
    "ss3": Instrument(
        name="ss3", n_bins=135, dt=0.09, irf_kind="gate",
        irf_position_range=(4.2, 5.2), gate_width_range=(1.0, 3.0), jitter_range=(0.05, 0.2),
    ),
    # ICCD: ~0.3 ns gate stepped by 0.04 ns.
    "iccd160": Instrument(
        name="iccd160", n_bins=160, dt=0.04, irf_kind="iccd",
        irf_position_range=(0.8, 1.6), gate_width_range=(0.25, 0.35), jitter_range=(0.02, 0.06),
    ),
    # TCSPC: 256 bins of 48.9 ps, Gaussian IRF.
    "tcspc256": Instrument(
        name="tcspc256", n_bins=256, dt=0.0489, irf_kind="gaussian",
        irf_position_range=(1.0, 2.5), fwhm_range=(0.15, 0.4),
    ),
}


def get_instrument(name: str, **overrides) -> Instrument:
    """The preset `name` with fields replaced by `overrides` (validated like any Instrument)."""
    if name not in PRESETS:
        raise ValueError(
            f"unknown instrument preset {name!r}; choose one of {', '.join(map(repr, PRESETS))}")
    _check_fields(overrides)
    return dataclasses.replace(PRESETS[name], **overrides)
