"""The virtqueue engine: split rings (virtio 1.2 §2.7) served in gateware, with its own bus master.

:class:`VirtqueueEngine` sits between the transport's device side (:mod:`hw.device`) and device
logic, and turns ring addresses and doorbells into requests and byte streams::

    m.submodules.transport = transport = VirtioMMIOTransport(
        ..., device_features=VirtqueueEngine.FEATURES | MY_FEATURES)
    m.submodules.engine = engine = VirtqueueEngine(num_queues=1, addr_width=30)
    engine.connect_transport(m, transport.device)   # queues, notify, reset, EVENT_IDX
    # engine.bus: a pipelined Wishbone master into guest memory
    # engine.request / engine.read / engine.write: the device's side

Operation
---------
One chain is served at a time, queues in turn (round-robin over the queues that were notified
or still have work). For a chain the engine:

1. reads avail.idx (only when the buffers it last saw are used up) and the ring entry;
2. fetches the whole chain, up to :attr:`max_chain` descriptors, into a descriptor store,
   checking every rule of decisions.md D11 before any data moves;
3. offers a :class:`ChainRequest` on ``request`` (queue, head, readable and writable bytes);
4. streams the readable bytes on ``read`` (every beat 4 bytes but the last, which carries 1 to
   4; ``count`` says how many, ``last`` marks it), whatever the buffers' alignment;
5. takes the bytes to write from ``write`` up to a beat with ``last``, and writes them into the
   writable buffers byte-exactly (bytes beyond the writable total are dropped, not written);
6. once every data write has been acknowledged, writes the used element, and once that is
   acknowledged, used.idx (D11d);
7. reads used_event (VIRTIO_F_EVENT_IDX) or avail.flags and pulses ``queues.used[q]`` exactly
   when the driver asked to be notified (§2.7.7.2, §2.7.10); the transport raises the wired
   interrupt or the queue's MSI vector as for any device.

Before it stops looking at a queue with nothing new, the engine (with EVENT_IDX) writes
avail_event = last_avail_idx and reads avail.idx once more: a buffer the driver added meanwhile
is served rather than left waiting for a notification the driver suppressed (§2.7.10).

Device logic holds a chain from the ``request`` handshake until the chain ends, exactly once:
its ``last`` write beat is taken, it raises ``error`` (the chain has the wrong shape for the
device, D11 case 10), or ``abort`` pulses (the engine dropped it). It takes every ``read`` beat,
then sends ``write`` beats. ``read`` offers beats only while a chain is held, so device logic
may keep ``read.ready`` high; ``error`` while no chain is held is ignored, and ``abort`` pulses
only while one is (decisions.md D11h).

Malformed rings (decisions.md D11)
----------------------------------
Every case of D11's table gets the same response: ``needs_reset`` pulses once, the row is kept
in ``error_case``, nothing is written to the used ring for the bad chain and the engine serves
no queue until the device is reset. Bus cycles in flight complete first; a reset while they do
supersedes the fault. A descriptor or ring area not wholly inside the bus's address space
(``2 ** (addr_width + 2)`` bytes) counts as case 8, as does a ring area not aligned as the engine
reads it (descriptor table and used ring 4 bytes, available ring 2 bytes; D11a). Case 9 (more
buffers in flight than QueueNum) cannot happen: one chain is in flight at a time, and case 1
catches a driver that publishes more than QueueNum.

Reset and teardown
------------------
A device reset (``reset``) or QueueReady = 0 for the queue being served ends its work at once:
no further request is issued, the requests in flight complete (their answers are dropped),
``abort`` pulses if device logic holds the chain, nothing of the chain is offered on ``read``
from then on, and nothing more is written to that queue's memory. A queue's indices restart
from 0 when it is made ready again.

Latency
-------
With a zero-wait memory and a device that never waits: notification to the first descriptor
read in 9 cycles (a queue's first use: its checks take 2 cycles, avail.idx is decided a cycle
after it arrives); a one-descriptor buffer of 64 bytes in 33 cycles when the device reads it, 32
when it writes it, of 4 KiB in 1041 and 1040 (``python -m sim.engine_bench``; the README has the
table, ``docs/engine-benchmark.md`` the area and Fmax). In the steady state of 64-byte reads
the bus is idle 8 cycles of the 33: 1 for used.idx's acknowledge (used_event is read after it),
1 from the ring entry's answer to the descriptor, 3 from the descriptor's last word to the first
data read (checked and offered, first buffer loaded) and 3 from the last data word to the used
element (the packer's register, then the bench's device: its read beat and its completion).

Area and timing
---------------
About 1910 LUT4 and a median of 64 MHz on iCE40 HX8K (``python -m boards.engine_area``, which
also gives the LUT4 by submodule), against the issue's goal of 900 LUT4 and 100 MHz. The goal
is not met, and tuning this engine will not meet it:

* the byte realigners and the answer FIFO (byte-exact buffers at any address, 4 reads in
  flight) are about 500 LUT4 on their own: unpacker 232, packer 136, FIFO 134;
* the checks of D11 are about 300 (measured once, by tying each to 0; CHECK's, with the 96-bit
  "beyond the bus" compare of the ring addresses, 148);
* the rest, about 1150, is the datapath: the descriptor's words and its last byte, the 32-bit
  totals and bytes written, the word counters, the shared control-address adder and the
  request multiplexers.

The longest path (about 15 ns) runs from the state through ``want``, ``stb`` and ``issued`` into
the word counter (``ack`` joins it at ``want`` in USED): a request is decided and presented in
one cycle, so that an access that waits for an answer goes out in the cycle after it. A
registered request would cut that path but cost a cycle on each such access, at least 4 per
buffer (64-byte reads at about 1.37x the bus limit, past their goal of 1.25x; estimated, not
tried). Tried and not kept: the ring areas' ends one a cycle through the shared adder (51 LUT4
less, 2 cycles more at a queue's first use, which moves used.idx past the formal harness's
depth). Candidates not tried: ring addresses only ``addr_width`` bits wide after the case-8
check, DESC_CHECK's sums over two cycles, one-hot registered request flags, a deeper unpacker,
answers tagged with their request's kind.
"""

from amaranth.hdl import Array, Assert, Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from . import wishbone
from ._checks import check_int
from .device import Notification, QueuesSignature
from .realign import Packer, PackerInput, ReadBeat, Unpacker, WriteBeat
from .regmap import Feature


__all__ = ["ChainRequest", "ReadBeat", "WriteBeat", "VirtqueueEngine", "RingError"]


class ChainRequest(data.Struct):
    """A chain for device logic: its queue, head descriptor index and byte totals."""
    queue:    16
    head:     16
    readable: 32
    writable: 32


class RingError:
    """The rows of decisions.md D11's table, as ``error_case`` reports them (0: none)."""
    AVAIL_IDX = 1
    HEAD = 2
    NEXT = 3
    TOO_LONG = 4
    ORDER = 5
    ZERO_LENGTH = 6
    INDIRECT = 7
    BUS = 8
    IN_FLIGHT = 9
    DEVICE = 10
    TOTAL = 11
    QUEUE_SIZE = 12


_DESC_F_NEXT, _DESC_F_WRITE, _DESC_F_INDIRECT = 1, 2, 4
_AVAIL_F_NO_INTERRUPT = 1

#: Requests the bus master keeps in flight.
OUTSTANDING = 4

#: What a simulation reports when a target on the engine's bus breaks its contract.
BUS_RULE = ("VirtqueueEngine.bus: ack or err with no request in flight; the target must answer "
            "a request at the earliest in the cycle after it takes it (pipelined Wishbone, "
            "see the engine's bus member)")


class _Descriptor(data.Struct):
    address:  64    # narrowed to the bus's byte address width by the store's shape
    length:   32
    writable: 1


class VirtqueueEngine(wiring.Component):
    """Split-virtqueue engine with a pipelined Wishbone bus master.

    Parameters
    ----------
    num_queues : int
        Queues of the transport it serves (1 to 64).
    addr_width : int
        Word address width of ``bus`` (guest memory of ``2 ** (addr_width + 2)`` bytes), 8 to 62.
    max_chain : int
        Longest chain in descriptors (D11 case 4; 1 to 256). It is also the depth of the
        descriptor store.

    Members
    -------
    queues : In(QueuesSignature(num_queues))
        The transport's queue configuration; the engine drives ``used``.
    notify : In(stream.Signature(Notification))
        Available-buffer notifications (always ready).
    reset : In(1)
        The transport's device reset pulse.
    event_idx : In(1)
        VIRTIO_F_EVENT_IDX was negotiated.
    needs_reset : Out(1)
        One-cycle pulse on a malformed ring (D11).
    error_case : Out(4)
        The D11 row of the last malformed ring since the device reset (0: none).
    bus : Out(wishbone.Signature(addr_width=addr_width, features=("err", "stall")))
        Guest memory, Wishbone B4 pipelined, up to :data:`OUTSTANDING` requests in flight.
        Answers (``ack`` or ``err``) come in order, at the earliest in the cycle after the
        request is taken: an answer may bring the next request in its own cycle (used.idx on
        the element's acknowledge), so an ``ack`` must not depend on ``stb`` in the same cycle
        (a target registers it). An answer with nothing in flight fails a simulation with
        :data:`BUS_RULE` (decisions.md D11i).
    request : Out(stream.Signature(ChainRequest))
        A chain; device logic holds it from the handshake on. A request not yet taken is
        withdrawn by a reset or teardown.
    read : Out(stream.Signature(ReadBeat))
        The chain's readable bytes; beats only while device logic holds a chain.
    write : In(stream.Signature(WriteBeat))
        The bytes to write; the beat with ``last`` completes the chain.
    error : In(1)
        Device logic refuses the chain it holds (D11 case 10); ignored while it holds none.
    abort : Out(1)
        One-cycle pulse: the chain device logic holds is gone (reset, teardown, malformed ring);
        never while it holds none, and nothing of that chain is offered after it.
    busy : Out(1)
        The engine has work in progress or waiting.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a parameter is out of its range.
    """

    #: Feature bits the engine implements (the ring features a transport in front may offer).
    FEATURES = 1 << Feature.RING_EVENT_IDX

    def __init__(self, *, num_queues, addr_width, max_chain=16):
        self._num_queues = check_int("num_queues", num_queues, "an integer from 1 to 64",
                                     lambda n: 1 <= n <= 64)
        self._addr_width = check_int("addr_width", addr_width, "an integer from 8 to 62",
                                     lambda w: 8 <= w <= 62)
        self._max_chain = check_int("max_chain", max_chain, "an integer from 1 to 256",
                                    lambda n: 1 <= n <= 256)
        super().__init__({
            "queues":      In(QueuesSignature(num_queues)),
            "notify":      In(stream.Signature(Notification)),
            "reset":       In(1),
            "event_idx":   In(1),
            "needs_reset": Out(1),
            "error_case":  Out(4),
            "bus":         Out(wishbone.Signature(addr_width=addr_width,
                                                  features=("err", "stall"))),
            "request":     Out(stream.Signature(ChainRequest)),
            "read":        Out(stream.Signature(ReadBeat)),
            "write":       In(stream.Signature(WriteBeat)),
            "error":       In(1),
            "abort":       Out(1),
            "busy":        Out(1),
        })

    @property
    def num_queues(self):
        return self._num_queues

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def max_chain(self):
        return self._max_chain

    def connect_transport(self, m, device, *, needs_reset=None):
        """Wire the engine to ``device``, a transport's device port (``transport.device``):
        queues, notifications, reset, the negotiated EVENT_IDX and DEVICE_NEEDS_RESET.

        ``needs_reset``, if given, is device logic's own pulse (a 1-bit value), ORed with the
        engine's: the transport's ``needs_reset`` input has one driver, this method."""
        wiring.connect(m, device.queues, self.queues)
        wiring.connect(m, device.notify, self.notify)
        extra = 0 if needs_reset is None else needs_reset
        m.d.comb += [self.reset.eq(device.reset),
                     self.event_idx.eq(device.features[Feature.RING_EVENT_IDX]),
                     device.needs_reset.eq(self.needs_reset | extra)]

    def elaborate(self, platform):
        m = Module()
        nq = self._num_queues
        baw = self._addr_width + 2              # byte address width
        bus = self.bus

        # --- per-queue state -----------------------------------------------------------------
        pending = Signal(nq)                    # notified, or may have more work
        checked = Signal(nq)                    # the first-use checks passed
        published = Signal(nq)                  # avail_event == last_avail already written
        last_avail = Array(Signal(16, name=f"last_avail_{q}") for q in range(nq))
        shadow_avail = Array(Signal(16, name=f"shadow_avail_{q}") for q in range(nq))
        broken = Signal()

        q = Signal(range(nq))                   # the queue being served
        turn = Signal(range(nq))
        size = Signal(16)
        mask = Signal(16)                       # size - 1, registered with size: no subtractor
        desc_base = Signal(baw)
        driver_base = Signal(baw)
        device_base = Signal(baw)
        avail = Signal(16)                      # last_avail of q
        m.d.comb += avail.eq(last_avail[q])

        # --- bus master ----------------------------------------------------------------------
        outstanding = Signal(range(OUTSTANDING + 1))
        want = Signal()                         # the state offers a request
        credit = Signal()                       # room for another request in flight
        issue_adr = Signal(self._addr_width)
        issue_we = Signal()
        issue_sel = Signal(4, init=0b1111)     # reads take the whole word
        issue_dat = Signal(32)
        # No request is presented in the cycle of a reset or with the queue not ready, not even
        # the one a state offers as the guards below end the chain (§4.2.2.1: nothing touches a
        # queue's memory once the driver has written QueueReady = 0).
        serving = Signal()
        m.d.comb += serving.eq(~self.reset & self.queues.ready.bit_select(q, 1))
        m.d.comb += [
            bus.cyc.eq((want & serving) | (outstanding != 0)),
            bus.stb.eq(want & serving & credit),
            bus.adr.eq(issue_adr),
            bus.we.eq(issue_we),
            bus.sel.eq(issue_sel),
            bus.dat_w.eq(issue_dat),
            credit.eq(outstanding != OUTSTANDING),
        ]
        issued = Signal()
        answered = Signal()
        # An answer counts only with a request in flight (and then cyc is high): no path from
        # the state's request through cyc into what the answer decides (timing).
        m.d.comb += [issued.eq(bus.stb & ~bus.stall),
                     answered.eq((bus.ack | bus.err) & (outstanding != 0))]
        m.d.sync += outstanding.eq(outstanding + issued - answered)
        # The target's side of the contract, checked in simulation: an answer with nothing in
        # flight is one given in the cycle its request was taken (or never asked for), which
        # the engine cannot count (it would hang waiting for it).
        m.d.sync += Assert(~(bus.ack | bus.err) | (outstanding != 0), BUS_RULE)
        # Nothing in flight from the next cycle on, where the state issues no request (WRITE with
        # the unpacker done, USED after used.idx): timing, no path from the request's decision
        # (and the bus's stall) through the count to the next state.
        settled = Signal()
        m.d.comb += settled.eq((outstanding == 0) | ((outstanding == 1) & answered))
        data_in = bus.dat_r

        # A control access is a 16- or 32-bit word at base + 4 * (slot + inc) + low, with one
        # shared adder and one shared incrementer: every "4 +" of the ring layouts (§2.7.6,
        # §2.7.8) is the incrementer or a bit of the slot, never an adder of its own.
        ctl_base = Signal(baw)
        ctl_slot = Signal(19)
        ctl_inc = Signal()
        ctl_low = Signal(2)
        ctl_addr = Signal(baw)
        m.d.comb += ctl_addr.eq(ctl_base + Cat(ctl_low, ctl_slot + ctl_inc))
        half = Signal()                         # which half of the word is addressed
        m.d.comb += half.eq(ctl_addr[1])
        # The half of each request in flight, oldest in bit 0: two control reads may be in
        # flight (INTERRUPT), so an answer's half is the one its request asked for.
        halves = Signal(OUTSTANDING)
        kept_halves = Signal(OUTSTANDING)
        m.d.comb += kept_halves.eq(Mux(answered, halves >> 1, halves))
        position = Signal(range(OUTSTANDING + 1))
        m.d.comb += position.eq(outstanding - answered)
        with m.If(issued):
            m.d.sync += halves.eq(kept_halves | (half << position))
        with m.Else():
            m.d.sync += halves.eq(kept_halves)
        halfword = Signal(16)
        m.d.comb += halfword.eq(Mux(halves[0], data_in[16:], data_in[:16]))

        def control(base, slot=0, inc=0, low=0):
            m.d.comb += [ctl_base.eq(base), ctl_slot.eq(slot), ctl_inc.eq(inc), ctl_low.eq(low),
                         issue_adr.eq(ctl_addr[2:])]

        def ring_entry(base, entry):
            """The 16-bit ring entry ``entry`` of the available ring: base + 4 + 2 * entry."""
            control(base, slot=entry >> 1, inc=1, low=Cat(0, entry[0]))

        # --- descriptor store ----------------------------------------------------------------
        # A buffer by its first and last byte: the data phase then counts words, not bytes.
        desc_layout = data.StructLayout({"first": baw, "last": baw, "writable": 1})
        m.submodules.store = store = memory.Memory(shape=desc_layout,
                                                   depth=self._max_chain, init=[])
        store_w = store.write_port()
        # Transparent: the request is offered in the cycle that stores the chain's last
        # descriptor, and the data phase reads it in the next.
        store_r = store.read_port(transparent_for=(store_w,))
        chain_len = Signal(range(self._max_chain + 1))
        readable_count = Signal(range(self._max_chain + 1))
        index = Signal(16)                      # descriptor being fetched
        head = Signal(16)
        readable_total = Signal(32)
        writable_total = Signal(32)
        seen_writable = Signal()
        words = Array(Signal(32, name=f"desc_word_{i}") for i in range(4))
        sent = Signal(range(5))
        got = Signal(range(5))
        slot = Signal(range(self._max_chain + 1))    # descriptor of the data phase

        # --- data phase ----------------------------------------------------------------------
        m.submodules.packer = packer = Packer()
        m.submodules.unpacker = unpacker = Unpacker()
        fifo = SyncFIFO(width=PackerInput.as_shape().size, depth=OUTSTANDING)
        fifo_clear = Signal()
        m.submodules.fifo = ResetInserter(fifo_clear)(fifo)
        wiring.connect(m, wiring.flipped(self.read), packer.o)
        wiring.connect(m, wiring.flipped(self.write), unpacker.i)
        # Read answers go to the packer through the FIFO, or past it when it is empty (a cycle
        # less from the bus to the device).
        answer_valid = Signal()
        answer = Signal(PackerInput)
        bypass = Signal()
        m.d.comb += [
            bypass.eq(~fifo.r_rdy & answer_valid),
            packer.i.valid.eq(fifo.r_rdy | bypass),
            packer.i.p.eq(Mux(fifo.r_rdy, fifo.r_data, answer.as_value())),
            fifo.r_en.eq(packer.i.ready),
            fifo.w_data.eq(answer.as_value()),
            fifo.w_en.eq(answer_valid & ~(bypass & packer.i.ready)),
        ]
        # Timing: the read words requested and not yet taken by the packer (in flight or in the
        # FIFO), counted in a register of their own rather than summed from the FIFO's level and
        # outstanding on the way to the bus request. Only data reads are in flight in READ, and
        # none when the chain is offered (where the FIFO is cleared).
        owed = Signal(range(OUTSTANDING + 1))
        read_issued = Signal()
        with m.If(fifo_clear):
            m.d.sync += owed.eq(0)
        with m.Else():
            m.d.sync += owed.eq(owed + read_issued - (packer.i.valid & packer.i.ready))
        write_phase = Signal()
        m.d.comb += [unpacker.i.valid.eq(self.write.valid & write_phase),
                     self.write.ready.eq(unpacker.i.ready & write_phase)]

        # The buffer in hand, by words. Timing: "cur_word is the last" is registered, decided a
        # cycle ahead from cur_word + 1, so that no comparator lies between the buffer's state
        # and the bus request (or the unpacker's ready) it decides.
        cur_word = Signal(self._addr_width)     # the next word to request or write
        last_word = Signal(self._addr_width)
        cur_lo = Signal(2)                      # lane of the buffer's first byte
        cur_end = Signal(2)                     # lane of its last byte
        # Write: where the next word's bytes go, registered (decided with at_last).
        lane = Signal(2)
        stop = Signal(2)
        spent = Signal()                        # read: every word requested
        first_answer = Signal()
        at_last = Signal()                      # cur_word == last_word
        next_word = Signal(self._addr_width)
        m.d.comb += next_word.eq(cur_word + 1)

        single = Signal()                       # the store's buffer is one word
        m.d.comb += single.eq(store_r.data.first[2:] == store_r.data.last[2:])

        def load_buffer(entry):
            m.d.sync += [cur_word.eq(entry.first[2:]), last_word.eq(entry.last[2:]),
                         at_last.eq(single),
                         cur_lo.eq(entry.first[:2]), cur_end.eq(entry.last[:2]),
                         slot.eq(slot + 1)]

        # Outside the FSM: no state decoding on the way to the unpacker's valid.
        m.d.comb += [unpacker.lane.eq(lane), unpacker.stop.eq(stop)]

        def step_word():
            now_last = next_word == last_word
            m.d.sync += [cur_word.eq(next_word), at_last.eq(now_last),
                         lane.eq(0), stop.eq(Mux(now_last, cur_end, 3))]

        discard = Signal()                      # no writable buffer left: drop the bytes
        written = Signal(32)
        # Write: the unpacker's word and its address, staged in registers before the bus.
        # Timing: the request (and all that its issue decides) then starts at flip-flops, not at
        # the unpacker's decision that a word is ready.
        staged = Signal()
        staged_adr = Signal(self._addr_width)
        staged_sel = Signal(4)
        staged_dat = Signal(32)

        def issue_staged():
            m.d.comb += [want.eq(staged), issue_adr.eq(staged_adr), issue_we.eq(1),
                         issue_sel.eq(staged_sel), issue_dat.eq(staged_dat)]
            with m.If(issued):
                m.d.sync += staged.eq(0)        # unless a word is staged in the same cycle

        # --- the chain in hand ---------------------------------------------------------------
        chained = Signal()                      # the next ring entry is read in INTERRUPT
        avail_count = Signal(16)                # AVAIL: avail.idx - last_avail, registered
        new_used = Signal(16)
        m.d.comb += new_used.eq(avail + 1)

        # The descriptor in words (DESC_CHECK), decoded here so that the request can be offered
        # from it in the cycle its last descriptor is stored.
        address = Cat(words[0], words[1])
        length_less = words[2]                  # the length less one (DESC)
        flags, following = words[3][:16], words[3][16:]
        writable = flags & _DESC_F_WRITE != 0
        # Timing: the sums and the wide checks are registered as the descriptor's last word
        # arrives (DESC), so that DESC_CHECK decides from flip-flops and a few gates.
        # A non-empty buffer is on the bus when its address has no bit above the bus's and its
        # last byte (address + length - 1) is below 2 ** baw.
        last = Signal(max(baw, 32) + 1)
        sum_last = Signal.like(last)
        m.d.comb += sum_last.eq(address[:baw] + length_less)
        # The chain's totals take the descriptor's length as it arrives (DESC): the request is
        # then offered straight from the two registers. A descriptor DESC_CHECK refuses ends the
        # chain, so the totals it was added to are never offered.
        total_carry = Signal()                  # the sum passed 32 bits (D11 case 11)
        zero_length = Signal()
        off_bus = Signal()
        bad_next = Signal()                     # NEXT set and next out of the ring
        too_long = Signal()                     # NEXT set and no room for another descriptor
        m.d.comb += [store_w.addr.eq(chain_len), store_w.data.first.eq(address[:baw]),
                     store_w.data.last.eq(last[:baw]), store_w.data.writable.eq(writable)]
        closing = Signal()                      # DESC_CHECK: the chain's last descriptor
        no_readable = Signal()                  # the chain offered has no readable buffer
        m.d.comb += [
            no_readable.eq((readable_count == 0) & ~(closing & ~writable)),
            self.request.p.queue.eq(q), self.request.p.head.eq(head),
            self.request.p.readable.eq(readable_total),
            self.request.p.writable.eq(writable_total),
            packer.empty.eq(no_readable),
        ]

        # Device logic holds a chain from the request's handshake until it ends the chain (its
        # last write beat taken, or ``error``) or the engine drops it (``abort``). ``error``
        # counts only then, and ``abort`` pulses only then: each chain taken ends exactly once.
        held = Signal()                         # device logic holds a chain
        handshake = Signal()
        refused = Signal()
        completed = Signal()
        m.d.comb += [
            handshake.eq(self.request.valid & self.request.ready),
            refused.eq(self.error & (held | handshake)),
            completed.eq(self.write.valid & self.write.ready & self.write.p.last),
        ]
        with m.If(handshake & ~refused):
            m.d.sync += held.eq(1)
        with m.If(refused | completed | self.abort):
            m.d.sync += held.eq(0)

        def drop():
            """The chain is gone: device logic is told if it holds it, and the data path is
            emptied, so that no beat of it is offered after ``abort`` (a device that takes
            read beats from the next handshake on would count it as the next chain's)."""
            m.d.comb += [self.abort.eq(held), packer.load.eq(1), unpacker.clear.eq(1),
                         fifo_clear.eq(1)]

        def offer():
            """Offer the chain to device logic (from the cycle its last descriptor is stored
            until taken); the data phase starts with the store's first descriptor."""
            m.d.comb += [self.request.valid.eq(1), packer.load.eq(1), unpacker.clear.eq(1),
                         fifo_clear.eq(1), store_r.addr.eq(0)]
            m.d.sync += [slot.eq(0), written.eq(0), discard.eq(0), staged.eq(0)]
            with m.If(self.request.ready):
                with m.If(no_readable):
                    m.next = "LOAD_WRITE"
                with m.Else():
                    m.next = "LOAD_READ"
            with m.Else():
                m.next = "REQUEST"

        new_chain = Signal()

        def take_head():
            """The ring entry's answer: the head of the next chain (D11 case 2)."""
            m.d.comb += new_chain.eq(1)
            with m.If(~bus.err & (halfword & ~mask).any()):     # size: a power of 2
                fault(RingError.HEAD)
            with m.Else():
                m.next = "DESC"

        def fault(case):
            m.d.sync += self.error_case.eq(case)
            m.next = "FAULT"

        def guard(holding=False):
            """The end of every chain state, in priority order (the last assignment wins)."""
            if holding:
                with m.If(refused):
                    fault(RingError.DEVICE)
            with m.If(bus.err & answered):
                fault(RingError.BUS)
            with m.If(self.reset | ~self.queues.ready.bit_select(q, 1)):
                # Teardown drops the chain's answers, a fault among them too (D11f).
                m.d.sync += self.error_case.eq(self.error_case)
                m.next = "DRAIN"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.sync += [sent.eq(0), got.eq(0)]     # a chain given up left them anywhere
                candidates = Signal(nq)
                m.d.comb += candidates.eq(pending & self.queues.ready)
                with m.If(~broken & candidates.any()):
                    # Round-robin: the first queue with work after the one served last.
                    pick = Signal(range(nq))
                    for start in range(nq):
                        with m.If(turn == start):
                            for step in reversed(range(1, nq + 1)):
                                candidate = (start + step) % nq
                                with m.If(candidates[candidate]):
                                    m.d.comb += pick.eq(candidate)
                    m.d.sync += [
                        q.eq(pick), turn.eq(pick),
                        size.eq(Array(self.queues.size)[pick]),
                        mask.eq(Array(self.queues.size)[pick] - 1),
                        desc_base.eq(Array(self.queues.desc)[pick]),
                        driver_base.eq(Array(self.queues.driver)[pick]),
                        device_base.eq(Array(self.queues.device)[pick]),
                        pending.bit_select(pick, 1).eq(0),
                    ]
                    with m.If(~checked.bit_select(pick, 1)):
                        m.next = "CHECK"
                    with m.Elif(shadow_avail[pick] != last_avail[pick]):
                        m.next = "HEAD"         # buffers seen before and not yet taken
                    with m.Else():
                        m.next = "AVAIL"

            with m.State("CHECK"):
                # First use of the queue (D11 case 12, and case 8 for an unreachable ring).
                names = ("desc", "driver", "device")
                areas = [Signal(64, name=f"{name}_area") for name in names]
                m.d.comb += [area.eq(Array(getattr(self.queues, name))[q])
                             for area, name in zip(areas, names, strict=True)]
                # Each area must also end within the bus (a ring running past the top would wrap
                # to address 0): desc + 16 * size, driver + 6 + 2 * size, device + 6 + 8 * size.
                # An extent is below 2 ** 20, so only the low 20 bits are added: the end passes
                # the top only if every bit above them is 1 and that sum passes 2 ** 20.
                extents = [size << 4, 6 + (size << 1), 6 + (size << 3)]
                low = min(20, baw)
                past_top = []
                for name, area, extent in zip(names, areas, extents, strict=True):
                    end = Signal(low + 1, name=f"{name}_low_end")
                    m.d.comb += end.eq(area[:low] + extent)
                    past_top.append(area[low:baw].all() & end[low] & (end[:low] != 0))
                beyond = Cat(area[baw:] for area in areas).any() | Cat(past_top).any()
                misaligned = (areas[0][:2].any() | areas[1][0] | areas[2][:2].any())
                # Timing: the checks are registered, and decided in the next cycle (CHECK runs
                # once per queue): no adder lies between the ring's addresses and the next state.
                bad_size = Signal()
                bad_area = Signal()
                with m.If(got == 0):
                    m.d.sync += [got.eq(1), bad_size.eq((size == 0) | (size & mask).any()),
                                 bad_area.eq(beyond | misaligned)]
                with m.Else():
                    m.d.sync += got.eq(0)
                    with m.If(bad_size):
                        fault(RingError.QUEUE_SIZE)
                    with m.Elif(bad_area):
                        fault(RingError.BUS)
                    with m.Else():
                        m.d.sync += checked.bit_select(q, 1).eq(1)
                        m.next = "AVAIL"
                guard()

            with m.State("AVAIL"):
                with m.If(got == 1):
                    # Timing: decided a cycle after the answer, from flip-flops (the count is
                    # registered as it arrives), so that no subtractor and comparator lie
                    # between the bus and the next state.
                    m.d.sync += [sent.eq(0), got.eq(0)]
                    with m.If(avail_count > size):
                        fault(RingError.AVAIL_IDX)
                    with m.Elif(avail_count != 0):
                        m.next = "HEAD"
                    with m.Elif(self.event_idx & ~published.bit_select(q, 1)):
                        m.next = "EVENT"
                    with m.Else():
                        m.next = "IDLE"
                with m.Elif(shadow_avail[q] != avail):
                    m.next = "HEAD"             # buffers seen before and not yet taken
                with m.Else():
                    control(driver_base, low=2)
                    m.d.comb += want.eq(sent == 0)
                    with m.If(issued):
                        m.d.sync += sent.eq(1)
                    with m.If(answered & ~bus.err):
                        # Kept whatever the count: equal to avail when nothing is new, and of
                        # no use after a fault (a reset clears it).
                        m.d.sync += [got.eq(1), shadow_avail[q].eq(halfword),
                                     avail_count.eq(halfword - avail)]
                guard()

            with m.State("EVENT"):
                # avail_event := last_avail_idx, then avail.idx again (§2.7.10): closes the
                # race with a driver that added a buffer and read the old avail_event.
                control(device_base, slot=Cat(1, size))     # 4 + 8 * size
                m.d.comb += [want.eq(sent == 0), issue_we.eq(1),
                             issue_sel.eq(Mux(half, 0b1100, 0b0011)),
                             issue_dat.eq(avail.replicate(2))]
                with m.If(issued):
                    m.d.sync += sent.eq(1)
                with m.If(answered):
                    m.d.sync += [sent.eq(0), published.bit_select(q, 1).eq(1)]
                    m.next = "AVAIL"
                guard()

            with m.State("HEAD"):
                ring_entry(driver_base, avail & mask)
                m.d.comb += want.eq(sent == 0)
                with m.If(issued):
                    m.d.sync += sent.eq(1)
                with m.If(answered):
                    take_head()
                guard()

            with m.State("DESC"):
                # The descriptor's four words, requested back to back.
                control(desc_base, slot=Cat(sent[:2], index))
                m.d.comb += want.eq(sent != 4)
                with m.If(issued):
                    m.d.sync += sent.eq(sent + 1)
                with m.If(answered):
                    m.d.sync += [words[got[:2]].eq(data_in), got.eq(got + 1)]
                    with m.If(got == 2):
                        # The length less one, registered: the last byte (case 8) is then one
                        # carry chain from the address.
                        m.d.sync += words[2].eq(data_in - 1)
                    with m.If(got == 3):        # the last of the four: nothing else in flight
                        arriving = data_in[:16]     # the flags
                        chains = arriving & _DESC_F_NEXT != 0
                        grown = chain_len + 1
                        into_writable = arriving & _DESC_F_WRITE != 0
                        # Cat: the length's "+ 1" as the carry in.
                        total = (Cat(1, Mux(into_writable, writable_total, readable_total)) +
                                 Cat(1, length_less))[1:]
                        with m.If(into_writable):
                            m.d.sync += writable_total.eq(total[:32])
                        with m.Else():
                            m.d.sync += readable_total.eq(total[:32])
                        m.d.sync += [
                            sent.eq(0), got.eq(0),
                            last.eq(sum_last),
                            total_carry.eq(total[32]),
                            zero_length.eq(length_less.all()),
                            off_bus.eq(address[baw:].any() | sum_last[baw:].any()),
                            bad_next.eq(chains & (data_in[16:] & ~mask).any()),
                            too_long.eq(chains & ((grown >= self._max_chain) | (grown >= size))),
                        ]
                        m.next = "DESC_CHECK"
                guard()

            with m.State("DESC_CHECK"):
                with m.If(flags & _DESC_F_INDIRECT):
                    fault(RingError.INDIRECT)
                with m.Elif(zero_length):
                    fault(RingError.ZERO_LENGTH)
                with m.Elif(off_bus):
                    fault(RingError.BUS)
                with m.Elif(seen_writable & ~writable):
                    fault(RingError.ORDER)
                with m.Elif(total_carry):
                    fault(RingError.TOTAL)
                with m.Elif(bad_next):
                    fault(RingError.NEXT)       # size is a power of 2 (CHECK)
                with m.Elif(too_long):
                    fault(RingError.TOO_LONG)
                with m.Else():
                    m.d.comb += store_w.en.eq(1)
                    m.d.sync += [chain_len.eq(chain_len + 1), seen_writable.eq(writable),
                                 index.eq(following)]
                    with m.If(~writable):
                        m.d.sync += readable_count.eq(readable_count + 1)
                    with m.If(flags & _DESC_F_NEXT):
                        m.next = "DESC"
                    with m.Else():
                        m.d.comb += closing.eq(1)
                        offer()
                guard(holding=True)             # device logic may refuse in the handshake

            with m.State("REQUEST"):
                offer()
                guard(holding=True)             # device logic may refuse in the handshake

            with m.State("LOAD_READ"):
                load_buffer(store_r.data)
                m.d.sync += [spent.eq(0), first_answer.eq(1)]
                m.next = "READ"
                guard(holding=True)

            with m.State("READ"):
                m.d.comb += [issue_adr.eq(cur_word),
                             want.eq(~spent & (owed != OUTSTANDING)),
                             read_issued.eq(issued)]
                with m.If(issued):
                    step_word()
                    m.d.sync += spent.eq(at_last)
                with m.If(spent):
                    # The next buffer's descriptor, read while the last answers come in.
                    m.d.comb += store_r.addr.eq(slot)
                # Only this buffer's words are in flight here.
                last_answer = spent & (outstanding == 1)
                hi = Mux(last_answer, cur_end + 1, 4)
                lo = Mux(first_answer, cur_lo, 0)
                m.d.comb += [answer.data.eq(data_in), answer.lo.eq(lo), answer.n.eq(hi - lo),
                             answer.last.eq(last_answer & (slot == readable_count)),
                             answer_valid.eq(answered & ~bus.err)]
                with m.If(answered):
                    m.d.sync += first_answer.eq(0)
                    with m.If(last_answer):
                        # The write phase may start while the packer still delivers: device
                        # logic sends no write beat before it has taken every read beat.
                        with m.If(slot != readable_count):
                            m.next = "LOAD_READ"
                        with m.Else():
                            m.next = "LOAD_WRITE"
                guard(holding=True)

            with m.State("LOAD_WRITE"):
                m.d.comb += [write_phase.eq(1)]
                issue_staged()
                entry = store_r.data
                with m.If(slot == chain_len):
                    m.d.sync += [discard.eq(1), lane.eq(0), stop.eq(3)]
                with m.Else():
                    load_buffer(entry)
                    m.d.sync += [lane.eq(entry.first[:2]),
                                 stop.eq(Mux(single, entry.last[:2], 3))]
                m.next = "WRITE"
                guard(holding=True)

            with m.State("WRITE"):
                m.d.comb += write_phase.eq(1)
                issue_staged()
                with m.If(discard):
                    m.d.comb += unpacker.o.ready.eq(1)
                with m.Else():
                    # The staged word leaves in this cycle when the bus takes it (it is offered
                    # whenever it is staged): a word per cycle.
                    m.d.comb += unpacker.o.ready.eq(~staged | (credit & ~bus.stall))
                    with m.If(unpacker.o.valid & unpacker.o.ready):
                        m.d.sync += [staged.eq(1), staged_adr.eq(cur_word),
                                     staged_sel.eq(unpacker.o.p.sel),
                                     staged_dat.eq(unpacker.o.p.data),
                                     written.eq(written + unpacker.o.p.n)]
                        step_word()
                        with m.If(at_last):
                            m.d.comb += store_r.addr.eq(slot)
                            m.next = "LOAD_WRITE"
                # Every data write acknowledged before the used ring is touched (§2.7.8.2): the
                # buffers may be in another memory than the ring.
                with m.If((unpacker.done | unpacker.ending) & packer.done & ~staged & settled):
                    m.next = "USED"
                guard(holding=True)

            with m.State("USED"):
                # The used element, then used.idx once both element words are acknowledged:
                # used.idx is never published over an element write that failed (§2.7.8.2, the
                # element visible first; a bus error there is D11 case 8, found by the formal
                # harness's idx_acked property).
                with m.If(sent == 2):
                    control(device_base, low=2)
                with m.Else():                  # 4 + 8 * entry, and the word after it
                    control(device_base, slot=Cat(1, avail & mask), inc=sent[0])
                # used.idx goes out in the cycle the element's last word is acknowledged (an
                # error there is the fault guard() takes, and no request goes with it).
                acked = (outstanding == 0) | ((outstanding == 1) & bus.ack & ~bus.err)
                m.d.comb += [want.eq((sent < 2) | ((sent == 2) & acked)),
                             issue_we.eq(1),
                             issue_sel.eq(Mux(sent == 2, 0b1100, 0b1111)),
                             issue_dat.eq(Mux(sent == 0, head,
                                              Mux(sent == 1, written, new_used << 16)))]
                with m.If(issued):
                    m.d.sync += sent.eq(sent + 1)
                with m.If((sent == 3) & settled):
                    # used.idx is visible before used_event is read (§2.7.10): the avail ring
                    # may be in another memory.
                    m.d.sync += sent.eq(0)
                    m.next = "INTERRUPT"
                guard()

            with m.State("INTERRUPT"):
                # §2.7.10 (EVENT_IDX: vring_need_event for one new buffer) or §2.7.7.2. When the
                # queue has buffers seen and no other queue waits, the next ring entry is read
                # right behind (it does not depend on the answer).
                others = pending & self.queues.ready & ~(1 << q)
                with m.If((sent == 0) & ~self.event_idx):
                    control(driver_base)        # avail.flags
                with m.Elif(sent == 0):
                    ring_entry(driver_base, size)   # used_event
                with m.Else():
                    ring_entry(driver_base, new_used & mask)
                m.d.comb += want.eq((sent == 0) | ((sent == 1) & chained))
                with m.If(issued):
                    m.d.sync += sent.eq(sent + 1)
                    with m.If(sent == 0):
                        m.d.sync += chained.eq(~others.any() & (shadow_avail[q] != new_used))
                done = Signal()
                with m.If(answered & ~bus.err & (got == 0)):
                    m.d.sync += got.eq(1)
                    notify = Mux(self.event_idx, halfword == avail,
                                 (halfword & _AVAIL_F_NO_INTERRUPT) == 0)
                    with m.If(notify):
                        m.d.comb += self.queues.used.bit_select(q, 1).eq(1)
                    with m.If(~chained):
                        m.d.comb += done.eq(1)
                        m.d.sync += [sent.eq(0), got.eq(0), pending.bit_select(q, 1).eq(1)]
                        m.next = "IDLE"
                with m.If(answered & ~bus.err & (got == 1)):
                    m.d.comb += done.eq(1)
                    m.d.sync += pending.bit_select(q, 1).eq(0)
                    take_head()
                with m.If(done):
                    m.d.sync += [last_avail[q].eq(new_used), published.bit_select(q, 1).eq(0)]
                guard()

            with m.State("FAULT"):
                # D11: bus cycles in flight complete, then the device stops until reset. A reset
                # while they drain supersedes the fault (the driver has reset the device).
                with m.If(self.reset):
                    m.next = "DRAIN"
                with m.Elif(outstanding == 0):
                    m.d.comb += self.needs_reset.eq(1)
                    drop()
                    m.d.sync += broken.eq(1)
                    m.next = "IDLE"

            with m.State("DRAIN"):
                with m.If(outstanding == 0):
                    drop()
                    m.next = "IDLE"

        with m.If(new_chain):
            m.d.sync += [sent.eq(0), got.eq(0), index.eq(halfword), head.eq(halfword),
                         chain_len.eq(0), readable_count.eq(0), seen_writable.eq(0),
                         readable_total.eq(0), writable_total.eq(0)]

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | (outstanding != 0) |
                                 ((pending & self.queues.ready).any() & ~broken))

        # Notifications (never refused); a queue's state is cleared while it is not ready.
        m.d.comb += self.notify.ready.eq(1)
        with m.If(self.notify.valid & (self.notify.p.queue < nq)):
            m.d.sync += pending.bit_select(self.notify.p.queue[:max(1, ceil_log2(nq))], 1).eq(1)
        for i in range(nq):
            with m.If(~self.queues.ready[i] | self.reset):
                m.d.sync += [pending[i].eq(0), checked[i].eq(0), published[i].eq(0),
                             last_avail[i].eq(0), shadow_avail[i].eq(0)]
        with m.If(self.reset):
            m.d.sync += [broken.eq(0), self.error_case.eq(0)]
        return m
