"""A bench for :class:`hw.virtqueue.VirtqueueEngine` in simulation: rings, memory and a device.

:class:`EngineBench` puts the engine between

* guest memory on its bus (:class:`sim.busmemory.WishboneMemory`, with wait states and error
  injection if asked for), in which the tests lay out rings with :class:`sim.virtqueue.DriverRing`;
* a driver model of the transport's device side: ``queues`` set directly
  (:meth:`EngineBench.set_queue`), notifications offered on ``notify``;
* a device model on the engine's streams (:class:`StreamDevice`): it takes every request, reads
  its readable bytes (with random back-pressure if asked for) and writes what ``respond`` returns;
  it also checks the engine's side of the streams' contract (decisions.md D11h), and the bench
  fails on a breach.

It records the requests, the ``used`` pulses and the ``needs_reset`` pulses, and every wait it
offers is bounded (:exc:`TimeoutError` naming what it waited for).
"""

import random
from dataclasses import dataclass, field

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring

from hw.virtqueue import VirtqueueEngine

from .busmemory import WishboneMemory
from .memory import GuestMemory
from .virtqueue import DriverRing
from .waves import engine_traces, simulate


__all__ = ["Request", "StreamDevice", "EngineBench"]


@dataclass
class Request:
    queue: int
    head: int
    readable: int
    writable: int
    data: bytes = b""           # the readable bytes as the device got them
    written: int = 0            # bytes the device sent back
    complete: bool = False      # its last write beat was taken
    refused: bool = False       # the device raised ``error`` for it
    aborted: bool = False       # the engine dropped it (``abort``)


def _beats(payload):
    """``payload`` as (data, count, last) write beats; one empty last beat for no bytes."""
    if not payload:
        return [(0, 0, 1)]
    chunks = [payload[i:i + 4] for i in range(0, len(payload), 4)]
    return [(int.from_bytes(chunk, "little"), len(chunk), int(i == len(chunks) - 1))
            for i, chunk in enumerate(chunks)]


def _ragged_beats(payload, rng):
    """``payload`` in beats of 1 to 4 bytes, then an empty last beat."""
    beats, at = [], 0
    while at < len(payload):
        chunk = payload[at:at + rng.randrange(1, 5)]
        beats.append((int.from_bytes(chunk, "little"), len(chunk), 0))
        at += len(chunk)
    return beats + [(0, 0, 1)]


class StreamDevice:
    """Device logic on the engine's ``request``, ``read`` and ``write`` streams, and a monitor
    of the engine's side of that contract (decisions.md D11h).

    Parameters
    ----------
    respond : callable
        ``respond(request) -> bytes``: what to write back for a request (its ``data`` filled).
    refuse : callable or None
        ``refuse(request) -> bool``: raise ``error`` for this request (D11 case 10).
    backpressure : float
        Probability of holding ``ready``/``valid`` low in a cycle.
    ragged : bool
        Write in beats of 1 to 4 bytes at random, and end with an empty ``last`` beat (else 4
        bytes a beat, ``last`` on the last).
    eager : bool
        Hold ``read.ready`` high in every cycle, whether or not a chain is held (else only while
        the chain held has bytes left to read).
    seed : int

    A test steers it through :attr:`paused` (no read beat taken while set) and
    :meth:`refuse_now`. Every breach of the engine's side is kept in :attr:`violations` (the
    bench fails on any): a read beat taken while no chain with bytes left is held, a beat whose
    ``count`` or ``last`` is not what the chain's ``readable`` total leaves, an ``abort`` while
    no chain is held.
    """

    def __init__(self, respond, *, refuse=None, backpressure=0.0, ragged=False, eager=False,
                 seed=0):
        self.respond = respond
        self.refuse = refuse
        self.backpressure = backpressure
        self.eager = eager
        self.random = random.Random(seed)
        self.beats = (lambda payload: _ragged_beats(payload, self.random)) if ragged else _beats
        self.requests = []
        self.violations = []
        self.paused = False
        self.take_requests = True
        self.cycle = 0
        self._refuse_now = False

    def refuse_now(self):
        """Raise ``error`` in the next cycle for the chain held (D11 case 10 from the device)."""
        self._refuse_now = True

    def _pause(self):
        return self.backpressure and self.random.random() < self.backpressure

    def _take_beat(self, current, beat):
        left = 0 if current is None else current.readable - len(current.data)
        if left <= 0:
            self.violations.append(f"cycle {self.cycle}: a read beat taken while no chain with "
                                   f"bytes left to read is held")
            return
        if (beat.count, beat.last) != (min(4, left), int(left <= 4)):
            self.violations.append(f"cycle {self.cycle}: a read beat of count {beat.count}, "
                                   f"last {beat.last} with {left} bytes left")
        current.data += beat.data.to_bytes(4, "little")[:min(4, left)]

    async def run(self, ctx, engine):
        beats = []
        current = None
        ctx.set(engine.request.ready, 1)
        signals = (engine.request.valid, engine.request.p, engine.read.valid, engine.read.p,
                   engine.write.ready, engine.abort)
        async for _, _, req_valid, req, rd_valid, rd, wr_ready, abort in \
                ctx.tick().sample(*signals):
            self.cycle += 1
            ctx.set(engine.error, 0)
            took_request = req_valid and self._last_request_ready
            # A beat taken in the cycle of abort, or of this device's error, is the chain's.
            if rd_valid and self._last_read_ready:
                self._take_beat(current, rd)
            if current is not None and current.refused:
                current, beats = None, []
            if abort:
                if current is None:
                    self.violations.append(f"cycle {self.cycle}: abort with no chain held")
                else:
                    current.aborted = True
                current, beats = None, []
            if beats and wr_ready and self._last_write_valid:
                beats.pop(0)
                if not beats:
                    current.complete = True
                    current = None
            if took_request:
                current = Request(req.queue, req.head, req.readable, req.writable)
                self.requests.append(current)
                if self.refuse is not None and self.refuse(current):
                    self._refuse_now = True
            if self._refuse_now and current is not None:
                ctx.set(engine.error, 1)
                current.refused = True
            self._refuse_now = False
            if current is not None and not current.refused and not beats and \
                    len(current.data) == current.readable:
                payload = self.respond(current)
                current.written = len(payload)
                beats = self.beats(payload)
            self._last_request_ready = int(current is None and self.take_requests)
            ctx.set(engine.request.ready, self._last_request_ready)
            wants = current is not None and len(current.data) < current.readable
            read_ready = int((self.eager or wants) and not self.paused and not self._pause())
            ctx.set(engine.read.ready, read_ready)
            self._last_read_ready = read_ready
            write_valid = int(bool(beats) and not self._pause())
            if beats:
                data, count, last = beats[0]
                ctx.set(engine.write.p.data, data)
                ctx.set(engine.write.p.count, count)
                ctx.set(engine.write.p.last, last)
            ctx.set(engine.write.valid, write_valid)
            self._last_write_valid = write_valid

    _last_request_ready = 1
    _last_read_ready = 0
    _last_write_valid = 0


@dataclass
class _Events:
    used: list = field(default_factory=list)            # (cycle, queue)
    needs_reset: list = field(default_factory=list)     # cycles


class _WithDevice(Elaboratable):
    """The engine and device logic in gateware on its streams (and whatever else ``parts``
    holds, such as the device's disk)."""

    def __init__(self, engine, device, connect):
        self.engine, self.device, self.connect = engine, device, connect

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine
        m.submodules.device = device = self.device
        wiring.connect(m, engine.request, device.request)
        wiring.connect(m, engine.read, device.read)
        wiring.connect(m, device.write, engine.write)
        m.d.comb += [engine.error.eq(device.error), device.abort.eq(engine.abort),
                     device.reset.eq(engine.reset)]
        if self.connect is not None:
            self.connect(m)
        return m


class EngineBench:
    """The engine, guest memory on its bus and a device, in one simulation.

    Parameters
    ----------
    respond, refuse, backpressure, ragged, eager
        For :class:`StreamDevice` (default: write nothing back).
    device : wiring.Component or None
        Device logic in gateware instead of :class:`StreamDevice`: it has the flipped
        ``request``, ``read``, ``write`` streams and ``error``, ``abort``, ``reset``.
    connect : callable or None
        ``connect(m)``: more wiring for a gateware ``device`` (its disk, say).
    processes : iterable of async callables
        More background testbenches (models of what a gateware device masters).
    memory_size : int
        Bytes of guest memory, from address 0.
    stall, latency, faults, seed, on_write, spurious
        For :class:`sim.busmemory.WishboneMemory`.
    event_idx : bool
        VIRTIO_F_EVENT_IDX negotiated.
    **engine
        For :class:`hw.virtqueue.VirtqueueEngine` (``num_queues``, ``addr_width``,
        ``max_chain``).
    """

    def __init__(self, *, respond=lambda request: b"", refuse=None, backpressure=0.0,
                 ragged=False, eager=False, memory_size=1 << 16, stall=0.0, latency=(1, 1),
                 faults=(), seed=0, on_write=None, spurious=0.0, event_idx=False, device=None,
                 connect=None, processes=(), **engine):
        engine.setdefault("num_queues", 1)
        engine.setdefault("addr_width", 20)
        self.engine = VirtqueueEngine(**engine)
        self.guest = GuestMemory(bytearray(memory_size))
        self.memory = WishboneMemory(self.guest, stall=stall, latency=latency, faults=faults,
                                     seed=seed, on_write=on_write, spurious=spurious)
        self.gateware = device
        self.device = StreamDevice(respond, refuse=refuse, backpressure=backpressure,
                                   ragged=ragged, eager=eager, seed=seed + 1)
        self.dut = self.engine if device is None else _WithDevice(self.engine, device, connect)
        self.processes = list(processes)
        self.event_idx = event_idx
        self.events = _Events()
        self.cycle = 0
        self._queues = {}

    @property
    def requests(self):
        return self.device.requests

    def ring(self, queue, *, size, base):
        """Lay out queue ``queue``'s ring at ``base`` and remember it for :meth:`set_queue`."""
        ring = DriverRing(self.guest, size=size, base=base)
        self._queues[queue] = ring
        return ring

    def set_queue(self, ctx, queue, ready=True, *, size=None):
        """The driver's QueueNum/addresses/QueueReady for ``queue`` (its ring from
        :meth:`ring`)."""
        ring = self._queues[queue]
        queues = self.engine.queues
        ctx.set(queues.size[queue], ring.size if size is None else size)
        ctx.set(queues.desc[queue], ring.desc)
        ctx.set(queues.driver[queue], ring.driver)
        ctx.set(queues.device[queue], ring.device)
        ready_bits = ctx.get(queues.ready)
        ctx.set(queues.ready, ready_bits | 1 << queue if ready else ready_bits & ~(1 << queue))

    async def notify(self, ctx, queue):
        ctx.set(self.engine.notify.p.queue, queue)
        ctx.set(self.engine.notify.valid, 1)
        await ctx.tick()
        ctx.set(self.engine.notify.valid, 0)

    async def reset(self, ctx):
        ctx.set(self.engine.reset, 1)
        await ctx.tick()
        ctx.set(self.engine.reset, 0)

    async def until_idle(self, ctx, *, bound=100_000, what="the engine to finish"):
        """Tick until the engine is idle and the device holds nothing (bounded)."""
        quiet = 0
        for _ in range(bound):
            await ctx.tick()
            idle = not ctx.get(self.engine.busy) and not ctx.get(self.engine.request.valid)
            if self.gateware is not None and hasattr(self.gateware, "busy"):
                idle = idle and not ctx.get(self.gateware.busy)
            quiet = quiet + 1 if idle else 0
            if quiet >= 4:
                return
        raise TimeoutError(f"waited {bound} cycles for {what}")

    async def _monitor(self, ctx):
        engine = self.engine
        async for _, _, used, needs_reset in ctx.tick().sample(engine.queues.used,
                                                               engine.needs_reset):
            self.cycle += 1
            for queue in range(engine.num_queues):
                if used >> queue & 1:
                    self.events.used.append((self.cycle, queue))
            if needs_reset:
                self.events.needs_reset.append(self.cycle)

    def run(self, testbench, *, name="engine", waves=None):
        """Run ``testbench(ctx)`` with the memory, device and monitors in the background
        (:func:`sim.waves.simulate`: waveforms, grouped by interface, when asked for)."""
        async def setup(ctx):
            ctx.set(self.engine.event_idx, int(self.event_idx))
            await testbench(ctx)
        async def memory(ctx):
            await self.memory.serve(ctx, self.engine.bus)

        async def device(ctx):
            await self.device.run(ctx, self.engine)
        background = [memory, self._monitor, *self.processes]
        if self.gateware is None:
            background.append(device)
        simulate(self.dut, setup, background=background, name=name, waves=waves,
                 traces=engine_traces(self.engine), cycles=10_000_000)
        assert not self.memory.violations, self.memory.violations
        if self.gateware is None:
            assert not self.device.violations, self.device.violations
