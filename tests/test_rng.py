"""The virtio-rng device logic of the Linux co-simulation (sim/rng.py) and its split ring
(sim/virtqueue.py), in plain simulation: rings in a bytearray, the driver model in front.

A good chain is filled with the device's bytes and returned; each malformed ring is a driver
error with decisions.md D11's response: DEVICE_NEEDS_RESET once, nothing in the used ring, no
more service until the driver resets the device.
"""

import pytest

from hw.regmap import Status
from sim.bus import SimMMIO
from sim.driver import VirtioMMIODriver
from sim.memory import GuestMemory, MemoryFault
from sim.rng import RngDevice
from sim.scenario import describer
from sim.virtqueue import DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, DriverRing
from sim.waves import simulate


MEMORY = 1 << 16
RING = 0x1000
BUFFERS = 0x8000


async def set_up(ctx, dut, memory, *, size=8):
    """The driver model's bring-up with the ring at :data:`RING`."""
    drv = VirtioMMIODriver(SimMMIO(ctx, dut.bus, describe=describer(dut)))
    await drv.probe()
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE)
    await drv.add_status(Status.DRIVER)
    await drv.negotiate(driver_supports=0)
    ring = DriverRing(memory, size=size, base=RING)
    await drv.setup_vq(0, size, desc=ring.desc, driver=ring.driver, device=ring.device)
    await drv.add_status(Status.DRIVER_OK)
    return drv, ring


async def kick(ctx, drv, cycles=64):
    await drv.notify(0)
    await ctx.tick().repeat(cycles)


def run(testbench, device=None):
    device = device or RngDevice(seed=7)
    dut = device.transport()
    memory = GuestMemory(bytearray(MEMORY))
    device.bind(memory)

    async def bench(ctx):
        await testbench(ctx, dut, device, memory)

    simulate(dut, bench, background=[device.run])
    return device


def test_chains_are_filled_with_the_devices_bytes_and_returned():
    seen = {}

    async def testbench(ctx, dut, device, memory):
        drv, ring = await set_up(ctx, dut, memory)
        first = ring.add([(BUFFERS, 16, True), (BUFFERS + 0x100, 8, True)])
        second = ring.add([(BUFFERS + 0x200, 32, True)])
        await kick(ctx, drv)
        seen["used"] = ring.used()
        seen["irq"] = ctx.get(dut.irq)
        seen["data"] = memory.read(BUFFERS, 16) + memory.read(BUFFERS + 0x100, 8) + \
            memory.read(BUFFERS + 0x200, 32)
        seen["heads"] = first, second
        seen["idle"] = device.idle

    device = run(testbench)
    assert seen["used"] == [(seen["heads"][0], 24), (seen["heads"][1], 32)]
    assert seen["irq"] and seen["idle"]
    assert seen["data"] == bytes(device.produced) and len(device.produced) == 56
    assert device.requests == 2 and device.errors == []


def test_the_same_seed_gives_the_same_bytes():
    def produced(seed):
        async def testbench(ctx, dut, device, memory):
            drv, ring = await set_up(ctx, dut, memory)
            ring.add([(BUFFERS, 64, True)])
            await kick(ctx, drv)
        return bytes(run(testbench, RngDevice(seed=seed)).produced)
    assert produced(3) == produced(3) != produced(4)


def test_no_interrupt_when_the_driver_suppresses_it():
    seen = {}

    async def testbench(ctx, dut, device, memory):
        drv, ring = await set_up(ctx, dut, memory)
        ring.suppress_interrupts()
        ring.add([(BUFFERS, 4, True)])
        await kick(ctx, drv)
        seen["used"], seen["irq"] = ring.used(), ctx.get(dut.irq)

    run(testbench)
    assert seen["used"] == [(0, 4)] and not seen["irq"]


def _malformed(case, ring):
    """Make ring broken as D11 row ``case`` describes."""
    if case == 1:
        ring.write_desc(0, BUFFERS, 4, DESC_F_WRITE)
        ring.publish(0, count=ring.size + 1)
    elif case == 2:
        ring.publish(ring.size)
    elif case == 3:
        ring.write_desc(0, BUFFERS, 4, DESC_F_WRITE | DESC_F_NEXT, ring.size)
        ring.publish(0)
    elif case == 4:
        ring.write_desc(0, BUFFERS, 4, DESC_F_WRITE | DESC_F_NEXT, 1)
        ring.write_desc(1, BUFFERS, 4, DESC_F_WRITE | DESC_F_NEXT, 0)
        ring.publish(0)
    elif case == 5:
        ring.add([(BUFFERS, 4, True), (BUFFERS + 8, 4, False)])
    elif case == 6:
        ring.add([(BUFFERS, 0, True)])
    elif case == 7:
        ring.write_desc(0, BUFFERS, 16, DESC_F_INDIRECT)
        ring.publish(0)
    elif case == 8:
        ring.add([(MEMORY - 4, 8, True)])
    elif case == 10:
        ring.add([(BUFFERS, 4, False)])


@pytest.mark.parametrize("case", [1, 2, 3, 4, 5, 6, 7, 8, 10])
def test_a_malformed_ring_gets_the_d11_response(case):
    seen = {}

    async def testbench(ctx, dut, device, memory):
        drv, ring = await set_up(ctx, dut, memory)
        _malformed(case, ring)
        await kick(ctx, drv)
        seen["status"] = await drv.get_status()
        seen["used_idx"] = memory.read_int(ring.device + 2, 2)
        # No more service until the driver resets the device, even for a good chain.
        ring.add([(BUFFERS + 0x400, 4, True)])
        await kick(ctx, drv)
        seen["after"] = memory.read_int(ring.device + 2, 2)
        seen["errors_before_reset"] = list(device.errors)
        # After a reset and a new bring-up the device serves again.
        drv, ring = await set_up(ctx, dut, memory)
        ring.add([(BUFFERS + 0x400, 4, True)])
        await kick(ctx, drv)
        seen["served"] = ring.used()

    device = run(testbench)
    assert seen["status"] & Status.DEVICE_NEEDS_RESET.value
    assert seen["used_idx"] == 0 and seen["after"] == 0
    assert len(seen["errors_before_reset"]) == 1
    assert seen["errors_before_reset"][0].startswith(f"D11 case {case}: ")
    assert seen["served"] == [(0, 4)] and len(device.errors) == 1


def test_queue_size_that_is_not_a_power_of_two_is_case_12():
    seen = {}

    async def testbench(ctx, dut, device, memory):
        drv, ring = await set_up(ctx, dut, memory, size=6)
        ring.add([(BUFFERS, 4, True)])
        await kick(ctx, drv)
        seen["status"] = await drv.get_status()

    device = run(testbench)
    assert seen["status"] & Status.DEVICE_NEEDS_RESET.value
    assert device.errors == ["D11 case 12: QueueNum 6 is not a power of two"]


def test_guest_memory_checks_its_bounds():
    memory = GuestMemory(bytearray(16), base=0x1000)
    memory.write(0x1008, b"abcd")
    assert memory.read(0x100a, 2) == b"cd"
    with pytest.raises(MemoryFault, match=r"read of 4 bytes at 0xffe is outside guest memory "
                                          r"\[0x1000, 0x1010\)"):
        memory.read(0xffe, 4)
    with pytest.raises(MemoryFault, match=r"write of 2 bytes at 0x100f"):
        memory.write(0x100f, b"xy")


def test_rng_fill_rate_is_checked():
    with pytest.raises(ValueError, match=r"bytes_per_cycle must be a positive integer, not 0"):
        RngDevice(bytes_per_cycle=0)
