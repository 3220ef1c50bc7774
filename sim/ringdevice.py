"""Device logic in simulation that serves split virtqueues in guest memory: the base of the
virtio-rng (:mod:`sim.rng`) and virtio-console (:mod:`sim.console`) devices of the Linux
co-simulation (:mod:`sim.uml`).

:class:`RingDevice` does what every such device does on the transport's device side: it takes
notifications, keeps one :class:`sim.virtqueue.SplitRing` per ready queue, serves one chain at
a time (queues in turn), spends one cycle per ``bytes_per_cycle`` bytes of the chain, returns it
through the used ring and pulses ``queues.used[q]`` unless the driver asked for no interrupt. A
malformed ring (decisions.md D11, D16e) pulses ``needs_reset`` once, keeps the error in
:attr:`errors` and stops all service until the driver resets the device; a device reset, or
QueueReady written 0, ends a queue's work. A subclass says what a chain means
(:meth:`serve_chain`) and whether a queue has work without a notification (:meth:`can_serve`).

The interface the co-simulation uses: ``name``, ``transport(**personality)``, ``bind(memory)``,
``idle`` and ``run(ctx)``.
"""

from hw import VirtioMMIOTransport

from .virtqueue import RingError, SplitRing


__all__ = ["RingDevice", "VENDOR_ID"]

#: VendorID of the simulated devices.
VENDOR_ID = 0x1af4


class RingDevice:
    """Base of ring-serving device logic.

    Parameters
    ----------
    device_id : int
    num_queues : int
    queue_size_max : int
        QueueNumMax of every queue.
    bytes_per_cycle : int
        Service rate: a chain takes ``ceil(total bytes / bytes_per_cycle)`` cycles.

    Raises
    ------
    ValueError
        If ``bytes_per_cycle`` is not a positive integer.
    """

    name = "ring"

    def __init__(self, *, device_id, num_queues, queue_size_max=64, bytes_per_cycle=4):
        if not isinstance(bytes_per_cycle, int) or bytes_per_cycle < 1:
            raise ValueError(f"bytes_per_cycle must be a positive integer, not "
                             f"{bytes_per_cycle!r}")
        self.device_id = device_id
        self.num_queues = num_queues
        self.queue_size_max = queue_size_max
        self.bytes_per_cycle = bytes_per_cycle
        self.memory = None
        self.port = None
        self.requests = 0
        self.bytes = 0
        self.errors = []
        self._rings = {}
        self._pending = set()
        self._busy = 0
        self._done = None
        self._broken = False
        self._turn = 0

    # --- what a subclass defines -----------------------------------------------------------

    def serve_chain(self, queue, chain):
        """Do what ``chain`` (a :class:`sim.virtqueue.Chain` of ``queue``) asks; return the
        number of bytes written into it. Raise :class:`sim.virtqueue.RingError` for a chain of
        the wrong shape for the device (D11 case 10)."""
        raise NotImplementedError

    def can_serve(self, queue):
        """Whether the device could serve a chain of ``queue`` now (a receive queue without
        anything to receive could not, and keeps its buffers)."""
        return True

    def reset(self):
        """The driver reset the device: clear device-specific state."""

    # --- the interface of the co-simulation --------------------------------------------------

    def transport(self, **personality):
        """The transport this device sits behind, with ``personality`` (``msi``,
        ``notify_base``, ...) passed on."""
        transport = VirtioMMIOTransport(device_id=self.device_id, vendor_id=VENDOR_ID,
                                        num_queues=self.num_queues,
                                        queue_size_max=self.queue_size_max, **personality)
        self.port = transport.device
        return transport

    def bind(self, memory):
        """Guest memory (:class:`sim.memory.GuestMemory`) the rings and buffers are in."""
        self.memory = memory

    @property
    def idle(self):
        """Nothing left that the device could do now."""
        return self._broken or (not self._busy and not self._work())

    def wake(self, queue):
        """Look at ``queue`` again (for device logic that gets something to deliver)."""
        self._pending.add(queue)

    # --- the process -------------------------------------------------------------------------

    def _work(self):
        return [q for q in sorted(self._pending) if self.can_serve(q)]

    def _stop(self, queues=None):
        for q in list(self._rings) if queues is None else queues:
            self._rings.pop(q, None)
            self._pending.discard(q)
        if self._done is not None and (queues is None or self._done[0] in queues):
            self._busy, self._done = 0, None

    def _ring(self, ctx, queue):
        if queue not in self._rings:
            queues = self.port.queues
            self._rings[queue] = SplitRing(
                self.memory, size=ctx.get(queues.size[queue]), desc=ctx.get(queues.desc[queue]),
                driver=ctx.get(queues.driver[queue]), device=ctx.get(queues.device[queue]))
        return self._rings[queue]

    def _next_queue(self):
        work = self._work()
        if not work:
            return None
        later = [q for q in work if q >= self._turn]
        queue = later[0] if later else work[0]
        self._turn = queue + 1
        return queue

    def _start(self, ctx):
        """Take a chain of the next queue with work and serve it; ``None`` if there is none."""
        queue = self._next_queue()
        if queue is None:
            return
        ring = self._ring(ctx, queue)
        chain = ring.pop()
        if chain is None:
            self._pending.discard(queue)
            return
        written = self.serve_chain(queue, chain)
        total = sum(buffer.length for buffer in chain.buffers)
        self._busy = max(1, -(-total // self.bytes_per_cycle))
        self._done = (queue, ring, chain, written)

    def _complete(self, ctx):
        queue, ring, chain, written = self._done
        self._done = None
        ring.push(chain, written)
        self.requests += 1
        self.bytes += written
        if not ring.interrupt_suppressed():
            ctx.set(self.port.queues.used, 1 << queue)

    async def run(self, ctx):
        """The device, as a background testbench."""
        port = self.port
        ctx.set(port.notify.ready, 1)
        sampled = (port.notify.valid, port.notify.p.queue, port.reset, port.queues.ready)
        async for _, _, notified, queue, reset, ready in ctx.tick().sample(*sampled):
            ctx.set(port.queues.used, 0)
            ctx.set(port.needs_reset, 0)
            if reset:
                self._stop()
                self._broken = False
                self.reset()
                continue
            self._stop([q for q in range(self.num_queues) if not ready >> q & 1])
            if notified and queue < self.num_queues and ready >> queue & 1:
                self._pending.add(queue)
            if self._broken:
                continue
            try:
                if self._busy:
                    self._busy -= 1
                    if self._busy == 0:
                        self._complete(ctx)
                else:
                    self._start(ctx)
            except RingError as error:
                self.errors.append(str(error))
                self._broken = True
                self._stop()
                ctx.set(port.needs_reset, 1)
