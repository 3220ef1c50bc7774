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

    The request above the last one granted wins, else the lowest request. Call :meth:`elaborate`
    with the module and the ``advance`` condition (a grant is taken this cycle); it returns
    ``(grant_hot, grant_index)``. The state is a thermometer mask of the requests above the last
    grant, so the choice needs no comparators: one prefix OR and one priority pick.
    """
    def __init__(self, n):
        self.n = n
        self.index_width = max(1, ceil_log2(n))

    def elaborate(self, m, requests, advance, *, name="rr"):
        n = self.n
        above = Signal(n, name=f"{name}_above")       # requests above the last grant
        high = requests & above
        pick = Mux(high.any(), high, requests)
        below = Signal(n, name=f"{name}_below")       # below[i]: `pick` has a bit under i
        for i in range(1, n):
            # each an OR tree of its own (log depth), not a chain through below[i - 1]
            m.d.comb += below[i].eq(pick[:i].any())
        grant_hot = Signal(n, name=f"{name}_grant_hot")
        m.d.comb += grant_hot.eq(pick & ~below)
        grant = Signal(self.index_width, name=f"{name}_grant")
        for bit in range(self.index_width):
            m.d.comb += grant[bit].eq(Cat(grant_hot[i] for i in range(n) if i >> bit & 1).any())
        with m.If(advance):
            m.d.sync += above.eq(below)
        return grant_hot, grant
