"""A small 8N1 UART: receiver and transmitter with byte streams, baud rate from a clock divider.

Both directions run in the ``sync`` domain at ``divisor`` clock cycles per bit
(``divisor = clk_frequency // baud``, see :func:`divisor_for`). The line idles high; a frame is a
low start bit, 8 data bits LSB first and a high stop bit.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .._checks import check_int


__all__ = ["divisor_for", "UARTReceiver", "UARTTransmitter"]


def divisor_for(clk_frequency, baud):
    """Clock cycles per bit for ``baud`` at ``clk_frequency``.

    Raises
    ------
    TypeError
        If ``clk_frequency`` or ``baud`` is not a number.
    ValueError
        If either is not positive, the divisor would be below 4, or the rate is more than 2% off
        (8N1 tolerates about 4% between both ends).
    """
    for name, value in (("clk_frequency", clk_frequency), ("baud", baud)):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{name} must be a number, not {value!r}")
    if not baud > 0 or not clk_frequency > 0:
        raise ValueError(f"clk_frequency and baud must be positive, not {clk_frequency!r}, "
                         f"{baud!r}")
    divisor = round(clk_frequency / baud)
    if divisor < 4:
        raise ValueError(f"baud {baud} is too fast for a {clk_frequency / 1e6:g} MHz clock "
                         f"(divisor {divisor} < 4)")
    error = abs(clk_frequency / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"baud {baud} is {error:.1%} off at {clk_frequency / 1e6:g} MHz "
                         f"(divisor {divisor}); choose another rate")
    return divisor


def _check_divisor(divisor):
    # Below 4 cycles a bit, the receiver cannot sample the middle of the start bit.
    return check_int("divisor", divisor, "an integer of at least 4", lambda div: div >= 4)


class UARTReceiver(wiring.Component):
    """8N1 receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Members
    -------
    rx : In(1, init=1)
        The serial line (asynchronous; synchronized inside).
    data : Out(stream.Signature(8))
        Received bytes. The output holds one byte; a byte that arrives while it is still full is
        dropped and ``overrun`` pulses.
    framing_error : Out(1)
        One-cycle pulse: a frame whose stop bit was low; its byte is dropped.
    overrun : Out(1)
        One-cycle pulse: a byte was dropped because ``data`` was not taken in time.

    Latency
    -------
    A byte is offered about half a bit time after the middle of its stop bit's start.

    Raises
    ------
    TypeError
        If ``divisor`` is not an integer.
    ValueError
        If ``divisor`` is below 4.
    """

    def __init__(self, *, divisor):
        self._divisor = _check_divisor(divisor)
        super().__init__({
            "rx":            In(1, init=1),
            "data":          Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun":       Out(1),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor

        # Two flip-flops against metastability; they idle high like the line.
        sync0 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync0.eq(self.rx), line.eq(sync0)]

        timer = Signal(range(div + div // 2 + 1))
        bits = Signal(range(10))
        shreg = Signal(9)            # 8 data bits and the stop bit

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    # The middle of the start bit is half a bit time away.
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"          # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(div - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(div - 1), bits.eq(bits + 1),
                                 shreg.eq(Cat(shreg[1:], line))]
                    with m.If(bits == 8):
                        m.next = "DONE"
            with m.State("DONE"):
                with m.If(~shreg[8]):
                    m.d.comb += self.framing_error.eq(1)
                with m.Elif(self.data.valid & ~self.data.ready):
                    m.d.comb += self.overrun.eq(1)
                with m.Else():
                    m.d.sync += [self.data.payload.eq(shreg[:8]), self.data.valid.eq(1)]
                # Wait in the middle of the stop bit for the line to be high before looking for
                # the next start bit (a low stop bit would otherwise start a frame at once).
                with m.If(line):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Members
    -------
    data : In(stream.Signature(8))
        Bytes to send; one is taken whenever the transmitter is idle.
    tx : Out(1, init=1)
        The serial line, registered.
    busy : Out(1)
        A frame is being sent.

    Raises
    ------
    TypeError
        If ``divisor`` is not an integer.
    ValueError
        If ``divisor`` is below 4.
    """

    def __init__(self, *, divisor):
        self._divisor = _check_divisor(divisor)
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx":   Out(1, init=1),
            "busy": Out(1),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div))
        shreg = Signal(10, init=0x3ff)   # start, 8 data bits, stop; shifted out LSB first
        bits = Signal(range(11))

        m.d.comb += [self.busy.eq(bits != 0), self.data.ready.eq(bits == 0)]
        m.d.sync += self.tx.eq(shreg[0])
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [shreg.eq(Cat(0, self.data.payload, 1)), bits.eq(10), timer.eq(div - 1)]
        with m.Elif(bits != 0):
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [timer.eq(div - 1), bits.eq(bits - 1),
                             shreg.eq(Cat(shreg[1:], 1))]
        return m
