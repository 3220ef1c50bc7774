"""The README's examples work as written (issue 4: a short example of device logic)."""

import re
from pathlib import Path

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from hw import DeviceSignature, VirtioMMIOTransport
from sim.bus import SimMMIO
from sim.driver import VirtioMMIODriver
from sim.waves import simulate

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(marker):
    """The python code block of the README that contains ``marker``."""
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL):
        if marker in block:
            return block
    raise AssertionError(f"no python block with {marker!r} in the README")


def test_echo_device_example_answers_every_notification():
    namespace = dict(wiring=wiring, In=In, Module=Module, DeviceSignature=DeviceSignature)
    exec(readme_block("class EchoDevice"), namespace)
    transport = VirtioMMIOTransport(device_id=1, vendor_id=0x1af4, num_queues=2, config_size=16)
    device = namespace["EchoDevice"]()
    top = Module()
    top.submodules.transport = transport
    top.submodules.device = device
    wiring.connect(top, transport.device, device.transport)

    async def testbench(ctx):
        drv = VirtioMMIODriver(SimMMIO(ctx, transport.bus))
        await drv.bring_up(queues=[0, 1])
        assert await drv.config_read(0, 4) == 0x12345678
        for q in (0, 1):
            await drv.notify(q)
            for _ in range(4):
                await ctx.tick()
            assert ctx.get(transport.irq)
            assert await drv.interrupt() == 1

    simulate(top, testbench, name="readme_echo")


def test_usage_example_constructs():
    block = readme_block("transport = VirtioMMIOTransport(")
    constructor = block[block.index("transport = VirtioMMIOTransport("):block.index("\n)\n") + 2]
    namespace = dict(VirtioMMIOTransport=VirtioMMIOTransport)
    exec(constructor, namespace)
    transport = namespace["transport"]
    assert transport.personality == "v2" and transport.msi_vectors == 16
