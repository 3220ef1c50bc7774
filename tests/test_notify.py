"""Doorbells and the notification stream (issue 4; decisions.md D2, D9)."""

import random

import pytest

from hw.notify import NotificationQueue
from hw.regmap import Feature
from sim.bus import wishbone_release, wishbone_request, wishbone_write
from sim.driver import VirtioMMIODriver, notification_data
from sim.waves import simulate


ND = 1 << Feature.NOTIFICATION_DATA
VERSION_1 = 1 << Feature.VERSION_1


async def settle(ctx, cycles=4):
    await ctx.tick().repeat(cycles)


# --- construction ---------------------------------------------------------------------------------

@pytest.mark.parametrize("params, message", [
    (dict(notify_base=0x0c0, notify_multiplier=4),
     r"Doorbell window 0xc0\.\.0xc7 overlaps the registers or config space \(0x0\.\.0x10f\)"),
    (dict(notify_base=0x104, notify_multiplier=0),
     r"Doorbell window 0x104\.\.0x107 overlaps the registers or config space"),
    (dict(notify_base=0x050, notify_multiplier=4),
     r"Doorbell window 0x50\.\.0x57 overlaps the registers"),
    (dict(notify_base=0x1002), r"notify_base must be a multiple of 4 from 0 to 0xfffc, not 4098"),
    (dict(notify_base=0x10000), r"notify_base must be a multiple of 4 from 0 to 0xfffc"),
    (dict(notify_base=0x1000, notify_multiplier=12),
     r"notify_multiplier must be 0 or a power of two from 4 to 0x8000, not 12"),
    (dict(notify_base=0x1000, notify_multiplier=2),
     r"notify_multiplier must be 0 or a power of two from 4 to 0x8000, not 2"),
    (dict(notify_base=0x1000, notify_multiplier=0x10000),
     r"notify_multiplier must be 0 or a power of two"),
    (dict(notify_multiplier=4), r"notify_multiplier 4 needs a notify_base"),
])
def test_doorbell_window_refused(params, message, make):
    with pytest.raises(ValueError, match=message):
        make(**params)


def test_shared_queue_notify_as_base_is_accepted(make):
    dut = make(notify_base=0x050, notify_multiplier=0)
    assert dut.doorbell(1) == dut.regs["QueueNotify"].offset


def test_window_sets_bus_address_width(make):
    dut = make(num_queues=8, notify_base=0x1000, notify_multiplier=0x1000)
    # 8 doorbells of 4 KiB from 0x1000: the last at 0x8000, so the bus spans 64 KiB.
    assert 1 << (len(dut.bus.adr) + 2) == 0x10000


# --- decoding -------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_queues", [1, 8])
@pytest.mark.parametrize("multiplier", [0, 4, 0x1000])
def test_each_doorbell_reaches_exactly_its_queue(num_queues, multiplier, make, run):
    dut = make(num_queues=num_queues, queue_size_max=8, notify_base=0x1000,
               notify_multiplier=multiplier)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.enable_queues(range(num_queues))
        # With a multiplier the address names the queue: write another index as data. The device
        # is always ready, so notifications arrive in the order the doorbells were rung and a
        # wrong address-to-queue map shows as a wrong sequence.
        for q in range(num_queues):
            await io.write(dut.doorbell(q), (q + 1) % num_queues if multiplier else q)
        await settle(ctx, 2)
        assert [n.queue for n in device.notifications] == list(range(num_queues))
        device.notifications.clear()
        # QueueNotify keeps working next to the doorbells.
        for q in sorted({0, num_queues - 1}):
            await io.write(dut.regs["QueueNotify"].offset, q)
        await settle(ctx, 2)
        assert [n.queue for n in device.notifications] == sorted({0, num_queues - 1})
    run(dut, body)


def index_bits_sample(n):
    """Queue indices below ``n`` (a power of two) that set and clear every index bit: the ends,
    walking ones and walking zeros. A wrong, swapped or truncated index bit maps one of them to
    another queue."""
    top = n - 1
    return sorted({0, top} | {1 << k for k in range(top.bit_length())} |
                  {top ^ 1 << k for k in range(top.bit_length())})


@pytest.mark.slow
def test_doorbells_of_1024_queues_decode_every_index_bit(make, run):
    # The largest transport, with the widest doorbell window (4 MiB): the 10-bit queue index
    # from the address (per-queue doorbells) and from the data (QueueNotify). A 1024-queue design
    # simulates at about 100 cycles per second, so only the queues of the sample are made ready
    # and rung; a doorbell mapped to any other queue finds it not ready and is dropped.
    n = 1024
    dut = make(num_queues=n, queue_size_max=8, notify_base=0x1000, notify_multiplier=0x1000)
    sample = index_bits_sample(n)
    assert len(sample) == 22 and 1 << (len(dut.bus.adr) + 2) >= dut.doorbell(n - 1) + 4

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.enable_queues(sample)
        # The address names the queue: the data names another one, which must not matter.
        for q in sample:
            await io.write(dut.doorbell(q), (q + 1) % n)
        # Not ready: dropped (and not delivered to a ready neighbour).
        await io.write(dut.doorbell(3), 3)
        await settle(ctx, 2)
        assert [note.queue for note in device.notifications] == sample
        device.notifications.clear()
        # The data names the queue: QueueNotify next to the doorbells.
        for q in reversed(sample):
            await io.write(dut.regs["QueueNotify"].offset, q)
        await settle(ctx, 2)
        assert [note.queue for note in device.notifications] == sample[::-1]
    run(dut, body)


def test_addresses_between_doorbells_are_not_doorbells(make, run):
    dut = make(num_queues=4, notify_base=0x1000, notify_multiplier=0x10)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.enable_queues(range(4))
        for offset in (0x1004, 0x1008, 0x100c, 0x1040, 0x0ffc, 0x1044):
            await io.write(offset, 0)
            assert await io.read(offset) == 0
        await settle(ctx)
        assert device.notifications == []
    run(dut, body)


@pytest.mark.parametrize("index", [2, 3, 0x7fff, 0xffff], ids=hex)
def test_doorbell_for_a_missing_queue_is_dropped(index, make, run):
    dut = make(notify_base=0x1000, notify_multiplier=0)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.enable_queues(range(2))
        for offset in (dut.regs["QueueNotify"].offset, dut.doorbell(0)):
            await io.write(offset, index)
        await settle(ctx)
        assert device.notifications == []
        await io.write(dut.regs["QueueNotify"].offset, 1)     # and the path still works
        await settle(ctx)
        assert [n.queue for n in device.notifications] == [1]
    run(dut, body)


def test_doorbell_for_a_queue_not_ready_is_dropped(make, run):
    dut = make(notify_base=0x1000, notify_multiplier=4)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.enable_queues([1])
        await io.write(dut.doorbell(0), 0)
        await io.write(dut.regs["QueueNotify"].offset, 0)
        await settle(ctx)
        assert device.notifications == []
    run(dut, body)


@pytest.mark.parametrize("sel", [0b0001, 0b0011, 0b1100, 0b0111])
def test_doorbell_with_partial_byte_enables_is_ignored(sel, make, run):
    dut = make(notify_base=0x1000, notify_multiplier=4)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.enable_queues(range(2))
        for offset in (dut.doorbell(1), dut.regs["QueueNotify"].offset):
            await wishbone_write(ctx, dut.bus, offset >> 2, 1, sel=sel)
        await settle(ctx)
        assert device.notifications == []
    run(dut, body)


def test_teardown_drops_a_pending_notification(make, run):
    dut = make()

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.enable_queues(range(2))
        device.stall = 1.0
        await settle(ctx, 1)
        await io.write(dut.regs["QueueNotify"].offset, 1)   # taken by the output register
        await io.write(dut.regs["QueueNotify"].offset, 1)   # pending behind it
        await io.write(dut.regs["QueueSel"].offset, 1)
        await io.write(dut.regs["QueueReady"].offset, 0)
        device.stall = 0.0
        await settle(ctx)
        assert [n.queue for n in device.notifications] == [1]
    run(dut, body)


def test_reset_drops_every_notification(make, run):
    dut = make()

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.enable_queues(range(2))
        device.stall = 1.0
        await settle(ctx, 1)
        await io.write(dut.regs["QueueNotify"].offset, 0)
        await io.write(dut.regs["QueueNotify"].offset, 1)
        await io.write(dut.regs["Status"].offset, 0)
        device.stall = 0.0
        await settle(ctx)
        assert device.notifications == []
        assert not ctx.get(dut.device.notify.valid)
    run(dut, body)


# --- the QueueNotify read structure (decisions.md D2) ---------------------------------------------

@pytest.mark.parametrize("base, multiplier", [(0x1000, 4), (0x200, 0), (0x2000, 0x1000)])
def test_queue_notify_structure_appears_once_accepted(base, multiplier, make, run):
    dut = make(notify_base=base, notify_multiplier=multiplier)
    fields = {f.name: f for f in dut.regs.notify_structure}

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        assert await io.read(dut.regs["QueueNotify"].offset) == 0
        await drv.write_features(VERSION_1 | 1 << Feature.MMIO_NOTIFICATION)
        value = await io.read(dut.regs["QueueNotify"].offset)
        assert fields["notify_base"].extract(value) == base
        assert fields["notify_multiplier"].extract(value) == multiplier
        await io.write(dut.regs["Status"].offset, 0)
        assert await io.read(dut.regs["QueueNotify"].offset) == 0
    run(dut, body)


def test_queue_notify_reads_zero_without_notification_addresses(make, run):
    dut = make()

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(VERSION_1)
        assert await io.read(dut.regs["QueueNotify"].offset) == 0
    run(dut, body)


@pytest.mark.parametrize("num_queues", [1, 8])
def test_patched_driver_rings_per_queue_doorbells(num_queues, make, run):
    dut = make(num_queues=num_queues, queue_size_max=16, notify_base=0x800,
               notify_multiplier=0x100)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, notification=True)
        features = await drv.bring_up(queues=range(num_queues))
        assert features >> Feature.MMIO_NOTIFICATION & 1
        written = []
        original = io.write

        async def write(offset, value, size=4):
            written.append(offset)
            await original(offset, value, size)
        io.write = write
        for q in reversed(range(num_queues)):
            await drv.notify(q)
            await settle(ctx, 2)
        assert written == [dut.doorbell(q) for q in reversed(range(num_queues))]
        assert [n.queue for n in device.notifications] == list(reversed(range(num_queues)))
    run(dut, body)


# --- VIRTIO_F_NOTIFICATION_DATA -------------------------------------------------------------------

SPLIT = [(0, 0), (1, 1), (0x7fff, 2), (0x8000, 3), (0xffff, 4), (0x1234, 5)]   # (avail_idx, q)
PACKED = [(0, 1, 0), (0x7fff, 0, 1), (0x10, 1, 2), (0x3ff, 0, 7)]     # (next_avail, wrap, q)


@pytest.mark.parametrize("multiplier", [None, 0, 4])
def test_notification_data_split_and_packed(multiplier, make, run):
    params = dict(num_queues=8, queue_size_max=16, device_features=ND)
    if multiplier is not None:
        params.update(notify_base=0x1000, notify_multiplier=multiplier)
    dut = make(**params)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, notification=True)
        features = await drv.bring_up(queues=range(8))
        assert features & ND
        expected = []
        # Split ring: next = avail_idx (next_off = its 15 LSBs, next_wrap = bit 15).
        for avail_idx, q in SPLIT:
            await drv.notify(q, notification_data(q, avail_idx & 0x7fff, avail_idx >> 15))
            expected.append((q, avail_idx & 0x7fff, avail_idx >> 15))
            await settle(ctx, 2)
        # Packed ring: next = next_avail_idx & 0x7fff | wrap_counter << 15.
        for next_avail, wrap, q in PACKED:
            await drv.notify(q, notification_data(q, next_avail, wrap))
            expected.append((q, next_avail, wrap))
            await settle(ctx, 2)
        got = [(n.queue, n.next_off, n.next_wrap) for n in device.notifications]
        assert got == expected
    run(dut, body)


def test_notification_data_ignored_unless_negotiated(make, run):
    dut = make(num_queues=2, device_features=ND)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(VERSION_1)
        await drv.enable_queues(range(2))
        await io.write(dut.regs["QueueNotify"].offset, notification_data(1, 0x1234, 1))
        await settle(ctx)
        assert [(n.queue, n.next_off, n.next_wrap) for n in device.notifications] == [(1, 0, 0)]
    run(dut, body)


# --- backpressure and coalescing ------------------------------------------------------------------

def check_coalesced(written, delivered):
    """Per queue: delivered data is an in-order subsequence of the written data, ends with the
    latest write, and no queue is delivered without a write."""
    assert set(delivered) == set(written)
    for q, values in written.items():
        got = delivered[q]
        assert got[-1] == values[-1], q
        it = iter(values)
        assert all(any(v == g for v in it) for g in got), (q, got, values)


@pytest.mark.parametrize("seed", range(3))
def test_back_to_back_doorbells_with_stalled_device(seed, make, run):
    rng = random.Random(seed)
    dut = make(num_queues=8, queue_size_max=16, device_features=ND, notify_base=0x1000,
               notify_multiplier=4)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(VERSION_1 | ND)
        await drv.enable_queues(range(7))                     # queue 7 stays not ready
        written = {}
        for i in range(300):
            if i % 50 == 0:
                device.stall = rng.choice([0.0, 0.9, 1.0])
            q = rng.randrange(8)
            data = notification_data(q, rng.randrange(0x8000), rng.randrange(2))
            if q < 7:
                written.setdefault(q, []).append(data >> 16)
            await io.write(dut.doorbell(q), data)
        device.stall = 0.0
        await settle(ctx, 20)
        delivered = {}
        for n in device.notifications:
            delivered.setdefault(n.queue, []).append(n.next_wrap << 15 | n.next_off)
        check_coalesced(written, delivered)
    run(dut, body, seed=seed)


@pytest.mark.parametrize("seed", range(3))
def test_doorbell_every_cycle_coalesces_without_loss(seed):
    """The coalescing queue at full rate: a doorbell in every cycle, random backpressure."""
    rng = random.Random(seed)
    n = 8
    dut = NotificationQueue(num_queues=n)
    written, delivered = {}, {}

    async def testbench(ctx):
        ctx.set(dut.queue_ready, (1 << n) - 1)
        for cycle in range(2000):
            q = rng.randrange(n + 2)                      # n, n+1: missing queues
            data = rng.randrange(1 << 16)
            ctx.set(dut.doorbell.valid, 1)
            ctx.set(dut.doorbell.p.queue, q)
            ctx.set(dut.doorbell.p.as_value()[16:], data)
            if q < n:
                written.setdefault(q, []).append(data)
            ctx.set(dut.notify.ready, rng.random() < (0.1 if cycle % 400 < 200 else 0.9))
            await ctx.tick()
        ctx.set(dut.doorbell.valid, 0)
        ctx.set(dut.notify.ready, 1)
        for _ in range(3 * n):
            await ctx.tick()

    async def sink(ctx):
        async for _, _, valid, ready, p in ctx.tick().sample(
                dut.notify.valid, dut.notify.ready, dut.notify.p):
            if valid and ready:
                delivered.setdefault(p.queue, []).append(p.next_wrap << 15 | p.next_off)

    simulate(dut, testbench, processes=[sink], name=f"coalesce_{seed}")
    check_coalesced(written, delivered)


def test_round_robin_does_not_starve_a_queue():
    n = 4
    dut = NotificationQueue(num_queues=n, with_data=False)
    delivered = []

    async def testbench(ctx):
        ctx.set(dut.queue_ready, (1 << n) - 1)
        ctx.set(dut.notify.ready, 1)
        # Queue 3 rings once; queues 0 and 1 ring every cycle.
        for cycle in range(40):
            ctx.set(dut.doorbell.valid, 1)
            ctx.set(dut.doorbell.p.queue, 3 if cycle == 0 else cycle % 2)
            await ctx.tick()
        ctx.set(dut.doorbell.valid, 0)

    async def sink(ctx):
        async for _, _, valid, ready, p in ctx.tick().sample(
                dut.notify.valid, dut.notify.ready, dut.notify.p):
            if valid and ready:
                delivered.append(p.queue)

    simulate(dut, testbench, processes=[sink], name="round_robin")
    assert 3 in delivered[:4]


# --- latency --------------------------------------------------------------------------------------

@pytest.mark.parametrize("doorbell", ["QueueNotify", "per-queue"])
def test_doorbell_to_stream_latency_is_three_cycles(doorbell, make, run):
    dut = make(notify_base=0x1000, notify_multiplier=4)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.enable_queues(range(2))
        offset = dut.regs["QueueNotify"].offset if doorbell == "QueueNotify" else dut.doorbell(1)
        wishbone_request(ctx, dut.bus, offset >> 2, we=1, dat_w=1)
        cycles = 0
        while not ctx.get(dut.device.notify.valid):
            assert cycles < 8, "no notification within 8 cycles of the doorbell"
            await ctx.tick()
            cycles += 1
            if ctx.get(dut.bus.ack):
                wishbone_release(ctx, dut.bus)
        assert cycles == 3          # documented: decoded in cycle N, pending in N+1
    run(dut, body)
