"""Wishbone B4 classic bus signature (32-bit data, 8-bit granularity).

The member names follow amaranth-soc (``cyc stb we adr sel dat_w dat_r ack``); ``adr`` is the word
address. The signature is written from the initiator's side: a target takes ``In(Signature(...))``.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._checks import check_int


__all__ = ["Signature"]


class Signature(wiring.Signature):
    """Wishbone B4 classic, 32-bit data, 8-bit granularity.

    Parameters
    ----------
    addr_width : int
        Width of ``adr``, the word address.

    Members
    -------
    cyc : Out(1)
        Bus cycle in progress.
    stb : Out(1)
        Strobe: a request is presented.
    we : Out(1)
        Write enable.
    adr : Out(addr_width)
        Word address.
    sel : Out(4)
        Byte enables, one per 8-bit lane.
    dat_w : Out(32)
        Write data.
    dat_r : In(32)
        Read data, valid with ``ack``.
    ack : In(1)
        Acknowledge: the request completes in the cycle where ``ack`` is high.

    Raises
    ------
    TypeError
        If ``addr_width`` is not an integer.
    ValueError
        If ``addr_width`` is below 1.
    """

    data_width = 32
    granularity = 8

    def __init__(self, *, addr_width):
        self._addr_width = check_int("addr_width", addr_width, "a positive integer",
                                     lambda width: width >= 1)
        super().__init__({
            "cyc":   Out(1),
            "stb":   Out(1),
            "we":    Out(1),
            "adr":   Out(addr_width),
            "sel":   Out(self.data_width // self.granularity),
            "dat_w": Out(self.data_width),
            "dat_r": In(self.data_width),
            "ack":   In(1),
        })

    @property
    def addr_width(self):
        return self._addr_width

    def __eq__(self, other):
        return isinstance(other, Signature) and other.addr_width == self.addr_width

    def __hash__(self):
        return hash((type(self), self._addr_width))

    def __repr__(self):
        return f"wishbone.Signature(addr_width={self.addr_width})"
