"""AXI4-Lite bus-functional models: accesses from an initiator, an MMIO accessor, a write sink,
a memory target.

:func:`axi_read` / :func:`axi_write` perform one AXI4-Lite transaction against a target's port
(``bridge.axi``) and check that it completes: each address (and write data) is accepted and
answered exactly once within ``timeout`` cycles. :class:`AXIMMIO` is the byte-addressed
``read(offset, size)`` / ``write(offset, value, size)`` accessor the driver model
(:mod:`sim.driver`) runs over, like :class:`sim.bus.SimMMIO` for Wishbone. :class:`AXIWriteSink`
is an AXI4-Lite target that records writes with random backpressure (an interrupt controller's
MSI doorbell). :class:`AXIMemory` is an AXI4-Lite target over guest memory for an initiator
(:class:`hw.axi4lite.WishboneToAXI4Lite`): several transactions outstanding, random waits,
error injection and a check of the initiator's side of every handshake.
"""

import random
from collections import deque
from dataclasses import dataclass

from hw.axi4lite import Response

from .bus import BusError, WaitTimeout, lanes, wait_until
from .busmemory import check_timing
from .memory import MemoryFault


__all__ = ["axi_read", "axi_write", "AXIMMIO", "AXIWriteSink", "Write", "Transaction",
           "AXIMemory"]


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


_FAILED = (Response.SLVERR, Response.DECERR)


@dataclass(frozen=True)
class Transaction:
    """A transaction :class:`AXIMemory` answered."""
    cycle: int          # when its response became valid
    write: bool
    addr: int           # byte address
    data: int           # written (under strb), or read (0 when it failed)
    strb: int           # wstrb of a write, 0b1111 for a read
    response: Response


class AXIMemory:
    """An AXI4-Lite target over guest memory; add :meth:`run` as a background testbench.

    AR, AW and W are each accepted up to ``depth`` transactions ahead of their responses, every
    ready held low in a cycle with probability ``stall``; W may come before its AW (writes pair
    in order). A read's RVALID rises ``latency`` cycles after its AR handshake at the earliest
    (1: the next cycle), a write's BVALID that long after the later of its AW and W handshakes;
    responses come in order on each channel and every RVALID/BVALID stays high until its
    handshake. A write lands, and a read is sampled, when its response becomes valid. With
    ``ready_waits_for_valid`` a ready rises only in the cycle after its valid was seen, as a
    target may do (IHI 0022 §A3.2.1): an initiator whose valid waits for ready deadlocks.

    A transaction touching a range of ``faults`` gets that range's response (SLVERR or DECERR:
    a write changes nothing, a read returns 0; OKAY or EXOKAY: performed). Otherwise an address
    outside guest memory gets DECERR, one not word-aligned SLVERR.

    What it records: :attr:`log`, the transactions in the order answered (:class:`Transaction`);
    :attr:`violations`, the initiator's breaks of the handshake rule (a valid dropped, or its
    payload changed, before its handshake: IHI 0022 §A3.2.1); :attr:`peak`, the most reads and
    the most writes outstanding at once; :attr:`mixed`, the cycles in which reads and writes were
    both outstanding.

    Parameters
    ----------
    memory : GuestMemory
    bus : Signature interface
        The initiator's port (``adapter.axi``).
    stall : float
        Probability of holding a ready low in a cycle, below 1.
    latency : (int, int)
        Least and most cycles from the address (and data) handshake to the response.
    faults : iterable of (int, int, Response)
        Byte ranges ``[start, end)`` and the response they get.
    depth : int
        Transactions of each kind accepted ahead of their responses.
    ready_waits_for_valid : bool
    seed : int
    """

    def __init__(self, memory, bus, *, stall=0.0, latency=(1, 1), faults=(), depth=8,
                 ready_waits_for_valid=False, seed=0):
        check_timing(stall, latency)
        self.memory = memory
        self.bus = bus
        self.stall = stall
        self.latency = latency
        self.faults = [(start, end, Response(response)) for start, end, response in faults]
        self.depth = depth
        self.ready_waits_for_valid = ready_waits_for_valid
        self.random = random.Random(seed)
        self.log = []
        self.violations = []
        self.peak = {"read": 0, "write": 0}
        self.mixed = 0
        self.cycle = 0

    def _go(self, valid, ready):
        """Raise a ready in the next cycle? ``valid`` and ``ready`` as in the cycle that ended."""
        if self.ready_waits_for_valid and not (valid and not ready):
            return False
        return self.random.random() >= self.stall

    def _due(self):
        return self.cycle + self.random.randint(*self.latency) - 1

    def _perform(self, write, addr, data=0, strb=0b1111):
        injected = next((response for start, end, response in self.faults
                         if start < addr + 4 and addr < end), None)
        response = Response.OKAY if injected is None else injected
        if response not in _FAILED and addr & 3:
            response = Response.SLVERR
        if response not in _FAILED:
            try:
                word = self.memory.read_int(addr, 4)
                if write:
                    mask = sum(0xff << 8 * lane for lane in range(4) if strb >> lane & 1)
                    self.memory.write_int(addr, word & ~mask | data & mask, 4)
                else:
                    data = word
            except MemoryFault:
                response = Response.DECERR
        if not write and response in _FAILED:
            data = 0
        transaction = Transaction(self.cycle, write, addr, data, strb, response)
        self.log.append(transaction)
        return transaction

    def _check_held(self, held, channel, valid, ready, payload):
        """IHI 0022 §A3.2.1: once VALID is high it stays high, its payload unchanged, until
        the handshake."""
        if channel in held:
            if not valid:
                self.violations.append(f"cycle {self.cycle}: {channel}VALID dropped before "
                                       f"its handshake")
            elif payload != held[channel]:
                self.violations.append(f"cycle {self.cycle}: {channel} payload changed from "
                                       f"{held[channel]} to {payload} before its handshake")
        if valid and not ready:
            held[channel] = payload
        else:
            held.pop(channel, None)

    async def run(self, ctx):
        bus = self.bus
        reads = deque()             # (due cycle, addr): AR taken, not yet answered
        addrs = deque()             # AW taken, waiting for its W
        datas = deque()             # (data, strb): W taken, waiting for its AW
        writes = deque()            # (due cycle, addr, data, strb): paired, not yet answered
        r_busy = b_busy = False     # a response is presented
        held = {}
        signals = (bus.arvalid, bus.arready, bus.araddr, bus.awvalid, bus.awready, bus.awaddr,
                   bus.wvalid, bus.wready, bus.wdata, bus.wstrb, bus.rvalid, bus.rready,
                   bus.bvalid, bus.bready)
        async for _, _, *values in ctx.tick().sample(*signals):
            (arvalid, arready, araddr, awvalid, awready, awaddr, wvalid, wready, wdata, wstrb,
             rvalid, rready, bvalid, bready) = values
            self.cycle += 1
            # what happened in the cycle that just ended
            self._check_held(held, "AR", arvalid, arready, (araddr,))
            self._check_held(held, "AW", awvalid, awready, (awaddr,))
            self._check_held(held, "W", wvalid, wready, (wdata, wstrb))
            if arvalid and arready:
                reads.append((self._due(), araddr))
            if awvalid and awready:
                addrs.append(awaddr)
            if wvalid and wready:
                datas.append((wdata, wstrb))
            while addrs and datas:
                writes.append((self._due(), addrs.popleft(), *datas.popleft()))
            if rvalid and rready:
                r_busy = False
            if bvalid and bready:
                b_busy = False
            # the next cycle
            if not r_busy and reads and reads[0][0] <= self.cycle:
                _, addr = reads.popleft()
                read = self._perform(False, addr)
                ctx.set(bus.rdata, read.data)
                ctx.set(bus.rresp, read.response)
                r_busy = True
            if not b_busy and writes and writes[0][0] <= self.cycle:
                _, addr, data, strb = writes.popleft()
                write = self._perform(True, addr, data, strb)
                ctx.set(bus.bresp, write.response)
                b_busy = True
            ctx.set(bus.rvalid, r_busy)
            ctx.set(bus.bvalid, b_busy)
            in_writes = len(writes) + b_busy
            ctx.set(bus.arready, len(reads) + r_busy < self.depth and
                    self._go(arvalid, arready))
            ctx.set(bus.awready, len(addrs) + in_writes < self.depth and
                    self._go(awvalid, awready))
            ctx.set(bus.wready, len(datas) + in_writes < self.depth and
                    self._go(wvalid, wready))
            outstanding_reads = len(reads) + r_busy
            outstanding_writes = max(len(addrs), len(datas)) + in_writes
            self.peak["read"] = max(self.peak["read"], outstanding_reads)
            self.peak["write"] = max(self.peak["write"], outstanding_writes)
            self.mixed += bool(outstanding_reads and outstanding_writes)
