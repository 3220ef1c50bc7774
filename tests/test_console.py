"""The virtio-console device logic of the Linux co-simulation (sim/console.py), in plain
simulation with the rings in a bytearray (the harness of tests/test_rng.py)."""

import pytest

from hw.regmap import Status
from sim.console import RECEIVEQ, TRANSMITQ, ConsoleDevice
from sim.virtqueue import DriverRing

from test_rng import BUFFERS, RING, kick, run, set_up


async def both_queues(ctx, dut, memory):
    """Bring-up with receiveq at RING and transmitq 12 KiB above it."""
    drv, rx = await set_up(ctx, dut, memory)
    tx = DriverRing(memory, size=8, base=RING + 0x3000)
    await drv.setup_vq(TRANSMITQ, 8, desc=tx.desc, driver=tx.driver, device=tx.device)
    return drv, rx, tx


def test_input_waits_for_the_first_output_then_fills_receive_buffers():
    seen = {}

    async def testbench(ctx, dut, device, memory):
        drv, rx, tx = await both_queues(ctx, dut, memory)
        rx.add([(BUFFERS, 4, True)])
        rx.add([(BUFFERS + 0x100, 16, True)])
        await kick(ctx, drv)
        seen["before"] = rx.used()
        memory.write(BUFFERS + 0x200, b"prompt> ")
        tx.add([(BUFFERS + 0x200, 8, False)])
        await drv.notify(TRANSMITQ)
        await ctx.tick().repeat(64)
        seen["tx"], seen["rx"] = tx.used(), rx.used()
        seen["data"] = memory.read(BUFFERS, 4) + memory.read(BUFFERS + 0x100, 2)

    device = run(testbench, ConsoleDevice(input=b"yes\nno"))
    assert seen["before"] == []                    # nothing typed before the prompt
    assert seen["tx"] == [(0, 0)] and bytes(device.output) == b"prompt> "
    assert seen["rx"] == [(0, 4), (1, 2)] and seen["data"] == b"yes\nno"
    assert device.errors == []


@pytest.mark.parametrize("queue, writable", [(RECEIVEQ, False), (TRANSMITQ, True)],
                         ids=["readable-receive", "writable-transmit"])
def test_a_chain_of_the_wrong_direction_is_d11_case_10(queue, writable):
    seen = {}

    async def testbench(ctx, dut, device, memory):
        drv, rx, tx = await both_queues(ctx, dut, memory)
        if queue == RECEIVEQ:
            tx.add([(BUFFERS + 0x200, 4, False)])          # a prompt, so that input flows
            await drv.notify(TRANSMITQ)
            await ctx.tick().repeat(16)
        (rx if queue == RECEIVEQ else tx).add([(BUFFERS, 4, writable)])
        await drv.notify(queue)
        await ctx.tick().repeat(64)
        seen["status"] = await drv.get_status()

    device = run(testbench, ConsoleDevice(input=b"x"))
    assert seen["status"] & Status.DEVICE_NEEDS_RESET.value
    assert len(device.errors) == 1 and device.errors[0].startswith("D11 case 10: ")
