"""The system the board tops carry: UART bridge, transport, echo device and MSI recorder.

:class:`BridgeSoC` is platform-independent (a serial line in and out, LED outputs), so the whole
system is simulated bit by bit in the tests; :mod:`boards.top` only adds the pins.

Bus map (byte offsets on the bridge's bus)
------------------------------------------
* from 0: the transport's register window (registers, config space, doorbells);
* from :data:`RECORDER_BASE`: the :class:`~hw.soc.recorder.MSIRecorder`.
"""

from collections.abc import Mapping

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .._checks import check_int
from ..transport import VirtioMMIOTransport

from .bridge import UARTBridge
from .echo import ECHO_CONFIG_SIZE, EchoDevice
from .recorder import MSIRecorder
from .uart import UARTReceiver, UARTTransmitter


__all__ = ["RECORDER_BASE", "RECORDER_DEPTH", "BOARD_TRANSPORT", "BridgeSoC", "stretched"]

#: Byte offset of the MSI recorder on the bridge's bus, above any transport window.
RECORDER_BASE = 0x8000

#: MSI messages the recorder keeps: a few bring-ups' worth (one per vector each).
RECORDER_DEPTH = 16

#: The transport the boards carry: a small virtio device with per-queue doorbells and MSI.
BOARD_TRANSPORT = dict(
    device_id=0x1f,              # an unassigned ID (virtio 1.2 §5): no Linux driver binds to it
    vendor_id=0x1af4,
    num_queues=2,
    queue_size_max=64,
    config_size=ECHO_CONFIG_SIZE,
    msi="v2", msi_vectors=4, msi_sharing=False,
    notify_base=0x1000, notify_multiplier=4,
)


class BridgeSoC(wiring.Component):
    """Transport behind a UART-to-Wishbone bridge, with a device and an MSI recorder.

    Parameters
    ----------
    divisor : int
        UART clock cycles per bit.
    timeout : int
        Bridge frame timeout in cycles (see :class:`~hw.soc.bridge.UARTBridge`).
    transport : dict
        :class:`~hw.VirtioMMIOTransport` parameters; ``config_size`` must be the echo device's.
    stretch : int
        Cycles an MSI or bridge activity pulse keeps its LED on.

    Members
    -------
    rx : In(1, init=1)
        Serial line from the host.
    tx : Out(1, init=1)
        Serial line to the host.
    irq : Out(1)
        The transport's wired interrupt.
    msi_led : Out(1)
        On for ``stretch`` cycles after each MSI message.
    activity : Out(1)
        On while the bridge works on a frame, and ``stretch`` cycles after.

    Raises
    ------
    TypeError
        If ``transport`` is not a mapping or ``stretch`` not an integer; and as
        :class:`~hw.soc.uart.UARTReceiver` for ``divisor``, :class:`~hw.soc.bridge.UARTBridge`
        for ``timeout``, :class:`~hw.VirtioMMIOTransport` for the entries of ``transport``.
    ValueError
        If ``transport["config_size"]`` is not the echo device's, the transport's window reaches
        :data:`RECORDER_BASE`, or ``stretch`` is below 1; and as the same three classes.
    """

    def __init__(self, *, divisor, timeout, transport=BOARD_TRANSPORT, stretch=1 << 20):
        if not isinstance(transport, Mapping):
            raise TypeError(f"transport must be a mapping of VirtioMMIOTransport parameters, "
                            f"not {transport!r}")
        self._stretch = check_int("stretch", stretch, "a positive integer", lambda s: s >= 1)
        if transport.get("config_size") != ECHO_CONFIG_SIZE:
            raise ValueError(f"transport config_size must be {ECHO_CONFIG_SIZE} (the echo "
                             f"device's), not {transport.get('config_size')!r}")
        self.transport = VirtioMMIOTransport(**transport)
        window = 4 << self.transport.bus.signature.addr_width
        if window > RECORDER_BASE:
            raise ValueError(f"transport window 0..{window - 1:#x} (from notify_base, "
                             f"notify_multiplier, num_queues) overlaps the recorder at "
                             f"{RECORDER_BASE:#x}")
        self.uart_rx = UARTReceiver(divisor=divisor)
        self.uart_tx = UARTTransmitter(divisor=divisor)
        self.bridge = UARTBridge(timeout=timeout)
        self.device = EchoDevice(num_queues=self.transport.num_queues)
        self.recorder = MSIRecorder(depth=RECORDER_DEPTH)
        super().__init__({
            "rx":       In(1, init=1),
            "tx":       Out(1, init=1),
            "irq":      Out(1),
            "msi_led":  Out(1),
            "activity": Out(1),
        })

    @property
    def has_msi(self):
        """The transport has an MSI stream (``msi`` member), connected to the recorder."""
        return "msi" in self.transport.signature.members

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = uart_rx = self.uart_rx
        m.submodules.uart_tx = uart_tx = self.uart_tx
        m.submodules.bridge = bridge = self.bridge
        m.submodules.transport = transport = self.transport
        m.submodules.device = device = self.device
        m.submodules.recorder = recorder = self.recorder

        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx), self.irq.eq(transport.irq)]
        wiring.connect(m, uart_rx.data, bridge.rx)
        wiring.connect(m, bridge.tx, uart_tx.data)
        port = transport.device
        wiring.connect(m, port.notify, device.notify)
        wiring.connect(m, port.config, device.config)
        m.d.comb += [port.config_change.eq(device.config_change), device.reset.eq(port.reset)]
        m.d.comb += [port.queues[q].used.eq(device.used[q]) for q in range(transport.num_queues)]
        if self.has_msi:
            wiring.connect(m, transport.msi, recorder.msi)

        # Address decoder: the top bit of the recorder's base selects the recorder.
        host = bridge.bus
        select_bit = ceil_log2(RECORDER_BASE) - 2
        to_recorder = host.adr[select_bit]
        to_transport = host.adr[transport.bus.signature.addr_width:] == 0
        for target, selected in ((transport.bus, ~to_recorder & to_transport),
                                 (recorder.bus, to_recorder)):
            m.d.comb += [
                target.adr.eq(host.adr),
                target.sel.eq(host.sel),
                target.we.eq(host.we),
                target.dat_w.eq(host.dat_w),
                target.cyc.eq(host.cyc & selected),
                target.stb.eq(host.stb & selected),
            ]
        # A hole in the map (between the windows) acknowledges at once and reads 0.
        hole_ack = Signal()
        m.d.sync += hole_ack.eq(host.cyc & host.stb & ~to_recorder & ~to_transport & ~hole_ack)
        with m.If(to_recorder):
            m.d.comb += [host.ack.eq(recorder.bus.ack), host.dat_r.eq(recorder.bus.dat_r)]
        with m.Elif(to_transport):
            m.d.comb += [host.ack.eq(transport.bus.ack), host.dat_r.eq(transport.bus.dat_r)]
        with m.Else():
            m.d.comb += host.ack.eq(hole_ack)

        m.d.comb += [
            self.msi_led.eq(stretched(m, recorder.activity, self._stretch)),
            self.activity.eq(stretched(m, bridge.active, self._stretch)),
        ]
        return m


def stretched(m, pulse, cycles):
    """A signal of ``m`` that is high for ``cycles`` cycles after each cycle ``pulse`` is high
    (so that an LED shows a one-cycle event)."""
    timer = Signal(range(cycles + 1))
    with m.If(pulse):
        m.d.sync += timer.eq(cycles)
    with m.Elif(timer != 0):
        m.d.sync += timer.eq(timer - 1)
    return timer != 0
