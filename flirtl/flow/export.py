"""Amaranth component -> one self-contained, reproducible Verilog file.

Port names. `amaranth.back.verilog.convert` names each port after the component's flattened
signature path joined with `__`: a member `s_axis: In(stream.Signature(...))` becomes
`s_axis__payload`, `s_axis__valid`, `s_axis__ready`, and a struct payload stays one vector port.
Ports must be whole signals (not slices), so renaming alone cannot split a payload into
`tdata`/`tlast`. Two ways to get AXI4-Stream names:

* `AXIStreamTop(core)`: write the core idiomatically with `stream.Signature(StructLayout({"data": ..,
  "last": 1}))` members and wrap it; each stream member `x` becomes `x_tdata`, `x_tlast`, `x_tvalid`,
  `x_tready` (other payload fields `f` become `x_t<f>`). Recommended for flirtl's top level.
* or declare the top component's members flat, exactly as the ports should read: `s_axis_tdata: In(16)`.

The default `sync` domain always comes out as `clk` and `rst` (synchronous, active high); a purely
combinational design has neither.
"""

import os
import re
import sys
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..files import atomic_write

__all__ = ["AXIStreamTop", "to_verilog", "write_verilog"]


class AXIStreamTop(wiring.Component):
    """Wraps `core`, exposing each of its `stream.Signature` members as flat AXI4-Stream ports.

    A payload `StructLayout` field `data` becomes `<name>_tdata`, `last` becomes `<name>_tlast`, any
    other field `f` becomes `<name>_t<f>`; a plain payload shape becomes `<name>_tdata`. Members that
    are not streams keep their name (only plain port members are supported).
    """

    def __init__(self, core: wiring.Component):
        if not isinstance(core, wiring.Component):
            raise TypeError(f"core must be a wiring.Component, not {core!r}")
        self._core = core
        self._links = []  # (flat port name, core-side value, flow of the flat port)
        members = {}
        for name, member in core.signature.members.items():
            if member.is_port:
                members[name] = member
                self._links.append((name, getattr(core, name), member.flow))
                continue
            if not isinstance(member.signature, stream.Signature):
                raise TypeError(f"member {name!r} of {core!r} is neither a port nor a stream")
            inward = member.flow  # flow of payload/valid; ready flows the other way
            outward = Out if inward == In else In
            port = getattr(core, name)
            for suffix, value, shape in self._payload_fields(port.payload, member.signature.members["payload"].shape):
                members[f"{name}_t{suffix}"] = inward(shape)
                self._links.append((f"{name}_t{suffix}", value, inward))
            members[f"{name}_tvalid"] = inward(1)
            self._links.append((f"{name}_tvalid", port.valid, inward))
            members[f"{name}_tready"] = outward(1)
            self._links.append((f"{name}_tready", port.ready, outward))
        super().__init__(members)

    @staticmethod
    def _payload_fields(payload, shape):
        if isinstance(shape, data.StructLayout):
            for field_name, field in shape:
                yield field_name, payload[field_name], field.shape
        else:
            yield "data", payload, shape

    @property
    def core(self) -> wiring.Component:
        return self._core

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self._core
        for port_name, inner, flow in self._links:
            outer = getattr(self, port_name)
            if flow == In:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        return m


_SRC_ATTR = re.compile(r'\(\* src = "([^"]*)" \*\)')
_SRC_LOC = re.compile(r"^(.*?)(:[0-9.\-]+)$")


def _source_roots():
    """Prefixes stripped from `src` attributes, longest first: the checkout holding `flirtl`, and
    every site-packages (so `amaranth/lib/stream.py:48` reads the same from any venv)."""
    roots = [Path(__file__).resolve().parents[2]]
    roots += [Path(p).resolve() for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    return sorted({str(r) + os.sep for r in roots}, key=len, reverse=True)


def _relative_src(verilog_text: str) -> str:
    roots = _source_roots()

    def relative(location: str) -> str:
        match = _SRC_LOC.match(location)
        path, line = (match.group(1), match.group(2)) if match else (location, "")
        if os.path.isabs(path):
            path = next((path[len(r):] for r in roots if path.startswith(r)), os.path.basename(path))
        return path.replace(os.sep, "/") + line

    def rewrite(match):
        return '(* src = "{}" *)'.format("|".join(relative(loc) for loc in match.group(1).split("|")))

    return _SRC_ATTR.sub(rewrite, verilog_text)


def to_verilog(component: wiring.Component, name: str, *, ports=None, emit_src: bool = True) -> str:
    """Verilog text of `component` as module `name`; every submodule in the same text.

    `ports` is passed to Amaranth (`{port name: (signal, PortDirection)}`) to override the names
    taken from the signature. `src` attributes, when emitted, hold paths relative to the checkout
    or site-packages, so the text does not depend on where the repository lives.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"module name must be a plain Verilog identifier, not {name!r}")
    text = verilog.convert(component, name=name, ports=ports, emit_src=emit_src)
    return _relative_src(text) if emit_src else text


def write_verilog(component: wiring.Component, name: str, path, *, ports=None,
                  emit_src: bool = True) -> Path:
    """Write `to_verilog(component, name)` to `path` atomically (a reader never sees half a file);
    the bytes depend only on the component, Amaranth and Yosys versions. Returns the path."""
    path = Path(path)
    text = to_verilog(component, name, ports=ports, emit_src=emit_src)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode())
    return path
