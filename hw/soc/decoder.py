"""An address decoder from one classic Wishbone initiator to targets in windows of its space."""

from collections.abc import Mapping

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import wishbone
from .._checks import check_int, is_int


__all__ = ["WishboneDecoder"]


class WishboneDecoder(wiring.Component):
    """Routes each access of ``bus`` to the target whose window holds its address.

    Parameters
    ----------
    addr_width : int
        Word address width of ``bus``.
    windows : mapping of str to (int, int)
        ``name -> (base, addr_width)``: a window of ``4 << addr_width`` bytes from byte offset
        ``base`` (aligned to its size), with a target port of that address width. The name is
        the port's member name. Windows may not overlap.

    Members
    -------
    bus : In(wishbone.Signature(addr_width=addr_width))
        The initiator (classic Wishbone).
    <name> : Out(wishbone.Signature(addr_width=...))
        One classic initiator port per window, carrying the word address within the window.

    Operation
    ---------
    Combinational: the window's target sees ``cyc`` and ``stb`` only for an address inside it
    and answers the initiator directly. An address in no window (a hole in the map) is
    acknowledged in the next cycle, reads 0 and writes nothing, so every access completes.

    Raises
    ------
    TypeError
        If ``addr_width`` is not an integer, ``windows`` not a mapping, a name not a string or a
        window not a pair of integers.
    ValueError
        If ``addr_width`` is below 1; or a name is not an identifier or is ``"bus"``; or a
        window's ``addr_width`` is below 1, its base negative or not aligned to its size, it
        ends beyond the bus's space, or it overlaps another.
    """

    def __init__(self, *, addr_width, windows):
        check_int("addr_width", addr_width, "a positive integer", lambda w: w >= 1)
        if not isinstance(windows, Mapping):
            raise TypeError(f"windows must be a mapping of name -> (base, addr_width), not "
                            f"{windows!r}")
        space = 4 << addr_width
        self._windows = {}
        for name, window in windows.items():
            if not isinstance(name, str):
                raise TypeError(f"window names must be strings, not {name!r}")
            if not name.isidentifier() or name == "bus":
                raise ValueError(f"window name must be an identifier other than 'bus', not "
                                 f"{name!r}")
            if not (isinstance(window, tuple) and len(window) == 2 and
                    all(is_int(v) for v in window)):
                raise TypeError(f"window {name!r} must be a pair of integers (base, "
                                f"addr_width), not {window!r}")
            base, width = window
            size = 4 << width
            if width < 1 or base < 0 or base % size:
                raise ValueError(f"window {name!r} must have addr_width >= 1 and a base aligned "
                                 f"to its size {size:#x}, not ({base:#x}, {width})")
            if base + size > space:
                raise ValueError(f"window {name!r} [{base:#x}, {base + size:#x}) ends beyond "
                                 f"the bus's {space:#x} bytes")
            for other, (other_base, other_width) in self._windows.items():
                if base < other_base + (4 << other_width) and other_base < base + size:
                    raise ValueError(f"window {name!r} [{base:#x}, {base + size:#x}) overlaps "
                                     f"window {other!r} at {other_base:#x}")
            self._windows[name] = (base, width)
        self._addr_width = addr_width
        members = {"bus": In(wishbone.Signature(addr_width=addr_width))}
        members.update({name: Out(wishbone.Signature(addr_width=width))
                        for name, (_, width) in self._windows.items()})
        super().__init__(members)

    @property
    def windows(self):
        """``name -> (base, addr_width)``, as given."""
        return dict(self._windows)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        hits = []
        for name, (base, width) in self._windows.items():
            target = getattr(self, name)
            hit = Signal(name=f"to_{name}")
            m.d.comb += hit.eq(bus.adr[width:] == (base >> 2) >> width)
            hits.append((hit, target))
            m.d.comb += [
                target.adr.eq(bus.adr[:width]),
                target.sel.eq(bus.sel),
                target.we.eq(bus.we),
                target.dat_w.eq(bus.dat_w),
                target.cyc.eq(bus.cyc & hit),
                target.stb.eq(bus.stb & hit),
            ]
        hole = Signal()
        m.d.comb += hole.eq(~Cat(hit for hit, _ in hits).any())
        hole_ack = Signal()
        m.d.sync += hole_ack.eq(bus.cyc & bus.stb & hole & ~hole_ack)
        m.d.comb += bus.ack.eq(hole_ack)
        for hit, target in hits:
            with m.If(hit):
                m.d.comb += [bus.ack.eq(target.ack), bus.dat_r.eq(target.dat_r)]
        return m

