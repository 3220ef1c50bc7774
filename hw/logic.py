"""Small building blocks shared by the gateware, added to the caller's module."""

from amaranth.hdl import Cat, Const, Mux, Signal, Value
from amaranth.utils import ceil_log2


__all__ = ["less_than", "round_robin"]


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


def _lowest(m, requests, name):
    """``(lowest one-hot, below)`` where ``below[i]``: a request under position ``i``."""
    n = len(requests)
    below = Signal(n, name=f"{name}_below")
    for i in range(1, n):
        m.d.comb += below[i].eq(requests[:i].any())
    return requests & ~below, below


def round_robin(m, requests, advance, *, name="rr"):
    """Round-robin choice among ``requests``, added to module ``m``.

    The lowest request above the last one granted wins, else the lowest request. The state is
    a thermometer mask of the positions above the last grant (``{name}_above``, in ``m``'s
    ``sync`` domain). Both candidates, the lowest request above the mask and the lowest request
    overall, are found in parallel by prefix ORs (each an OR tree of its own, log depth), and
    the grant is a 2:1 choice between them: no comparators and no chain through the first
    result into the second.

    A function rather than a :class:`~amaranth.lib.wiring.Component`: its signals live in the
    caller's module under ``name``, so the choice, which is on the HX8K critical path of the MSI
    sender, is synthesized and named as part of its user.

    Parameters
    ----------
    m : Module
    requests : Value
        One bit per position; its width ``n`` is the number of positions.
    advance : Value
        The choice is taken this cycle: the mask moves past the grant. An ``advance`` with no
        request restarts the order at position 0.
    name : str
        Prefix of the signals added to ``m``.

    Returns
    -------
    (grant_hot, grant)
        The granted position, one-hot (``n`` bits, 0 without a request) and as an index
        (``ceil_log2(n)`` bits, at least 1). Combinational.

    Raises
    ------
    TypeError
        If ``requests`` is not a value, or ``name`` not a string.
    """
    if not isinstance(requests, Value):
        raise TypeError(f"requests must be an Amaranth value, not {requests!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, not {name!r}")
    n = len(requests)
    index_width = max(1, ceil_log2(n))
    above = Signal(n, name=f"{name}_above")       # positions above the last grant
    high = Signal(n, name=f"{name}_high")
    m.d.comb += high.eq(requests & above)
    first_high, below_high = _lowest(m, high, f"{name}_high")
    first_any, below_any = _lowest(m, requests, f"{name}_any")
    any_high = Signal(name=f"{name}_any_high")
    m.d.comb += any_high.eq(high.any())
    grant_hot = Signal(n, name=f"{name}_grant_hot")
    m.d.comb += grant_hot.eq(Mux(any_high, first_high, first_any))
    grant = Signal(index_width, name=f"{name}_grant")
    for bit in range(index_width):
        m.d.comb += grant[bit].eq(Cat(grant_hot[i] for i in range(n) if i >> bit & 1).any())
    with m.If(advance):
        # the positions below the lowest request are exactly those above the grant
        m.d.sync += above.eq(Mux(any_high, below_high, below_any))
    return grant_hot, grant
