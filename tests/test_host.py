"""The host protocol and the driver model over a simulated serial line, against the board SoC."""

import asyncio

import pytest

from hw.soc.bridge import CMD_WRITE, RESP_ERROR, RESP_READ, RESP_WRITE, Error
from hw.soc.echo import ECHO_CONFIG
from boards.host import (MSI_ADDRESS, MSI_DATA, BridgeError, BridgeMMIO, encode_read,
                         encode_write, read_recorder, run_command)
from sim.serial import simulate_soc
from hw.regmap import MAGIC, Status
from sim.driver import VirtioMMIODriver


def test_frames_are_encoded_as_documented():
    assert encode_read(0x1234, 0b0110) == bytes([0x52, 0x12, 0x34, 0b0110])
    assert encode_write(0x0003, 0x1122_3344) == bytes([0x57, 0x00, 0x03, 0x0f,
                                                        0x44, 0x33, 0x22, 0x11])
    with pytest.raises(ValueError, match=r"word address must be below 0x10000"):
        encode_read(0x10000)
    with pytest.raises(ValueError, match=r"byte enables must be 4 bits, not 16"):
        encode_write(0, 0, sel=16)


class ScriptedLine:
    """A line that answers from a script: a list of response byte strings, one per request."""
    def __init__(self, responses):
        self.responses = list(responses)
        self.pending = b""
        self.frames = []
        self.settled = 0

    def write(self, data):
        self.frames.append(bytes(data))
        self.pending += self.responses.pop(0)

    def read(self, n):
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def settle(self):
        self.settled += 1
        self.pending = b""


def test_accessor_retries_after_line_noise_but_not_after_a_bus_timeout():
    line = ScriptedLine([bytes([RESP_ERROR, Error.TIMEOUT.value]),
                         bytes([RESP_READ, 1, 2, 3, 4])])
    io = BridgeMMIO(line)
    assert asyncio.run(io.read(0x0)) == 0x0403_0201
    assert line.settled == 1 and len(io.errors) == 1

    line = ScriptedLine([bytes([RESP_ERROR, Error.BUS_TIMEOUT.value])])
    with pytest.raises(BridgeError, match=r"bridge error BUS_TIMEOUT") as info:
        asyncio.run(BridgeMMIO(line).write(0x70, 1))
    assert info.value.code is Error.BUS_TIMEOUT and line.settled == 0


def test_accessor_reports_missing_and_malformed_responses():
    with pytest.raises(BridgeError, match=r"no response"):
        asyncio.run(BridgeMMIO(ScriptedLine([b""]), retries=0).read(0))
    with pytest.raises(BridgeError, match=r"unexpected response byte 0x77"):
        asyncio.run(BridgeMMIO(ScriptedLine([bytes([RESP_WRITE])]), retries=0).read(0))
    with pytest.raises(BridgeError, match=r"read response truncated after 2 data bytes"):
        asyncio.run(BridgeMMIO(ScriptedLine([bytes([RESP_READ, 1, 2])]), retries=0).read(0))


def test_sub_word_accesses_use_byte_enables():
    line = ScriptedLine([bytes([RESP_READ, 0x11, 0x22, 0x33, 0x44]), bytes([RESP_WRITE])])
    io = BridgeMMIO(line)
    assert asyncio.run(io.read(0x102, 2)) == 0x4433
    asyncio.run(io.write(0x101, 0xab, 1))
    assert line.frames == [encode_read(0x40, 0b1100), encode_write(0x40, 0xab00, 0b0010)]


@pytest.mark.slow
def test_driver_probes_and_brings_up_the_device_over_the_serial_line():
    async def body(ctx, line, soc, monitor):
        io = BridgeMMIO(line)
        drv = VirtioMMIODriver(io, notification=True)
        assert await io.read(soc.transport.regs["MagicValue"].offset) == MAGIC
        await drv.bring_up(queues=[0, 1])
        assert await drv.get_status() & Status.DRIVER_OK.value
        assert ctx.get(soc.transport.device.queues[1].ready)
        await drv.notify(1)
        # The echo device answers with a used buffer: the wired interrupt rises.
        for _ in range(50):
            if ctx.get(soc.irq):
                break
            await ctx.tick()
        assert ctx.get(soc.irq)
        await drv.interrupt()
        assert drv.state.queues[1].interrupts == 1 and not ctx.get(soc.irq)
        assert await drv.config_read(4 * ECHO_CONFIG["notifications"], 4) == 1
        await drv.remove()
        assert io.errors == [] and monitor.idle

    simulate_soc(body, transport=_no_msi())


def _no_msi():
    from hw.soc.soc import BOARD_TRANSPORT
    return {k: v for k, v in BOARD_TRANSPORT.items()
            if k not in ("msi", "msi_vectors", "msi_sharing")}


def test_garbage_on_the_line_is_recovered_by_a_retry():
    async def body(ctx, line, soc, monitor):
        io = BridgeMMIO(line)
        magic = soc.transport.regs["MagicValue"].offset
        line.write(b"\x00")                     # noise before the request
        assert await io.read(magic) == MAGIC
        assert [e.code for e in io.errors] == [Error.BAD_COMMAND]
        # A request cut short: the bridge times out; the next request works.
        line.write(bytes([CMD_WRITE, 0x00]))
        assert await line.read(2) == bytes([RESP_ERROR, Error.TIMEOUT.value])
        assert await io.read(magic) == MAGIC
        assert monitor.idle

    simulate_soc(body, transport=_no_msi())


@pytest.mark.slow
def test_msi_command_records_one_message_per_event():
    async def body(ctx, line, soc, monitor):
        assert soc.has_msi
        io = BridgeMMIO(line)
        lines = []
        out = await run_command(io, "msi", echo=lines.append)
        # Queue 0 -> vector 1, queue 1 -> vector 2, config change -> vector 0.
        assert out["messages"] == [(MSI_ADDRESS + 4, MSI_DATA + 1),
                                   (MSI_ADDRESS + 8, MSI_DATA + 2),
                                   (MSI_ADDRESS, MSI_DATA)]
        assert out["device_notifications"] == 2
        assert not ctx.get(soc.irq)
        assert io.errors == [] and monitor.idle

    simulate_soc(body)


@pytest.mark.slow
def test_bringup_command_reports_interrupts():
    async def body(ctx, line, soc, monitor):
        io = BridgeMMIO(line)
        out = await run_command(io, "bringup", echo=lambda text: None)
        assert out["device_id"] == soc.transport.device_id
        assert out["interrupts"] == [1, 1, 2]        # used buffer, used buffer, config change
        assert out["device_notifications"] == 2
        messages, count = await read_recorder(io)
        assert (messages, count) == ([], 0)

    simulate_soc(body)
