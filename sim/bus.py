"""Bus-functional models: Wishbone accesses in simulation, and MMIO accessors over them.

:func:`wishbone_read` / :func:`wishbone_write` perform one classic Wishbone access and check the
handshake: the access must be acknowledged within ``timeout`` cycles and exactly once.

:class:`SimMMIO` turns byte-addressed ``read(offset, size)`` / ``write(offset, value, size)`` calls
(what a CPU's ``readb/readw/readl`` do) into Wishbone accesses with the right byte enables, and
records a transcript of every access by register name. The driver model (:mod:`sim.driver`) only
talks to such an accessor, so it runs unchanged over any other transport of bus accesses.
"""

from dataclasses import dataclass


__all__ = ["BusError", "wishbone_read", "wishbone_write", "lanes", "Access", "Transcript",
           "SimMMIO", "CycleCounter"]


class BusError(Exception):
    """The bus did not complete an access as the protocol requires."""


async def _access(ctx, bus, *, adr, we, dat_w, sel, timeout):
    ctx.set(bus.adr, adr)
    ctx.set(bus.we, we)
    ctx.set(bus.sel, sel)
    ctx.set(bus.dat_w, dat_w)
    ctx.set(bus.cyc, 1)
    ctx.set(bus.stb, 1)
    for cycles in range(1, timeout + 1):
        await ctx.tick()
        if ctx.get(bus.ack):
            break
    else:
        ctx.set(bus.cyc, 0)
        ctx.set(bus.stb, 0)
        raise BusError(f"no ack within {timeout} cycles for {'write' if we else 'read'} of word "
                       f"{adr:#x} with sel {sel:#06b}")
    dat_r = ctx.get(bus.dat_r)
    ctx.set(bus.cyc, 0)
    ctx.set(bus.stb, 0)
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
