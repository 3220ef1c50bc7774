"""AXI4-Lite: the bus signature, a target bridge onto the Wishbone register block, an MSI master.

:class:`Signature` is AXI4-Lite (AMBA AXI and ACE, IHI 0022, part B) with 32-bit data, written
from the initiator's side like :class:`hw.wishbone.Signature`; addresses are *byte* addresses.

* :class:`AXI4LiteToWishbone` puts the transport (a Wishbone target) behind an AXI4-Lite target
  port: ``wiring.connect(m, bridge.wb, transport.bus)``.
* :class:`AXI4LiteMSIMaster` performs the transport's MSI stream as AXI4-Lite writes, next to
  :class:`hw.msi.MSIWishboneMaster`.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out, flipped

from . import wishbone
from ._checks import check_int
from .msi import MSIMessage
from .transport import VirtioMMIOTransport


__all__ = ["Response", "Signature", "AXI4LiteToWishbone", "AXI4LiteMSIMaster", "AXI4LiteTransport"]


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
