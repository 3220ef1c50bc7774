"""Wishbone B4 bus signature (32-bit data, 8-bit granularity), classic or pipelined.

The member names follow amaranth-soc (``cyc stb we adr sel dat_w dat_r ack``, and the optional
``err`` and ``stall``); ``adr`` is the word address. The signature is written from the initiator's
side: a target takes ``In(Signature(...))``.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._checks import check_int


__all__ = ["Signature", "FEATURES"]

#: Optional members: ``err`` (the request failed) and ``stall`` (pipelined mode, B4 §3.1.3.1).
FEATURES = ("err", "stall")


class Signature(wiring.Signature):
    """Wishbone B4, 32-bit data, 8-bit granularity.

    Without ``stall`` the bus is B4 *classic*: a request is held until it is acknowledged. With
    ``stall`` it is B4 *pipelined*: a request is taken in every cycle with ``stb`` high and
    ``stall`` low, and the target answers each, in order, with one cycle of ``ack`` or ``err``;
    ``cyc`` stays high until every request taken has been answered.

    Parameters
    ----------
    addr_width : int
        Width of ``adr``, the word address.
    features : iterable of str
        Optional members, from :data:`FEATURES`.

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
    err : In(1)
        With the ``err`` feature: the request completes, failed (a bus error).
    stall : In(1)
        With the ``stall`` feature: the target cannot take a request in this cycle.

    Raises
    ------
    TypeError
        If ``addr_width`` is not an integer.
    ValueError
        If ``addr_width`` is below 1, or ``features`` names a member not in :data:`FEATURES`.
    """

    data_width = 32
    granularity = 8

    def __init__(self, *, addr_width, features=()):
        self._addr_width = check_int("addr_width", addr_width, "a positive integer",
                                     lambda width: width >= 1)
        if isinstance(features, str):
            features = (features,)
        features = frozenset(features)
        unknown = sorted(str(feature) for feature in features - set(FEATURES))
        if unknown:
            raise ValueError(f"features must be a set of {', '.join(FEATURES)}, not "
                             f"{sorted(map(str, features))!r}")
        self._features = features
        members = {
            "cyc":   Out(1),
            "stb":   Out(1),
            "we":    Out(1),
            "adr":   Out(addr_width),
            "sel":   Out(self.data_width // self.granularity),
            "dat_w": Out(self.data_width),
            "dat_r": In(self.data_width),
            "ack":   In(1),
        }
        members.update({feature: In(1) for feature in FEATURES if feature in features})
        super().__init__(members)

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def features(self):
        return self._features

    def __eq__(self, other):
        return (isinstance(other, Signature) and other.addr_width == self.addr_width and
                other.features == self.features)

    def __hash__(self):
        return hash((type(self), self._addr_width, self._features))

    def __repr__(self):
        if not self._features:
            return f"wishbone.Signature(addr_width={self.addr_width})"
        features = ", ".join(repr(f) for f in FEATURES if f in self._features)
        return f"wishbone.Signature(addr_width={self.addr_width}, features=({features},))"
