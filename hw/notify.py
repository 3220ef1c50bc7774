"""Per-queue notification coalescing between the doorbells and the device side."""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ._checks import check_bool, check_int
from .device import Notification
from .logic import round_robin


__all__ = ["NotificationQueue"]


class NotificationQueue(wiring.Component):
    """Holds one pending notification per queue and hands them to the device side.

    A doorbell for queue ``q`` sets ``q``'s pending bit and stores its data, replacing the data
    of a notification still pending for ``q`` (decisions.md D9: the latest data wins). Pending
    queues are offered on ``notify`` in round-robin order, so a queue that is rung continuously
    cannot starve the others. Nothing is lost while ``notify.ready`` is low, and nothing is
    invented: each delivered notification stands for at least one doorbell.

    Doorbells for a queue that does not exist or whose ``queue_ready`` bit is 0 are dropped
    (decisions.md D9), and a queue's pending notification is dropped when its ready bit falls
    (the driver tore the queue down; the device must not touch it).

    Parameters
    ----------
    num_queues : int
    with_data : bool
        Keep ``next_off``/``next_wrap`` (VIRTIO_F_NOTIFICATION_DATA offered). Without it the
        delivered data fields are 0 and no storage is spent on them.

    Members
    -------
    doorbell : In(stream.Signature(Notification, always_ready=True))
        One cycle of ``valid`` per doorbell write.
    queue_ready : In(num_queues)
        QueueReady of every queue.
    notify : Out(stream.Signature(Notification))
        Notifications for the device.

    Latency
    -------
    A doorbell in cycle N is offered on ``notify`` from cycle N+1 when the output register is
    empty (or accepted in cycle N). The output is registered.

    Raises
    ------
    TypeError
        If ``num_queues`` is not an integer or ``with_data`` not a bool.
    ValueError
        If ``num_queues`` is not from 1 to 65536 (the width of ``Notification.queue``).
    """
    def __init__(self, *, num_queues, with_data=True):
        self._num_queues = check_int("num_queues", num_queues, "an integer from 1 to 65536",
                                     lambda n: 1 <= n <= 0x10000)
        self._with_data = check_bool("with_data", with_data)
        super().__init__({
            "doorbell":    In(stream.Signature(Notification, always_ready=True)),
            "queue_ready": In(num_queues),
            "notify":      Out(stream.Signature(Notification)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._num_queues

        pending = Signal(n)
        data    = Array(Signal(16, name=f"data{q}") for q in range(n))

        # Output register: loaded when empty or when its content is being accepted. Pending
        # queues are chosen round-robin.
        load = ~self.notify.valid | self.notify.ready
        any_pending = pending.any()
        grant_hot, grant = round_robin(m, pending, load & any_pending)
        take = Mux(load, grant_hot, 0)
        with m.If(load):
            m.d.sync += self.notify.valid.eq(any_pending)
            m.d.sync += self.notify.p.queue.eq(grant)
            if self._with_data:
                m.d.sync += self.notify.p.as_value()[16:].eq(data[grant])

        # Doorbell: a queue index outside the implemented range never matches `hit`.
        hit = Signal(n)
        with m.If(self.doorbell.valid):
            for q in range(n):
                m.d.comb += hit[q].eq(self.doorbell.p.queue == q)
        ring = hit & self.queue_ready
        if self._with_data:
            with m.If(ring.any()):
                m.d.sync += data[self.doorbell.p.queue[:max(1, (n - 1).bit_length())]].eq(
                    self.doorbell.p.as_value()[16:])

        # A doorbell in the cycle its queue is taken pends again: the device gets both.
        m.d.sync += pending.eq((pending & ~take | ring) & self.queue_ready)

        return m
