"""Byte realigners between bus words at any byte offset and densely packed byte streams.

A virtqueue buffer may start and end at any byte address. The engine (:mod:`hw.virtqueue`) reads
and writes whole 32-bit bus words; these two blocks move the bytes between the bus's lanes and
the device's streams, in which every beat but the last carries four bytes:

* :class:`Packer`: bus words in, each with the lanes that belong to the buffer, dense beats out.
* :class:`Unpacker`: dense beats in, bus words out, each placed at the destination's lane offset
  with the byte selects of the bytes it carries.

Both hold at most 7 bytes and move 4 bytes per cycle when neither side waits.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


__all__ = ["PackerInput", "ReadBeat", "WriteBeat", "BusWord", "Packer", "Unpacker"]


class PackerInput(data.Struct):
    """A bus word and which of its bytes belong to the buffer: ``n`` bytes from lane ``lo``."""
    data: 32
    lo:   2
    n:    3


class ReadBeat(data.Struct):
    """Four bytes of a chain's readable part (fewer in the ``last`` beat), first byte lowest."""
    data: 32
    last: 1


class WriteBeat(data.Struct):
    """``count`` bytes (0 to 4, low lanes first) for a chain's writable part; ``last`` ends it.

    A beat of ``count`` 0 is meaningful only with ``last`` (a chain completed with nothing more
    to write); a ``count`` above 4 is taken as 4."""
    data:  32
    count: 3
    last:  1


class BusWord(data.Struct):
    """A bus write: ``data`` under ``sel``, which takes ``n`` bytes of the stream."""
    data: 32
    sel:  4
    n:    3


def _mux(index, values):
    """A constant chosen by ``index`` (combinational)."""
    return Array(Const(value, 32) for value in values)[index]


def _low_bytes(value, count):
    """``value`` with every byte from ``count`` (0 to 4) up cleared."""
    return value & _mux(count, [(1 << 8 * n) - 1 for n in range(5)])


class Packer(wiring.Component):
    """Bus words at any lane offset in, dense beats out.

    Members
    -------
    load : In(1)
        Start a run of ``total`` bytes (clears the held bytes).
    total : In(32)
    i : In(stream.Signature(PackerInput))
        The bytes read from the bus, in order.
    o : Out(stream.Signature(ReadBeat))
        Dense beats: 4 bytes each, the last beat of the run with ``total % 4`` (or 4) bytes.
    done : Out(1)
        Every byte of the run has been sent.
    """

    load:  In(1)
    total: In(32)
    i:     In(stream.Signature(PackerInput))
    o:     Out(stream.Signature(ReadBeat))
    done:  Out(1)

    def elaborate(self, platform):
        m = Module()
        held = Signal(56)
        count = Signal(range(8))
        left = Signal(32)       # bytes of the run not yet sent

        out_bytes = Signal(range(5))
        m.d.comb += [
            out_bytes.eq(4),
            self.done.eq(left == 0),
            self.o.p.data.eq(held[:32]),
            self.o.p.last.eq(left <= 4),
        ]
        with m.If(left < 4):
            m.d.comb += out_bytes.eq(left)
        m.d.comb += self.o.valid.eq((left != 0) & (count >= out_bytes))

        sent = self.o.valid & self.o.ready
        after = Signal(range(8))
        kept = Signal(56)
        with m.If(sent):
            m.d.comb += [after.eq(count - out_bytes), kept.eq(held >> 32)]
        with m.Else():
            m.d.comb += [after.eq(count), kept.eq(held)]
        # At most 3 bytes held after sending, so a word's 4 bytes always fit in 7.
        m.d.comb += self.i.ready.eq(after <= 3)

        incoming = Signal(32)
        m.d.comb += incoming.eq(_low_bytes(self.i.p.data >> (self.i.p.lo * 8), self.i.p.n))
        with m.If(self.load):
            m.d.sync += [held.eq(0), count.eq(0), left.eq(self.total)]
        with m.Else():
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [held.eq(kept | (incoming << (after * 8))),
                             count.eq(after + self.i.p.n)]
            with m.Else():
                m.d.sync += [held.eq(kept), count.eq(after)]
            with m.If(sent):
                m.d.sync += left.eq(left - out_bytes)
        return m


class Unpacker(wiring.Component):
    """Dense beats in, bus words at the destination's lane offset out.

    The consumer says where the next byte goes: ``lane`` (its address modulo 4) and ``room``
    (how many bytes, 1 to 4, may go into this word). A word is offered once it can be filled to
    ``min(4 - lane, room)`` bytes, or with what is left once the ``last`` beat has been taken.

    Members
    -------
    clear : In(1)
        Start a new chain (drops held bytes).
    i : In(stream.Signature(WriteBeat))
    lane : In(2)
    room : In(range(5))
    o : Out(stream.Signature(BusWord))
        ``data`` already shifted to ``lane``; ``n`` is how many bytes it takes.
    done : Out(1)
        The ``last`` beat has been taken and every byte offered and taken.
    """

    clear: In(1)
    i:     In(stream.Signature(WriteBeat))
    lane:  In(2)
    room:  In(range(5))
    o:     Out(stream.Signature(BusWord))
    done:  Out(1)

    def elaborate(self, platform):
        m = Module()
        held = Signal(56)
        count = Signal(range(8))
        ended = Signal()

        fit = Signal(range(5))          # bytes this word can take
        lane_room = Signal(range(5))
        m.d.comb += [lane_room.eq(4 - self.lane), fit.eq(lane_room)]
        with m.If(self.room < lane_room):
            m.d.comb += fit.eq(self.room)
        take = Signal(range(5))
        m.d.comb += take.eq(fit)
        with m.If(count < fit):
            m.d.comb += take.eq(count)
        m.d.comb += [
            self.o.valid.eq((fit != 0) & (take != 0) & ((count >= fit) | ended)),
            self.o.p.data.eq(held[:32] << (self.lane * 8)),
            self.o.p.sel.eq(_mux(take, [0, 1, 3, 7, 15]) << self.lane),
            self.o.p.n.eq(take),
            self.done.eq(ended & (count == 0)),
        ]

        taken = self.o.valid & self.o.ready
        after = Signal(range(8))
        kept = Signal(56)
        with m.If(taken):
            m.d.comb += [after.eq(count - take), kept.eq(held >> (take * 8))]
        with m.Else():
            m.d.comb += [after.eq(count), kept.eq(held)]
        m.d.comb += self.i.ready.eq(~ended & (after <= 3))

        beat = Signal(range(5))
        m.d.comb += beat.eq(Mux(self.i.p.count > 4, 4, self.i.p.count))
        with m.If(self.clear):
            m.d.sync += [held.eq(0), count.eq(0), ended.eq(0)]
        with m.Else():
            with m.If(self.i.valid & self.i.ready):
                incoming = _low_bytes(self.i.p.data, beat)
                m.d.sync += [held.eq(kept | (incoming << (after * 8))),
                             count.eq(after + beat),
                             ended.eq(self.i.p.last)]
            with m.Else():
                m.d.sync += [held.eq(kept), count.eq(after)]
        return m
