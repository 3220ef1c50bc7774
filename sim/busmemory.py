"""Guest memory on a bus master's Wishbone B4 pipelined port, in simulation.

:class:`WishboneMemory` serves an initiator such as :class:`hw.virtqueue.VirtqueueEngine` from a
:class:`sim.memory.GuestMemory`, as a background testbench. It takes a request in every cycle
in which it does not stall, and answers each, in order, after a latency; a write lands, and a
read is sampled, when it is answered. Stalls and latencies are drawn from a seeded generator
(random wait states), and any request touching a *faulty* range, or outside guest memory, is
answered with ``err`` and changes nothing (error injection).

It records every answered request in :attr:`log` as :class:`Access`. As a target it gives an
``ack``/``err`` only for a request taken, at the earliest in the next cycle; of the initiator it
checks that ``cyc`` stays high while requests are in flight (:attr:`violations`).
"""

import random
from collections import deque
from dataclasses import dataclass

from .memory import MemoryFault


__all__ = ["Access", "WishboneMemory", "check_probability", "check_timing"]


def check_timing(stall, latency):
    """The random timing of a memory model: ``stall`` a probability below 1, ``latency`` a
    ``(low, high)`` pair of cycles with ``1 <= low <= high``.

    Raises
    ------
    ValueError
        If either is out of range.
    """
    low, high = latency
    if not 1 <= low <= high:
        raise ValueError(f"latency must be (low, high) with 1 <= low <= high, not {latency!r}")
    check_probability("stall", stall)


def check_probability(name, value):
    """``value`` a probability below 1, or a ValueError naming ``name``."""
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be a probability below 1, not {value!r}")


@dataclass(frozen=True)
class Access:
    taken: int          # the cycle in which the request was taken
    cycle: int          # the cycle in which it was answered
    write: bool
    address: int        # byte address of the word
    sel: int
    data: int           # written, or read
    error: bool


class WishboneMemory:
    """A pipelined Wishbone target over ``memory``.

    Parameters
    ----------
    memory : GuestMemory
    stall : float
        Probability that the target stalls in a cycle (0: never).
    latency : (int, int)
        Least and most cycles from a request taken to its answer (1: the next cycle).
    faults : iterable of (int, int)
        Byte ranges ``[start, end)`` whose accesses are answered with ``err``.
    seed : int
    on_write : callable or None
        Called with each :class:`Access` that wrote memory, right after it landed (a test's
        driver acting at that moment).
    record : bool
        Keep :attr:`log` (a long co-simulation does not).
    spurious : float
        A misbehaving target: the probability of an ``ack`` (with junk on ``dat_r``) in a cycle
        with no request in flight, which the initiator must ignore.
    """

    def __init__(self, memory, *, stall=0.0, latency=(1, 1), faults=(), seed=0, on_write=None,
                 record=True, spurious=0.0):
        check_timing(stall, latency)
        check_probability("spurious", spurious)
        self.spurious = spurious
        self.spurious_acks = 0
        self.memory = memory
        self.stall = stall
        self.latency = latency
        self.faults = list(faults)
        self.random = random.Random(seed)
        self.on_write = on_write
        self.record = record
        self.accesses = 0
        self.log = []
        self.violations = []
        self.cycle = 0

    def _faulty(self, address):
        return any(start < address + 4 and address < end for start, end in self.faults)

    def _answer(self, taken, write, address, sel, data):
        error = self._faulty(address)
        if not error:
            try:
                word = self.memory.read_int(address, 4)
                if write:
                    mask = sum(0xff << 8 * lane for lane in range(4) if sel >> lane & 1)
                    word = word & ~mask | data & mask
                    self.memory.write_int(address, word, 4)
                data = word if not write else data
            except MemoryFault:
                error = True
        access = Access(taken, self.cycle, write, address, sel, data if not error else 0, error)
        self.accesses += 1
        if self.record:
            self.log.append(access)
        if write and not error and self.on_write is not None:
            self.on_write(access)
        return access

    def writes(self):
        return [access for access in self.log if access.write]

    async def serve(self, ctx, bus):
        """The target, as a background testbench on ``bus`` (the initiator's port)."""
        # A port without err (a disk port, say) gets no faults.
        bus_err = getattr(bus, "err", None)
        if bus_err is None and self.faults:
            raise ValueError("faults need a bus with an err signal")
        in_flight = deque()             # (due cycle, taken cycle, write, address, sel, data)
        stalled = bool(self.stall) and self.random.random() < self.stall
        ctx.set(bus.stall, stalled)
        driven = [0, 0, 0, stalled]     # ack, err, dat_r, stall as last set
        signals = (bus.cyc, bus.stb, bus.we, bus.adr, bus.sel, bus.dat_w)
        async for _, _, cyc, stb, we, adr, sel, dat_w in ctx.tick().sample(*signals):
            self.cycle += 1
            if in_flight and not cyc:
                self.violations.append(f"cycle {self.cycle}: cyc dropped with "
                                       f"{len(in_flight)} requests in flight")
                in_flight.clear()
            if cyc and stb and not stalled:
                due = self.cycle + self.random.randint(*self.latency) - 1
                in_flight.append((due, self.cycle, bool(we), adr << 2, sel, dat_w))
            ack = err = 0
            data = driven[2]                # dat_r matters only with ack: leave it
            if in_flight and in_flight[0][0] <= self.cycle:
                _, taken, write, address, sel_, dat = in_flight.popleft()
                access = self._answer(taken, write, address, sel_, dat)
                ack, err, data = int(not access.error), int(access.error), access.data
            elif not in_flight and self.spurious and self.random.random() < self.spurious:
                ack, data = 1, 0xdeadbeef
                self.spurious_acks += 1
            stalled = bool(self.stall) and self.random.random() < self.stall
            # Only what changes is set: a long co-simulation spends most of its time in the
            # simulator's signal updates.
            for index, (signal, value) in enumerate(((bus.ack, ack), (bus_err, err),
                                                     (bus.dat_r, data), (bus.stall, stalled))):
                if driven[index] != value:
                    ctx.set(signal, value)
                    driven[index] = value
