"""On-chip guest memory shared by a classic and a pipelined Wishbone initiator.

On a board there is no host memory for the virtqueue engine to reach, so the SoC keeps the
rings and buffers in block RAM: the host lays them out through the UART bridge (classic
Wishbone) and the engine reads and writes them through its own bus master (pipelined, with
``stall`` and ``err``). Block RAM on iCE40 has one read and one write port, so the two
initiators take turns on a single port of the memory instead of each having a port of its own.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In
from amaranth.utils import exact_log2

from .. import wishbone
from .._checks import check_int


__all__ = ["GuestRAM"]


class GuestRAM(wiring.Component):
    """Block RAM at guest physical addresses ``[base, base + size)``, with two bus ports.

    Both ports carry guest physical word addresses (the byte address divided by 4), so the host
    and the engine name every byte by the same number.

    Parameters
    ----------
    addr_width : int
        Word address width of both ports: the guest physical space is ``4 << addr_width`` bytes.
    base : int
        Guest physical byte address of the first byte of RAM, a multiple of 4. It need not be
        aligned to ``size``: the RAM may straddle a 4 KiB boundary, where a split ring laid out
        as Linux's ``vring_init`` does puts its used ring.
    size : int
        Bytes of RAM, a power of two, at least 4.

    Members
    -------
    host : In(wishbone.Signature(addr_width=addr_width))
        Classic Wishbone target (the UART bridge). Acknowledges every request; outside the RAM a
        read returns 0 and a write is dropped.
    dma : In(wishbone.Signature(addr_width=addr_width, features=("err", "stall")))
        Pipelined Wishbone target (the engine's bus master). A request outside the RAM is
        answered with ``err`` and changes nothing.

    Latency
    -------
    A request taken in one cycle is answered (``ack`` or ``err``) in the next, on either port.
    The pipelined port takes one request per cycle; the classic port, whose ``ack`` is
    registered, one every other cycle.

    Operation
    ---------
    The memory has one port, which serves one request per cycle. When both initiators request
    in the same cycle, the one that was not served last time a request waited goes first: the
    engine sees ``stall``, the bridge's request stays on its bus. Neither can starve the other.
    ``stall`` depends only on the classic port and on that turn flag, not on ``dma.stb``.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If ``addr_width`` is below 1, ``size`` is not a power of two of at least 4, ``base`` is
        negative or not a multiple of 4, or the RAM ends beyond ``4 << addr_width``.
    """

    def __init__(self, *, addr_width, base, size):
        check_int("addr_width", addr_width, "a positive integer", lambda w: w >= 1)
        self._size = check_int("size", size, "a power of two of at least 4",
                               lambda s: s >= 4 and s & (s - 1) == 0)
        self._base = check_int("base", base, "a non-negative multiple of 4",
                               lambda b: b >= 0 and b % 4 == 0)
        if base + size > 4 << addr_width:
            raise ValueError(f"RAM [{base:#x}, {base + size:#x}) does not fit a guest physical "
                             f"space of {4 << addr_width:#x} bytes (addr_width {addr_width})")
        self._addr_width = addr_width
        #: The words; word ``i`` holds guest physical word ``a`` with ``a % depth == i`` (a test
        #: reads them with ``ctx.get(ram.ram.data[i])``).
        self.ram = memory.Memory(shape=32, depth=size // 4, init=[])
        super().__init__({
            "host": In(wishbone.Signature(addr_width=addr_width)),
            "dma":  In(wishbone.Signature(addr_width=addr_width, features=("err", "stall"))),
        })

    @property
    def base(self):
        return self._base

    @property
    def size(self):
        return self._size

    def index(self, address):
        """The word of :attr:`ram` that holds guest physical byte ``address``."""
        if not self._base <= address < self._base + self._size:
            raise ValueError(f"address {address:#x} is outside the RAM [{self._base:#x}, "
                             f"{self._base + self._size:#x})")
        return address // 4 % (self._size // 4)

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = ram = self.ram
        read = ram.read_port()
        write = ram.write_port(granularity=8)
        host, dma = self.host, self.dma
        first, words = self._base // 4, self._size // 4
        # `words` consecutive word addresses differ in their low bits: no address decoding
        # beyond the window check, whatever the alignment of `base`.
        index_bits = exact_log2(words)

        def inside(adr):
            return (adr >= first) & (adr < first + words)

        host_req = host.cyc & host.stb & ~host.ack
        dma_req = dma.cyc & dma.stb
        host_first = Signal()                   # the bridge goes first on the next conflict
        m.d.comb += dma.stall.eq(host_req & host_first)
        grant_host = Signal()
        grant_dma = Signal()
        m.d.comb += [grant_host.eq(host_req & (host_first | ~dma_req)),
                     grant_dma.eq(dma_req & ~dma.stall)]
        with m.If(grant_host):
            m.d.sync += host_first.eq(0)
        with m.Elif(grant_dma & host_req):
            m.d.sync += host_first.eq(1)

        adr = Mux(grant_host, host.adr, dma.adr)
        we = Mux(grant_host, host.we, dma.we)
        sel = Mux(grant_host, host.sel, dma.sel)
        hit = Signal()
        m.d.comb += [
            hit.eq(inside(adr)),
            read.addr.eq(adr[:index_bits]),
            write.addr.eq(adr[:index_bits]),
            write.data.eq(Mux(grant_host, host.dat_w, dma.dat_w)),
        ]
        with m.If((grant_host | grant_dma) & we & hit):
            m.d.comb += write.en.eq(sel)

        # Answers, in the cycle after the grant, with the memory's registered read data.
        # (dat_r is meaningless with err: the engine's port gets the memory's data as it is.)
        host_hit = Signal()
        m.d.sync += [host.ack.eq(grant_host), host_hit.eq(hit),
                     dma.ack.eq(grant_dma & hit), dma.err.eq(grant_dma & ~hit)]
        m.d.comb += [host.dat_r.eq(Mux(host_hit, read.data, 0)), dma.dat_r.eq(read.data)]
        return m
