"""Bus-functional models: Wishbone accesses in simulation, MMIO accessors over them, and the
bounded waits every model is built on.

:func:`wishbone_read` / :func:`wishbone_write` perform one classic Wishbone access and check the
handshake: the access must be acknowledged within ``timeout`` cycles and exactly once.
:func:`wishbone_back_to_back` performs a run of accesses at full rate (``cyc`` held), and
:func:`wishbone_request` / :func:`wishbone_release` put a single request on the bus for tests that
time events against its cycles.

Every wait has a bound and raises :class:`WaitTimeout` naming what it waited for
(:func:`wait_until`, :func:`stream_send`, :func:`stream_receive`), so a handshake bug fails in a
few cycles with a message instead of hanging the simulation.

:class:`SimMMIO` turns byte-addressed ``read(offset, size)`` / ``write(offset, value, size)`` calls
(what a CPU's ``readb/readw/readl`` do) into Wishbone accesses with the right byte enables, and
records a transcript of every access by register name. The driver model (:mod:`sim.driver`) only
talks to such an accessor, so it runs unchanged over any other transport of bus accesses.
"""

from dataclasses import dataclass


__all__ = ["BusError", "WaitTimeout", "wait_until", "stream_send", "stream_receive",
           "wishbone_request", "wishbone_release", "wishbone_read", "wishbone_write",
           "wishbone_back_to_back", "lanes", "Access", "Transcript", "SimMMIO", "CycleCounter"]


class BusError(Exception):
    """The bus did not complete an access as the protocol requires."""


class WaitTimeout(BusError):
    """A bounded wait ran out: what it waited for did not happen within its cycle bound."""


async def wait_until(ctx, signal, *, timeout, what):
    """Tick until ``signal`` is high, at most ``timeout`` cycles; returns the cycles waited.

    ``signal`` is sampled just before each clock edge, as ``ctx.tick().until(signal)`` does, so
    a handshake (valid and ready both high) has happened at that edge when this returns.

    Raises
    ------
    WaitTimeout
        ``f"no {what} within {timeout} cycles"``.
    """
    for cycles in range(1, timeout + 1):
        _, _, value = await ctx.tick().sample(signal)
        if value:
            return cycles
    raise WaitTimeout(f"no {what} within {timeout} cycles")


async def stream_send(ctx, stream, payload, *, timeout=64, what=None):
    """Offer ``payload`` on a ``lib.stream`` interface until the sink takes it (a handshake at a
    clock edge), at most ``timeout`` cycles. ``valid`` is low again on return, so calls in a row
    keep it high without a gap. Raises :class:`WaitTimeout` naming ``what`` (default: the
    stream's ``ready``)."""
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    try:
        return await wait_until(ctx, stream.ready, timeout=timeout,
                                what=what or f"ready for payload {payload!r}")
    finally:
        ctx.set(stream.valid, 0)


async def stream_receive(ctx, stream, count=1, *, timeout=64, what="valid"):
    """Take ``count`` payloads from a ``lib.stream`` interface with ``ready`` high, each within
    ``timeout`` cycles of the previous one. Returns the list of payloads. Raises
    :class:`WaitTimeout` naming ``what`` and how many had arrived."""
    ctx.set(stream.ready, 1)
    got = []
    try:
        for _ in range(count):
            for _ in range(timeout):
                _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
                if valid:
                    got.append(payload)
                    break
            else:
                raise WaitTimeout(f"no {what} within {timeout} cycles ({len(got)} of {count} "
                                  f"payloads received)")
    finally:
        ctx.set(stream.ready, 0)
    return got


def wishbone_request(ctx, bus, adr, *, we=0, dat_w=0, sel=0b1111):
    """Present a request on ``bus`` (``cyc`` and ``stb`` high) and leave it there: for tests that
    time an event against the cycles of an access. :func:`wishbone_release` ends it."""
    ctx.set(bus.adr, adr)
    ctx.set(bus.we, we)
    ctx.set(bus.sel, sel)
    ctx.set(bus.dat_w, dat_w)
    ctx.set(bus.cyc, 1)
    ctx.set(bus.stb, 1)


def wishbone_release(ctx, bus):
    """End the request on ``bus`` (``cyc`` and ``stb`` low), acknowledged or not."""
    ctx.set(bus.cyc, 0)
    ctx.set(bus.stb, 0)


async def _access(ctx, bus, *, adr, we, dat_w, sel, timeout):
    wishbone_request(ctx, bus, adr, we=we, dat_w=dat_w, sel=sel)
    for cycles in range(1, timeout + 1):  # noqa: B007 (returned: cycles to ack)
        await ctx.tick()
        if ctx.get(bus.ack):
            break
    else:
        wishbone_release(ctx, bus)
        raise WaitTimeout(f"no ack within {timeout} cycles for {'write' if we else 'read'} of "
                          f"word {adr:#x} with sel {sel:#06b}")
    dat_r = ctx.get(bus.dat_r)
    wishbone_release(ctx, bus)
    await ctx.tick()
    if ctx.get(bus.ack):
        raise BusError(f"ack held for a second cycle after an access to word {adr:#x}")
    return dat_r, cycles


async def wishbone_read(ctx, bus, adr, *, sel=0b1111, timeout=16):
    """Read word ``adr``. Returns ``(data, cycles)``: cycles from request to ack."""
    return await _access(ctx, bus, adr=adr, we=0, dat_w=0, sel=sel, timeout=timeout)


async def wishbone_write(ctx, bus, adr, data, *, sel=0b1111, timeout=16):
    """Write ``data`` to word ``adr`` under ``sel``. Returns the cycles from request to ack."""
    _, cycles = await _access(ctx, bus, adr=adr, we=1, dat_w=data, sel=sel, timeout=timeout)
    return cycles


async def wishbone_back_to_back(ctx, bus, accesses, *, timeout=8):
    """Classic Wishbone at full rate: ``cyc`` never drops between ``accesses``
    (``(we, word, data)`` each, all byte lanes), and each request is set up as soon as the
    previous ack is seen, so it is taken in the cycle after the ack cycle, the earliest a master
    can present it. Returns ``(dat_r, cycles)`` per access, cycles counted from the previous ack
    (from the start for the first). Raises :class:`WaitTimeout` if an access is not acknowledged
    within ``timeout`` cycles."""
    results = []
    try:
        for we, word, data in accesses:
            wishbone_request(ctx, bus, word, we=we, dat_w=data)
            for cycles in range(1, timeout + 1):  # noqa: B007 (recorded after the loop)
                await ctx.tick()
                if ctx.get(bus.ack):
                    break
            else:
                raise WaitTimeout(f"no ack within {timeout} cycles for access {len(results)} "
                                  f"({'write' if we else 'read'} of word {word:#x}) of a "
                                  f"back-to-back run")
            results.append((ctx.get(bus.dat_r), cycles))
    finally:
        wishbone_release(ctx, bus)
    await ctx.tick()
    return results


def lanes(offset, size):
    """Word address, byte enables and bit shift of a ``size``-byte access at byte ``offset``."""
    if size not in (1, 2, 4) or offset % size:
        raise ValueError(f"A {size}-byte access at {offset:#x} is not naturally aligned")
    return offset >> 2, ((1 << size) - 1) << (offset & 3), (offset & 3) * 8


@dataclass(frozen=True)
class Access:
    """One access in a transcript."""
    cycle: int
    write: bool
    offset: int
    size: int
    value: int
    name: str

    def __str__(self):
        arrow = "<-" if self.write else "->"
        digits = self.size * 2
        return (f"{self.cycle:7d}  {'W' if self.write else 'R'}{self.size * 8:<2d} "
                f"{self.offset:#06x} {self.name:<20s} {arrow} {self.value:#0{digits + 2}x}")


class Transcript:
    """A list of :class:`Access` records, optionally echoed as they happen."""
    def __init__(self, *, echo=None):
        self.accesses = []
        self._echo = echo

    def add(self, access):
        self.accesses.append(access)
        if self._echo is not None:
            self._echo(str(access))

    def note(self, text):
        if self._echo is not None:
            self._echo(f"         # {text}")

    def names(self):
        return [(a.write, a.name) for a in self.accesses]


class CycleCounter:
    """Counts clock cycles; add :meth:`run` as a background process."""
    def __init__(self):
        self.now = 0

    async def run(self, ctx):
        async for _ in ctx.tick():
            self.now += 1


class SimMMIO:
    """Byte-addressed MMIO accessor over a simulated Wishbone target.

    Parameters
    ----------
    ctx : simulator context
    bus : the Wishbone target's interface (``transport.bus``)
    describe : callable(offset) -> str
        Names an offset for the transcript, e.g. :meth:`hw.regmap.RegisterMap.describe`.
    transcript : Transcript or None
    clock : CycleCounter or None
        Stamps transcript entries with the cycle.
    """
    def __init__(self, ctx, bus, *, describe=lambda offset: f"{offset:#x}", transcript=None,
                 clock=None):
        self.ctx = ctx
        self.bus = bus
        self._describe = describe
        self.transcript = transcript
        self._clock = clock
        self.last_cycles = None

    def _now(self):
        return self._clock.now if self._clock is not None else 0

    def _log(self, cycle, write, offset, size, value):
        if self.transcript is not None:
            self.transcript.add(Access(cycle, write, offset, size, value, self._describe(offset)))

    async def read(self, offset, size=4):
        adr, sel, shift = lanes(offset, size)
        start = self._now()
        data, self.last_cycles = await wishbone_read(self.ctx, self.bus, adr, sel=sel)
        value = data >> shift & ((1 << 8 * size) - 1)
        self._log(start, False, offset, size, value)
        return value

    async def write(self, offset, value, size=4):
        adr, sel, shift = lanes(offset, size)
        if not 0 <= value < 1 << 8 * size:
            raise ValueError(f"Value {value:#x} does not fit a {size}-byte access")
        self._log(self._now(), True, offset, size, value)
        self.last_cycles = await wishbone_write(self.ctx, self.bus, adr, value << shift, sel=sel)

    def note(self, text):
        if self.transcript is not None:
            self.transcript.note(text)
