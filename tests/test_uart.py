"""The 8N1 UART against a bit-level model of the other end."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from sim.bus import stream_send
from sim.serial import SimSerialLine
from hw.soc.uart import UARTReceiver, UARTTransmitter, divisor_for
from sim.waves import simulate


class Loop(wiring.Component):
    """Receiver and transmitter side by side, each on the model's line (not connected)."""
    def __init__(self, divisor):
        self.rx = UARTReceiver(divisor=divisor)
        self.tx = UARTTransmitter(divisor=divisor)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = self.rx
        m.submodules.tx = self.tx
        return m


def run_loop(divisor, body):
    dut = Loop(divisor)
    line = SimSerialLine(dut.rx.rx, dut.tx.tx, divisor=divisor)
    done = []

    async def testbench(ctx):
        line.attach(ctx)
        await body(ctx, dut, line)
        done.append(True)

    simulate(dut, testbench, processes=[line.drive, line.listen], name="uart")
    assert done


@pytest.mark.parametrize("divisor", [4, 7, 16], ids=lambda d: f"div{d}")
def test_receiver_gets_every_byte(divisor):
    payload = bytes(random.Random(divisor).randrange(256) for _ in range(24)) + b"\x00\xff"

    async def body(ctx, dut, line):
        got = []
        ctx.set(dut.rx.data.ready, 1)
        line.write(payload)
        for _ in range(12 * divisor * len(payload)):
            await ctx.tick()
            if ctx.get(dut.rx.data.valid):
                got.append(ctx.get(dut.rx.data.payload))
        assert bytes(got) == payload

    run_loop(divisor, body)


@pytest.mark.parametrize("divisor", [4, 9], ids=lambda d: f"div{d}")
def test_transmitter_sends_every_byte_back_to_back(divisor):
    payload = bytes(range(0, 256, 11))

    async def body(ctx, dut, line):
        for byte in payload:
            await stream_send(ctx, dut.tx.data, byte, timeout=12 * divisor)
        assert await line.read(len(payload)) == payload
        assert line.framing_errors == 0

    run_loop(divisor, body)


def test_low_stop_bit_is_a_framing_error_and_drops_the_byte():
    async def body(ctx, dut, line):
        ctx.set(dut.rx.data.ready, 1)
        errors, got = 0, []

        async def watch(cycles):
            nonlocal errors
            for _ in range(cycles):
                await ctx.tick()
                errors += ctx.get(dut.rx.framing_error)
                if ctx.get(dut.rx.data.valid):
                    got.append(ctx.get(dut.rx.data.payload))

        line.write_bad_stop(0x55)
        await watch(12 * 8)           # the line idles high for a while: the receiver resyncs
        line.write(b"\xa5")
        for _ in range(14 * 8):
            await ctx.tick()
            errors += ctx.get(dut.rx.framing_error)
            if ctx.get(dut.rx.data.valid):
                got.append(ctx.get(dut.rx.data.payload))
        assert errors == 1
        assert got == [0xa5]

    run_loop(8, body)


def test_byte_not_taken_in_time_is_an_overrun():
    async def body(ctx, dut, line):
        line.write(b"\x01\x02")
        overruns = 0
        for _ in range(25 * 8):
            await ctx.tick()
            overruns += ctx.get(dut.rx.overrun)
        assert overruns == 1
        assert ctx.get(dut.rx.data.valid) and ctx.get(dut.rx.data.payload) == 0x01

    run_loop(8, body)


def test_divisor_for_rounds_and_refuses_bad_rates():
    assert divisor_for(12e6, 115200) == 104
    assert divisor_for(25e6, 115200) == 217
    with pytest.raises(ValueError, match=r"too fast"):
        divisor_for(12e6, 6_000_000)
    with pytest.raises(ValueError, match=r"off at 12 MHz"):
        divisor_for(12e6, 2_500_000)
    with pytest.raises(ValueError, match=r"divisor must be an integer of at least 4, not 2"):
        UARTReceiver(divisor=2)
