"""Byte realigners between bus words at any byte offset and densely packed byte streams.

A virtqueue buffer may start and end at any byte address. The engine (:mod:`hw.virtqueue`) reads
and writes whole 32-bit bus words; these two blocks move the bytes between the bus's lanes and
the device's streams, in which every read beat but the last carries four bytes:

* :class:`Packer`: bus words in, each with the lanes that belong to the buffer, dense beats out.
* :class:`Unpacker`: beats of 0 to 4 bytes in, bus words out, each placed at the destination's
  lane offset with the byte selects of the bytes it carries.

Both move 4 bytes per cycle when neither side waits.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


__all__ = ["PackerInput", "ReadBeat", "WriteBeat", "BusWord", "Packer", "Unpacker"]


class PackerInput(data.Struct):
    """A bus word and which of its bytes belong to the buffer: ``n`` bytes (1 to 4) from lane
    ``lo``; ``last`` marks the run's last word."""
    data: 32
    lo:   2
    n:    3
    last: 1


class ReadBeat(data.Struct):
    """``count`` bytes of a chain's readable part, first byte lowest: 4 in every beat but the
    ``last``, 1 to 4 in the ``last`` (the lanes beyond its bytes are unspecified).

    The same fields as :class:`WriteBeat`: device logic that forwards read bytes as write bytes
    connects one to the other."""
    data:  32
    count: 3
    last:  1


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


def _bytes(value):
    return [value[8 * j:8 * j + 8] for j in range(4)]


def _rotate(value, amount, unit=8):
    """``value`` with lane ``(j + amount) % 4`` in lane ``j``, lanes of ``unit`` bits
    (combinational).

    Two stages of 2:1 multiplexers: on iCE40 a LUT4 per bit and stage, where a 4:1 multiplexer
    per bit maps to three."""
    halves = Mux(amount[1], Cat(value[2 * unit:], value[:2 * unit]), value)
    return Mux(amount[0], Cat(halves[unit:], halves[:unit]), halves)


class Packer(wiring.Component):
    """Bus words at any lane offset in, dense beats out.

    Up to 3 bytes wait for the next word; the output is registered.

    Members
    -------
    load : In(1)
        Start a run (drops held bytes).
    empty : In(1)
        With ``load``: the run has no bytes (``done`` at once).
    i : In(stream.Signature(PackerInput))
        The bytes read from the bus, in order.
    o : Out(stream.Signature(ReadBeat))
        Dense beats: 4 bytes each, ``last`` on the beat with the run's last byte (1 to 4).
    done : Out(1)
        Every byte of the run has been sent.
    """

    load:  In(1)
    empty: In(1)
    i:     In(stream.Signature(PackerInput))
    o:     Out(stream.Signature(ReadBeat))
    done:  Out(1)

    def elaborate(self, platform):
        m = Module()
        held = Signal(2)            # bytes waiting in the low lanes of residue
        residue = Signal(24)
        flush = Signal()            # the residue is the run's last beat
        ended = Signal()            # the run's last word has been taken
        out = Signal(ReadBeat)
        out_valid = Signal()
        m.d.comb += [self.o.valid.eq(out_valid), self.o.p.eq(out),
                     self.done.eq(ended & ~flush & ~out_valid)]

        # The incoming word rotated so that its first byte lands right after the held ones:
        # every byte then sits in its lane of the dense stream, and no shifter is needed.
        rotated = Signal(32)
        m.d.comb += rotated.eq(_rotate(self.i.p.data, self.i.p.lo - held))
        joined = Signal(32)
        m.d.comb += joined.eq(Cat(*(Mux(held > j, _bytes(residue)[j], _bytes(rotated)[j])
                                    for j in range(3)), rotated[24:]))
        total = Signal(range(8))
        m.d.comb += total.eq(held + self.i.p.n)

        free = ~out_valid | self.o.ready
        m.d.comb += self.i.ready.eq(free & ~flush)
        with m.If(self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(self.load):
            m.d.sync += [held.eq(0), flush.eq(0), ended.eq(self.empty), out_valid.eq(0)]
        with m.Elif(flush & free):
            # joined holds the residue in its low lanes: one source for the output register.
            m.d.sync += [out.data.eq(joined), out.count.eq(held), out.last.eq(1),
                         out_valid.eq(1), flush.eq(0)]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += ended.eq(self.i.p.last)
            with m.If(total[2] | self.i.p.last):
                fits = total <= 4               # the run's last bytes all go in this beat
                m.d.sync += [out.data.eq(joined), out.last.eq(self.i.p.last & fits),
                             out.count.eq(Mux(self.i.p.last & fits, total, 4)),
                             out_valid.eq(1), residue.eq(rotated[:24]), held.eq(total[:2]),
                             flush.eq(self.i.p.last & ~fits)]
            with m.Else():
                m.d.sync += [residue.eq(joined[:24]), held.eq(total[:2])]
        return m


class Unpacker(wiring.Component):
    """Beats of 0 to 4 bytes in, bus words at the destination's lane offset out.

    The consumer says where the next bytes go: lanes ``lane`` to ``stop`` of the next word
    (``stop >= lane``). A word is offered once it can be filled, or with what is left once the
    ``last`` beat has been taken. Up to 7 bytes are held; ``i.ready`` depends combinationally
    on ``o.ready`` (a word taken makes room for a beat in the same cycle).

    Members
    -------
    clear : In(1)
        Start a new chain (drops held bytes).
    i : In(stream.Signature(WriteBeat))
    lane : In(2)
    stop : In(2)
    o : Out(stream.Signature(BusWord))
        ``data`` already placed from ``lane``; ``n`` is how many bytes it takes.
    done : Out(1)
        The ``last`` beat has been taken and every byte offered and taken.
    ending : Out(1)
        An empty ``last`` beat is taken in this cycle with no byte held: ``done`` from the next
        cycle on (a chain device logic completes without writing, a cycle earlier).
    """

    clear:  In(1)
    i:      In(stream.Signature(WriteBeat))
    lane:   In(2)
    stop:   In(2)
    o:      Out(stream.Signature(BusWord))
    done:   Out(1)
    ending: Out(1)

    def elaborate(self, platform):
        m = Module()
        # Byte s of the stream waits in byte s % 8 of store, so a beat only needs rotating by
        # where it starts, and a word's bytes come from one window of the two store words.
        store = Array(Signal(8, name=f"store_{p}") for p in range(8))
        head = Signal(3)                # stream position of the next byte out
        tail = Signal(3)                # and of the next byte in
        count = Signal(range(8))
        ended = Signal()

        fit = Signal(range(5))
        take = Signal(range(5))
        m.d.comb += [fit.eq(self.stop - self.lane + 1), take.eq(Mux(count < fit, count, fit))]
        # Timing: "count >= fit" and "count <= fit + 3" (on the way from the consumer's lane and
        # stop to o.valid and i.ready) as a mask over count looked up by lane and stop, then a
        # bit of it selected by count: no subtractor and comparator in series.
        fits = [(stop - lane + 1) % 8 for stop in range(4) for lane in range(4)]
        enough = Signal(8)                      # bit c: count c fills the word
        roomy = Signal(8)                       # bit c: a word taken leaves at most 3 bytes
        m.d.comb += [
            enough.eq(Array(Const(sum(1 << c for c in range(8) if c >= f), 8)
                            for f in fits)[Cat(self.lane, self.stop)]),
            roomy.eq(Array(Const(sum(1 << c for c in range(8) if c <= f + 3), 8)
                           for f in fits)[Cat(self.lane, self.stop)]),
        ]
        window = Signal(32)
        for j in range(4):
            # byte j of the window: the next in the stream among store bytes j and j + 4
            upper = head[2] ^ (head[:2] > j)
            m.d.comb += window[8 * j:8 * j + 8].eq(Mux(upper, store[j + 4], store[j]))
        m.d.comb += [
            # take != 0 is count != 0: fit is at least 1 (stop >= lane).
            self.o.valid.eq((count != 0) & (enough.bit_select(count, 1) | ended)),
            self.o.p.data.eq(_rotate(window, head[:2] - self.lane)),
            self.o.p.sel.eq(Array(Const(s, 4) for s in (0, 1, 3, 7, 15))[take] << self.lane),
            self.o.p.n.eq(take),
            self.done.eq(ended & (count == 0)),
        ]

        taken = Signal(range(5))
        fire = self.o.valid & self.o.ready
        m.d.comb += taken.eq(Mux(fire, take, 0))
        after = Signal(range(8))
        m.d.comb += after.eq(count - taken)
        # Room for a beat once at most 3 bytes are left, decided from count and fit rather than
        # from after: no subtractor lies between o.ready and i.ready. A word taken leaves
        # count - fit bytes (none when count < fit).
        m.d.comb += self.i.ready.eq(~ended & ((count <= 3) | (fire & roomy.bit_select(count, 1))))

        beat = Signal(range(5))
        m.d.comb += beat.eq(Mux(self.i.p.count > 4, 4, self.i.p.count))
        accept = self.i.valid & self.i.ready
        m.d.comb += self.ending.eq(accept & self.i.p.last & (beat == 0) & (count == 0))
        rotated = _bytes(_rotate(self.i.p.data, -tail[:2]))
        # The lanes the beat fills, and for each lane which store word is next after tail.
        lanes = Signal(4)
        m.d.comb += lanes.eq(_rotate(Array(Const((1 << n) - 1, 4) for n in range(5))[beat],
                                     -tail[:2], unit=1))
        for p in range(8):
            upper = tail[2] ^ (tail[:2] > p % 4)
            with m.If(accept & lanes[p % 4] & (upper == p // 4)):
                m.d.sync += store[p].eq(rotated[p % 4])
        m.d.sync += head.eq(head + taken)
        with m.If(self.clear):
            m.d.sync += [head.eq(0), tail.eq(0), count.eq(0), ended.eq(0)]
        with m.Elif(accept):
            m.d.sync += [tail.eq(tail + beat), count.eq(after + beat), ended.eq(self.i.p.last)]
        with m.Else():
            m.d.sync += count.eq(after)
        return m
