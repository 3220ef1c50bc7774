"""Shared test plumbing: build a transport, run an async body against it with a device model."""

import inspect

from hw import VirtioMMIOTransport
from hw.regmap import CONFIG_OFFSET, Feature, Status
from sim.bus import SimMMIO, CycleCounter
from sim.device import DeviceModel
from sim.intc import InterruptControllerModel
from sim.waves import simulate, transport_traces


def make(**overrides):
    params = dict(device_id=1, vendor_id=0x1af4, num_queues=2, config_size=16)
    params.update(overrides)
    params.setdefault("queue_size_max", [64, 128] if params["num_queues"] == 2 else 64)
    return VirtioMMIOTransport(**params)


def caller_test_name():
    """The calling test's name, for waveform files."""
    for frame in inspect.stack():
        if frame.function.startswith("test_"):
            return frame.function
    return "sim"


def run(dut, body, *, config=None, stall=0.0, echo_used=None, seed=0, name=None,
        msi_stall=0.0):
    """Run ``body(ctx, io, device)`` against ``dut`` with a :class:`DeviceModel`; with an MSI
    personality, ``body(ctx, io, device, intc)`` with an :class:`InterruptControllerModel`."""
    if config is None:
        config = bytes(range(0x40, 0x40 + dut.config_size))
    device = DeviceModel(dut.device, config=config, stall=stall, echo_used=echo_used, seed=seed)
    clock = CycleCounter()
    processes = [device.run, clock.run]
    extra = ()
    if dut.personality is not None:
        intc = InterruptControllerModel(dut.msi, stall=msi_stall, seed=seed)
        processes.append(intc.run)
        extra = (intc,)
    done = []

    async def testbench(ctx):
        io = SimMMIO(ctx, dut.bus, clock=clock)
        await body(ctx, io, device, *extra)
        done.append(True)

    simulate(dut, testbench, processes=processes, name=name or caller_test_name(),
             traces=transport_traces(dut))
    assert done, "testbench did not finish"
    return device


def off(dut, name):
    """Byte offset of register ``name`` in ``dut``'s map."""
    return dut.regs[name].offset


def undefined_offsets(dut):
    """Every word offset of the control block that holds no register."""
    used = {r.word for r in dut.regs}
    return [4 * w for w in range(CONFIG_OFFSET // 4) if w not in used]


async def snapshot(ctx, io, dut):
    """Everything the driver can read (without moving selectors) and the device side shows."""
    values = {}
    for r in dut.regs:
        if r.access.readable:
            values[r.name] = await io.read(r.offset)
    dev = dut.device
    values["device.status"] = ctx.get(dev.status.as_value())
    values["device.features"] = ctx.get(dev.features)
    for q in range(dut.num_queues):
        for member in ("ready", "size", "desc", "driver", "device"):
            values[f"queue{q}.{member}"] = ctx.get(getattr(dev.queues[q], member))
    values["irq"] = ctx.get(dut.irq)
    return values


async def accept(io, dut, features):
    """Write both DriverFeatures words: the features the driver accepts."""
    for word in (0, 1):
        await io.write(off(dut, "DriverFeaturesSel"), word)
        await io.write(off(dut, "DriverFeatures"), features >> (32 * word) & 0xffff_ffff)


async def make_ready(io, dut, queues):
    """QueueReady := 1 for each queue in ``queues``."""
    for q in queues:
        await io.write(off(dut, "QueueSel"), q)
        await io.write(off(dut, "QueueReady"), 1)


async def settle(ctx, cycles=4):
    for _ in range(cycles):
        await ctx.tick()


#: Device features of the Linux-sequence tests: MAC (5), RING_EVENT_IDX, and bit 30, which the
#: Linux driver does not know and must not accept.
LINUX_TEST_FEATURES = 1 << 5 | 1 << Feature.RING_EVENT_IDX | 1 << 30


async def check_linux_sequence(ctx, drv, dut, device, *, config, shm_regions=(),
                               queue_size=128):
    """The whole Linux driver sequence against ``dut`` through the accessor behind ``drv``:
    bring-up, config reads, SHM queries, a doorbell and an interrupt per queue, removal."""
    n = dut.num_queues
    features = await drv.bring_up(queues=range(n), queue_size=queue_size)
    # Linux keeps device bits it knows and the ring bits, drops what it does not know (30).
    assert features & ~(1 << Feature.MMIO_NOTIFICATION) == \
        1 << 5 | 1 << Feature.RING_EVENT_IDX | 1 << Feature.VERSION_1
    assert ctx.get(dut.device.features) == features
    assert await drv.get_status() == (Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK |
                                      Status.DRIVER_OK).value
    for q in range(n):
        port, vq = dut.device.queues[q], drv.state.queues[q]
        assert (ctx.get(port.ready), ctx.get(port.size), ctx.get(port.desc),
                ctx.get(port.driver), ctx.get(port.device)) == \
            (1, queue_size, vq.desc, vq.driver, vq.device)
    if config:
        fields = [(0, 4), (4, 2), (6, 1), (8, 8), (len(config) - 4, 4)]
        values = await drv.read_config_fields(fields)
        assert values == [int.from_bytes(config[o:o + s], "little") for o, s in fields]
    for rid, region in enumerate(shm_regions):
        assert await drv.get_shm_region(rid) == region
    assert await drv.get_shm_region(len(shm_regions)) is None
    # Every queue: notify, the device answers, the driver handles the interrupt.
    for q in range(n):
        await drv.notify(q)
        for _ in range(8):
            await ctx.tick()
        assert ctx.get(dut.irq)
        assert await drv.interrupt() == 1
        assert not ctx.get(dut.irq)
    assert [note.queue for note in device.notifications] == list(range(n))
    assert all(vq.interrupts == n for vq in drv.state.queues.values())
    await drv.remove()
    assert [ctx.get(dut.device.queues[q].ready) for q in range(n)] == [0] * n
