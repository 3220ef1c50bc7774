"""Small combinational building blocks shared by the gateware."""

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.utils import ceil_log2


__all__ = ["less_than", "RoundRobin"]


def less_than(value, limit):
    """``value < limit`` for a constant ``limit``, without a carry chain over ``value``'s upper
    bits: the bits at and above ``limit``'s width must be zero (a wide AND), and only the low
    bits are compared. Combinational."""
    width = max(1, (limit - 1).bit_length()) if limit > 0 else 1
    if limit <= 0:
        return Const(0)
    if len(value) <= width:
        return value < limit
    low, high = value[:width], value[width:]
    if limit == 1 << width:
        return high == 0
    return (high == 0) & (low < limit)


class RoundRobin:
    """Round-robin choice among ``requests`` (a value of ``n`` bits), combinational.

    The lowest request above the last one granted wins, else the lowest request. Call
    :meth:`elaborate` with the module and the ``advance`` condition (the choice is taken this
    cycle); it returns ``(grant_hot, grant_index)``. The state is a thermometer mask of the
    positions above the last grant. Both candidates, the lowest request above the mask and the
    lowest request overall, are found in parallel by prefix ORs (each an OR tree of its own, log
    depth), and the grant is a 2:1 choice between them: no comparators and no chain through the
    first result into the second. An ``advance`` with no request restarts the order at 0.
    """
    def __init__(self, n):
        self.n = n
        self.index_width = max(1, ceil_log2(n))

    @staticmethod
    def _lowest(m, requests, name):
        """``(lowest one-hot, below)`` where ``below[i]``: a request under position ``i``."""
        n = len(requests)
        below = Signal(n, name=f"{name}_below")
        for i in range(1, n):
            m.d.comb += below[i].eq(requests[:i].any())
        return requests & ~below, below

    def elaborate(self, m, requests, advance, *, name="rr"):
        n = self.n
        above = Signal(n, name=f"{name}_above")       # positions above the last grant
        high = Signal(n, name=f"{name}_high")
        m.d.comb += high.eq(requests & above)
        first_high, below_high = self._lowest(m, high, f"{name}_high")
        first_any, below_any = self._lowest(m, requests, f"{name}_any")
        any_high = Signal(name=f"{name}_any_high")
        m.d.comb += any_high.eq(high.any())
        grant_hot = Signal(n, name=f"{name}_grant_hot")
        m.d.comb += grant_hot.eq(Mux(any_high, first_high, first_any))
        grant = Signal(self.index_width, name=f"{name}_grant")
        for bit in range(self.index_width):
            m.d.comb += grant[bit].eq(Cat(grant_hot[i] for i in range(n) if i >> bit & 1).any())
        with m.If(advance):
            # the positions below the lowest request are exactly those above the grant
            m.d.sync += above.eq(Mux(any_high, below_high, below_any))
        return grant_hot, grant
