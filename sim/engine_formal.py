"""Formal harness for :class:`hw.virtqueue.VirtqueueEngine` (issue 14): the bus master's
handshake, the order of the used-ring writes, teardown and where the engine writes.

:class:`EngineHarness` wraps one engine (one queue) and looks only at its ports. Every input is
``AnySeq`` or ``AnyConst``; ``Assume`` keeps the environment to what a Wishbone B4 pipelined
target, the transport (:mod:`hw.transport`) and a driver that follows virtio 1.2 may do:

* the target answers (``ack`` or ``err``, never both) only requests it has taken and not yet
  answered, in order; it may stall and wait as long as it likes;
* the queue's size (a power of two up to ``max_size``) and its three areas (any address) hold
  while the queue is ready (the transport ignores writes to them then) and change freely while
  it is not; for ``"ordering"`` and ``"buffers"``, which tell the ring's words apart by
  address, the three areas do not overlap; with ``in_range``, an area that starts inside the
  bus's address space also ends inside it;
* a reset (``reset``) makes the queue not ready from the next cycle (decisions.md D7: Status := 0
  returns QueueReady to 0 at the end of the cycle of the pulse); EVENT_IDX does not change;
* a writable buffer does not overlap the used ring (virtio 1.2 §2.7.4: the used ring is the
  device's; the engine does not check this, so a driver that breaks it gets its ring
  overwritten, which no ordering can help); descriptor lengths are below 64 bytes (16 for
  ``"ordering"``), so D11 case 11 (totals beyond 32 bits) is out of reach: simulation pins it;
* everything else is free: notifications, the memory's data, the device's streams (they need
  not follow the stream rules), ``error``.

The harness keeps, for every request in flight, what it was (a read, a descriptor word, a data
write, a used-ring write, the used element's id or len word, used.idx) and whether it was taken
while the queue was in service, and checks one group of properties (``check``):

``"handshake"``
    Wishbone B4 pipelined, initiator side: ``stb`` implies ``cyc``; ``cyc`` is high while
    requests are in flight, and only while a request is presented or answers are due; never more
    than :data:`hw.virtqueue.OUTSTANDING` requests in flight; a stalled request stays on the bus
    unchanged (``adr``, ``we``, ``sel``, and for a write ``dat_w`` under ``sel``) unless the
    engine abandons the chain (a reset or QueueReady = 0 in this cycle or the one before, a bus
    error or the device's ``error`` in the cycle before; B4 lets an initiator withdraw a
    request it has not had taken).
``"ordering"``
    A write touching the used ring ``[device, device + 6 + 8 * size)`` is taken only when no data
    write is in flight (every one answered, at the latest in that cycle; virtio 1.2 §2.7.8.2);
    the used.idx write (``sel`` 0b1100 at the Device Area's word: never used.flags) is taken
    only when nothing else written is in flight and both words of the used element at
    ``used.idx % size`` were acknowledged (a target that fails the element's write never sees
    used.idx follow it), and advances used.idx by one; the element's id is the head of the chain
    last offered on ``request``, its len the number of bytes written since; the id is written
    only once device logic's last write beat (``last``) was taken, and no data write follows
    the element's words until the next chain is offered.
``"teardown"``
    From the cycle of a reset or of QueueReady = 0 itself until a notification for the ready
    queue, no request is taken, read or write (virtio 1.2 §4.2.2.1: not even the request the
    engine presented in the cycle before); from the cycle after a bus error on a request of the
    queue in service, no request at all is taken until a reset.
``"reset"``
    From the cycle after a reset until a notification for the ready queue, ``needs_reset`` stays
    low: a malformed ring seen before the reset is not reported to the new driver.
``"buffers"``
    Every byte a data write selects lies in a writable buffer of one of the last ``max_chain``
    descriptors the engine read since the last chain was returned (or the queue torn down); a
    write into the used ring is one of its own words (the element's id or len, used.idx with
    ``sel`` 0b1100, avail_event with ``sel`` 0b0011), never data.

Covers (every group): used.idx written (also after a chain that wrote bytes), a data write,
``needs_reset`` pulsed, a stalled request withdrawn, :data:`~hw.virtqueue.OUTSTANDING` requests
in flight, a reset while a fault's bus cycles drain.

Each harness takes a ``mutant`` naming a fault in what the engine sees (the harness still sees
the real environment), so the tests can show each property can fail: ``"phantom_ack"`` (the
engine sees acknowledgements the target did not give), ``"phantom_data_ack"`` and
``"phantom_element_ack"`` (... only for data writes, or only for the used element's words),
``"missed_stall"`` (the engine misses a stall), ``"missed_err"`` (it takes an ``err`` for an
``ack``), ``"stale_ready"`` (it sees QueueReady drop a cycle late), ``"moved_buffer"`` (it
reads a descriptor's address wrong), ``"used_buffer"`` (... as the Device Area's: its data lands
in the used ring), ``"lost_reset"`` (it misses resets) and ``"early_last"``
(it sees device logic's last write beat where there was none).

These are bounded proofs from the engine's initial state: the harness sees only ports, and an
induction would need the engine's own state (its count of requests in flight, its state
machine) tied to the harness's. Within the depths of the tests only the first chain of a
service reaches used.idx: the used ring's later slots, its wrap and the indices' restart after
a teardown are pinned in simulation (``tests/test_virtqueue.py``), not here.
"""


from amaranth.asserts import AnyConst, AnySeq     # Amaranth 0.5 has no amaranth.hdl.AnySeq
from amaranth.hdl import (Array, Assert, Assume, Cat, ClockDomain, Const, Cover, Elaboratable,
                          Module, Mux, Signal)
from amaranth.lib import data, enum

from hw.virtqueue import OUTSTANDING, VirtqueueEngine

from .formal import _clock, _delayed, run_sby


__all__ = ["EngineHarness", "CHECKS", "MUTANTS", "run_engine_sby"]


#: The property groups of :class:`EngineHarness`.
CHECKS = ("handshake", "ordering", "teardown", "reset", "buffers")

#: The faults :class:`EngineHarness` can inject into what the engine sees.
MUTANTS = ("phantom_ack", "phantom_data_ack", "phantom_element_ack", "missed_stall",
           "missed_err", "stale_ready", "moved_buffer", "used_buffer", "lost_reset",
           "early_last")

_DESC_F_WRITE = 2       # virtio 1.2 §2.7.5


class _Kind(enum.Enum, shape=3):
    """What a request in flight was."""
    READ = 0            # any other read
    DESC = 1            # a word of the descriptor table
    DATA = 2            # a write that does not touch the used ring
    USED = 3            # any other write touching the used ring (avail_event, a wrong slot)
    ID = 4              # the used element's id word, of the slot used.idx % size
    LEN = 5             # ... its len word
    IDX = 6             # used.idx


class _InFlight(data.Struct):
    kind: _Kind
    word: 2             # DESC: which word of the descriptor (virtio 1.2 §2.7.5)
    live: 1             # taken while the queue was in service (no teardown since)


def _popcount(bits):
    return sum((bits[i] for i in range(len(bits))), Const(0, 3))


class EngineHarness(Elaboratable):
    """:class:`hw.virtqueue.VirtqueueEngine` with one queue against a Wishbone B4 pipelined
    target, the transport and a driver, all free within the rules of the module docstring.

    Parameters
    ----------
    check : str
        The property group, one of :data:`CHECKS`.
    addr_width : int
        The engine's word address width.
    max_chain : int
        The engine's longest chain.
    max_size : int
        Largest queue size the harness considers (a power of two).
    in_range : bool
        Assume that every ring area whose base is inside the bus's address space also ends
        inside it. Without it (the default) an area may run past the top of the bus.
    mutant : None or str
        One of :data:`MUTANTS`.
    """
    def __init__(self, *, check, addr_width=8, max_chain=2, max_size=4, in_range=False,
                 mutant=None):
        if check not in CHECKS:
            raise ValueError(f"check must be one of {', '.join(CHECKS)}, not {check!r}")
        if mutant is not None and mutant not in MUTANTS:
            raise ValueError(f"mutant must be None or one of {', '.join(MUTANTS)}, "
                             f"not {mutant!r}")
        if max_size < 1 or max_size & (max_size - 1):
            raise ValueError(f"max_size must be a power of two, not {max_size!r}")
        self.check = check
        self.max_size = max_size
        self.in_range = in_range
        self.mutant = mutant
        self.cd = ClockDomain("sync")
        self.dut = VirtqueueEngine(num_queues=1, addr_width=addr_width, max_chain=max_chain)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        _clock(m, self)
        bus = dut.bus
        baw = dut.addr_width + 2            # byte address width
        depth = OUTSTANDING + 1             # one more than allowed: an excess is still recorded

        # --- environment ---------------------------------------------------------------------
        ack, err, stall, dat_r = AnySeq(1), AnySeq(1), AnySeq(1), AnySeq(32)
        reset, ready = AnySeq(1), AnySeq(1)
        # The engine looks at an area's address bits from the bus's width up only through their
        # OR (D11 case 8: beyond the bus), so one bit above the bus stands for all of them.
        area_width = baw + 1
        size, device = AnySeq(16), AnySeq(area_width)
        desc, driver = AnySeq(area_width), AnySeq(area_width)
        notify_valid, notify_queue = AnySeq(1), AnySeq(16)

        taken = Signal()
        answer = Signal()
        inflight = Signal(range(2 * depth))
        m.d.comb += [taken.eq(bus.cyc & bus.stb & ~stall), answer.eq(ack | err)]
        m.d.sync += inflight.eq(inflight + taken - answer)
        # The target answers only what it has taken, once, in order.
        m.d.comb += [Assume(~(ack & err)), Assume(~answer | (inflight != 0))]

        # decisions.md D7: the transport's reset returns QueueReady to 0 at the end of its cycle.
        prev_reset = _delayed(m, reset, "prev_reset")
        prev_ready = _delayed(m, ready, "prev_ready")
        m.d.comb += Assume(~prev_reset | ~ready)
        m.d.comb += Assume(((size & (size - 1)) == 0) & (size != 0) & (size <= self.max_size))
        # The transport ignores writes to the queue's registers while it is ready; while it is
        # not, the driver may set them up anew (and a reset clears them).
        for area, name in ((desc, "desc"), (driver, "driver"), (device, "device"),
                           (size, "size")):
            prev_area = _delayed(m, area, f"prev_{name}")
            with m.If(prev_ready & ready):
                m.d.comb += Assume(area == prev_area)
        desc_end = Signal(area_width + 1)
        driver_end = Signal(area_width + 1)
        used_end = Signal(area_width + 1)
        m.d.comb += [desc_end.eq(desc + (size << 4)), driver_end.eq(driver + 6 + (size << 1)),
                     used_end.eq(device + 6 + (size << 3))]

        def disjoint(a, a_end, b, b_end):
            return (a_end <= b) | (b_end <= a)
        if self.in_range:
            # A ring area is inside the bus's address space, or wholly outside it (D11 case 8).
            for area, end in ((desc, desc_end), (driver, driver_end), (device, used_end)):
                m.d.comb += Assume((area >= 1 << baw) | (end <= 1 << baw))
        if self.check in ("ordering", "buffers"):
            # They tell the ring's words apart by address (a descriptor read inside the
            # available ring would be taken for a descriptor word).
            m.d.comb += Assume(disjoint(desc, desc_end, driver, driver_end) &
                               disjoint(desc, desc_end, device, used_end) &
                               disjoint(driver, driver_end, device, used_end))

        # What the engine sees: the environment, or a mutant's distortion of it.
        seen_ack, seen_err, seen_stall, seen_dat_r = ack, err, stall, dat_r
        seen_ready, seen_reset = ready, reset
        last = AnySeq(1)                    # device logic's write beat ends the chain
        seen_last = last
        phantom = Signal()                  # an acknowledgement the target did not give
        m.d.comb += phantom.eq(AnySeq(1) & (inflight != 0) & ~err)
        phantom_of_kind = Signal()          # ... for a request of some kinds (set below)
        if self.mutant == "phantom_ack":
            seen_ack = ack | phantom
        elif self.mutant in ("phantom_data_ack", "phantom_element_ack"):
            seen_ack = ack | phantom_of_kind
        elif self.mutant == "missed_err":
            seen_ack, seen_err = ack | err, Const(0)
        elif self.mutant == "early_last":
            seen_last = last | AnySeq(1)
        elif self.mutant == "missed_stall":
            seen_stall = stall & AnySeq(1)
        elif self.mutant == "stale_ready":
            seen_ready = ready | prev_ready
        elif self.mutant == "lost_reset":
            seen_reset = reset & AnySeq(1)
        m.d.comb += [
            bus.ack.eq(seen_ack), bus.err.eq(seen_err), bus.stall.eq(seen_stall),
            dut.queues.ready.eq(seen_ready), dut.reset.eq(seen_reset),
            dut.queues.size[0].eq(size), dut.queues.device[0].eq(device),
            dut.queues.desc[0].eq(desc), dut.queues.driver[0].eq(driver),
            dut.notify.valid.eq(notify_valid), dut.notify.p.queue.eq(notify_queue),
            dut.notify.p.as_value()[16:].eq(AnySeq(16)),
            dut.event_idx.eq(AnyConst(1)), dut.error.eq(AnySeq(1)),
            dut.request.ready.eq(AnySeq(1)), dut.read.ready.eq(AnySeq(1)),
            dut.write.valid.eq(AnySeq(1)), dut.write.p.count.eq(AnySeq(3)),
            dut.write.p.last.eq(seen_last),
        ]
        # The bytes the device writes steer nothing but dat_w: only the handshake (dat_w held
        # under stall) looks at them. Elsewhere they are 0, and the data path folds away.
        if self.check == "handshake":
            m.d.comb += dut.write.p.data.eq(AnySeq(32))

        # Teardown (reset or QueueReady = 0) ends the queue's service; a notification for the
        # ready queue starts a new one.
        teardown = Signal()
        rearm = Signal()
        m.d.comb += [teardown.eq(reset | ~ready),
                     rearm.eq(notify_valid & (notify_queue == 0) & ready & ~reset)]

        # --- the requests in flight ----------------------------------------------------------
        book = Array(Signal(_InFlight, name=f"inflight_{i}") for i in range(depth))
        oldest = book[0]
        shadow_idx = Signal(16)             # used.idx as last written since the queue was ready
        mask = Signal(16)
        m.d.comb += mask.eq(size - 1)
        slot = Signal(16)
        m.d.comb += slot.eq(shadow_idx & mask)

        word_b = Signal(baw)                # the request's byte address
        m.d.comb += word_b.eq(Cat(Const(0, 2), bus.adr))
        lane_b = [Signal(baw, name=f"lane_b{lane}") for lane in range(4)]
        m.d.comb += [b.eq(Cat(Const(lane, 2), bus.adr)) for lane, b in enumerate(lane_b)]
        touches_used = Signal()
        touches_idx = Signal()
        m.d.comb += [
            touches_used.eq(bus.we & Cat(bus.sel[lane] & (b >= device) & (b < used_end)
                                         for lane, b in enumerate(lane_b)).any()),
            touches_idx.eq(bus.we & Cat(bus.sel[lane] & ((b == device + 2) | (b == device + 3))
                                        for lane, b in enumerate(lane_b)).any()),
        ]
        is_id = bus.we & (bus.sel == 0b1111) & (word_b == device + 4 + (slot << 3))
        is_len = bus.we & (bus.sel == 0b1111) & (word_b == device + 8 + (slot << 3))
        is_desc = ~bus.we & (word_b >= desc) & (word_b < desc_end)
        offset = Signal(baw)
        m.d.comb += offset.eq(word_b - desc)

        new = Signal(_InFlight)
        with m.If(touches_idx):
            m.d.comb += new.kind.eq(_Kind.IDX)
        with m.Elif(is_id):
            m.d.comb += new.kind.eq(_Kind.ID)
        with m.Elif(is_len):
            m.d.comb += new.kind.eq(_Kind.LEN)
        with m.Elif(touches_used):
            m.d.comb += new.kind.eq(_Kind.USED)
        with m.Elif(bus.we):
            m.d.comb += new.kind.eq(_Kind.DATA)
        with m.Elif(is_desc):
            m.d.comb += [new.kind.eq(_Kind.DESC), new.word.eq(offset[2:4])]
        with m.Else():
            m.d.comb += new.kind.eq(_Kind.READ)
        m.d.comb += new.live.eq(~teardown)

        # The answer of this cycle retires the oldest; a request taken goes in behind the rest.
        for i in range(depth):
            after = book[i + 1] if i + 1 < depth else Const(0, _InFlight)
            shifted = Mux(answer, after.as_value(), book[i].as_value())
            with m.If(taken & (inflight - answer == i)):
                m.d.sync += book[i].eq(new)
            with m.Else():
                m.d.sync += book[i].eq(shifted)
            with m.If(teardown):
                m.d.sync += book[i].live.eq(0)

        if self.mutant == "phantom_data_ack":
            m.d.comb += phantom_of_kind.eq(phantom & (oldest.kind == _Kind.DATA))
        elif self.mutant == "phantom_element_ack":
            m.d.comb += phantom_of_kind.eq(phantom & ((oldest.kind == _Kind.ID) |
                                                      (oldest.kind == _Kind.LEN)))

        def still_in_flight(*kinds):
            """A request of one of ``kinds`` is in flight after this cycle's answer."""
            return Cat((answer <= i) & (i < inflight) &
                       Cat(book[i].kind == kind for kind in kinds).any()
                       for i in range(depth)).any()

        # --- what the driver has said: the chain and its descriptors -------------------------
        chain_head = Signal(16)
        written = Signal(32)                # bytes written since the chain was offered
        offered = dut.request.valid & dut.request.ready
        with m.If(offered):
            m.d.sync += [chain_head.eq(dut.request.p.head), written.eq(0)]
        with m.Elif(taken & bus.we & ~touches_used):
            m.d.sync += written.eq(written + _popcount(bus.sel))

        desc_words = Array(Signal(32, name=f"desc_word_{k}") for k in range(4))
        good = ack & ~err
        desc_answer = good & (oldest.kind == _Kind.DESC)
        with m.If(desc_answer & (oldest.word != 3)):
            m.d.sync += desc_words[oldest.word].eq(dat_r)
        d_address = Cat(desc_words[0], desc_words[1])
        d_end = Signal(65)
        m.d.comb += d_end.eq(d_address + desc_words[2])
        # Only a buffer that fits in the bus's address space is ever written (D11 case 8), and
        # for it the low bits are the whole address.
        d_fits = d_end <= 1 << baw
        d_writable = (dat_r[:16] & _DESC_F_WRITE != 0) & d_fits
        narrow = data.StructLayout({"address": area_width, "end": area_width, "writable": 1})
        d_narrow = Signal(narrow)
        m.d.comb += d_narrow.eq(Cat(d_address[:area_width], d_end[:area_width], d_writable))
        # Lengths below 64 bytes (below 16 for the ordering, whose depth costs most): a chain
        # then moves up to a few dozen bytes within the depths of the proofs, so totals, long
        # streams and OUTSTANDING data writes in flight are reached; D11 case 11 (totals beyond
        # 32 bits) is not.
        with m.If(desc_answer & (oldest.word == 2)):
            m.d.comb += Assume(dat_r < (16 if self.check == "ordering" else 64))
        # A driver does not put a writable buffer over the used ring.
        with m.If(desc_answer & (oldest.word == 3) & d_writable):
            m.d.comb += Assume(disjoint(d_narrow.address, d_narrow.end, device, used_end))
        # The last max_chain descriptors read: the chain being served is among them.
        # It is forgotten when the chain is returned (used.idx) or the queue torn down.
        window = [Signal(narrow, name=f"window_{i}") for i in range(dut.max_chain)]
        with m.If(teardown | (taken & touches_idx)):
            m.d.sync += [w.writable.eq(0) for w in window]
        with m.Elif(desc_answer & (oldest.word == 3)):
            m.d.sync += window[0].eq(d_narrow)
            m.d.sync += [window[i].eq(window[i - 1]) for i in range(1, dut.max_chain)]

        if self.mutant == "moved_buffer":
            flip = desc_answer & (oldest.word == 0)
            seen_dat_r = dat_r ^ Mux(flip, AnySeq(32), 0)
        elif self.mutant == "used_buffer":
            flip = desc_answer & (oldest.word == 0)
            seen_dat_r = Mux(flip, device, dat_r)
        m.d.comb += bus.dat_r.eq(seen_dat_r)

        # --- shadow of the used ring ---------------------------------------------------------
        # The used element's words since the last used.idx write: taken, and acknowledged.
        sent_id, sent_len = Signal(), Signal()
        acked_id, acked_len = Signal(), Signal()
        live_answer = good & oldest.live
        acked_id_now = acked_id | live_answer & (oldest.kind == _Kind.ID)
        acked_len_now = acked_len | live_answer & (oldest.kind == _Kind.LEN)
        idx_write = taken & touches_idx
        element = [sent_id, sent_len, acked_id, acked_len]
        with m.If(teardown):
            m.d.sync += [shadow_idx.eq(0)] + [flag.eq(0) for flag in element]
        with m.Elif(idx_write):
            m.d.sync += [shadow_idx.eq(bus.dat_w[16:])] + [flag.eq(0) for flag in element]
        with m.Else():
            m.d.sync += [acked_id.eq(acked_id_now), acked_len.eq(acked_len_now)]
            with m.If(taken & (new.kind == _Kind.ID)):
                m.d.sync += sent_id.eq(1)
            with m.If(taken & (new.kind == _Kind.LEN)):
                m.d.sync += sent_len.eq(1)

        # Power-on counts as a reset: nothing is ready and nothing was notified.
        # The chain's end, from device logic's side: its last write beat taken since the offer;
        # and the chain being returned (its used element written, no data write after it).
        ended = Signal()
        returning = Signal()
        with m.If(offered | teardown):
            m.d.sync += [ended.eq(0), returning.eq(0)]
        with m.Else():
            with m.If(dut.write.valid & dut.write.ready & last):
                m.d.sync += ended.eq(1)
            with m.If(taken & ((new.kind == _Kind.ID) | (new.kind == _Kind.LEN))):
                m.d.sync += returning.eq(1)

        down = Signal(init=1)               # torn down, not yet notified again
        fresh = Signal(init=1)              # reset, not yet notified again
        dead = Signal()                     # a bus error on the queue in service
        with m.If(teardown):
            m.d.sync += down.eq(1)
        with m.Elif(rearm):
            m.d.sync += down.eq(0)
        with m.If(reset):
            m.d.sync += fresh.eq(1)
        with m.Elif(rearm):
            m.d.sync += fresh.eq(0)
        with m.If(reset):
            m.d.sync += dead.eq(0)
        with m.Elif(err & oldest.live & ~teardown):
            m.d.sync += dead.eq(1)

        # --- properties ----------------------------------------------------------------------
        check = self.check
        if check == "handshake":
            stalled = _delayed(m, bus.cyc & bus.stb & stall, "stalled")
            abandoned = _delayed(m, teardown | err | dut.error, "abandoned") | teardown
            request = Cat(bus.adr, bus.we, bus.sel)
            held = _delayed(m, request, "held")
            lanes = Cat(bus.sel[lane].replicate(8) for lane in range(4))
            held_sel = _delayed(m, lanes, "held_sel")
            held_dat = _delayed(m, bus.dat_w & lanes, "held_dat")
            m.d.comb += [
                Assert(~bus.stb | bus.cyc),
                Assert(bus.cyc | (inflight == 0)),
                Assert(~bus.cyc | bus.stb | (inflight != 0)),
                Assert(inflight + taken - answer <= OUTSTANDING),
            ]
            with m.If(stalled & ~abandoned):
                m.d.comb += Assert(bus.stb)
            with m.If(stalled & bus.stb):
                m.d.comb += Assert(request == held)
                with m.If(bus.we):
                    m.d.comb += Assert((bus.dat_w & held_sel) == held_dat)
        elif check == "ordering":
            with m.If(taken & touches_used):
                m.d.comb += Assert(~still_in_flight(_Kind.DATA))
            with m.If(idx_write):
                m.d.comb += [
                    Assert(~still_in_flight(_Kind.DATA, _Kind.USED, _Kind.ID, _Kind.LEN,
                                            _Kind.IDX)),
                    Assert(sent_id & sent_len & acked_id_now & acked_len_now),
                    Assert(bus.sel == 0b1100),
                    Assert(bus.dat_w[16:] == (shadow_idx + 1)[:16]),
                ]
            with m.If(taken & (new.kind == _Kind.ID)):
                m.d.comb += Assert(bus.dat_w == chain_head)
                m.d.comb += Assert(ended)
            with m.If(taken & (new.kind == _Kind.LEN)):
                m.d.comb += Assert(bus.dat_w == written)
            with m.If(taken & (new.kind == _Kind.DATA)):
                m.d.comb += Assert(~returning)
        elif check == "teardown":
            with m.If(down | teardown):
                m.d.comb += Assert(~taken)
            with m.If(dead):
                m.d.comb += Assert(~taken)
        elif check == "reset":
            with m.If(fresh):
                m.d.comb += Assert(~dut.needs_reset)
        elif check == "buffers":
            with m.If(taken & bus.we & ~touches_used):
                for lane, b in enumerate(lane_b):
                    inside = Cat(w.writable & (w.address <= b) & (b < w.end) for w in window)
                    with m.If(bus.sel[lane]):
                        m.d.comb += Assert(inside.any())
            # A write into the used ring is one of its own words, never data: the element's id
            # or len, used.idx, or avail_event.
            with m.If(taken & touches_used):
                m.d.comb += Assert((new.kind == _Kind.ID) | (new.kind == _Kind.LEN) |
                                   ((word_b == device) & (bus.sel == 0b1100)) |
                                   ((word_b == device + 4 + (size << 3)) &
                                    (bus.sel == 0b0011)))

        stalled_c = _delayed(m, bus.cyc & bus.stb & stall, "stalled_c")
        m.d.comb += [
            Cover(idx_write),
            Cover(idx_write & (written != 0)),
            Cover(taken & bus.we & ~touches_used),
            Cover(dut.needs_reset),
            Cover(stalled_c & ~bus.stb),
            Cover(inflight == OUTSTANDING),
            Cover(dead & reset & (inflight != 0)),      # a reset while a fault drains
        ]
        return m


def run_engine_sby(top, name, *, workdir, mode="bmc", depth=20, timeout=3600):
    """:func:`sim.formal.run_sby` for :class:`EngineHarness`, with the netlist optimised by
    Yosys's synthesis before the solver sees it (``smtbmc --syn``): for the engine this more than
    halves the time of a deep step.

    Returns an :class:`~sim.formal.SbyResult`.
    """
    return run_sby(top, name, workdir=workdir, mode=mode, depth=depth, timeout=timeout,
                   engine="smtbmc --syn yices")
