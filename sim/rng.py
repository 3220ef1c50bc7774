"""virtio-rng device logic in simulation (virtio 1.2 §5.4), on the transport's device side.

The device has one queue (requestq). On a notification, and for as long as the driver keeps
making buffers available, it takes each chain from the ring (:class:`sim.virtqueue.SplitRing`,
checked whole, decisions.md D11), fills every writable buffer with bytes from a generator seeded
at construction (so a run is repeatable), spends one cycle per ``bytes_per_cycle`` bytes doing
so, returns the chain through the used ring and pulses ``queues.used[0]``, unless the driver
asked for no interrupt (VRING_AVAIL_F_NO_INTERRUPT). A virtio-rng chain must be all writable:
a readable buffer is the wrong direction for the device (D11 case 10).

On a malformed ring the device pulses ``needs_reset`` once, keeps the error in :attr:`errors`
and serves nothing more until the driver resets the device. A device reset, or QueueReady
written 0, ends the queue's work.

Device logic of the Linux co-simulation (:mod:`sim.uml`) has this interface: ``name``,
``transport(**personality)``, ``bind(memory)``, ``idle`` and ``run(ctx)``; see
:class:`sim.uml.cosim.CoSimulation`.
"""

import random

from hw import VirtioMMIOTransport

from .virtqueue import RingError, SplitRing


__all__ = ["RngDevice", "RNG_DEVICE_ID"]

#: virtio 1.2 §5: device ID 4, entropy source.
RNG_DEVICE_ID = 4


class RngDevice:
    """A virtio entropy device.

    Parameters
    ----------
    seed : int
        Seed of the byte generator.
    queue_size_max : int
        QueueNumMax of the request queue.
    bytes_per_cycle : int
        Fill rate: the device spends ``ceil(length / bytes_per_cycle)`` cycles on a chain.
    """

    name = "rng"

    def __init__(self, *, seed=0, queue_size_max=64, bytes_per_cycle=4):
        if not isinstance(bytes_per_cycle, int) or bytes_per_cycle < 1:
            raise ValueError(f"bytes_per_cycle must be a positive integer, not "
                             f"{bytes_per_cycle!r}")
        self.queue_size_max = queue_size_max
        self.bytes_per_cycle = bytes_per_cycle
        self._random = random.Random(seed)
        self.memory = None
        self.port = None
        self.requests = 0
        self.bytes = 0
        self.errors = []
        #: Every byte the device has written into the driver's buffers, in order.
        self.produced = bytearray()
        self._ring = None
        self._pending = False
        self._busy = 0
        self._broken = False

    def transport(self, **personality):
        """The transport this device sits behind, with ``personality`` (``msi``,
        ``notify_base``, ...) passed on."""
        transport = VirtioMMIOTransport(device_id=RNG_DEVICE_ID, vendor_id=0x1af4, num_queues=1,
                                        queue_size_max=self.queue_size_max, **personality)
        self.port = transport.device
        return transport

    def bind(self, memory):
        """Guest memory (:class:`sim.memory.GuestMemory`) the rings and buffers are in."""
        self.memory = memory

    @property
    def idle(self):
        """Nothing left that the device could do now."""
        return self._broken or (not self._pending and not self._busy)

    def _stop(self):
        self._ring, self._pending, self._busy = None, False, 0

    def _ring_of(self, ctx):
        if self._ring is None:
            queues = self.port.queues
            self._ring = SplitRing(self.memory, size=ctx.get(queues.size[0]),
                                   desc=ctx.get(queues.desc[0]), driver=ctx.get(queues.driver[0]),
                                   device=ctx.get(queues.device[0]))
        return self._ring

    def _serve(self, ctx):
        """Take one chain and fill it; returns ``(ring, chain, written)`` or ``None``."""
        ring = self._ring_of(ctx)
        chain = ring.pop()
        if chain is None:
            return None
        if chain.readable:
            raise RingError(10, f"chain from head {chain.head} has a readable buffer; "
                                f"virtio-rng takes writable buffers only")
        written = 0
        for buffer in chain.buffers:
            data = self._random.randbytes(buffer.length)
            self.memory.write(buffer.address, data)
            self.produced += data
            written += buffer.length
        return ring, chain, written

    async def run(self, ctx):
        """The device, as a background testbench."""
        port = self.port
        ctx.set(port.notify.ready, 1)
        done = None
        sampled = (port.notify.valid, port.notify.p.queue, port.reset, port.queues.ready)
        async for _, _, notified, queue, reset, ready in ctx.tick().sample(*sampled):
            ctx.set(port.queues.used, 0)
            ctx.set(port.needs_reset, 0)
            if reset:
                self._stop()
                self._broken = False
                done = None
                continue
            if not ready & 1:
                self._stop()
                done = None
                continue
            if notified and queue == 0:
                self._pending = True
            if self._broken or not (self._busy or self._pending):
                continue
            try:
                if self._busy:
                    self._busy -= 1
                    if self._busy == 0:
                        self._complete(ctx, *done)
                    continue
                done = self._serve(ctx)
            except RingError as error:
                self.errors.append(str(error))
                self._broken = True
                self._stop()
                ctx.set(port.needs_reset, 1)
                continue
            if done is None:
                self._pending = False
            else:
                self._busy = max(1, -(-done[2] // self.bytes_per_cycle))

    def _complete(self, ctx, ring, chain, written):
        ring.push(chain, written)
        self.requests += 1
        self.bytes += written
        if not ring.interrupt_suppressed():
            ctx.set(self.port.queues.used, 1)
