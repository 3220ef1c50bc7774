"""AXI4-Lite bus-functional models: accesses from an initiator, an MMIO accessor, a write sink.

:func:`axi_read` / :func:`axi_write` perform one AXI4-Lite transaction against a target's port
(``bridge.axi``) and check that it completes: each address (and write data) is accepted and
answered exactly once within ``timeout`` cycles. :class:`AXIMMIO` is the byte-addressed
``read(offset, size)`` / ``write(offset, value, size)`` accessor the driver model
(:mod:`sim.driver`) runs over, like :class:`sim.bus.SimMMIO` for Wishbone. :class:`AXIWriteSink`
is an AXI4-Lite target that records writes with random backpressure (an interrupt controller's
MSI doorbell).
"""

import random
from dataclasses import dataclass

from hw.axi4lite import Response

from .bus import BusError, WaitTimeout, lanes, wait_until


__all__ = ["axi_read", "axi_write", "AXIMMIO", "AXIWriteSink", "Write"]


async def axi_read(ctx, bus, addr, *, timeout=32):
    """Read at byte ``addr``. Returns ``(data, response, cycles)``: cycles from ARVALID to the R
    handshake."""
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    cycles = await wait_until(ctx, bus.arready, timeout=timeout, what=f"arready for {addr:#x}")
    ctx.set(bus.arvalid, 0)
    ctx.set(bus.rready, 1)
    for extra in range(timeout):  # noqa: B007 (counted in the result)
        if ctx.get(bus.rvalid):
            break
        await ctx.tick()
    else:
        raise WaitTimeout(f"no rvalid within {timeout} cycles for a read of {addr:#x}")
    data, resp = ctx.get(bus.rdata), Response(ctx.get(bus.rresp))
    await ctx.tick()
    ctx.set(bus.rready, 0)
    if ctx.get(bus.rvalid):
        raise BusError(f"rvalid held after the R handshake for {addr:#x}")
    return data, resp, cycles + extra + 1


async def axi_write(ctx, bus, addr, data, *, strb=0b1111, timeout=32, w_delay=0, aw_delay=0):
    """Write ``data`` under ``strb`` at byte ``addr``. AW is presented after ``aw_delay`` cycles
    and W after ``w_delay`` cycles. Returns ``(response, cycles)``."""
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.wdata, data)
    ctx.set(bus.wstrb, strb)
    aw_done = w_done = False
    cycles = 0
    while not (aw_done and w_done):
        ctx.set(bus.awvalid, not aw_done and cycles >= aw_delay)
        ctx.set(bus.wvalid, not w_done and cycles >= w_delay)
        _, _, awvalid, awready, wvalid, wready, bvalid = await ctx.tick().sample(
            bus.awvalid, bus.awready, bus.wvalid, bus.wready, bus.bvalid)
        if bvalid:
            raise BusError(f"bvalid before the write of {addr:#x} was accepted")
        aw_done |= bool(awvalid and awready)
        w_done |= bool(wvalid and wready)
        cycles += 1
        if cycles > timeout + max(aw_delay, w_delay):
            raise WaitTimeout(f"write of {addr:#x} not accepted within {timeout} cycles")
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    ctx.set(bus.bready, 1)
    for _ in range(timeout):
        if ctx.get(bus.bvalid):
            break
        await ctx.tick()
        cycles += 1
    else:
        raise WaitTimeout(f"no bvalid within {timeout} cycles for a write of {addr:#x}")
    resp = Response(ctx.get(bus.bresp))
    await ctx.tick()
    ctx.set(bus.bready, 0)
    if ctx.get(bus.bvalid):
        raise BusError(f"bvalid held after the B handshake for {addr:#x}")
    return resp, cycles + 1


class AXIMMIO:
    """Byte-addressed MMIO accessor over a simulated AXI4-Lite target.

    A ``size``-byte access at ``offset`` becomes one AXI4-Lite transaction at the word address
    with the byte lanes in ``wstrb`` (a read returns the word; the accessor picks the bytes),
    what a CPU's AXI port does with ``readb/readw/readl``. Raises :class:`BusError` on any
    response but OKAY.
    """
    def __init__(self, ctx, bus):
        self.ctx = ctx
        self.bus = bus
        self.responses = []

    async def read(self, offset, size=4):
        word, _, shift = lanes(offset, size)
        data, resp, _ = await axi_read(self.ctx, self.bus, word * 4)
        self.responses.append(resp)
        if resp != Response.OKAY:
            raise BusError(f"read of {offset:#x}: {resp.name}")
        return data >> shift & ((1 << 8 * size) - 1)

    async def write(self, offset, value, size=4):
        word, strb, shift = lanes(offset, size)
        if not 0 <= value < 1 << 8 * size:
            raise ValueError(f"Value {value:#x} does not fit a {size}-byte access")
        resp, _ = await axi_write(self.ctx, self.bus, word * 4, value << shift, strb=strb)
        self.responses.append(resp)
        if resp != Response.OKAY:
            raise BusError(f"write of {offset:#x}: {resp.name}")


@dataclass(frozen=True)
class Write:
    cycle: int
    addr: int
    data: int
    strb: int


class AXIWriteSink:
    """An AXI4-Lite write target with random backpressure; add :meth:`run` with ``add_process``.

    AWREADY, WREADY and BVALID each depend on a coin with probability ``stall`` of waiting; the
    address and data handshakes are independent. ``response`` is the BRESP given.
    """
    def __init__(self, bus, *, stall=0.0, seed=0, response=Response.OKAY):
        self.bus = bus
        self.stall = stall
        self.response = response
        self.writes = []
        self.now = 0
        self._random = random.Random(seed)

    def _go(self):
        return self._random.random() >= self.stall

    async def run(self, ctx):
        bus = self.bus
        addr = data = None
        b_pending = False
        awready = wready = bvalid = 0
        async for _, _, awvalid, awaddr, wvalid, wdata, wstrb, bready in ctx.tick().sample(
                bus.awvalid, bus.awaddr, bus.wvalid, bus.wdata, bus.wstrb, bus.bready):
            self.now += 1
            # what happened in the cycle that just ended
            if awvalid and awready:
                addr = awaddr
            if wvalid and wready:
                data = (wdata, wstrb)
            if bvalid and bready:
                b_pending = False
            if addr is not None and data is not None and not b_pending:
                self.writes.append(Write(self.now, addr, *data))
                addr = data = None
                b_pending = True
            # the next cycle
            awready = int(addr is None and not b_pending and self._go())
            wready = int(data is None and not b_pending and self._go())
            bvalid = int(b_pending and (bvalid or self._go()))   # BVALID stays until BREADY
            ctx.set(bus.awready, awready)
            ctx.set(bus.wready, wready)
            ctx.set(bus.bvalid, bvalid)
            ctx.set(bus.bresp, self.response)
