"""Register-level behaviour of hw.VirtioMMIOTransport (issue 2; decisions.md D7, D8, D10)."""

import random

import pytest
from amaranth.hdl import ClockDomain, Module

from hw.regmap import (CONFIG_OFFSET, MAGIC, VERSION, Feature, InterruptBit, Status)
from sim.bus import (wishbone_back_to_back, wishbone_read, wishbone_release, wishbone_request,
                     wishbone_write, lanes)
from sim.driver import VirtioMMIODriver
from sim.waves import simulate


FEATURES_OK = Status.FEATURES_OK.value
USED, CONFIG = InterruptBit.USED_BUFFER.value, InterruptBit.CONFIG_CHANGE.value
VERSION_1 = 1 << Feature.VERSION_1


async def pulse(ctx, signal):
    ctx.set(signal, 1)
    await ctx.tick()
    ctx.set(signal, 0)


# --- construction -------------------------------------------------------------------------------

@pytest.mark.parametrize("params, message", [
    (dict(device_id=-1), r"device_id must be an integer from 0 to 0xffffffff, not -1"),
    (dict(vendor_id=1 << 32), r"vendor_id must be an integer from 0 to 0xffffffff, not 4294967296"),
    (dict(device_features=-5), r"device_features must be a non-negative integer, not -5"),
    (dict(device_features=1 << 39), r"device_features bit 39 is offered by the transport when "
                                     r"notify_base is set"),
    (dict(device_features=1 << 40), r"device_features bit 40 is offered by the transport when "
                                     r"msi='v2'"),
    (dict(device_features=1 << 43), r"device_features bit 43 \(VIRTIO_F_SUSPEND\)"),
    (dict(num_queues=0), r"num_queues must be an integer from 1 to 1024, not 0"),
    (dict(num_queues=1025), r"num_queues must be an integer from 1 to 1024, not 1025"),
    (dict(queue_size_max=[1]), r"queue_size_max must be an integer or a sequence of 2 integers"),
    (dict(queue_size_max=0), r"queue_size_max values must be integers from 1 to 32768, not 0"),
    (dict(queue_size_max=[8, 40000]), r"queue_size_max values must be integers from 1 to 32768, "
                                      r"not 40000"),
    (dict(config_size=6), r"config_size must be a multiple of 4 from 0 to 0xf00, not 6"),
    (dict(config_size=0xf04), r"config_size must be a multiple of 4 from 0 to 0xf00, not 3844"),
    (dict(shm_regions=[(0, 0)]), r"shm_regions entries must be \(base, length\) with length >= 1"),
    (dict(shm_regions=[(1 << 64, 1)]), r"shm_regions entries must be \(base, length\)"),
    (dict(msi="v3"), r"msi must be one of \(None, 'v2', 'v1'\), not 'v3'"),
])
def test_constructor_refuses(params, message, make):
    with pytest.raises(ValueError, match=message):
        make(**params)


@pytest.mark.parametrize("params, message", [
    (dict(shm_regions=[5]), r"shm_regions entries must be \(base, length\)"),
    (dict(device_id=1.0), r"device_id must be an integer from 0 to 0xffffffff, not 1\.0"),
    (dict(num_queues=True), r"num_queues must be an integer from 1 to 1024, not True"),
])
def test_constructor_refuses_wrong_types(params, message, make):
    with pytest.raises(TypeError, match=message):
        make(**params)


# --- identity and features ------------------------------------------------------------------------

def test_identity_registers(make, run):
    dut = make(device_id=0x2a, vendor_id=0x554d4551)

    async def body(ctx, io, device):
        assert await io.read(dut.regs["MagicValue"].offset) == MAGIC
        assert await io.read(dut.regs["Version"].offset) == VERSION[None]
        assert await io.read(dut.regs["DeviceID"].offset) == 0x2a
        assert await io.read(dut.regs["VendorID"].offset) == 0x554d4551
    run(dut, body)


@pytest.mark.parametrize("features", [0, 1 << 5 | 1 << 28, 0xffffff | 1 << 38, 1 << 70],
                         ids=["none", "mac+indirect", "many", "word2"])
def test_device_features_words(features, make, run):
    dut = make(device_features=features)
    offered = features | VERSION_1
    words = max(2, (offered.bit_length() + 31) // 32)
    assert dut.feature_words == words

    async def body(ctx, io, device):
        for word in range(words + 3):
            await io.write(dut.regs["DeviceFeaturesSel"].offset, word)
            got = await io.read(dut.regs["DeviceFeatures"].offset)
            assert got == offered >> (32 * word) & 0xffff_ffff, word
        await io.write(dut.regs["DeviceFeaturesSel"].offset, 0xffff_ffff)
        assert await io.read(dut.regs["DeviceFeatures"].offset) == 0
    run(dut, body)


def test_notification_feature_offered_with_notify_base(make):
    assert make(notify_base=0x200, notify_multiplier=4).features >> Feature.MMIO_NOTIFICATION & 1
    assert not make().features >> Feature.MMIO_NOTIFICATION & 1


def test_driver_features_keep_only_offered_bits(make, run):
    dut = make(device_features=1 << 5)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features((1 << 64) - 1)
        assert ctx.get(dut.device.features) == (1 << 5) | VERSION_1
        # Selectors beyond the implemented words: ignored.
        await io.write(dut.regs["DriverFeaturesSel"].offset, 7)
        await io.write(dut.regs["DriverFeatures"].offset, 0)
        assert ctx.get(dut.device.features) == (1 << 5) | VERSION_1
    run(dut, body)


@pytest.mark.parametrize("features, sticks", [
    (VERSION_1 | 1 << 5, True),
    (VERSION_1, True),
    (VERSION_1 | 1 << 6, False),            # not offered
    (VERSION_1 | 1 << 63, False),           # not offered, high word
    (1 << 5, False),                        # VIRTIO_F_VERSION_1 missing
], ids=["offered", "version-only", "low-not-offered", "high-not-offered", "no-version-1"])
def test_features_ok_sticks_only_for_offered_features(features, sticks, make, run):
    dut = make(device_features=1 << 5)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await io.write(dut.regs["Status"].offset, Status.ACKNOWLEDGE.value | Status.DRIVER.value)
        await drv.write_features(features)
        await io.write(dut.regs["Status"].offset, 0b11 | FEATURES_OK)
        assert bool(await io.read(dut.regs["Status"].offset) & FEATURES_OK) == sticks
    run(dut, body)


def test_rewriting_a_refused_word_clears_the_refusal(make, run):
    dut = make(device_features=1 << 5)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(VERSION_1 | 1 << 6)
        await drv.write_features(VERSION_1 | 1 << 5)
        await io.write(dut.regs["Status"].offset, FEATURES_OK)
        assert await io.read(dut.regs["Status"].offset) & FEATURES_OK
    run(dut, body)


def test_driver_features_frozen_after_features_ok(make, run):
    dut = make(device_features=1 << 5)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(VERSION_1 | 1 << 5)
        await io.write(dut.regs["Status"].offset, FEATURES_OK)
        await drv.write_features(VERSION_1)
        assert ctx.get(dut.device.features) == VERSION_1 | 1 << 5
    run(dut, body)


# --- status and reset -----------------------------------------------------------------------------

def test_status_bits_only_set_by_the_driver(make, run):
    dut = make()

    async def body(ctx, io, device):
        status = dut.regs["Status"].offset
        await io.write(status, Status.ACKNOWLEDGE.value)
        await io.write(status, Status.DRIVER.value)
        assert await io.read(status) == 0b11
        # Device-owned bit 6 and bits above 7 are not the driver's to set.
        await io.write(status, Status.DEVICE_NEEDS_RESET.value | 0xffff_ff00)
        assert await io.read(status) == 0b11
        await io.write(status, Status.FAILED.value)
        assert await io.read(status) == 0b11 | Status.FAILED.value
        assert ctx.get(dut.device.status.as_value()) == 0b11 | Status.FAILED.value
    run(dut, body)


def test_needs_reset_input_sets_status_and_raises_config_change_after_driver_ok(make, run):
    dut = make()

    async def body(ctx, io, device):
        device.raise_needs_reset()
        for _ in range(3):
            await ctx.tick()
        assert await io.read(dut.regs["Status"].offset) == Status.DEVICE_NEEDS_RESET.value
        assert await io.read(dut.regs["InterruptStatus"].offset) == 0     # no DRIVER_OK yet
        await io.write(dut.regs["Status"].offset, 0)
        await io.write(dut.regs["Status"].offset, Status.DRIVER_OK.value)
        device.raise_needs_reset()
        for _ in range(3):
            await ctx.tick()
        assert await io.read(dut.regs["InterruptStatus"].offset) == CONFIG
        assert ctx.get(dut.irq)
        assert await io.read(dut.regs["Status"].offset) & Status.DEVICE_NEEDS_RESET.value
    run(dut, body)


def test_needs_reset_interrupts_only_when_first_set(make, run):
    # decisions.md D10c: a second pulse while DEVICE_NEEDS_RESET is set raises no new interrupt
    dut = make()
    status, interrupt = dut.regs["Status"].offset, dut.regs["InterruptStatus"].offset

    async def body(ctx, io, device):
        await io.write(status, Status.DRIVER_OK.value)
        device.raise_needs_reset()
        await ctx.tick().repeat(3)
        assert await io.read(interrupt) == CONFIG
        await io.write(dut.regs["InterruptACK"].offset, CONFIG)
        assert await io.read(interrupt) == 0
        device.raise_needs_reset()
        await ctx.tick().repeat(3)
        assert await io.read(interrupt) == 0
        assert not ctx.get(dut.irq)
        assert await io.read(status) == Status.DRIVER_OK.value | Status.DEVICE_NEEDS_RESET.value
    run(dut, body)


def test_config_generation_counts_modulo_256(make, run):
    # decisions.md D10b: an 8-bit counter of config changes, one per pulse
    dut = make()

    async def body(ctx, io, device):
        for delay in range(1, 258):
            device.change_config(delay=delay)
        await ctx.tick().repeat(260)
        assert await io.read(dut.regs["ConfigGeneration"].offset) == 257 % 256
    run(dut, body)


@pytest.mark.parametrize("delay", range(1, 6))
def test_needs_reset_in_the_cycle_of_a_status_write_is_kept(delay, make, run):
    # decisions.md D10c: the device's DEVICE_NEEDS_RESET pulse is never lost, not even in the
    # ack cycle of a driver's Status write (one of these delays lands there); with DRIVER_OK set
    # it also raises the config-change interrupt.
    dut = make()
    status = dut.regs["Status"].offset
    driver_ok, acknowledge = Status.DRIVER_OK.value, Status.ACKNOWLEDGE.value

    async def body(ctx, io, device):
        await io.write(status, driver_ok)
        device.raise_needs_reset(delay=delay)
        await io.write(status, driver_ok | acknowledge)
        await ctx.tick().repeat(4)
        assert (await io.read(status) ==
                driver_ok | acknowledge | Status.DEVICE_NEEDS_RESET.value)
        assert await io.read(dut.regs["InterruptStatus"].offset) == CONFIG
    run(dut, body)


async def dirty_everything(ctx, io, dut, device):
    """Put every piece of resettable state away from its reset value."""
    drv = VirtioMMIODriver(io, msi=dut.personality)
    await io.write(dut.regs["Status"].offset, 0b111)
    await drv.write_features(VERSION_1)
    for q in range(dut.num_queues):
        await io.write(dut.regs["QueueSel"].offset, q)
        await io.write(dut.regs["QueueNum"].offset, 8)
        for name in ("QueueDescLow", "QueueDescHigh", "QueueDriverLow", "QueueDriverHigh",
                     "QueueDeviceLow", "QueueDeviceHigh"):
            await io.write(dut.regs[name].offset, 0x1000 + q)
        await io.write(dut.regs["QueueReady"].offset, 1)
    await io.write(dut.regs["QueueSel"].offset, 1)
    await io.write(dut.regs["DeviceFeaturesSel"].offset, 1)
    await io.write(dut.regs["SHMSel"].offset, 1)
    device.raise_used(0)
    device.change_config()
    device.raise_needs_reset()
    for _ in range(3):
        await ctx.tick()


def test_reset_returns_every_register_to_power_on_state(make, run, snapshot):
    dut = make(queue_size_max=[16, 32], shm_regions=[(0x1000, 0x100), (0x2000, 0x200)])

    async def body(ctx, io, device):
        power_on = await snapshot(ctx, io, dut)
        await dirty_everything(ctx, io, dut, device)
        dirty = await snapshot(ctx, io, dut)
        changed = {k for k in power_on if power_on[k] != dirty[k]}
        assert {"Status", "InterruptStatus", "ConfigGeneration", "QueueNumMax",
                "DeviceFeatures", "SHMLenLow", "irq", "device.queue1.ready", "device.queue0.desc",
                "device.features"} <= changed
        await io.write(dut.regs["Status"].offset, 0)
        assert await snapshot(ctx, io, dut) == power_on
    run(dut, body)


def test_reset_pulses_device_reset_once(make, run):
    dut = make()

    async def body(ctx, io, device):
        await io.write(dut.regs["Status"].offset, 0)
        await io.write(dut.regs["Status"].offset, 1)
        for _ in range(2):
            await ctx.tick()
        assert device.resets == 1
    run(dut, body)


def test_reset_in_the_middle_of_queue_setup(make, run):
    dut = make()

    async def body(ctx, io, device):
        await io.write(dut.regs["QueueSel"].offset, 1)
        await io.write(dut.regs["QueueNum"].offset, 32)
        await io.write(dut.regs["QueueDescLow"].offset, 0xdead0000)
        await io.write(dut.regs["Status"].offset, 0)
        q = dut.device.queues[1]
        assert (ctx.get(q.size), ctx.get(q.desc), ctx.get(q.ready)) == (0, 0, 0)
        # A fresh setup of queue 1 after the reset works; QueueSel went back to 0.
        await io.write(dut.regs["QueueNum"].offset, 16)
        assert ctx.get(dut.device.queues[0].size) == 16
        await io.write(dut.regs["QueueSel"].offset, 1)
        await io.write(dut.regs["QueueDescLow"].offset, 0x4000)
        await io.write(dut.regs["QueueReady"].offset, 1)
        assert (ctx.get(q.desc), ctx.get(q.ready), ctx.get(q.size)) == (0x4000, 1, 0)
    run(dut, body)


def test_domain_reset_returns_to_power_on_state(make):
    dut = make()
    m = Module()
    m.domains.sync = sync = ClockDomain()
    m.submodules.dut = dut

    async def testbench(ctx):
        from sim.bus import SimMMIO
        io = SimMMIO(ctx, dut.bus)
        await io.write(dut.regs["Status"].offset, 0b11)
        await io.write(dut.regs["QueueReady"].offset, 1)
        ctx.set(sync.rst, 1)
        await ctx.tick()
        ctx.set(sync.rst, 0)
        assert await io.read(dut.regs["Status"].offset) == 0
        assert await io.read(dut.regs["QueueReady"].offset) == 0
        assert ctx.get(dut.device.queues[0].ready) == 0

    simulate(m, testbench, name="domain_reset")


# --- queues ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_queues", [1, 2, 8])
def test_every_queue_register_reaches_the_device_side(num_queues, make, run):
    sizes = [1 << (q % 8 + 3) for q in range(num_queues)]
    dut = make(num_queues=num_queues, queue_size_max=sizes)

    async def body(ctx, io, device):
        for q in range(num_queues):
            await io.write(dut.regs["QueueSel"].offset, q)
            assert await io.read(dut.regs["QueueNumMax"].offset) == sizes[q]
            assert await io.read(dut.regs["QueueReady"].offset) == 0
            await io.write(dut.regs["QueueNum"].offset, sizes[q] // 2)
            for i, name in enumerate(("QueueDescLow", "QueueDescHigh", "QueueDriverLow",
                                      "QueueDriverHigh", "QueueDeviceLow", "QueueDeviceHigh")):
                await io.write(dut.regs[name].offset, (q + 1) << 24 | i)
            await io.write(dut.regs["QueueReady"].offset, 1)
        for q in range(num_queues):
            port = dut.device.queues[q]
            assert ctx.get(port.size) == sizes[q] // 2
            assert ctx.get(port.desc) == ((q + 1) << 24 | 1) << 32 | (q + 1) << 24 | 0
            assert ctx.get(port.driver) == ((q + 1) << 24 | 3) << 32 | (q + 1) << 24 | 2
            assert ctx.get(port.device) == ((q + 1) << 24 | 5) << 32 | (q + 1) << 24 | 4
            assert ctx.get(port.ready) == 1
            await io.write(dut.regs["QueueSel"].offset, q)
            assert await io.read(dut.regs["QueueReady"].offset) == 1
    run(dut, body)


def test_queue_ready_stores_bit_zero(make, run):
    dut = make()

    async def body(ctx, io, device):
        await io.write(dut.regs["QueueReady"].offset, 3)
        assert await io.read(dut.regs["QueueReady"].offset) == 1
        await io.write(dut.regs["QueueReady"].offset, 2)
        assert await io.read(dut.regs["QueueReady"].offset) == 0
    run(dut, body)


@pytest.mark.parametrize("selector", [2, 3, 0x10000, 0xffff_ffff])
def test_queue_selector_out_of_range(selector, make, run, snapshot):
    dut = make()

    async def body(ctx, io, device):
        before = await snapshot(ctx, io, dut)
        await io.write(dut.regs["QueueSel"].offset, selector)
        assert await io.read(dut.regs["QueueNumMax"].offset) == 0
        assert await io.read(dut.regs["QueueReady"].offset) == 0
        for name in ("QueueNum", "QueueDescLow", "QueueDescHigh", "QueueDriverLow",
                     "QueueDriverHigh", "QueueDeviceLow", "QueueDeviceHigh", "QueueReady"):
            await io.write(dut.regs[name].offset, 1)
        await io.write(dut.regs["QueueSel"].offset, 0)
        assert await snapshot(ctx, io, dut) == before
    run(dut, body)


@pytest.mark.parametrize("value, stored", [(64, 64), (65, 16), (0, 16), (0x10040, 16)],
                         ids=["max", "above-max", "zero", "wide"])
def test_queue_num_above_maximum_is_ignored(value, stored, make, run):
    # decisions.md D8, D8c: a QueueNum of 0 or above QueueNumMax (64 here) leaves the size the
    # driver wrote before
    dut = make()

    async def body(ctx, io, device):
        await io.write(dut.regs["QueueNum"].offset, 16)
        assert ctx.get(dut.device.queues[0].size) == 16
        await io.write(dut.regs["QueueNum"].offset, value)
        assert ctx.get(dut.device.queues[0].size) == stored
    run(dut, body)


def test_queue_writes_while_ready_are_ignored(make, run):
    dut = make()

    async def body(ctx, io, device):
        await io.write(dut.regs["QueueNum"].offset, 16)
        await io.write(dut.regs["QueueDescLow"].offset, 0x1000)
        await io.write(dut.regs["QueueReady"].offset, 1)
        for name in ("QueueNum", "QueueDescLow", "QueueDescHigh", "QueueDriverLow",
                     "QueueDriverHigh", "QueueDeviceLow", "QueueDeviceHigh"):
            await io.write(dut.regs[name].offset, 8)
        port = dut.device.queues[0]
        assert (ctx.get(port.size), ctx.get(port.desc), ctx.get(port.driver),
                ctx.get(port.device)) == (16, 0x1000, 0, 0)
        # Once the queue is stopped, the registers take writes again.
        await io.write(dut.regs["QueueReady"].offset, 0)
        await io.write(dut.regs["QueueNum"].offset, 8)
        assert ctx.get(port.size) == 8
    run(dut, body)


# --- interrupts -----------------------------------------------------------------------------------

def test_used_event_sets_interrupt_status_and_irq(make, run):
    dut = make()

    async def body(ctx, io, device):
        device.raise_used(1)
        for _ in range(3):
            await ctx.tick()
        assert await io.read(dut.regs["InterruptStatus"].offset) == 0     # queue 1 not ready
        assert not ctx.get(dut.irq)
        await io.write(dut.regs["QueueSel"].offset, 1)
        await io.write(dut.regs["QueueReady"].offset, 1)
        device.raise_used(1)
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.irq)
        assert await io.read(dut.regs["InterruptStatus"].offset) == USED
        device.change_config()
        for _ in range(3):
            await ctx.tick()
        assert await io.read(dut.regs["InterruptStatus"].offset) == USED | CONFIG
        await io.write(dut.regs["InterruptACK"].offset, USED)
        assert await io.read(dut.regs["InterruptStatus"].offset) == CONFIG
        assert ctx.get(dut.irq)
        await io.write(dut.regs["InterruptACK"].offset, 0xffff_ffff)
        assert await io.read(dut.regs["InterruptStatus"].offset) == 0
        assert not ctx.get(dut.irq)
    run(dut, body)


def test_used_event_raises_irq_in_the_next_cycle(make, run):
    # decisions.md D12: an event in cycle N raises irq in cycle N + 1, not before or after
    dut = make()

    async def body(ctx, io, device):
        await io.write(dut.regs["QueueSel"].offset, 0)
        await io.write(dut.regs["QueueReady"].offset, 1)
        await ctx.tick().repeat(3)
        ctx.set(dut.device.queues[0].used, 1)
        assert not ctx.get(dut.irq)
        await ctx.tick()
        ctx.set(dut.device.queues[0].used, 0)
        assert ctx.get(dut.irq)
    run(dut, body)


def test_event_in_the_cycle_of_its_ack_is_not_lost(make, run):
    dut = make()

    async def body(ctx, io, device):
        await io.write(dut.regs["QueueReady"].offset, 1)
        device.raise_used(0)
        for _ in range(3):
            await ctx.tick()
        # A write takes effect at the end of its ack cycle (documented): the ACK commits at the
        # same clock edge as a used event raised in that cycle.
        wishbone_request(ctx, dut.bus, dut.regs["InterruptACK"].word, we=1, dat_w=USED)
        await ctx.tick()
        assert ctx.get(dut.bus.ack)
        ctx.set(dut.device.queues[0].used, 1)
        wishbone_release(ctx, dut.bus)
        await ctx.tick()
        ctx.set(dut.device.queues[0].used, 0)
        assert await io.read(dut.regs["InterruptStatus"].offset) == USED
        assert ctx.get(dut.irq)
    run(dut, body)


def test_config_change_increments_config_generation(make, run):
    dut = make()

    async def body(ctx, io, device):
        for expected in range(1, 4):
            device.change_config()
            for _ in range(3):
                await ctx.tick()
            assert await io.read(dut.regs["ConfigGeneration"].offset) == expected
    run(dut, body)


# --- shared memory --------------------------------------------------------------------------------

def test_shm_regions_and_absent_ids(make, run):
    regions = [(0x1_2345_6000, 0x10_0000), (0xffff_0000_0000_0000, 0x1000)]
    dut = make(shm_regions=regions)

    async def body(ctx, io, device):
        for rid in (0, 1, 2, 0x100, 0xffff_ffff):
            await io.write(dut.regs["SHMSel"].offset, rid)
            length = await io.read(dut.regs["SHMLenLow"].offset) | \
                await io.read(dut.regs["SHMLenHigh"].offset) << 32
            base = await io.read(dut.regs["SHMBaseLow"].offset) | \
                await io.read(dut.regs["SHMBaseHigh"].offset) << 32
            if rid < len(regions):
                assert (base, length) == regions[rid]
            else:
                assert (base, length) == ((1 << 64) - 1, (1 << 64) - 1)
    run(dut, body)


# --- config space ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 4])
def test_config_reads_every_offset_and_width(size, make, run):
    dut = make(config_size=16)
    contents = bytes(random.Random(size).randrange(256) for _ in range(16))

    async def body(ctx, io, device):
        for offset in range(0, 16, size):
            got = await io.read(CONFIG_OFFSET + offset, size)
            assert got == int.from_bytes(contents[offset:offset + size], "little"), offset
            assert io.last_cycles == 2          # documented config read latency
    run(dut, body, config=contents)


@pytest.mark.parametrize("size", [1, 2, 4])
def test_config_writes_are_forwarded_with_byte_enables(size, make, run):
    dut = make(config_size=16)

    async def body(ctx, io, device):
        expected = bytearray(16)
        for offset in range(0, 16, size):
            value = (0xa5 + offset) * 0x01010101 & ((1 << 8 * size) - 1)
            await io.write(CONFIG_OFFSET + offset, value, size)
            expected[offset:offset + size] = value.to_bytes(size, "little")
        await ctx.tick()
        assert bytes(device.config) == bytes(expected)
        assert {sel for _, sel, _ in device.config_writes} == \
            {lanes(CONFIG_OFFSET + o, size)[1] for o in range(0, 4, size)}
    run(dut, body, config=bytes(16))


@pytest.mark.parametrize("config_size", [0, 16])
def test_config_beyond_size_reads_zero_and_ignores_writes(config_size, make, run):
    dut = make(config_size=config_size)

    async def body(ctx, io, device):
        for offset in (config_size, config_size + 4, 0xefc):
            await io.write(CONFIG_OFFSET + offset, 0x12345678)
            assert io.last_cycles == 1
            assert await io.read(CONFIG_OFFSET + offset) == 0
            assert io.last_cycles == 2
        await ctx.tick()
        assert device.config_writes == []
    run(dut, body)


def test_absent_device_does_not_hang_config_reads(make):
    dut = make(config_size=16)

    async def testbench(ctx):
        # No device model: r_data stays 0 and the read still completes in 2 cycles.
        data, cycles = await wishbone_read(ctx, dut.bus, CONFIG_OFFSET // 4)
        assert (data, cycles) == (0, 2)

    simulate(dut, testbench, name="absent_device")


# --- access rules ---------------------------------------------------------------------------------

def test_undefined_offsets_read_zero_and_ignore_writes(make, run, undefined_offsets, snapshot):
    dut = make(shm_regions=[(0, 0x1000)])

    async def body(ctx, io, device):
        await io.write(dut.regs["QueueReady"].offset, 1)
        before = await snapshot(ctx, io, dut)
        for offset in undefined_offsets(dut):
            assert await io.read(offset) == 0, hex(offset)
            await io.write(offset, 0xffff_ffff)
        assert await snapshot(ctx, io, dut) == before
    run(dut, body)


def test_write_only_registers_read_zero(make, run):
    dut = make()

    async def body(ctx, io, device):
        for r in dut.regs:
            if not r.access.readable:
                await io.write(r.offset, 1)
        for r in dut.regs:
            if not r.access.readable:
                assert await io.read(r.offset) == 0, r.name
    run(dut, body)


def test_writes_to_read_only_registers_do_nothing(make, run, snapshot):
    dut = make()

    async def body(ctx, io, device):
        before = await snapshot(ctx, io, dut)
        for r in dut.regs:
            if not r.access.writable:
                await io.write(r.offset, 0xffff_ffff)
        assert await snapshot(ctx, io, dut) == before
    run(dut, body)


@pytest.mark.parametrize("sel", [0b0000, 0b0001, 0b0011, 0b0111, 0b1110, 0b1100, 0b1000])
def test_partial_byte_enables_on_control_registers_are_ignored(sel, make, run, snapshot):
    dut = make()

    async def body(ctx, io, device):
        before = await snapshot(ctx, io, dut)
        for r in dut.regs:
            if r.access.writable:
                await wishbone_write(ctx, dut.bus, r.word, 0xffff_ffff, sel=sel)
        await ctx.tick()
        assert await snapshot(ctx, io, dut) == before
        assert device.notifications == []
    run(dut, body)


@pytest.mark.parametrize("sel", [0b0000, 0b0001, 0b0100, 0b1100])
def test_partial_reads_return_the_whole_word(sel, make, run):
    dut = make()

    async def body(ctx, io, device):
        data, cycles = await wishbone_read(ctx, dut.bus, dut.regs["MagicValue"].word, sel=sel)
        assert (data, cycles) == (MAGIC, 2)
    run(dut, body)


def test_every_register_access_is_acknowledged_in_its_documented_cycle(make, run):
    # documented: a read is acknowledged 2 cycles after its request, a write 1 cycle after
    dut = make(notify_base=0x200, notify_multiplier=4)

    async def body(ctx, io, device):
        for r in dut.regs:
            if r.access.readable:
                await io.read(r.offset)
                assert io.last_cycles == 2, r.name
            if r.access.writable and r.name != "Status":
                await io.write(r.offset, 0)
                assert io.last_cycles == 1, r.name
    run(dut, body)


def test_back_to_back_accesses_see_the_previous_write(make, run):
    # Writes are performed in their ack cycle; the next request, in the cycle after it, must see
    # them: a selector write steers the very next access, and a reset is done before it.
    dut = make(num_queues=2, device_features=1 << 5)
    word = {r.name: r.word for r in dut.regs}

    async def body(ctx, io, device):
        got = await wishbone_back_to_back(ctx, dut.bus, [
            (1, word["QueueSel"], 1), (1, word["QueueDescLow"], 0x1111),
            (1, word["QueueSel"], 0), (1, word["QueueDescLow"], 0x2222),
            (1, word["QueueReady"], 1), (1, word["QueueDescLow"], 0x3333),   # ready: ignored
            (0, word["QueueReady"], 0), (1, word["QueueSel"], 1), (0, word["QueueReady"], 0),
            (1, word["DeviceFeaturesSel"], 1), (0, word["DeviceFeatures"], 0),
            (1, word["DeviceFeaturesSel"], 0), (0, word["DeviceFeatures"], 0),
        ])
        # documented: write 1 cycle, read 2, each after the cycle following the previous ack
        assert [cycles for _, cycles in got] == [1] + [2] * 5 + [3, 2, 3, 2, 3, 2, 3]
        assert got[6][0] == 1 and got[8][0] == 0                   # queue 0 ready, queue 1 not
        assert got[10][0] == 1 and got[12][0] == 1 << 5            # VERSION_1 word, then word 0
        assert ctx.get(dut.device.queues[1].desc) == 0x1111
        assert ctx.get(dut.device.queues[0].desc) == 0x2222
        got = await wishbone_back_to_back(ctx, dut.bus, [
            (1, word["Status"], Status.ACKNOWLEDGE.value), (0, word["Status"], 0),
            (1, word["Status"], 0), (0, word["Status"], 0), (0, word["QueueReady"], 0),
        ])
        assert [data for data, _ in got[1::2]] == [Status.ACKNOWLEDGE.value, 0]
        assert got[4][0] == 0                                       # QueueSel 0, not ready
        assert ctx.get(dut.device.queues[0].desc) == 0
    run(dut, body)


def test_random_accesses_never_hang_the_bus(make, run):
    dut = make(notify_base=0x200, notify_multiplier=4, shm_regions=[(0, 1)])
    rng = random.Random(1)
    words = 1 << len(dut.bus.adr)

    async def body(ctx, io, device):
        for _ in range(400):
            adr = rng.choice([rng.randrange(words), rng.randrange(0x48)])
            sel = rng.randrange(16)
            if rng.random() < 0.5:
                # the helper raises if the ack is missing, late or doubled
                await wishbone_write(ctx, dut.bus, adr, rng.getrandbits(32), sel=sel, timeout=3)
            else:
                await wishbone_read(ctx, dut.bus, adr, sel=sel, timeout=3)
    run(dut, body, stall=0.5)


def test_aborted_config_read_gets_no_ack(make, run):
    dut = make()

    async def body(ctx, io, device):
        wishbone_request(ctx, dut.bus, CONFIG_OFFSET // 4)
        await ctx.tick()
        wishbone_release(ctx, dut.bus)      # the master gives up before the ack
        for _ in range(3):
            assert not ctx.get(dut.bus.ack)
            await ctx.tick()
        assert await io.read(dut.regs["MagicValue"].offset) == MAGIC
    run(dut, body)


# --- measured by tests/mutation.py (issue 11) ----------------------------------------------------

@pytest.mark.parametrize("selector", [2, 3, 0xffff_ffff], ids=hex)
def test_queue_sel_out_of_range_reads_zero_while_every_queue_is_ready(selector, make, run):
    # decisions.md D8: QueueReady and QueueNumMax read 0 for a QueueSel at or above the number of
    # queues, whatever the real queues hold (here every one is ready, so no bit of theirs reads
    # as 0 by chance).
    dut = make(num_queues=2)

    async def body(ctx, io, device):
        for q in range(2):
            await io.write(dut.regs["QueueSel"].offset, q)
            await io.write(dut.regs["QueueReady"].offset, 1)
        await io.write(dut.regs["QueueSel"].offset, selector)
        assert await io.read(dut.regs["QueueReady"].offset) == 0
        assert await io.read(dut.regs["QueueNumMax"].offset) == 0
        for q in range(2):
            await io.write(dut.regs["QueueSel"].offset, q)
            assert await io.read(dut.regs["QueueReady"].offset) == 1, q
    run(dut, body)
