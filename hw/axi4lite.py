"""AXI4-Lite: the bus signature, a target bridge onto the Wishbone register block, an MSI master,
a master adapter for a pipelined Wishbone initiator.

:class:`Signature` is AXI4-Lite (AMBA AXI and ACE, IHI 0022, part B) with 32-bit data, written
from the initiator's side like :class:`hw.wishbone.Signature`; addresses are *byte* addresses.

* :class:`AXI4LiteToWishbone` puts the transport (a Wishbone target) behind an AXI4-Lite target
  port: ``wiring.connect(m, bridge.wb, transport.bus)``.
* :class:`AXI4LiteMSIMaster` performs the transport's MSI stream as AXI4-Lite writes, next to
  :class:`hw.msi.MSIWishboneMaster`.
* :class:`WishboneToAXI4Lite` puts a pipelined Wishbone initiator (the virtqueue engine's guest
  memory bus) on an AXI4-Lite interconnect: ``wiring.connect(m, engine.bus, adapter.wb)``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out, flipped

from . import wishbone
from ._checks import check_int
from .msi import MSIMessage
from .transport import VirtioMMIOTransport


__all__ = ["Response", "Signature", "AXI4LiteToWishbone", "AXI4LiteMSIMaster", "AXI4LiteTransport",
           "WishboneToAXI4Lite"]


class Response(enum.Enum, shape=2):
    """BRESP / RRESP (IHI 0022 §B1.1.1: AXI4-Lite has no EXOKAY)."""
    OKAY   = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class Signature(wiring.Signature):
    """AXI4-Lite, 32-bit data, from the initiator's side.

    Parameters
    ----------
    addr_width : int
        Width of ``awaddr`` and ``araddr``, byte addresses.

    Members
    -------
    awaddr : Out(addr_width)
    awprot : Out(3)
    awvalid : Out(1)
    awready : In(1)
        Write address channel.
    wdata : Out(32)
    wstrb : Out(4)
    wvalid : Out(1)
    wready : In(1)
        Write data channel; ``wstrb`` has one bit per byte lane.
    bresp : In(Response)
    bvalid : In(1)
    bready : Out(1)
        Write response channel.
    araddr : Out(addr_width)
    arprot : Out(3)
    arvalid : Out(1)
    arready : In(1)
        Read address channel.
    rdata : In(32)
    rresp : In(Response)
    rvalid : In(1)
    rready : Out(1)
        Read data channel.

    Raises
    ------
    TypeError
        If ``addr_width`` is not an integer.
    ValueError
        If ``addr_width`` is below 1.
    """

    data_width = 32

    def __init__(self, *, addr_width):
        self._addr_width = check_int("addr_width", addr_width, "a positive integer",
                                     lambda width: width >= 1)
        super().__init__({
            "awaddr":  Out(addr_width),
            "awprot":  Out(3),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata":   Out(self.data_width),
            "wstrb":   Out(self.data_width // 8),
            "wvalid":  Out(1),
            "wready":  In(1),
            "bresp":   In(Response),
            "bvalid":  In(1),
            "bready":  Out(1),
            "araddr":  Out(addr_width),
            "arprot":  Out(3),
            "arvalid": Out(1),
            "arready": In(1),
            "rdata":   In(self.data_width),
            "rresp":   In(Response),
            "rvalid":  In(1),
            "rready":  Out(1),
        })

    @property
    def addr_width(self):
        return self._addr_width

    def __eq__(self, other):
        return isinstance(other, Signature) and other.addr_width == self.addr_width

    def __hash__(self):
        return hash((type(self), self._addr_width))

    def __repr__(self):
        return f"axi4lite.Signature(addr_width={self.addr_width})"


class AXI4LiteToWishbone(wiring.Component):
    """AXI4-Lite target in, classic Wishbone initiator out; one transaction at a time.

    Parameters
    ----------
    addr_width : int
        Width of the AXI4-Lite byte address, at least 3. The Wishbone word address is 2 bits
        narrower: the bridge covers exactly the target's window, so it never answers DECERR
        (an interconnect answers DECERR for addresses outside every target's window).

    Members
    -------
    axi : In(Signature(addr_width=addr_width))
        The AXI4-Lite target port.
    wb : Out(wishbone.Signature(addr_width=addr_width - 2))
        To the register block: ``wiring.connect(m, bridge.wb, transport.bus)``.

    Operation
    ---------
    * A write is taken when both AWVALID and WVALID are high: AWREADY and WREADY rise together
      in that cycle (combinational from the valids, IHI 0022 §A3.3.1 allows a target to wait for
      both). ``wstrb`` becomes the Wishbone ``sel``. A read is taken on ARVALID; Wishbone
      ``sel`` is all ones (AXI4-Lite reads are always a whole word).
    * When a write and a read arrive together they alternate, so neither starves.
    * Unaligned addresses (bits 1:0 not zero): the bus is not touched and the response is SLVERR
      (read data 0). AXI4-Lite accesses are a whole word wide with strobes; an unaligned address
      is an initiator error the register block could only misread.
    * Everything the Wishbone target acknowledges is OKAY: the transport's own rules apply
      (undefined offsets and write-only registers read 0, partial writes to control registers are
      ignored; see :class:`hw.VirtioMMIOTransport`).
    * Every AW/W pair gets exactly one B, every AR exactly one R; the bridge waits as long as the
      Wishbone target takes to ``ack`` (the transport always acknowledges).
    * ``awprot``/``arprot`` are ignored.

    Latency
    -------
    Address accepted in cycle N; the Wishbone request is presented in cycle N+1; with the
    transport (``ack`` 1 cycle after a write request, 2 after a read) BVALID rises in cycle N+3
    and RVALID in cycle N+4. Unaligned accesses respond in cycle N+1. The next address is
    accepted in the cycle after the response handshake.

    Raises
    ------
    TypeError
        If ``addr_width`` is not an integer.
    ValueError
        If ``addr_width`` is below 3.
    """

    def __init__(self, *, addr_width):
        self._addr_width = check_int("addr_width", addr_width, "an integer of at least 3",
                                     lambda width: width >= 3)
        super().__init__({
            "axi": In(Signature(addr_width=addr_width)),
            "wb":  Out(wishbone.Signature(addr_width=addr_width - 2)),
        })

    @property
    def addr_width(self):
        return self._addr_width

    def elaborate(self, platform):
        m = Module()
        axi, wb = self.axi, self.wb

        adr   = Signal.like(wb.adr)
        we    = Signal()
        sel   = Signal(4)
        dat_w = Signal(32)
        rdata = Signal(32)
        resp  = Signal(Response)
        prefer_read = Signal()          # the last transaction was a write

        m.d.comb += [
            wb.adr.eq(adr), wb.we.eq(we), wb.sel.eq(sel), wb.dat_w.eq(dat_w),
            axi.bresp.eq(resp), axi.rresp.eq(resp), axi.rdata.eq(rdata),
        ]

        write_req = axi.awvalid & axi.wvalid
        read_req  = axi.arvalid

        with m.FSM():
            with m.State("IDLE"):
                take_write = write_req & ~(read_req & prefer_read)
                with m.If(take_write):
                    m.d.comb += [axi.awready.eq(1), axi.wready.eq(1)]
                    m.d.sync += [
                        adr.eq(axi.awaddr[2:]), we.eq(1), sel.eq(axi.wstrb),
                        dat_w.eq(axi.wdata), prefer_read.eq(1),
                    ]
                    with m.If(axi.awaddr[:2] != 0):
                        m.d.sync += resp.eq(Response.SLVERR)
                        m.next = "WRITE-RESPONSE"
                    with m.Else():
                        m.next = "BUS"
                with m.Elif(read_req):
                    m.d.comb += axi.arready.eq(1)
                    m.d.sync += [
                        adr.eq(axi.araddr[2:]), we.eq(0), sel.eq(0b1111), rdata.eq(0),
                        prefer_read.eq(0),
                    ]
                    with m.If(axi.araddr[:2] != 0):
                        m.d.sync += resp.eq(Response.SLVERR)
                        m.next = "READ-RESPONSE"
                    with m.Else():
                        m.next = "BUS"
            with m.State("BUS"):
                m.d.comb += [wb.cyc.eq(1), wb.stb.eq(1)]
                with m.If(wb.ack):
                    m.d.sync += [resp.eq(Response.OKAY), rdata.eq(wb.dat_r)]
                    with m.If(we):
                        m.next = "WRITE-RESPONSE"
                    with m.Else():
                        m.next = "READ-RESPONSE"
            with m.State("WRITE-RESPONSE"):
                m.d.comb += axi.bvalid.eq(1)
                with m.If(axi.bready):
                    m.next = "IDLE"
            with m.State("READ-RESPONSE"):
                m.d.comb += axi.rvalid.eq(1)
                with m.If(axi.rready):
                    m.next = "IDLE"
        return m


class AXI4LiteMSIMaster(wiring.Component):
    """Performs each MSI message as one AXI4-Lite write (``wstrb`` all ones).

    Parameters
    ----------
    addr_width : int
        Width of ``awaddr``, 3 to 64. Message address bits above it are not driven.

    Members
    -------
    msi : In(stream.Signature(MSIMessage))
        The transport's ``msi`` stream.
    axi : Out(Signature(addr_width=addr_width))
        Write channels only: AR is never valid and R is never ready.
    error : Out(1)
        One-cycle pulse when a write response is not OKAY (the message is not retried).

    Operation
    ---------
    A message is taken from the stream when the bus is idle; AWVALID and WVALID rise in the
    next cycle and each stays high until its handshake; after both, BREADY is high until BVALID.
    One write is outstanding at a time, so messages reach the interrupt controller in order.

    Latency
    -------
    Message accepted in cycle N, AW/W valid from cycle N+1; the next message is accepted in the
    cycle after the B handshake.

    Raises
    ------
    TypeError
        If ``addr_width`` is not an integer.
    ValueError
        If ``addr_width`` is not from 3 to 64.
    """

    def __init__(self, *, addr_width=64):
        self._addr_width = check_int("addr_width", addr_width, "an integer from 3 to 64",
                                     lambda width: 3 <= width <= 64)
        super().__init__({
            "msi":   In(stream.Signature(MSIMessage)),
            "axi":   Out(Signature(addr_width=addr_width)),
            "error": Out(1),
        })

    @property
    def addr_width(self):
        return self._addr_width

    def elaborate(self, platform):
        m = Module()
        axi, msi = self.axi, self.msi

        aw_pending = Signal()
        w_pending  = Signal()
        m.d.comb += [axi.wstrb.eq(0b1111), axi.awvalid.eq(aw_pending), axi.wvalid.eq(w_pending)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += msi.ready.eq(1)
                with m.If(msi.valid):
                    m.d.sync += [
                        axi.awaddr.eq(msi.p.address[:self._addr_width]),
                        axi.wdata.eq(msi.p.data),
                        aw_pending.eq(1), w_pending.eq(1),
                    ]
                    m.next = "WRITE"
            with m.State("WRITE"):
                aw_done = ~aw_pending | axi.awready
                w_done  = ~w_pending | axi.wready
                with m.If(axi.awready):
                    m.d.sync += aw_pending.eq(0)
                with m.If(axi.wready):
                    m.d.sync += w_pending.eq(0)
                with m.If(aw_done & w_done):
                    m.next = "RESPONSE"
            with m.State("RESPONSE"):
                m.d.comb += axi.bready.eq(1)
                with m.If(axi.bvalid):
                    m.d.comb += self.error.eq(axi.bresp != Response.OKAY)
                    m.next = "IDLE"
        return m


class AXI4LiteTransport(wiring.Component):
    """The transport with an AXI4-Lite host bus: the wiring of
    :class:`AXI4LiteToWishbone` in front of :class:`hw.VirtioMMIOTransport`.

    Parameters
    ----------
    transport : VirtioMMIOTransport

    Members
    -------
    axi : In(Signature(addr_width=len(transport.bus.adr) + 2))
        Replaces ``bus``; see the bridge for responses and latency (2 cycles more than Wishbone).
    irq, device, msi
        The transport's own ports, unchanged.

    Raises
    ------
    TypeError
        If ``transport`` is not a :class:`~hw.VirtioMMIOTransport`.
    """
    def __init__(self, transport):
        if not isinstance(transport, VirtioMMIOTransport):
            raise TypeError(f"transport must be a VirtioMMIOTransport, not {transport!r}")
        self._transport = transport
        self._bridge = AXI4LiteToWishbone(addr_width=len(transport.bus.adr) + 2)
        members = {"axi": In(Signature(addr_width=self._bridge.addr_width))}
        members.update((name, member) for name, member in transport.signature.members.items()
                       if name != "bus")
        super().__init__(members)

    @property
    def transport(self):
        return self._transport

    def elaborate(self, platform):
        m = Module()
        m.submodules.transport = transport = self._transport
        m.submodules.bridge = bridge = self._bridge
        wiring.connect(m, flipped(self.axi), bridge.axi)
        wiring.connect(m, bridge.wb, transport.bus)
        m.d.comb += self.irq.eq(transport.irq)
        wiring.connect(m, flipped(self.device), transport.device)
        if "msi" in self.signature.members:
            wiring.connect(m, flipped(self.msi), transport.msi)
        return m


def _failed(response):
    """SLVERR or DECERR: the transaction failed (OKAY and EXOKAY did not)."""
    return (response == Response.SLVERR) | (response == Response.DECERR)


class WishboneToAXI4Lite(wiring.Component):
    """Pipelined Wishbone target in, AXI4-Lite initiator out: every Wishbone request becomes one
    AXI4-Lite transaction, and the answers come back in request order.

    Parameters
    ----------
    addr_width : int
        Width of the Wishbone word address, 1 to 62; the AXI4-Lite byte address is 2 bits wider.

    Members
    -------
    wb : In(wishbone.Signature(addr_width=addr_width, features=("err", "stall")))
        Wishbone B4 pipelined target port: ``wiring.connect(m, engine.bus, adapter.wb)``.
    axi : Out(Signature(addr_width=addr_width + 2))
        The AXI4-Lite initiator port, onto an interconnect or a memory.

    Operation
    ---------
    * A request is taken in every cycle with ``cyc`` and ``stb`` high and ``stall`` low, into a
      queue of two requests. ``stall`` is high while the queue is full; it comes from the
      adapter's own state only, never combinationally from either bus.
    * The request at the head of the queue becomes a read (ARVALID, ``araddr = adr * 4``) or a
      write (AWVALID and WVALID from the same cycle, ``awaddr = adr * 4``, ``wdata = dat_w``,
      ``wstrb = sel``). Every valid stays high, its payload unchanged, until its own handshake;
      AW and W may be accepted in either order. The request leaves the queue with its AR
      handshake, or with the later of its AW and W handshakes. A read's ``sel`` is not carried:
      an AXI4-Lite read is a whole word.
    * Order: up to :attr:`OUTSTANDING` transactions are outstanding, all of one kind (all reads
      or all writes). A request of the other kind waits at the head of the queue (without
      raising a valid) until every outstanding transaction has been answered. AXI4-Lite answers
      the transactions of one channel in issue order, but R and B are separate channels with no
      order between them: draining before switching kind is what keeps a read and a write in
      request order. Any mix of reads and writes is served; each switch costs a drain.
    * Each response handshake gives one cycle of ``ack`` (OKAY or EXOKAY) or ``err`` (SLVERR or
      DECERR) in the next cycle, with ``dat_r = rdata`` for a read: exactly one answer per
      request, in request order. RREADY (BREADY) is high while reads (writes) are outstanding.
    * ``cyc`` must stay high until every request taken has been answered, as
      :class:`hw.wishbone.Signature` requires: an AXI4-Lite transaction cannot be cancelled, so
      the adapter has no abort, and answers to requests taken are given whatever ``cyc`` does.
    * ``awprot`` and ``arprot`` are 0 (unprivileged, secure, data access).

    Latency
    -------
    A request taken in cycle N is valid on AR (or AW and W) from cycle N+1. With a target that
    takes it at once and responds in the next cycle, ``ack`` (or ``err``) is high in cycle N+3.
    Requests of one kind are taken one per cycle while the target keeps up. A request of the
    other kind goes out in the cycle after the last outstanding response handshake.

    Raises
    ------
    TypeError
        If ``addr_width`` is not an integer.
    ValueError
        If ``addr_width`` is not from 1 to 62.
    """

    #: AXI4-Lite transactions, all of one kind, that the adapter keeps outstanding.
    OUTSTANDING = 4

    def __init__(self, *, addr_width):
        self._addr_width = check_int("addr_width", addr_width, "an integer from 1 to 62",
                                     lambda width: 1 <= width <= 62)
        super().__init__({
            "wb":  In(wishbone.Signature(addr_width=addr_width, features=("err", "stall"))),
            "axi": Out(Signature(addr_width=addr_width + 2)),
        })

    @property
    def addr_width(self):
        return self._addr_width

    def elaborate(self, platform):
        m = Module()
        wb, axi = self.wb, self.axi

        # Two entries: one request a cycle goes in while the head leaves in the cycle it is
        # presented, and stall never waits on the AXI4-Lite readies.
        layout = data.StructLayout({"adr": self._addr_width, "we": 1, "sel": 4, "dat_w": 32})
        m.submodules.queue = queue = SyncFIFO(width=layout.size, depth=2)
        taken = Signal(layout)
        head = Signal(layout)
        m.d.comb += [
            taken.adr.eq(wb.adr), taken.we.eq(wb.we), taken.sel.eq(wb.sel),
            taken.dat_w.eq(wb.dat_w),
            queue.w_data.eq(taken), queue.w_en.eq(wb.cyc & wb.stb), wb.stall.eq(~queue.w_rdy),
            head.eq(queue.r_data),
        ]

        outstanding = Signal(range(self.OUTSTANDING + 1))
        writing = Signal()                      # the kind of the outstanding transactions
        aw_sent = Signal()                      # the head's AW handshake is done
        w_sent = Signal()                       # the head's W handshake is done

        # Once raised, `present` stays high until the head is issued: the head does not change,
        # and `outstanding` only falls while the head waits. So every valid below is held until
        # its handshake and never depends on a ready (IHI 0022 §A3.2.1).
        present = Signal()
        m.d.comb += present.eq(queue.r_rdy & (outstanding != self.OUTSTANDING) &
                               ((outstanding == 0) | (writing == head.we)))
        address = Cat(Const(0, 2), head.adr)
        m.d.comb += [
            axi.araddr.eq(address), axi.awaddr.eq(address),
            axi.wdata.eq(head.dat_w), axi.wstrb.eq(head.sel),
            axi.arvalid.eq(present & ~head.we),
            axi.awvalid.eq(present & head.we & ~aw_sent),
            axi.wvalid.eq(present & head.we & ~w_sent),
        ]
        aw_handshake = axi.awvalid & axi.awready
        w_handshake = axi.wvalid & axi.wready
        issued = Signal()
        m.d.comb += [
            issued.eq(Mux(head.we, present & (aw_sent | aw_handshake) & (w_sent | w_handshake),
                          axi.arvalid & axi.arready)),
            queue.r_en.eq(issued),
        ]
        with m.If(issued):
            m.d.sync += [aw_sent.eq(0), w_sent.eq(0), writing.eq(head.we)]
        with m.Else():
            with m.If(aw_handshake):
                m.d.sync += aw_sent.eq(1)
            with m.If(w_handshake):
                m.d.sync += w_sent.eq(1)

        # A write counts as outstanding from its later handshake, when B may follow (AXI4 makes
        # B wait for both AW and W); a read from its AR handshake.
        m.d.comb += [axi.rready.eq((outstanding != 0) & ~writing),
                     axi.bready.eq((outstanding != 0) & writing)]
        r_handshake = axi.rvalid & axi.rready
        answered = r_handshake | (axi.bvalid & axi.bready)
        failed = Mux(writing, _failed(axi.bresp), _failed(axi.rresp))
        m.d.sync += [
            outstanding.eq(outstanding + issued - answered),
            wb.ack.eq(answered & ~failed),
            wb.err.eq(answered & failed),
        ]
        with m.If(r_handshake):
            m.d.sync += wb.dat_r.eq(axi.rdata)
        return m
