"""A minimal device for the board tops: answers every notification with a used-buffer event.

It makes the device side observable from the host without any ring processing: ring a doorbell
and an interrupt (or an MSI message) follows; write the scratch word in config space and a
configuration-change interrupt follows.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .._checks import check_int
from ..device import ConfigPortSignature, Notification


__all__ = ["ECHO_CONFIG", "ECHO_CONFIG_SIZE", "EchoDevice"]

#: Config space of the echo device, word index -> meaning.
ECHO_CONFIG = {
    "notifications": 0,  # R: notifications received since the last reset (wraps at 2**32)
    "scratch":       1,  # RW: any value; a write pulses config_change
}
ECHO_CONFIG_SIZE = 4 * len(ECHO_CONFIG)


class EchoDevice(wiring.Component):
    """Device logic that completes every request at once.

    Parameters
    ----------
    num_queues : int

    Members
    -------
    notify : In(stream.Signature(Notification))
    config : In(ConfigPortSignature(config_size=ECHO_CONFIG_SIZE))
    used : Out(num_queues)
        Used-buffer events, bit ``q`` to ``transport.device.queues[q].used``.
    config_change : Out(1)
    reset : In(1)

    The members are those of the transport's ``device`` port that this device uses, not the whole
    flipped :class:`~hw.device.DeviceSignature`: Amaranth 0.5.10 cannot flip an interface that
    holds an array of interfaces (``queues``), so ``wiring.connect`` on the whole port fails.

    Operation
    ---------
    A notification for queue ``q`` is accepted at once and pulses ``queues[q].used`` on the next
    cycle (the transport ignores it if the queue is not ready). Config space is
    :data:`ECHO_CONFIG`; byte enables are honoured for the scratch word. The device's reset clears
    both words.

    Raises
    ------
    TypeError
        If ``num_queues`` is not an integer.
    ValueError
        If ``num_queues`` is below 1.
    """

    def __init__(self, *, num_queues):
        self._num_queues = check_int("num_queues", num_queues, "a positive integer",
                                     lambda n: n >= 1)
        super().__init__({
            "notify":        In(stream.Signature(Notification)),
            "config":        In(ConfigPortSignature(config_size=ECHO_CONFIG_SIZE)),
            "used":          Out(num_queues),
            "config_change": Out(1),
            "reset":         In(1),
        })

    def elaborate(self, platform):
        m = Module()
        notify = self.notify
        cfg = self.config

        count = Signal(32)
        scratch = Signal(32)
        m.d.comb += notify.ready.eq(1)
        for q in range(self._num_queues):
            m.d.sync += self.used[q].eq(notify.valid & (notify.p.queue == q))
        with m.If(notify.valid):
            m.d.sync += count.eq(count + 1)

        with m.If(cfg.r_stb):
            with m.Switch(cfg.addr):
                with m.Case(ECHO_CONFIG["notifications"]):
                    m.d.sync += cfg.r_data.eq(count)
                with m.Case(ECHO_CONFIG["scratch"]):
                    m.d.sync += cfg.r_data.eq(scratch)
        m.d.sync += self.config_change.eq(0)
        with m.If(cfg.w_stb & (cfg.addr == ECHO_CONFIG["scratch"])):
            for lane in range(4):
                with m.If(cfg.sel[lane]):
                    m.d.sync += scratch.word_select(lane, 8).eq(cfg.w_data.word_select(lane, 8))
            m.d.sync += self.config_change.eq(1)

        with m.If(self.reset):
            m.d.sync += [count.eq(0), scratch.eq(0)]
        return m
