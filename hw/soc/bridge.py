"""A framed byte protocol from a serial line to a Wishbone initiator.

The host (:mod:`boards.host`) sends one request at a time and waits for its response. All
multi-byte fields are listed byte by byte in the order they travel.

Requests
--------
====== ============================================== =========================================
byte   read (5 bytes)                                 write (9 bytes)
====== ============================================== =========================================
0      ``CMD_READ`` (0x52, ``'R'``)                   ``CMD_WRITE`` (0x57, ``'W'``)
1, 2   word address, big-endian (bits 15:8, 7:0)      word address, big-endian
3      byte enables in bits 3:0; bits 7:4 must be 0   byte enables
4..7   --                                             write data, little-endian (bits 7:0 first)
====== ============================================== =========================================

The word address is the Wishbone ``adr``: the byte offset divided by 4.

Responses
---------
* read: ``RESP_READ`` (0x72, ``'r'``) and 4 data bytes, little-endian;
* write: ``RESP_WRITE`` (0x77, ``'w'``);
* error: ``RESP_ERROR`` (0x45, ``'E'``) and one :class:`Error` code byte:

  - ``BAD_COMMAND`` (1): a byte that is not a command arrived between frames (garbage, a lost
    byte, line noise). The byte is dropped, nothing is accessed; every such byte gets its own
    error response.
  - ``TIMEOUT`` (2): a frame stopped before its last byte: no byte arrived for
    ``timeout`` cycles. The partial frame is abandoned and nothing is accessed.
  - ``BAD_ENABLES`` (3): the byte-enable byte had bits 7:4 set; nothing is accessed.
  - ``BUS_TIMEOUT`` (4): the target did not acknowledge within ``bus_timeout`` cycles; the
    cycle was ended (``cyc``/``stb`` dropped) and a write may or may not have happened.

Operation
---------
Bytes that arrive while a response is being sent wait in the receiver's one-byte buffer; more
are dropped (the host does not send before it has the response). After an error the host waits
a little longer than ``timeout``, drops what it received and repeats its request. The bridge
performs a bus access only for a complete, well-formed frame, asserts ``cyc`` and ``stb``
together for exactly that access and drops both the cycle the target acknowledges (or the bus
timeout expires), so the bus is idle whenever no access is in flight.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import wishbone
from .._checks import check_int


__all__ = ["CMD_READ", "CMD_WRITE", "RESP_READ", "RESP_WRITE", "RESP_ERROR", "Error",
           "ADDR_WIDTH", "UARTBridge"]

CMD_READ = 0x52
CMD_WRITE = 0x57
RESP_READ = 0x72
RESP_WRITE = 0x77
RESP_ERROR = 0x45

#: Width of the word address the protocol carries.
ADDR_WIDTH = 16


class Error(enum.Enum, shape=8):
    """Error codes of ``RESP_ERROR``."""
    BAD_COMMAND = 1
    TIMEOUT     = 2
    BAD_ENABLES = 3
    BUS_TIMEOUT = 4


class UARTBridge(wiring.Component):
    """Executes framed requests from a byte stream as Wishbone accesses.

    Parameters
    ----------
    timeout : int
        Cycles without a byte after which a partial frame is abandoned (``Error.TIMEOUT``).
        Choose it well above one byte time and below the host's response timeout.
    bus_timeout : int
        Cycles to wait for ``ack`` before giving up (``Error.BUS_TIMEOUT``).

    Members
    -------
    rx : In(stream.Signature(8))
        Bytes from the host.
    tx : Out(stream.Signature(8))
        Response bytes to the host.
    bus : Out(wishbone.Signature(addr_width=16))
        Wishbone initiator.
    active : Out(1)
        A frame is being received or executed (for an activity LED).

    Raises
    ------
    TypeError
        If ``timeout`` or ``bus_timeout`` is not an integer.
    ValueError
        If ``timeout`` or ``bus_timeout`` is below 1.
    """

    def __init__(self, *, timeout, bus_timeout=255):
        self._timeout = check_int("timeout", timeout, "a positive integer", lambda t: t >= 1)
        self._bus_timeout = check_int("bus_timeout", bus_timeout, "a positive integer",
                                      lambda t: t >= 1)
        super().__init__({
            "rx":     In(stream.Signature(8)),
            "tx":     Out(stream.Signature(8)),
            "bus":    Out(wishbone.Signature(addr_width=ADDR_WIDTH)),
            "active": Out(1),
        })

    @property
    def timeout(self):
        return self._timeout

    @property
    def bus_timeout(self):
        return self._bus_timeout

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        rx = self.rx

        frame = Array(Signal(8, name=f"frame{i}") for i in range(7))   # request bytes 1..7
        count = Signal(range(8))       # request bytes received after the command byte
        write = Signal()
        timer = Signal(range(max(self._timeout, self._bus_timeout) + 1))

        resp = Array(Signal(8, name=f"resp{i}") for i in range(5))
        resp_len = Signal(range(6))
        resp_idx = Signal(range(6))

        def respond(*bytes_):
            stmts = [resp[i].eq(b) for i, b in enumerate(bytes_)]
            stmts += [resp_len.eq(len(bytes_)), resp_idx.eq(0)]
            return stmts

        def error(code):
            return respond(RESP_ERROR, Error(code).value)

        adr = Cat(frame[1], frame[0])
        sel = frame[2]
        dat_w = Cat(frame[3], frame[4], frame[5], frame[6])
        m.d.comb += [bus.adr.eq(adr), bus.sel.eq(sel[:4]), bus.dat_w.eq(dat_w), bus.we.eq(write)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    with m.If((rx.payload == CMD_READ) | (rx.payload == CMD_WRITE)):
                        m.d.sync += [write.eq(rx.payload == CMD_WRITE), count.eq(0),
                                     timer.eq(self._timeout)]
                        m.next = "FRAME"
                    with m.Else():
                        m.d.sync += error(Error.BAD_COMMAND)
                        m.next = "RESPOND"
            with m.State("FRAME"):
                m.d.comb += [rx.ready.eq(1), self.active.eq(1)]
                last = Signal()
                m.d.comb += last.eq(count == Mux(write, 6, 2))
                with m.If(rx.valid):
                    m.d.sync += [frame[count].eq(rx.payload), count.eq(count + 1),
                                 timer.eq(self._timeout)]
                    with m.If(last):
                        m.next = "CHECK"
                with m.Elif(timer == 0):
                    m.d.sync += error(Error.TIMEOUT)
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("CHECK"):
                m.d.comb += self.active.eq(1)
                with m.If(sel[4:] != 0):
                    m.d.sync += error(Error.BAD_ENABLES)
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += timer.eq(self._bus_timeout)
                    m.next = "BUS"
            with m.State("BUS"):
                m.d.comb += [bus.cyc.eq(1), bus.stb.eq(1), self.active.eq(1)]
                with m.If(bus.ack):
                    with m.If(write):
                        m.d.sync += respond(RESP_WRITE)
                    with m.Else():
                        m.d.sync += respond(RESP_READ, *(bus.dat_r.word_select(i, 8)
                                                         for i in range(4)))
                    m.next = "RESPOND"
                with m.Elif(timer == 0):
                    m.d.sync += error(Error.BUS_TIMEOUT)
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("RESPOND"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(resp[resp_idx])]
                with m.If(self.tx.ready):
                    m.d.sync += resp_idx.eq(resp_idx + 1)
                    with m.If(resp_idx + 1 == resp_len):
                        m.next = "IDLE"
        return m
