"""Raw photon counts from the files microscopes and cameras write, with their time axis.

`read_decay` reads Becker & Hickl `.sdt`, PicoQuant `.ptu` (T3 TTTR records, histogrammed here),
TIFF stacks and `.npy` arrays into a `Decay`: integer counts of shape (H, W, T) or (N, T), the time
axis last, and the bin width dt in ns where the file records one. `match_time_axis` brings a decay
to a model's T and dt by summing whole bins and cropping, or refuses with the reason.

Every problem with a file (missing, empty, unknown extension, corrupt or truncated, a shape or an
argument that does not fit) raises FileNotFoundError or `CountsFileError` (a ValueError) naming the
file; errors of the format libraries are wrapped, with the library's message.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import warnings
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import numpy as np

from .fli import validate_counts
from .fli.preprocess import background_sum

#: Extension (lower case) -> format name, the formats `read_decay` reads.
FORMATS = {
    ".sdt": "Becker & Hickl SDT",
    ".ptu": "PicoQuant PTU",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".npy": "NumPy .npy",
}

#: A `dt` argument counts as agreeing with the file's own bin width within this relative error.
DT_AGREEMENT = 1e-3

# OME-XML time units -> ns, for the Step of a lifetime (Modulo) axis
_NS_PER_UNIT = {"s": 1e9, "ms": 1e6, "us": 1e3, "\u00b5s": 1e3, "ns": 1.0, "ps": 1e-3, "fs": 1e-6}


class CountsFileError(ValueError):
    """A counts file that cannot be used as it is; the message names the file and the problem."""


@dataclass(frozen=True)
class Decay:
    """Photon counts with their time axis.

    counts: unsigned or non-negative integer array (H, W, T) or (N, T), time last (or, for a
        memory-mapped .npy of floats, whole-number floats, checked by `read_decay`). Bin k starts
        k*dt after the start of the file's window: a TCSPC bin, or a gated camera's gate position.
    dt: bin width in ns, or None when the file does not record it (.npy, plain TIFF).
    source: the file and what was taken from it (format, channel, frames), for messages.
    """

    counts: np.ndarray
    dt: float | None
    source: str

    def __post_init__(self):
        mapped_floats = self.counts.dtype.kind == "f" and isinstance(self.counts, np.memmap)
        if self.counts.dtype.kind not in "ui" and not mapped_floats:
            raise ValueError(f"{self.source}: counts must be integers, not dtype {self.counts.dtype}")
        if self.counts.ndim not in (2, 3) or self.counts.shape[-1] < 2 or not self.counts.size:
            raise ValueError(
                f"{self.source}: counts must have shape (N, T) or (H, W, T) with T >= 2 and at "
                f"least one pixel, not {self.counts.shape}")
        if self.dt is not None and not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"{self.source}: dt must be a positive number of ns, not {self.dt!r}")

    @property
    def n_bins(self) -> int:
        return self.counts.shape[-1]


def read_decay(path, *, channel: int | None = None, frame: int | None = None,
               dt: float | None = None, time_axis: int | None = None) -> Decay:
    """The photon counts of one detector channel of a FLIM file, time axis last.

    - `.sdt` (Becker & Hickl): one data block; `channel` picks the block when there are several.
      dt from the file's TAC range and ADC resolution.
    - `.ptu` (PicoQuant T3 TTTR): the photon records histogrammed per pixel into the bins of one
      laser period (`number_bins_in_period` bins of the file's TCSPC resolution; the few photons
      the TDC timed beyond the period are left out). `channel` is an index into the file's active
      detector channels, needed when there are several; `frame` takes one frame, by default all
      frames are summed.
    - TIFF: the first series. An OME-TIFF lifetime axis (Modulo, axis 'H' in tifffile) is the time
      axis, and its Step and Unit give dt. Otherwise the time axis is `time_axis`, by default 0:
      one page per time bin or gate position, as time-gated cameras save their sequences; pass
      `time_axis=-1` for an (H, W, T) array. Singleton axes are dropped.
    - `.npy`: an (N, T) or (H, W, T) array, time last (the shape `flirtl infer` takes), or
      `time_axis` elsewhere.

    `dt` (ns) is the bin width of a file that records none; for a file that records one it must
    agree (relative error below DT_AGREEMENT). With neither, `Decay.dt` is None. Arguments a format
    has no use for (a channel of a .npy, the time axis of a PTU) are refused, never ignored.
    """
    path = os.fspath(path)
    label = f"counts file {path!r}"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{label} does not exist")
    if not os.path.isfile(path):
        raise CountsFileError(f"{label} is not a file")
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        known = ", ".join(f"{ext} ({name})" for ext, name in FORMATS.items())
        raise CountsFileError(f"{label} has an unknown extension {extension!r}; flirtl reads {known}")
    if os.path.getsize(path) == 0:
        raise CountsFileError(f"{label} is empty")
    if dt is not None and not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise CountsFileError(f"{label}: dt must be a positive number of ns, not {dt!r}")
    fmt = FORMATS[extension]
    options = dict(channel=channel, frame=frame, time_axis=time_axis)
    try:
        with open(path, "rb") as file:
            if extension == ".sdt":
                counts, file_dt, detail = _read_sdt(file, label, **options)
            elif extension == ".ptu":
                counts, file_dt, detail = _read_ptu(file, label, **options)
            elif extension == ".npy":
                counts, file_dt, detail = _read_npy(file, label, **options)
            else:
                counts, file_dt, detail = _read_tiff(file, label, **options)
    except (CountsFileError, MemoryError):
        raise
    except Exception as error:  # each library fails on a damaged file in its own way
        raise CountsFileError(
            f"{label} is not a readable {fmt} file (corrupt or truncated?): "
            f"{type(error).__name__}: {_shortened(str(error))}") from error
    source = f"{label} ({fmt}{', ' + detail if detail else ''})"
    if file_dt is not None and dt is not None and abs(dt - file_dt) > DT_AGREEMENT * file_dt:
        raise CountsFileError(f"{source} records bins of {file_dt:.6g} ns, not dt={dt!r}")
    if file_dt is None and dt is not None:
        file_dt, source = float(dt), f"{source}, dt {dt:g} ns given"
    return Decay(_as_counts(counts, source), file_dt, source)


def match_time_axis(decay: Decay, n_bins: int, dt: float, *, peak_bin: int | None = None,
                    rtol: float = 0.01, bg_bins: int = 4) -> Decay:
    """The decay on a model's time axis: `n_bins` bins of `dt` ns.

    Adjacent bins are summed in groups of the integer factor nearest dt / decay.dt (counts stay
    integers and each bin stays a Poisson count: splitting or interpolating bins would make up
    counts with the wrong statistics, so it is never done; summed gate positions of a gated camera
    act as one gate a step wider). The summed bin width must be within
    `rtol` of dt: the model reads time in bins, so a bin width off by x% turns into lifetimes off by
    x%; past that the instrument needs its own model (`flirtl train student --preset ...` with its
    T and dt). Bins left over at the end of the window are dropped.

    Then `n_bins` bins are kept: from the first, or, with `peak_bin`, those that put the peak of the
    whole image's decay at bin `peak_bin` (where the model's training data had it). Where that
    needs bins before the file's first or after its last, or bins that hold no count in any pixel
    at either end (a TCSPC module's window narrower than the file's), each pixel is padded with its
    own background level (the lesser of the means of its first and last `bg_bins` bins, rounded), with a
    warning: those counts are made up. Without `peak_bin` a window shorter than the model's is
    refused: padding by default would hide that the window does not fit.

    A decay of unknown bin width (dt None) is refused: a guessed bin width turns into lifetimes off
    by as much (give the file's dt; `flirtl infer --dt model` confirms the model's).
    """
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 2):
        raise ValueError(f"n_bins must be an int >= 2, not {n_bins!r}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of ns, not {dt!r}")
    model = f"the model's {n_bins} bins of {dt:.4g} ns"
    if decay.dt is None:
        raise CountsFileError(
            f"{decay.source} has {decay.n_bins} time bins of unrecorded width; the model expects "
            f"{n_bins} bins of {dt:.4g} ns: give the file's bin width with --dt NS (--dt model "
            f"confirms the model's)")
    factor = max(1, round(dt / decay.dt))
    width = factor * decay.dt
    if abs(width - dt) > rtol * dt:
        raise CountsFileError(
            f"{decay.source} has bins of {decay.dt:.4g} ns; the nearest whole number of them "
            f"({factor}) spans {width:.4g} ns, {abs(width - dt) / dt:.1%} from {model} (rtol {rtol:g}), "
            f"and lifetimes would be off by as much: train a model for this instrument "
            f"(flirtl train student --preset ... with its T and dt)")
    counts = decay.counts
    if factor > 1:
        # strided slices, one per position in a group: an order of magnitude faster than a reshaped
        # sum over a short last axis
        end = counts.shape[-1] // factor * factor
        summed = counts[..., 0:end:factor].astype(np.promote_types(counts.dtype, np.uint32))
        for offset in range(1, factor):
            summed += counts[..., offset:end:factor]
        counts = summed.astype(np.int64) if summed.dtype.kind == "f" else summed  # in memory now
    available = counts.shape[-1]
    detail = f"{factor} bins summed per bin, " if factor > 1 else ""
    if peak_bin is None:
        if available < n_bins:
            raise CountsFileError(
                f"{decay.source} spans {available} bins of {width:.4g} ns, shorter than {model}: "
                f"--peak-bin aligns the decay and pads with the background level, or train a model "
                f"for this instrument's window")
        return Decay(counts[..., :n_bins], width, f"{decay.source}, {detail}bins 0..{n_bins - 1} of {available}")
    if not (isinstance(peak_bin, (int, np.integer)) and 0 <= peak_bin < n_bins):
        raise CountsFileError(f"--peak-bin must be a bin of the model's window, 0..{n_bins - 1}, not {peak_bin!r}")
    total = np.float64 if counts.dtype.kind == "f" else np.uint64
    summed = counts.reshape(-1, available).sum(axis=0, dtype=total)
    lit = np.flatnonzero(summed)
    # bins empty in every pixel at either end recorded nothing (a TAC window narrower than the
    # file's): they are no background, so they are padded like bins beyond the window
    first, last = (int(lit[0]), int(lit[-1])) if lit.size else (0, available - 1)
    peak = int(np.argmax(summed))
    start = peak - peak_bin
    before, after = max(0, first - start), max(0, start + n_bins - 1 - last)
    kept = counts[..., max(first, start):min(last + 1, start + n_bins)]
    if before or after:
        # each pixel's background level: the lesser end, where its decay is not (as rule 'ends')
        recorded = counts[..., first:last + 1]
        level = np.rint(background_sum(recorded, bg_bins=bg_bins, rule="ends") / bg_bins).astype(counts.dtype)
        kept = np.concatenate([np.repeat(level[..., None], before, axis=-1), kept,
                               np.repeat(level[..., None], after, axis=-1)], axis=-1)
        empty = f" (bins outside {first}..{last} hold no count in any pixel)" if first or last < available - 1 else ""
        warnings.warn(f"{decay.source}: its decay peaks at bin {peak}; putting it at bin {peak_bin} of "
                      f"{n_bins} pads {before} bin(s) before and {after} after the recorded window{empty} "
                      f"with each pixel's background level (made-up counts)", stacklevel=2)
    return Decay(kept, width, f"{decay.source}, {detail}bins {start}..{start + n_bins - 1} of {available}"
                 + (f" (padded {before} + {after})" if before or after else ""))


def _read_sdt(file, label, *, channel, frame, time_axis):
    import sdtfile

    _refuse(label, frame=frame, time_axis=time_axis)
    sdt = sdtfile.SdtFile(file)
    if not sdt.data:
        raise CountsFileError(f"{label} holds no data blocks")
    index = _pick_channel(label, channel, [int(block.sum(dtype=np.uint64)) for block in sdt.data],
                          "data blocks")
    counts, times = sdt.data[index], sdt.times[index]
    if counts.ndim == 1:  # a single decay curve
        counts = counts[None]
    if len(times) != counts.shape[-1] or len(times) < 2:
        raise CountsFileError(
            f"{label}: data block {index} of shape {counts.shape} has a time axis of {len(times)} "
            f"points; flirtl reads decay and image blocks")
    return counts, float(times[1] - times[0]) * 1e9, f"block {index} of {len(sdt.data)}"


def _read_ptu(file, label, *, channel, frame, time_axis):
    import ptufile

    _refuse(label, time_axis=time_axis)
    with ptufile.PtuFile(file) as ptu:
        if not ptu.is_t3:
            raise CountsFileError(
                f"{label} holds {ptu.record_type.name} records: T2 mode records no delay times "
                f"after the laser pulse, FLI needs T3")
        record_bytes = ptu.tags.get("TTResultFormat_BitsPerRecord", 32) // 8
        present = (os.fstat(file.fileno()).st_size - ptu.record_offset) // record_bytes
        if present < ptu.number_records:
            raise CountsFileError(
                f"{label} is truncated: its header announces {ptu.number_records} photon records, "
                f"the file holds {max(present, 0)}")
        frames = ptu.sizes.get("T", 1)
        if frame is not None and not (_is_index(frame) and 0 <= frame < frames):
            raise CountsFileError(f"{label}: frame must be an index in 0..{frames - 1}, not {frame!r}")
        # every channel, the bins of one laser period, frames summed (or one frame): (..., C, H)
        image = ptu.decode_image(frame=-1 if frame is None else frame, dtime=0, dtype=np.uint32,
                                 keepdims=False)
        tcspc_ns = ptu.tcspc_resolution * 1e9
        hardware = ptu.active_channels
    totals = image.reshape(-1, *image.shape[-2:]).sum(axis=(0, 2), dtype=np.uint64).tolist()
    index = _pick_channel(label, channel, totals, "detector channels")
    counts = image[..., index, :]
    if counts.ndim == 1:  # a point measurement
        counts = counts[None]
    taken = f"frame {frame} of {frames}" if frame is not None else f"{frames} frame(s) summed"
    detail = f"{ptu.record_type.name}, channel {index} (hardware {hardware[index]}), {taken}"
    return counts, tcspc_ns, detail


def _read_tiff(file, label, *, channel, frame, time_axis):
    import tifffile

    _refuse(label, channel=channel, frame=frame)
    # tifffile logs what it finds damaged; the refusal below says it in one line
    logger, level = logging.getLogger("tifffile"), logging.getLogger("tifffile").level
    logger.setLevel(logging.CRITICAL)
    try:
        return _read_tiff_series(file, label, time_axis)
    finally:
        logger.setLevel(level)


def _read_tiff_series(file, label, time_axis):
    import tifffile

    with tifffile.TiffFile(file) as tiff:
        if not tiff.series:
            raise CountsFileError(f"{label} is not a readable TIFF file (corrupt or truncated?): no image in it")
        if len(tiff.series) != 1:
            raise CountsFileError(
                f"{label} holds {len(tiff.series)} image series; save one image per file")
        series = tiff.series[0]
        counts = series.asarray()
        step = _ome_lifetime_step(tiff.ome_metadata) if tiff.is_ome else None
    if "H" in series.axes:  # OME lifetime axis
        if time_axis is not None:
            raise CountsFileError(f"{label} names its lifetime axis (OME); leave time_axis out")
        axis, detail = series.axes.index("H"), "OME lifetime axis"
    else:
        axis = 0 if time_axis is None else time_axis
        detail = f"time axis {axis}"
    counts = _time_last(counts, axis, label)
    counts = counts.reshape([size for size in counts.shape[:-1] if size != 1] + [counts.shape[-1]])
    return _check_shape(counts, label), step, detail


def _read_npy(file, label, *, channel, frame, time_axis):
    _refuse(label, channel=channel, frame=frame)
    # memory-mapped: `flirtl infer` reads a frame larger than memory block by block
    counts = np.load(file.name, mmap_mode="r", allow_pickle=False)
    if time_axis is not None:
        counts = _time_last(counts, time_axis, label)
    return _check_shape(counts, label), None, ""


def _ome_lifetime_step(xml: str) -> float | None:
    """Bin width in ns of the OME Modulo lifetime axis, or None when it gives no Step in a time unit."""
    for element in ElementTree.fromstring(xml).iter():
        if (element.tag.rsplit("}", 1)[-1] in ("ModuloAlongT", "ModuloAlongZ", "ModuloAlongC")
                and element.get("Type", "").lower() == "lifetime"):
            step, unit = element.get("Step"), element.get("Unit")
            if step is None or unit not in _NS_PER_UNIT:
                return None
            return float(step) * _NS_PER_UNIT[unit]
    return None


def _time_last(counts: np.ndarray, axis, label) -> np.ndarray:
    if not (_is_index(axis) and -counts.ndim <= axis < counts.ndim):
        raise CountsFileError(f"{label}: time_axis {axis!r} is not an axis of its shape {counts.shape}")
    return np.moveaxis(counts, axis, -1)


def _check_shape(counts: np.ndarray, label) -> np.ndarray:
    if counts.ndim not in (2, 3) or counts.shape[-1] < 2:
        raise CountsFileError(
            f"{label} holds an array of shape {counts.shape}; counts must have shape (N, T) or "
            f"(H, W, T) with T >= 2 (one channel of one image per file)")
    if not counts.size:
        raise CountsFileError(f"{label} holds no pixels (an array of shape {counts.shape})")
    return counts


#: Bytes of a memory-mapped file checked at a time: whole-number floats are checked in pieces so
#: that a float frame larger than memory streams like an integer one.
CHECK_BYTES = 2 ** 24


def _as_counts(counts: np.ndarray, source: str) -> np.ndarray:
    """Counts as an integer array: whole-number floats are converted (a memory-mapped .npy of
    floats is checked piece by piece and left mapped: `flirtl infer` converts each block),
    anything else refused."""
    mapped = isinstance(counts, np.memmap) and counts.dtype.kind == "f"
    rows = max(1, CHECK_BYTES // max(1, counts[0].nbytes)) if mapped else len(counts)
    try:
        for first in range(0, len(counts), rows):
            validate_counts(np.asarray(counts[first:first + rows]), n_bins=counts.shape[-1])
            if mapped:  # the pages checked leave this process's memory again
                counts._mmap.madvise(mmap.MADV_DONTNEED)
    except ValueError as error:
        raise CountsFileError(f"{source}: {error}") from None
    return counts.astype(np.int64) if counts.dtype.kind == "f" and not mapped else counts


def _pick_channel(label, channel, totals: list[int], what: str) -> int:
    """The index of the channel to read: `channel`, or the only one; the photon totals guide a choice."""
    if channel is None:
        if len(totals) == 1:
            return 0
        listing = ", ".join(f"{i}: {total} photons" for i, total in enumerate(totals))
        raise CountsFileError(f"{label} holds {len(totals)} {what} ({listing}): choose one with channel")
    if not (_is_index(channel) and 0 <= channel < len(totals)):
        raise CountsFileError(
            f"{label}: channel must be an index in 0..{len(totals) - 1}, not {channel!r}")
    return int(channel)


def _refuse(label, **arguments):
    """Refuse arguments the file's format has no use for, rather than ignore them."""
    for name, value in arguments.items():
        if value is not None:
            raise CountsFileError(
                f"{label}: {name}={value!r} does not apply to this format; leave it out")


def _shortened(message: str, limit: int = 200) -> str:
    """A library's message cut to a line: some quote the damaged bytes at length."""
    return message if len(message) <= limit else message[:limit] + "..."


def _is_index(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
