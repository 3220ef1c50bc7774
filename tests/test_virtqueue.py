"""The virtqueue engine (issue 14): chains byte-exact at any alignment, every row of
decisions.md D11, event suppression and the lost-wakeup race, teardown, fairness, and randomized
rings under random wait states."""

import random
import re

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from hw.regmap import Status
from hw.transport import VirtioMMIOTransport
from hw.virtqueue import BUS_RULE, OUTSTANDING, RingError, VirtqueueEngine
from sim.bus import SimMMIO
from sim.busmemory import WishboneMemory
from sim.driver import VirtioMMIODriver
from sim.engine import EngineBench
from sim.memory import GuestMemory
from sim.virtqueue import DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE


RING = 0x1000           # rings of the tests: descriptor table, avail, then used at 0x2000
DATA = 0x8000           # buffers from here


def echo(request):
    """The device of most tests: writes back the readable bytes, reversed."""
    return bytes(reversed(request.data))


def serve(bench, chains, *, size=8, queue=0, notify=True):
    """Lay out ``chains`` (lists of (address, length, writable)) on one queue, notify once and
    run until idle; returns the driver ring."""
    ring = bench.ring(queue, size=size, base=RING + 0x4000 * queue)

    async def testbench(ctx):
        bench.set_queue(ctx, queue)
        for chain in chains:
            ring.add(chain)
        if notify:
            await bench.notify(ctx, queue)
        await bench.until_idle(ctx)
    bench.run(testbench)
    return ring


async def until(ctx, signal, *, bound=500, what):
    """Tick until ``signal`` is high (at most ``bound`` cycles, else a TimeoutError naming
    ``what``)."""
    for _ in range(bound):
        await ctx.tick()
        if ctx.get(signal):
            return
    raise TimeoutError(f"waited {bound} cycles for {what}")


def snapshot(bench):
    return bytes(bench.guest.read(0, bench.guest.size))


def bytes_written(bench):
    """Every byte address the engine's bus writes touched (by their byte selects)."""
    return {access.address + lane for access in bench.memory.writes()
            for lane in range(4) if access.sel >> lane & 1}


# --- chains -------------------------------------------------------------------------------


@pytest.mark.parametrize("read_at", [0, 1, 2, 3])
@pytest.mark.parametrize("write_at", [0, 1, 2, 3])
@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 7, 8, 13])
def test_bytes_are_exact_at_every_alignment(read_at, write_at, length):
    bench = EngineBench(respond=echo)
    payload = bytes(random.Random(length).randrange(256) for _ in range(length))
    source, target = DATA + read_at, DATA + 0x100 + write_at
    bench.guest.write(source, payload)
    ring = serve(bench, [[(source, length, False), (target, length, True)]])
    assert bench.requests[0].data == payload
    assert bench.guest.read(target, length) == bytes(reversed(payload))
    assert ring.used() == [(0, length)]
    used_ring = set(range(ring.device, ring.device + 6 + 8 * ring.size))
    assert bytes_written(bench) - used_ring == set(range(target, target + length))


def test_request_header_and_stream_across_many_buffers():
    bench = EngineBench(respond=lambda request: bytes(range(11)))
    parts = [(DATA + 3, 5, False), (DATA + 0x41, 6, False), (DATA + 0x82, 1, False),
             (DATA + 0x101, 4, True), (DATA + 0x143, 7, True)]
    for index, (address, length, _) in enumerate(parts[:3]):
        bench.guest.write(address, bytes([index * 16 + i for i in range(length)]))
    ring = serve(bench, [parts])
    request = bench.requests[0]
    assert (request.queue, request.head, request.readable, request.writable) == (0, 0, 12, 11)
    assert request.data == bytes([0, 1, 2, 3, 4, 16, 17, 18, 19, 20, 21, 32])
    assert bench.guest.read(DATA + 0x101, 4) == bytes(range(4))
    assert bench.guest.read(DATA + 0x143, 7) == bytes(range(4, 11))
    assert ring.used() == [(0, 11)]


def test_bytes_beyond_the_writable_total_are_dropped():
    bench = EngineBench(respond=lambda request: b"ABCDEFGHIJ")
    bench.guest.write(DATA + 6, b"\xee\xee")
    ring = serve(bench, [[(DATA + 1, 5, True)]])
    assert bench.guest.read(DATA, 8) == b"\x00ABCDE\xee\xee"
    assert ring.used() == [(0, 5)]


def test_a_short_answer_reports_the_bytes_written():
    bench = EngineBench(respond=lambda request: b"xy")
    ring = serve(bench, [[(DATA, 16, True)]])
    assert ring.used() == [(0, 2)]


def test_used_element_and_index_come_after_every_data_write_is_acknowledged():
    bench = EngineBench(respond=lambda request: bytes(64), latency=(1, 6), stall=0.3, seed=4)
    ring = serve(bench, [[(DATA, 64, True)], [(DATA + 0x100, 64, True)]])
    used_ring = range(ring.device, ring.device + 6 + 8 * ring.size)
    writes = [a for a in bench.memory.writes() if a.address in used_ring]
    # element (id, len), then the index, in that order on the bus (one memory, in order)
    index_writes = [a for a in writes if a.address == ring.device]
    element_writes = [a for a in writes if a.address != ring.device]
    assert len(index_writes) == 2 and len(element_writes) == 4
    # each chain's element is taken once its last data write is acknowledged (at the latest in
    # that cycle), not while one is in flight
    for buffer, elements in zip((range(DATA, DATA + 64), range(DATA + 0x100, DATA + 0x140)),
                                (element_writes[:2], element_writes[2:]), strict=True):
        data_done = max(a.cycle for a in bench.memory.writes() if a.address in buffer)
        assert min(a.taken for a in elements) >= data_done
    for index_write, elements in zip(index_writes, (element_writes[:2], element_writes[2:]),
                                     strict=True):
        assert index_write.taken > max(a.taken for a in elements)
        assert index_write.sel == 0b1100
    assert ring.used() == [(0, 64), (1, 64)]


def test_chains_of_many_queues_are_served_in_turn():
    bench = EngineBench(respond=echo, num_queues=3)
    rings = [bench.ring(q, size=8, base=RING + 0x4000 * q) for q in range(3)]

    async def testbench(ctx):
        for q in range(3):
            bench.set_queue(ctx, q)
            for i in range(3):
                rings[q].add([(DATA + 0x100 * (3 * q + i), 4, False)])
        for q in range(3):
            await bench.notify(ctx, q)
        await bench.until_idle(ctx)
    bench.run(testbench)
    order = [request.queue for request in bench.requests]
    assert sorted(order) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert order[:3] in ([0, 1, 2], [1, 2, 0], [2, 0, 1])
    assert order[3:6] == order[:3] and order[6:] == order[:3]


def test_a_spurious_notification_is_harmless():
    bench = EngineBench(respond=echo, num_queues=2)
    ring = bench.ring(0, size=8, base=RING)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        await bench.notify(ctx, 0)          # nothing available
        await bench.notify(ctx, 1)          # queue not ready
        await bench.notify(ctx, 7)          # no such queue
        await bench.until_idle(ctx)
        ring.add([(DATA, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
    bench.run(testbench)
    assert [r.head for r in bench.requests] == [0]
    assert ring.used() == [(0, 0)]
    assert bench.events.needs_reset == []
    assert not bench.memory.writes()[:-3] or all(not a.error for a in bench.memory.log)


def test_the_avail_index_is_not_read_again_while_buffers_seen_remain():
    bench = EngineBench(respond=echo, event_idx=True)   # no avail.flags reads at that word
    ring = serve(bench, [[(DATA + 0x10 * i, 4, False)] for i in range(4)])
    reads = [a for a in bench.memory.log if not a.write and a.address == ring.driver]
    # once to see four buffers, once to find none, once after publishing avail_event
    assert len(reads) == 3
    assert len(ring.used()) == 4


def test_several_buffers_added_on_the_second_lap_are_served_in_order():
    # A ring of 4: a chain of 2 descriptors and one of 1 on the first lap, then four buffers at
    # once behind one notification, their ring entries wrapping past the end (the engine reads
    # each next entry ahead while it returns the one before), then one more past the wrap.
    bench = EngineBench(respond=lambda request: request.data[::-1])
    ring = bench.ring(0, size=4, base=RING)
    payloads = [bytes([i + 1] * 3 + [0x10 * i]) for i in range(7)]
    chains = [[(DATA + 0x40 * i, 4, False)] for i in range(7)]
    chains[0].append((DATA + 0x400, 4, True))
    for i, payload in enumerate(payloads):
        bench.guest.write(DATA + 0x40 * i, payload)

    used = []

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        for batch in (chains[:2], chains[2:6], chains[6:]):
            for chain in batch:
                ring.add(chain)
            await bench.notify(ctx, 0)
            await bench.until_idle(ctx)
            used.extend(ring.used())            # before the next lap overwrites the elements
    bench.run(testbench)
    heads = [0, 2, 3, 0, 1, 2, 3]               # descriptors taken in turn from index 0
    assert [r.head for r in bench.requests] == heads
    assert [r.data for r in bench.requests] == payloads
    assert used == [(0, 4)] + [(head, 0) for head in heads[1:]]
    assert bench.guest.read(DATA + 0x400, 4) == payloads[0][::-1]


def test_a_ring_filled_at_once_is_served():
    # QueueNum buffers published behind one notification are legal (D11 case 1 is one more).
    bench = EngineBench(respond=echo)
    ring = serve(bench, [[(DATA + 0x10 * i, 4, False)] for i in range(8)])
    assert ring.used() == [(i, 0) for i in range(8)]
    assert bench.events.needs_reset == []


def test_a_next_field_is_ignored_without_the_next_flag():
    # §2.7.5: next is meaningful only with NEXT; a driver may leave garbage in it (QueueNum or
    # more, which with NEXT would be D11 case 3).
    bench = EngineBench(respond=lambda request: b"\x5a")
    ring = bench.ring(0, size=8, base=RING)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.write_desc(0, DATA, 4, DESC_F_NEXT, next=1)
        ring.write_desc(1, DATA + 0x100, 1, DESC_F_WRITE, next=0xfff7)
        ring.publish(0)
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
    bench.run(testbench)
    assert bench.events.needs_reset == []
    assert ring.used() == [(0, 1)]
    assert bench.guest.read(DATA + 0x100, 1) == b"\x5a"


# --- event suppression (§2.7.7, §2.7.10) -----------------------------------------------------


def test_no_interrupt_flag_suppresses_the_used_event():
    bench = EngineBench(respond=echo)
    ring = bench.ring(0, size=8, base=RING)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.suppress_interrupts()
        ring.add([(DATA, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        ring.suppress_interrupts(False)
        ring.add([(DATA, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
    bench.run(testbench)
    assert len(ring.used()) == 2
    assert len(bench.events.used) == 1


@pytest.mark.parametrize("used_event, interrupts", [(0, [1]), (1, [2]), (2, [3]), (9, [])])
def test_event_idx_interrupts_exactly_when_used_event_is_passed(used_event, interrupts):
    bench = EngineBench(respond=echo, event_idx=True)
    ring = bench.ring(0, size=8, base=RING)
    bench.guest.write_int(ring.driver + 4 + 2 * ring.size, used_event, 2)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        for i in range(3):
            ring.add([(DATA + 0x10 * i, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
    bench.run(testbench)
    assert len(ring.used()) == 3
    # which buffer's publication raised the event: the one that made used.idx pass used_event
    used_writes = [a for a in bench.memory.writes() if a.address == ring.device]
    raised = []
    for cycle, _ in bench.events.used:
        raised.append(sum(1 for a in used_writes if a.cycle < cycle))
    assert raised == interrupts


def test_event_idx_publishes_avail_event_before_going_idle():
    bench = EngineBench(respond=echo, event_idx=True)
    ring = serve(bench, [[(DATA, 4, False)], [(DATA + 0x10, 4, False)]])
    assert bench.guest.read_int(ring.device + 4 + 8 * ring.size, 2) == 2


def test_event_idx_publishes_avail_event_again_after_every_batch():
    # avail_event is written before every stop, not only the first: a driver that honours
    # vring_need_event would otherwise stop notifying once its index passed the stale value.
    bench = EngineBench(respond=echo, event_idx=True)
    ring = bench.ring(0, size=8, base=RING)
    avail_event = ring.device + 4 + 8 * ring.size
    seen = []

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        for batch in (1, 2, 3):
            for i in range(batch):
                ring.add([(DATA + 0x10 * i, 4, False)])
            await bench.notify(ctx, 0)
            await bench.until_idle(ctx)
            seen.append(bench.guest.read_int(avail_event, 2))
    bench.run(testbench)
    assert seen == [1, 3, 6]
    assert len(ring.used()) == 6


def test_a_buffer_added_while_avail_event_is_published_is_not_lost():
    # The driver adds a buffer right after the engine found the ring empty and just as it
    # publishes avail_event; the driver saw the old avail_event and does not notify. The
    # engine's second read of avail.idx must find the buffer (§2.7.10).
    state = {}

    def on_write(access):
        if access.address == state["avail_event"] and "added" not in state:
            state["added"] = True
            state["ring"].add([(DATA + 0x40, 4, False)])
    bench = EngineBench(respond=echo, event_idx=True, on_write=on_write)
    ring = bench.ring(0, size=8, base=RING)
    state.update(ring=ring, avail_event=ring.device + 4 + 8 * ring.size)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
    bench.run(testbench)
    assert state.get("added")
    assert ring.used() == [(0, 0), (1, 0)]


# --- D11: malformed rings ------------------------------------------------------------------


def broken_run(bench, build, *, size=8, after=None):
    """Build a malformed ring on queue 0 with ``build(ring)``, notify, run; then a good chain on
    queue 1 must not be served until reset, and is served after it."""
    ring = bench.ring(0, size=size, base=RING)
    other = bench.ring(1, size=8, base=RING + 0x4000)
    seen = {}

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        bench.set_queue(ctx, 1)
        build(ring)
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        seen["case"] = ctx.get(bench.engine.error_case)
        seen["cyc"] = ctx.get(bench.engine.bus.cyc)
        seen["requests"] = len(bench.requests)
        other.add([(DATA + 0x800, 4, False)])
        await bench.notify(ctx, 1)
        await bench.until_idle(ctx)
        seen["other_before_reset"] = other.used()
        await bench.reset(ctx)
        bench.set_queue(ctx, 0, ready=False)
        bench.set_queue(ctx, 1, ready=False)
        await ctx.tick()
        seen["case_after_reset"] = ctx.get(bench.engine.error_case)
        # the driver sets the device up again: a fresh ring on queue 1 is served
        again = bench.ring(1, size=8, base=RING + 0x8000)
        bench.set_queue(ctx, 1)
        again.add([(DATA + 0x800, 4, False)])
        await bench.notify(ctx, 1)
        await bench.until_idle(ctx)
        seen["after_reset"] = again.used()
    bench.run(testbench)
    used_ring = range(ring.device, ring.device + 6 + 8 * ring.size)
    seen["used_writes"] = [a for a in bench.memory.writes() if a.address in used_ring]
    return seen


def check_d11(seen, case, bench):
    assert seen["case"] == case
    assert len(bench.events.needs_reset) == 1
    assert not seen["cyc"]                          # the bus is released
    assert seen["used_writes"] == [] or case in (8,)
    assert seen["other_before_reset"] == []          # no queue is served until reset
    assert seen["case_after_reset"] == 0
    assert seen["after_reset"] == [(0, 0)]


def _engine(**kwargs):
    return EngineBench(respond=echo, num_queues=2, **kwargs)


def test_d11_case_1_avail_idx_moved_too_far():
    bench = _engine()

    def build(ring):
        ring.write_desc(0, DATA, 4)
        ring.publish(0, count=9)                    # QueueNum is 8
    seen = broken_run(bench, build)
    check_d11(seen, RingError.AVAIL_IDX, bench)
    assert seen["requests"] == 0


def test_d11_case_2_head_beyond_queue_num():
    bench = _engine()
    seen = broken_run(bench, lambda ring: ring.publish(8))
    check_d11(seen, RingError.HEAD, bench)


def test_d11_case_3_next_beyond_queue_num():
    bench = _engine()

    def build(ring):
        ring.write_desc(0, DATA, 4, DESC_F_NEXT, next=8)
        ring.publish(0)
    check_d11(broken_run(bench, build), RingError.NEXT, bench)


@pytest.mark.parametrize("shape", ["loop", "longer-than-max-chain"])
def test_d11_case_4_chain_too_long(shape):
    # A chain longer than QueueNum must visit a descriptor twice: the loop is that case.
    bench = _engine(max_chain=4 if shape == "longer-than-max-chain" else 16)

    def build(ring):
        if shape == "loop":
            ring.write_desc(0, DATA, 4, DESC_F_NEXT, next=1)
            ring.write_desc(1, DATA, 4, DESC_F_NEXT, next=0)
        else:
            for i in range(5):
                ring.write_desc(i, DATA + 0x10 * i, 4, 0 if i == 4 else DESC_F_NEXT, next=i + 1)
        ring.publish(0)
    seen = broken_run(bench, build)
    check_d11(seen, RingError.TOO_LONG, bench)
    assert seen["requests"] == 0


def test_a_loop_is_caught_after_queue_num_descriptors():
    # A chain longer than QueueNum is case 4 as soon as it is (§2.7.5.2), however large
    # max_chain: in a ring of 4 the engine reads 4 descriptors of a loop, not max_chain.
    bench = EngineBench(respond=echo, max_chain=16)
    ring = bench.ring(0, size=4, base=RING)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        for i in range(4):
            ring.write_desc(i, DATA, 4, DESC_F_NEXT, next=(i + 1) % 4)
        ring.publish(0)
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        assert ctx.get(bench.engine.error_case) == RingError.TOO_LONG
    bench.run(testbench)
    table = range(ring.desc, ring.desc + 16 * 4)
    assert len([a for a in bench.memory.log if a.address in table]) == 4 * 4


def test_a_chain_of_exactly_max_chain_descriptors_is_served():
    bench = EngineBench(respond=echo, max_chain=4)
    ring = serve(bench, [[(DATA + 0x10 * i, 4, False) for i in range(4)]])
    assert ring.used() == [(0, 0)] and bench.requests[0].readable == 16


def test_d11_case_5_readable_after_writable():
    bench = _engine()

    def build(ring):
        ring.add([(DATA, 4, True), (DATA + 0x10, 4, False)])
    check_d11(broken_run(bench, build), RingError.ORDER, bench)


def test_d11_case_6_zero_length():
    bench = _engine()
    check_d11(broken_run(bench, lambda ring: ring.add([(DATA, 0, False)])),
              RingError.ZERO_LENGTH, bench)


def test_d11_case_7_indirect_not_offered():
    bench = _engine()

    def build(ring):
        ring.write_desc(0, DATA, 16, DESC_F_INDIRECT)
        ring.publish(0)
    check_d11(broken_run(bench, build), RingError.INDIRECT, bench)


@pytest.mark.parametrize("where", ["avail", "ring-entry", "descriptor", "readable-buffer",
                                   "writable-buffer", "used-ring"])
def test_d11_case_8_bus_error(where):
    ring_probe = EngineBench().ring(0, size=8, base=RING)
    ranges = {
        "avail": (ring_probe.driver + 2, ring_probe.driver + 4),
        "ring-entry": (ring_probe.driver + 4, ring_probe.driver + 6),
        "descriptor": (ring_probe.desc + 8, ring_probe.desc + 12),
        "readable-buffer": (DATA + 0x20, DATA + 0x24),
        "writable-buffer": (DATA + 0x104, DATA + 0x108),
        "used-ring": (ring_probe.device + 4, ring_probe.device + 8),
    }
    bench = _engine(faults=[ranges[where]])
    seen = broken_run(bench, lambda ring: ring.add([(DATA, 64, False), (DATA + 0x100, 16, True)]))
    check_d11(seen, RingError.BUS, bench)
    assert [a.error for a in bench.memory.log].count(True) >= 1
    # the device got the chain only if the error came after the chain was checked
    assert seen["requests"] == (0 if where in ("avail", "ring-entry", "descriptor") else 1)
    # nothing reached the used index
    assert not [a for a in seen["used_writes"] if a.address == ring_probe.device]


@pytest.mark.parametrize("latency", [1, 3, 6])
def test_used_idx_is_not_published_over_a_failed_element_write(latency):
    # found by the formal harness (idx_acked): with slow answers the index went out behind an
    # element write that then failed
    probe = EngineBench().ring(0, size=8, base=RING)
    bench = _engine(faults=[(probe.device + 8, probe.device + 12)], latency=(latency, latency))
    seen = broken_run(bench, lambda ring: ring.add([(DATA, 8, False)]))
    check_d11(seen, RingError.BUS, bench)
    assert not [a for a in seen["used_writes"] if a.address == probe.device]




async def serve_a_fresh_ring(ctx, bench):
    """Queue 0 on a new ring with one 4-byte readable buffer: what the used ring gets."""
    fresh = bench.ring(0, size=8, base=RING + 0x4000)
    bench.set_queue(ctx, 0)
    fresh.add([(DATA + 0x100, 4, False)])
    await bench.notify(ctx, 0)
    await bench.until_idle(ctx)
    return fresh.used()


def test_a_reset_while_a_fault_drains_is_not_lost():
    # found by the formal harness (reset): the reset came while FAULT waited for answers, and
    # the engine stayed stopped until a second reset
    bench = _engine(faults=[(DATA, DATA + 4)], latency=(8, 8))
    ring = bench.ring(0, size=8, base=RING)
    seen = {}

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA, 16, False)])
        await bench.notify(ctx, 0)
        await until(ctx, bench.engine.bus.err, bound=200, what="a bus error answered")
        await ctx.tick()                        # the reset while FAULT waits for the others
        await bench.reset(ctx)
        bench.set_queue(ctx, 0, ready=False)
        await bench.until_idle(ctx)
        seen["pulses_after_reset"] = len(bench.events.needs_reset)
        seen["served"] = await serve_a_fresh_ring(ctx, bench)
    bench.run(testbench)
    assert seen["pulses_after_reset"] == 0
    assert seen["served"] == [(0, 0)]


def test_a_bus_error_answered_in_the_cycle_of_queue_ready_0_is_dropped_with_the_chain():
    # D11f: the answers to a torn-down chain's requests are dropped, a bus error among them too:
    # it is not reported in error_case (nor by needs_reset), and the queue is served when it is
    # made ready again, without a reset
    bench = _engine(faults=[(DATA, DATA + 4)], latency=(8, 8))
    ring = bench.ring(0, size=8, base=RING)
    seen = {"cases": []}

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA, 16, False)])
        await bench.notify(ctx, 0)
        await until(ctx, bench.engine.bus.err, bound=200, what="a bus error answered")
        seen["cycle"] = bench.memory.cycle
        bench.set_queue(ctx, 0, ready=False)
        for _ in range(20):
            await ctx.tick()
            seen["cases"].append(ctx.get(bench.engine.error_case))
        await bench.until_idle(ctx)
        seen["served"] = await serve_a_fresh_ring(ctx, bench)
    bench.run(testbench)
    # the scenario: the error is answered in the cycle QueueReady drops
    assert [a.cycle for a in bench.memory.log if a.error] == [seen["cycle"]]
    assert seen["cases"] == [0] * 20
    assert bench.events.needs_reset == []
    assert seen["served"] == [(0, 0)]


@pytest.mark.parametrize("area", ["desc", "driver"])
def test_a_ring_area_ending_exactly_at_the_top_of_the_bus_is_served(area):
    # D11a: an area that ends at 2 ** (addr_width + 2) exactly lies within the bus (the
    # descriptor table's 16 * QueueNum bytes, the available ring's 6 + 2 * QueueNum).
    top = 1 << 22
    bench = EngineBench(respond=echo, memory_size=top)
    ring = bench.ring(0, size=8, base=RING)
    length = {"desc": 16 * 8, "driver": 6 + 2 * 8}[area]

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA, 4, False)])
        start = getattr(ring, area)
        bench.guest.write(top - length, bench.guest.read(start, length))
        ctx.set(getattr(bench.engine.queues, area)[0], top - length)
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        assert ctx.get(bench.engine.error_case) == 0
    bench.run(testbench)
    assert ring.used() == [(0, 0)]


def test_a_ring_ending_at_the_top_of_the_bus_is_served():
    top = 1 << 22
    bench = EngineBench(respond=echo, memory_size=top)
    ring = bench.ring(0, size=8, base=RING)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        # 4-aligned, the used ring (70 bytes) ends 2 bytes below the top: it cannot end at it
        ctx.set(bench.engine.queues.device[0], top - (6 + 8 * 8) - 2)
        ring.add([(DATA, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        assert ctx.get(bench.engine.error_case) == 0
    bench.run(testbench)
    assert bench.guest.read_int(top - (6 + 8 * 8) - 2 + 2, 2) == 1       # used.idx


@pytest.mark.parametrize("address, length", [
    ((1 << 22) - 2, 4),                 # crosses the end of a 4 MiB bus (addr_width=20)
    (1 << 40, 4),                       # far beyond it
    ((1 << 64) - 2, 4),                 # wraps past 2^64
])
def test_d11_case_8_buffer_outside_the_bus(address, length):
    bench = _engine()
    seen = broken_run(bench, lambda ring: ring.add([(address, length, False)]))
    check_d11(seen, RingError.BUS, bench)
    assert seen["requests"] == 0
    assert not any(a.error for a in bench.memory.log)   # refused before any access


def test_a_buffer_ending_at_the_top_of_the_bus_is_served():
    bench = EngineBench(respond=echo, memory_size=1 << 22)
    ring = serve(bench, [[((1 << 22) - 3, 3, False)]])
    assert ring.used() == [(0, 0)]


_TOP = 1 << 22                          # the bus of _engine(): addr_width=20


@pytest.mark.parametrize("area, address", [
    ("desc", 1 << 23), ("driver", 1 << 40), ("device", 1 << 63),       # beyond the bus
    ("desc", RING + 2), ("driver", RING + 0x101), ("device", 0x2002),   # misaligned
    # starting inside the bus, ending beyond it (size 8): found by the formal harness
    # (buffers_wrap), such an area wrapped to address 0
    ("desc", _TOP - 64), ("driver", _TOP - 16), ("device", _TOP - 32),
])
def test_d11_case_8_ring_outside_the_bus_or_misaligned(area, address):
    bench = _engine(memory_size=_TOP)
    ring = bench.ring(0, size=8, base=RING)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ctx.set(getattr(bench.engine.queues, area)[0], address)
        ring.add([(DATA, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        assert ctx.get(bench.engine.error_case) == RingError.BUS
    bench.run(testbench)
    assert bench.memory.log == [] and len(bench.events.needs_reset) == 1


def test_d11_case_9_cannot_happen_one_chain_is_in_flight():
    # More than QueueNum buffers can only be in flight if the engine took them without
    # returning them; it takes one at a time, so QueueNum + 1 published at once is case 1.
    bench = _engine()
    seen = broken_run(bench, lambda ring: [ring.add([(DATA, 4, False)]) for _ in range(8)] and
                      ring.publish(0))
    check_d11(seen, RingError.AVAIL_IDX, bench)


def test_d11_case_10_the_device_refuses_the_chain():
    bench = EngineBench(respond=echo, num_queues=2, refuse=lambda request: request.queue == 0)
    seen = broken_run(bench, lambda ring: ring.add([(DATA, 4, False)]))
    check_d11(seen, RingError.DEVICE, bench)
    assert seen["requests"] == 1


def test_d11_case_11_totals_beyond_32_bits():
    bench = _engine(addr_width=62, memory_size=1 << 16)

    def build(ring):
        ring.write_desc(0, 1 << 40, 0xffff_fff0, DESC_F_NEXT | DESC_F_WRITE, next=1)
        ring.write_desc(1, 1 << 41, 0x20, DESC_F_WRITE)
        ring.publish(0)
    seen = broken_run(bench, build)
    check_d11(seen, RingError.TOTAL, bench)
    assert seen["requests"] == 0


def test_d11_case_12_queue_num_not_a_power_of_two():
    bench = _engine()
    ring = bench.ring(0, size=8, base=RING)

    async def testbench(ctx):
        bench.set_queue(ctx, 0, size=6)
        ring.add([(DATA, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        assert ctx.get(bench.engine.error_case) == RingError.QUEUE_SIZE
    bench.run(testbench)
    assert bench.memory.log == [] and len(bench.events.needs_reset) == 1


# --- teardown ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["queue-ready-0", "device-reset"])
@pytest.mark.parametrize("when", [3, 12, 30, 60, 90])
def test_teardown_finishes_bus_cycles_and_writes_nothing_after(how, when):
    bench = EngineBench(respond=lambda request: bytes(200), latency=(1, 4), stall=0.2, seed=when)
    ring = bench.ring(0, size=8, base=RING)
    seen = {}

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA, 100, False), (DATA + 0x400, 200, True)])
        await bench.notify(ctx, 0)
        await ctx.tick().repeat(when)
        seen["cycle"] = bench.memory.cycle
        # No request is presented from the cycle of the reset or of QueueReady = 0 on, not even
        # the one presented in the cycle before.
        if how == "device-reset":
            ctx.set(bench.engine.reset, 1)
            seen["stb"] = [ctx.get(bench.engine.bus.stb)]
            await ctx.tick()
            ctx.set(bench.engine.reset, 0)
        bench.set_queue(ctx, 0, ready=False)
        seen.setdefault("stb", []).append(ctx.get(bench.engine.bus.stb))
        for _ in range(100):
            await ctx.tick()
            seen["stb"].append(ctx.get(bench.engine.bus.stb))
        await bench.until_idle(ctx)
        seen["cyc"] = ctx.get(bench.engine.bus.cyc)
        await ctx.tick().repeat(50)
    bench.run(testbench)
    assert not any(seen["stb"])
    after = [a for a in bench.memory.log if a.taken > seen["cycle"] + 1]
    assert after == []
    assert not seen["cyc"]
    assert bench.events.needs_reset == []


def test_a_device_that_never_takes_read_beats_stalls_the_engine_until_a_reset():
    # D11h is the device's obligation; a device that breaks it (here: never ready for a read
    # beat) leaves the engine waiting in the read phase. It reads no further ahead than its
    # answer FIFO (OUTSTANDING words) and the beat the packer holds, then lets the bus go; it
    # writes nothing, and a reset ends the chain.
    bench = EngineBench(respond=echo, backpressure=1.0)
    ring = bench.ring(0, size=8, base=RING)
    seen = {}

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA, 256, False)])
        await bench.notify(ctx, 0)
        await ctx.tick().repeat(500)
        seen["busy"] = ctx.get(bench.engine.busy)
        seen["cyc"] = ctx.get(bench.engine.bus.cyc)
        seen["reads"] = [a.address for a in bench.memory.log if DATA <= a.address < DATA + 256]
        await bench.reset(ctx)
        bench.set_queue(ctx, 0, ready=False)
        await bench.until_idle(ctx)
    bench.run(testbench)
    assert seen["busy"] and not seen["cyc"]
    assert 1 <= len(seen["reads"]) <= OUTSTANDING + 1
    assert seen["reads"] == [DATA + 4 * i for i in range(len(seen["reads"]))]
    assert bench.memory.writes() == [] and ring.used() == []


@pytest.mark.parametrize("size", [8, 6], ids=["same-queue-num", "queue-num-6"])
def test_a_queue_made_ready_again_starts_from_index_0(size):
    # Made ready again, a queue starts from index 0 and its first-use checks run again: the
    # driver may have set another QueueNum (6, not a power of two, is D11 case 12).
    bench = EngineBench(respond=echo)
    ring = bench.ring(0, size=8, base=RING)
    seen = {}

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        bench.set_queue(ctx, 0, ready=False)
        await ctx.tick()
        fresh = bench.ring(0, size=8, base=RING + 0x4000)
        bench.set_queue(ctx, 0, size=size)
        fresh.add([(DATA, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        seen["case"] = ctx.get(bench.engine.error_case)
        seen["used"] = fresh.used()
    bench.run(testbench)
    if size == 8:
        assert seen == {"case": 0, "used": [(0, 0)]} and bench.events.needs_reset == []
    else:
        assert seen == {"case": RingError.QUEUE_SIZE, "used": []}
        assert len(bench.events.needs_reset) == 1


# --- the contract with device logic (D11h) --------------------------------------------------


@pytest.mark.parametrize("how", ["device-reset", "queue-ready-0", "fault", "device-error"])
def test_no_beat_of_a_dropped_chain_reaches_an_eager_device(how):
    # A device that takes read beats whenever they are offered (read.ready always high, even
    # holding no chain) takes a chain of 24 readable bytes but no beat yet, and the chain ends
    # (by reset, QueueReady = 0, a bus error on its second buffer, or the device's own error).
    # Set up again, the next chain must reach it whole and alone: a beat of the dropped chain
    # still offered after it ends would be taken as the next chain's first, and the engine
    # would wait for ever for the last one (the monitor also fails on any beat taken while the
    # device holds no chain).
    fault = (DATA + 0x104, DATA + 0x108)
    bench = EngineBench(respond=lambda request: request.data[:4], eager=True,
                        faults=[fault] if how == "fault" else [])
    ring = bench.ring(0, size=8, base=RING)
    first = bytes(range(0x40, 0x40 + 24))
    second = bytes(range(0x80, 0x80 + 24))
    bench.guest.write(DATA, first)
    bench.guest.write(DATA + 0x104, first[4:])
    bench.guest.write(DATA + 0x200, second)
    seen = {}

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        if how == "fault":                      # 4 bytes, then 20 the bus refuses
            ring.add([(DATA, 4, False), (DATA + 0x104, 20, False), (DATA + 0x300, 4, True)])
        else:
            ring.add([(DATA, 24, False), (DATA + 0x300, 4, True)])
        bench.device.paused = True
        await bench.notify(ctx, 0)
        await until(ctx, bench.engine.read.valid, what="the first read beat")
        await ctx.tick().repeat(3)
        if how == "device-reset":
            await bench.reset(ctx)
            bench.set_queue(ctx, 0, ready=False)
        elif how == "queue-ready-0":
            bench.set_queue(ctx, 0, ready=False)
        elif how == "device-error":
            bench.device.refuse_now()
        await bench.until_idle(ctx, what="the chain to end")
        seen["case"] = ctx.get(bench.engine.error_case)
        if how in ("fault", "device-error"):    # the driver resets the device
            await bench.reset(ctx)
            bench.set_queue(ctx, 0, ready=False)
        await ctx.tick()
        bench.device.paused = False
        fresh = bench.ring(0, size=8, base=RING + 0x4000)
        bench.set_queue(ctx, 0)
        fresh.add([(DATA + 0x200, 24, False), (DATA + 0x400, 4, True)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx, bound=2000, what="the next chain")
        seen["used"] = fresh.used()
    bench.run(testbench)
    assert seen["case"] == {"fault": RingError.BUS, "device-error": RingError.DEVICE}.get(how, 0)
    first_request, second_request = bench.requests
    assert first_request.data == b"" and not first_request.complete
    assert first_request.aborted == (how != "device-error")
    assert first_request.refused == (how == "device-error")
    assert second_request.data == second and second_request.complete
    assert seen["used"] == [(0, 4)]
    assert bench.guest.read(DATA + 0x400, 4) == second[:4]


@pytest.mark.parametrize("moment", [
    "fault-before-the-offer", "teardown-while-offered", "teardown-after-the-last-write-beat",
    "teardown-while-held"])
def test_abort_pulses_once_for_a_chain_device_logic_holds_and_never_otherwise(moment):
    # D11h: every chain device logic takes ends once, by its last write beat, by its error, or
    # by abort; a chain it never took (a fault found before the offer, a request withdrawn by a
    # teardown) and one it has completed (the engine still writing it back) give no abort.
    aborts = []
    bench = EngineBench(respond=lambda request: bytes(8), latency=(1, 12))

    async def count_aborts(ctx):
        async for _, _, abort in ctx.tick().sample(bench.engine.abort):
            if abort:
                aborts.append(bench.cycle)
    bench.processes.append(count_aborts)
    ring = bench.ring(0, size=8, base=RING)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        if moment == "fault-before-the-offer":
            ring.add([(DATA, 4, False), (DATA + 0x100, 0, True)])     # D11 case 6
        else:
            ring.add([(DATA, 16, False), (DATA + 0x100, 8, True)])
        if moment == "teardown-while-offered":
            bench.device.take_requests = False
        await bench.notify(ctx, 0)
        if moment == "teardown-while-offered":
            await until(ctx, bench.engine.request.valid, what="the request")
        elif moment == "teardown-after-the-last-write-beat":
            await until(ctx, bench.engine.write.p.last & bench.engine.write.valid
                        & bench.engine.write.ready, what="the last write beat")
            await ctx.tick()
        elif moment == "teardown-while-held":
            await until(ctx, bench.engine.read.valid, what="a read beat")
        if moment != "fault-before-the-offer":
            bench.set_queue(ctx, 0, ready=False)
            await ctx.tick()
            assert not ctx.get(bench.engine.request.valid)      # a request is withdrawn
        await bench.until_idle(ctx)
        await ctx.tick().repeat(20)
    bench.run(testbench)
    held = moment == "teardown-while-held"
    assert len(aborts) == held
    assert [r.aborted for r in bench.requests] == ([True] if held else
                                                   [False] if "after" in moment else [])
    if moment == "teardown-after-the-last-write-beat":
        assert bench.requests[0].complete and ring.used() == []   # torn down before the used ring


def test_error_is_ignored_while_device_logic_holds_no_chain():
    # D11h: error counts only from the request's handshake until the chain ends. A device that
    # raises it while a request is offered but not yet taken refuses nothing.
    bench = EngineBench(respond=echo, latency=(1, 4))
    ring = bench.ring(0, size=8, base=RING)
    raised = []

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        bench.device.take_requests = False
        ring.add([(DATA, 8, False), (DATA + 0x100, 8, True)])
        await bench.notify(ctx, 0)
        await until(ctx, bench.engine.request.valid, what="the request")
        for _ in range(5):                      # offered, not taken: error held high
            ctx.set(bench.engine.error, 1)
            raised.append(ctx.get(bench.engine.request.valid))
            await ctx.tick()
        bench.device.take_requests = True
        await bench.until_idle(ctx)
    bench.run(testbench)
    assert all(raised)                          # the request stayed offered
    assert bench.events.needs_reset == [] and bench.requests[0].refused is False
    assert ring.used() == [(0, 8)]


def test_no_more_than_outstanding_requests_are_in_flight():
    # The bus master's bound, counted on the memory's side, and reached with a slow memory.
    bench = EngineBench(respond=lambda request: bytes(256), latency=(8, 8))
    serve(bench, [[(DATA, 256, False), (DATA + 0x400, 256, True)]])
    events = sorted([(a.taken, 1) for a in bench.memory.log] +
                    [(a.cycle, -1) for a in bench.memory.log])
    level, most = 0, 0
    for _, step in events:
        level += step
        most = max(most, level)
    assert most == OUTSTANDING


class _SameCycleTarget(Elaboratable):
    """A memory that acknowledges in the cycle it takes a request (zero data)."""

    def __init__(self, engine):
        self.engine = engine

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine
        m.d.comb += [engine.bus.ack.eq(engine.bus.cyc & engine.bus.stb), engine.bus.dat_r.eq(0)]
        return m


def test_a_target_answering_in_the_cycle_it_takes_a_request_fails_the_simulation():
    # The engine counts an answer only with a request in flight (its bus member says so): one
    # given in the request's own cycle would be lost and the engine would wait for ever. A
    # simulation says so at the first such answer instead, naming the rule.
    engine = VirtqueueEngine(num_queues=1, addr_width=20)
    sim = Simulator(_SameCycleTarget(engine))
    sim.add_clock(1e-6)

    async def testbench(ctx):
        ctx.set(engine.queues.size[0], 8)
        ctx.set(engine.queues.desc[0], RING)
        ctx.set(engine.queues.driver[0], RING + 0x80)
        ctx.set(engine.queues.device[0], RING + 0x100)
        ctx.set(engine.queues.ready, 1)
        ctx.set(engine.notify.valid, 1)
        await ctx.tick()
        ctx.set(engine.notify.valid, 0)
        for _ in range(50):
            await ctx.tick()
    sim.add_testbench(testbench)
    with pytest.raises(AssertionError, match=re.escape(BUS_RULE)):
        sim.run()
    assert "at the earliest in the cycle after it takes it" in BUS_RULE


def test_a_target_answering_with_nothing_in_flight_fails_the_simulation():
    bench = EngineBench(respond=echo, spurious=0.5)
    ring = bench.ring(0, size=8, base=RING)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA, 4, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
    with pytest.raises(AssertionError, match=re.escape(BUS_RULE)):
        bench.run(testbench)
    assert bench.memory.spurious_acks >= 1


class _TransportAndEngine(Elaboratable):
    """A transport and an engine wired by ``connect_transport`` alone (no device logic)."""

    def __init__(self, extra=None):
        self.extra = extra
        self.transport = VirtioMMIOTransport(device_id=0x1234, vendor_id=0x1af4, num_queues=1,
                                             queue_size_max=8,
                                             device_features=VirtqueueEngine.FEATURES)
        self.engine = VirtqueueEngine(num_queues=1, addr_width=20)

    def elaborate(self, platform):
        m = Module()
        m.submodules.transport = self.transport
        m.submodules.engine = self.engine
        self.engine.connect_transport(m, self.transport.device, needs_reset=self.extra)
        return m


def test_connect_transport_alone_reports_a_malformed_ring_as_device_needs_reset():
    # A user who wires the engine with connect_transport and nothing else must still see D11:
    # DEVICE_NEEDS_RESET in Status and, after DRIVER_OK, a configuration-change interrupt.
    top = _TransportAndEngine()
    guest = GuestMemory(bytearray(1 << 16))
    memory = WishboneMemory(guest)
    seen = {}

    async def testbench(ctx):
        driver = VirtioMMIODriver(SimMMIO(ctx, top.transport.bus))
        await driver.probe()
        await driver.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
        await driver.negotiate()
        vq = await driver.setup_vq(0, 8, desc=RING, driver=RING + 0x80, device=RING + 0x100)
        await driver.add_status(Status.DRIVER_OK)
        guest.write_int(vq.driver + 4, 8, 2)        # a head of QueueNum: D11 case 2
        guest.write_int(vq.driver + 2, 1, 2)
        await driver.notify(0)
        for _ in range(100):
            await ctx.tick()
        seen["status"] = Status(await driver.get_status())
        seen["interrupt"] = await driver.read("InterruptStatus")
        seen["case"] = ctx.get(top.engine.error_case)

    async def serve(ctx):
        await memory.serve(ctx, top.engine.bus)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(serve, background=True)
    sim.add_testbench(testbench)
    sim.run()
    assert seen["case"] == RingError.HEAD
    assert Status.DEVICE_NEEDS_RESET in seen["status"]
    assert seen["interrupt"] == 0b10                # the configuration-change bit


def test_connect_transport_ors_device_logics_own_needs_reset_with_the_engines():
    extra = Signal()
    top = _TransportAndEngine(extra)
    seen = {}

    async def testbench(ctx):
        driver = VirtioMMIODriver(SimMMIO(ctx, top.transport.bus))
        await driver.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
        seen["before"] = Status(await driver.get_status())
        ctx.set(extra, 1)
        await ctx.tick()
        ctx.set(extra, 0)
        seen["after"] = Status(await driver.get_status())
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert Status.DEVICE_NEEDS_RESET not in seen["before"]
    assert Status.DEVICE_NEEDS_RESET in seen["after"]


# --- randomized ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_random_chains_wait_states_and_notification_timing(seed):
    rng = random.Random(seed)
    num_queues = rng.choice([1, 2, 3])
    bench = EngineBench(respond=lambda request: bytes(b ^ 0x5a for b in request.data)
                        [:request.writable], num_queues=num_queues, event_idx=rng.random() < .5,
                        stall=rng.choice([0, 0.2, 0.5]), latency=(1, rng.choice([1, 3, 6])),
                        backpressure=rng.choice([0, 0.3]), seed=seed, memory_size=1 << 18)
    rings = [bench.ring(q, size=rng.choice([4, 8, 16]), base=RING + 0x4000 * q)
             for q in range(num_queues)]
    expected = {}                               # (queue, head) -> expected target bytes
    cursor = [0x20000]

    def region(length):
        start = cursor[0] + rng.randrange(4)
        cursor[0] = start + length + rng.randrange(1, 9)
        return start

    def make_chain():
        readable = [rng.randrange(1, 24) for _ in range(rng.randrange(0, 3))]
        writable = [rng.randrange(1, 24) for _ in range(rng.randrange(0 if readable else 1, 3))]
        buffers, payload = [], b""
        for length in readable:
            address = region(length)
            data = bytes(rng.randrange(256) for _ in range(length))
            bench.guest.write(address, data)
            buffers.append((address, length, False))
            payload += data
        targets = []
        for length in writable:
            address = region(length)
            buffers.append((address, length, True))
            targets.append((address, length))
        return buffers, payload, targets

    plan = {q: [make_chain() for _ in range(rng.randrange(3, 9))] for q in range(num_queues)}
    done = {q: [] for q in range(num_queues)}

    async def testbench(ctx):
        for q in range(num_queues):
            bench.set_queue(ctx, q)
        pending = {q: list(plan[q]) for q in range(num_queues)}
        in_use = {q: [] for q in range(num_queues)}     # descriptors of chains not yet used

        def collect():
            for q2 in range(num_queues):
                for element in rings[q2].used():
                    done[q2].append(element)
                    in_use[q2].pop(0)
        for _ in range(2000):
            q = rng.randrange(num_queues)
            if pending[q] and sum(in_use[q]) + len(pending[q][0][0]) <= rings[q].size:
                buffers, payload, targets = pending[q].pop(0)
                head = rings[q].add(buffers)
                in_use[q].append(len(buffers))
                expected[(q, len(plan[q]) - len(pending[q]) - 1)] = (head, payload, targets)
                if rng.random() < 0.7:
                    await bench.notify(ctx, q)
            await ctx.tick().repeat(rng.randrange(1, 40))
            collect()
            if all(len(done[q2]) == len(plan[q2]) for q2 in range(num_queues)):
                break
            if rng.random() < 0.2:
                await bench.notify(ctx, rng.randrange(num_queues))
            elif not any(pending.values()):
                await bench.notify(ctx, rng.randrange(num_queues))
        await bench.until_idle(ctx, bound=200_000)
        collect()
    bench.run(testbench)
    assert bench.events.needs_reset == []
    touched = set()
    for q in range(num_queues):
        assert len(done[q]) == len(plan[q]), f"queue {q}: {len(done[q])} of {len(plan[q])}"
        for position, (head, written) in enumerate(done[q]):
            want_head, payload, targets = expected[(q, position)]
            assert head == want_head
            want = bytes(b ^ 0x5a for b in payload)[:sum(length for _, length in targets)]
            assert written == len(want)
            got = b"".join(bench.guest.read(address, length) for address, length in targets)
            assert got[:written] == want
            for address, length in targets:
                touched.update(range(address, address + length))
        ring = rings[q]
        touched.update(range(ring.device, ring.device + 6 + 8 * ring.size))
    assert bytes_written(bench) - touched == set()
    assert bench.memory.violations == []


def test_waves_of_an_engine_run_open_grouped_by_interface(tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTIO_WAVES_DIR", str(tmp_path))
    bench = EngineBench(respond=echo)
    ring = bench.ring(0, size=8, base=RING)

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA + 1, 6, False), (DATA + 0x41, 6, True)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
    bench.run(testbench, name="engine-waves", waves=True)
    gtkw = (tmp_path / "engine-waves.gtkw").read_text()
    for group in ("guest memory bus", "request", "read stream", "write stream", "queues"):
        assert f"-{group}" in gtkw
    assert "bus__stall" in gtkw or "bus.stall" in gtkw or "stall" in gtkw
    assert (tmp_path / "engine-waves.vcd").stat().st_size > 1000


# --- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(num_queues=0, addr_width=20), ValueError,
     "num_queues must be an integer from 1 to 64, not 0"),
    (dict(num_queues=1.0, addr_width=20), TypeError,
     "num_queues must be an integer from 1 to 64, not 1.0"),
    (dict(num_queues=1, addr_width=7), ValueError,
     "addr_width must be an integer from 8 to 62, not 7"),
    (dict(num_queues=1, addr_width=20, max_chain=0), ValueError,
     "max_chain must be an integer from 1 to 256, not 0"),
    (dict(num_queues=1, addr_width=20, max_chain=True), TypeError,
     "max_chain must be an integer from 1 to 256, not True"),
])
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        VirtqueueEngine(**kwargs)


@pytest.mark.parametrize("timing, message", [
    (dict(latency=(0, 1)), "latency must be (low, high) with 1 <= low <= high, not (0, 1)"),
    (dict(stall=1.0), "stall must be a probability below 1, not 1.0"),
    (dict(spurious=-0.1), "spurious must be a probability below 1, not -0.1"),
])
def test_the_guest_memory_model_refuses_timing_out_of_range(timing, message):
    with pytest.raises(ValueError) as error:
        EngineBench(**timing)
    assert str(error.value) == message


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("readable", [False, True], ids=["write-only", "read-then-write"])
def test_an_empty_last_beat_after_ragged_writes_loses_no_byte(seed, readable):
    # Unpacker.ending moves the engine to the used element in the cycle of an empty last beat
    # taken with nothing held: bytes still held must go out first. The device writes in beats
    # of 1 to 4 bytes, ends with an empty last beat, and writes up to 8 bytes more than fit.
    rng = random.Random(seed)
    extra = rng.randrange(0, 9)
    bench = EngineBench(respond=lambda request: bytes(range(1, 1 + request.writable + extra)),
                        ragged=True, stall=rng.choice([0, 0.3, 0.6]),
                        latency=(1, rng.choice([1, 4])), backpressure=rng.choice([0, 0.3]),
                        seed=seed)
    chains, targets = [], []
    for k in range(4):
        at = DATA + 0x200 * k + 0x100 + rng.randrange(4)
        length = rng.randrange(1, 14)
        head = [(DATA + 0x200 * k + rng.randrange(4), rng.randrange(1, 10), False)]
        chains.append((head if readable else []) + [(at, length, True)])
        targets.append((at, length))
        bench.guest.write(at + length, b"\xee" * 16)
    ring = serve(bench, chains)
    for at, length in targets:
        assert bench.guest.read(at, length) == bytes(range(1, 1 + length))
        assert bench.guest.read(at + length, 16) == b"\xee" * 16
    step = 2 if readable else 1
    assert ring.used() == [(step * i, length) for i, (_, length) in enumerate(targets)]
