"""The IP's stream formats, shared by the gateware, the testbenches and the port metadata JSON.

Input beat (`s_axis`): one raw photon count, `tdata` = counts format (unsigned), `tlast` on the
T-th count of a pixel. Result beat (`m_axis`): one per pixel, fields packed least significant
first as `result_fields`, padded to whole bytes, `tlast` always 1 (a beat is a whole pixel).
"""

from __future__ import annotations

import numpy as np

from .spec import ModelSpec


def result_fields(spec: ModelSpec) -> dict[str, int]:
    """Fields of one result beat, least significant first, with their widths."""
    lifetime, fraction = spec.fmt("lifetime").width, spec.fmt("fraction").width
    return {"tau1": lifetime, "tau2": lifetime, "a": fraction, "tau_mean": lifetime, "framing_error": 1}


def result_width(spec: ModelSpec) -> int:
    """Width of `m_axis_tdata`: the fields rounded up to whole bytes."""
    bits = sum(result_fields(spec).values())
    return bits + (-bits % 8)


def sfd_width(spec: ModelSpec) -> int:
    """Width of `m_sfd_axis_tdata`: channels total, short, long (sfd format, two's complement),
    channel 0 in the low bits."""
    return 3 * spec.fmt("sfd").width


def pack_sfd(spec: ModelSpec, sfd: np.ndarray) -> list[int]:
    """`m_sfd_axis_tdata` words of SFD codes (N, T, 3), pixel by pixel, step by step."""
    width = spec.fmt("sfd").width
    mask = (1 << width) - 1
    codes = np.asarray(sfd).reshape(-1, 3)
    return [int(c0 & mask) | int(c1 & mask) << width | int(c2 & mask) << (2 * width)
            for c0, c1, c2 in codes.tolist()]


def pack_results(spec: ModelSpec, fields: dict[str, np.ndarray]) -> list[int]:
    """`m_axis_tdata` words of per-pixel result codes (missing fields are 0)."""
    n = len(next(iter(fields.values())))
    words = [0] * n
    offset = 0
    for name, width in result_fields(spec).items():
        values = fields.get(name, np.zeros(n, np.int64))
        for index, value in enumerate(values):
            words[index] |= (int(value) & ((1 << width) - 1)) << offset
        offset += width
    return words


def unpack_results(spec: ModelSpec, words) -> dict[str, np.ndarray]:
    """Field codes of `m_axis_tdata` words (inverse of `pack_results`)."""
    out, offset = {}, 0
    for name, width in result_fields(spec).items():
        out[name] = np.array([(int(w) >> offset) & ((1 << width) - 1) for w in words], np.int64)
        offset += width
    return out


def port_metadata(spec: ModelSpec, *, sfd_stream: bool = False) -> dict:
    """Names, widths, signedness and tdata packing of every port of the IP top."""
    fields, offset = [], 0
    for name, width in result_fields(spec).items():
        fmt = spec.fmt("fraction" if name == "a" else "lifetime") if name != "framing_error" else None
        fields.append({"name": name, "lsb": offset, "width": width, "signed": False,
                       "format": str(fmt) if fmt else "flag",
                       "unit": "ns" if name.startswith("tau") else ""})
        offset += width
    counts = spec.fmt("counts")
    sfd = spec.fmt("sfd")
    ports = {
        "clock": {"name": "clk", "edge": "rising"},
        "reset": {"name": "rst", "polarity": "active high", "synchronous": True},
        "s_axis": {
            "tdata": {"width": counts.width, "signed": False, "format": str(counts),
                      "meaning": "raw photon count of one time bin"},
            "tlast": "set on the pixel's T-th count; pixels are cut every T beats regardless, "
                     "and a misplaced tlast sets framing_error in that pixel's result",
            "beats_per_pixel": spec.n_bins,
        },
        "m_axis": {
            "tdata": {"width": result_width(spec), "fields": fields},
            "tlast": "always 1: one beat per pixel",
        },
    }
    if sfd_stream:
        ports["m_sfd_axis"] = {
            "tdata": {"width": sfd_width(spec), "fields": [
                {"name": name, "lsb": i * sfd.width, "width": sfd.width, "signed": True, "format": str(sfd)}
                for i, name in enumerate(("total", "short", "long"))]},
            "tlast": "on the pixel's T-th decoder step",
            "beats_per_pixel": spec.n_bins,
        }
    return ports
