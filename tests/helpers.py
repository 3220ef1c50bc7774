"""Shared test plumbing: build a transport, run an async body against it with a device model."""

import inspect

from hw import VirtioMMIOTransport
from hw.regmap import CONFIG_OFFSET
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
