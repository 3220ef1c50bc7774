"""Bounded waits (issue 11): a handshake that never completes fails within its cycle bound with
a message naming what was awaited, instead of hanging the suite."""

import time

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw import axi4lite, wishbone
from sim.axi4lite import axi_read
from sim.bus import (WaitTimeout, stream_receive, stream_send, wait_until, wishbone_back_to_back,
                     wishbone_read, wishbone_write)
from sim.waves import SimulationTimeout, simulate


class Silent(wiring.Component):
    """Targets that never answer: a Wishbone target that never acks, an AXI4-Lite target that
    never takes an address, a stream sink that is never ready and a source that is never valid.
    A free-running counter gives the design a clock domain."""
    wb: In(wishbone.Signature(addr_width=4))
    axi: In(axi4lite.Signature(addr_width=6))
    sink: In(stream.Signature(8))
    source: Out(stream.Signature(8))

    def __init__(self):
        super().__init__()
        self.count = Signal(8)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.count.eq(self.count + 1)
        return m


def fails_within(access, message, *, cycles):
    """Run ``access(ctx, dut)`` against :class:`Silent`; it must raise :class:`WaitTimeout`
    matching ``message`` within ``cycles`` clock cycles of simulated time."""
    dut = Silent()
    raised = []

    async def testbench(ctx):
        start = ctx.get(dut.count)
        with pytest.raises(WaitTimeout, match=message):
            await access(ctx, dut)
        raised.append((ctx.get(dut.count) - start) % 256)

    simulate(dut, testbench, name="silent")
    assert raised and raised[0] <= cycles, raised


def test_wishbone_access_to_a_target_that_never_acks_fails_fast():
    fails_within(lambda ctx, dut: wishbone_read(ctx, dut.wb, 3, timeout=10),
                 r"no ack within 10 cycles for read of word 0x3 with sel 0b1111", cycles=10)
    fails_within(lambda ctx, dut: wishbone_write(ctx, dut.wb, 5, 1, sel=0b0011),
                 r"no ack within 16 cycles for write of word 0x5 with sel 0b0011", cycles=16)


def test_back_to_back_run_names_the_access_that_got_no_ack():
    fails_within(lambda ctx, dut: wishbone_back_to_back(ctx, dut.wb, [(1, 2, 0), (0, 3, 0)]),
                 r"no ack within 8 cycles for access 0 \(write of word 0x2\)", cycles=9)


def test_axi4_lite_read_of_a_target_that_never_takes_the_address_fails_fast():
    fails_within(lambda ctx, dut: axi_read(ctx, dut.axi, 0x10, timeout=12),
                 r"no arready for 0x10 within 12 cycles", cycles=12)


def test_stream_handshakes_that_never_happen_fail_fast():
    fails_within(lambda ctx, dut: stream_send(ctx, dut.sink, 0x5a, timeout=20),
                 r"no ready for payload 90 within 20 cycles", cycles=20)
    fails_within(lambda ctx, dut: stream_receive(ctx, dut.source, 3, timeout=20,
                                                 what="response byte"),
                 r"no response byte within 20 cycles \(0 of 3 payloads received\)", cycles=20)
    fails_within(lambda ctx, dut: wait_until(ctx, dut.source.valid, timeout=7, what="interrupt"),
                 r"no interrupt within 7 cycles", cycles=7)


def test_unbounded_wait_is_stopped_by_the_simulation_cycle_bound():
    dut = Silent()

    async def testbench(ctx):
        while not ctx.get(dut.sink.ready):          # an unbounded wait that never returns
            await ctx.tick()

    start = time.monotonic()
    with pytest.raises(SimulationTimeout, match=r"simulation 'hang' still running after 2000 "
                                                r"cycles"):
        simulate(dut, testbench, name="hang", cycles=2000)
    assert time.monotonic() - start < 30


def test_waits_return_the_cycles_waited_when_the_handshake_happens():
    dut = Silent()
    got = []

    async def testbench(ctx):
        got.append(await wait_until(ctx, dut.count == 5, timeout=10, what="count 5"))

    simulate(dut, testbench, name="count")
    assert got == [6]                   # sampled before each edge: 0, 1, ..., 5
