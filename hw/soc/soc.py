"""The system the board tops carry: UART bridge, transport, echo device and MSI recorder.

:class:`BridgeSoC` is platform-independent (a serial line in and out, LED outputs), so the whole
system is simulated bit by bit in the tests; :mod:`boards.top` only adds the pins.

Bus map (byte offsets on the bridge's bus)
------------------------------------------
* from 0: the transport's register window (registers, config space, doorbells);
* from :data:`RECORDER_BASE`: the :class:`~hw.soc.recorder.MSIRecorder`.

Every other offset is a hole: acknowledged, reads 0, writes dropped
(:class:`~hw.soc.decoder.WishboneDecoder`). :class:`SerialSoC` is the part every board system
shares (serial line, bridge, decoder, LEDs); :class:`hw.soc.blksoc.BlkSoC` is the other.
"""

from collections.abc import Mapping

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .._checks import check_int
from ..transport import VirtioMMIOTransport

from .bridge import ADDR_WIDTH, UARTBridge
from .decoder import WishboneDecoder
from .echo import ECHO_CONFIG_SIZE, EchoDevice
from .recorder import MSIRecorder
from .uart import UARTReceiver, UARTTransmitter


__all__ = ["RECORDER_BASE", "RECORDER_DEPTH", "BOARD_TRANSPORT", "SerialSoC", "BridgeSoC",
           "stretched"]

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


class SerialSoC(wiring.Component):
    """What every board system shares: the serial line, the UART-to-Wishbone bridge, the
    address decoder behind it and the LED outputs.

    ``windows`` are the decoder's (:class:`~hw.soc.decoder.WishboneDecoder`, on the bridge's
    ``ADDR_WIDTH``); a subclass's :meth:`elaborate` calls :meth:`serial` and connects its
    targets to the decoder's ports. ``divisor`` and ``timeout`` are checked by
    :class:`~hw.soc.uart.UARTReceiver` and :class:`~hw.soc.bridge.UARTBridge`, ``stretch``
    (a positive integer) here.

    Members
    -------
    rx : In(1, init=1)
        Serial line from the host.
    tx : Out(1, init=1)
        Serial line to the host.
    irq : Out(1)
        The transport's wired interrupt (the subclass drives it).
    msi_led : Out(1)
        On for ``stretch`` cycles after each MSI message (never without MSI).
    activity : Out(1)
        On while the bridge works on a frame, and ``stretch`` cycles after.
    """

    def __init__(self, *, divisor, timeout, stretch, windows):
        self._stretch = check_int("stretch", stretch, "a positive integer", lambda s: s >= 1)
        self.uart_rx = UARTReceiver(divisor=divisor)
        self.uart_tx = UARTTransmitter(divisor=divisor)
        self.bridge = UARTBridge(timeout=timeout)
        self.decoder = WishboneDecoder(addr_width=ADDR_WIDTH, windows=windows)
        super().__init__({
            "rx":       In(1, init=1),
            "tx":       Out(1, init=1),
            "irq":      Out(1),
            "msi_led":  Out(1),
            "activity": Out(1),
        })

    def serial(self, m):
        """Add the UART, the bridge and the decoder to ``m`` and wire them; the activity LED."""
        m.submodules.uart_rx = uart_rx = self.uart_rx
        m.submodules.uart_tx = uart_tx = self.uart_tx
        m.submodules.bridge = bridge = self.bridge
        m.submodules.decoder = decoder = self.decoder
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.data, bridge.rx)
        wiring.connect(m, bridge.tx, uart_tx.data)
        wiring.connect(m, bridge.bus, decoder.bus)
        m.d.comb += self.activity.eq(stretched(m, bridge.active, self._stretch))

    def msi_recorder(self, m, recorder, msi):
        """Add ``recorder`` to ``m`` on the decoder's ``recorder`` port, recording ``msi``
        (an MSI stream, or None); the MSI LED."""
        m.submodules.recorder = recorder
        wiring.connect(m, self.decoder.recorder, recorder.bus)
        if msi is not None:
            wiring.connect(m, msi, recorder.msi)
        m.d.comb += self.msi_led.eq(stretched(m, recorder.activity, self._stretch))


class BridgeSoC(SerialSoC):
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
    As :class:`SerialSoC`'s.

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
        if transport.get("config_size") != ECHO_CONFIG_SIZE:
            raise ValueError(f"transport config_size must be {ECHO_CONFIG_SIZE} (the echo "
                             f"device's), not {transport.get('config_size')!r}")
        self.transport = VirtioMMIOTransport(**transport)
        window = 4 << self.transport.bus.signature.addr_width
        if window > RECORDER_BASE:
            raise ValueError(f"transport window 0..{window - 1:#x} (from notify_base, "
                             f"notify_multiplier, num_queues) overlaps the recorder at "
                             f"{RECORDER_BASE:#x}")
        self.device = EchoDevice(num_queues=self.transport.num_queues)
        self.recorder = MSIRecorder(depth=RECORDER_DEPTH)
        super().__init__(divisor=divisor, timeout=timeout, stretch=stretch, windows={
            "transport": (0, self.transport.bus.signature.addr_width),
            "recorder": (RECORDER_BASE, len(self.recorder.bus.adr)),
        })

    @property
    def has_msi(self):
        """The transport has an MSI stream (``msi`` member), connected to the recorder."""
        return "msi" in self.transport.signature.members

    def elaborate(self, platform):
        m = Module()
        self.serial(m)
        m.submodules.transport = transport = self.transport
        m.submodules.device = device = self.device
        m.d.comb += self.irq.eq(transport.irq)
        wiring.connect(m, self.decoder.transport, transport.bus)
        port = transport.device
        wiring.connect(m, port.notify, device.notify)
        wiring.connect(m, port.config, device.config)
        m.d.comb += [port.config_change.eq(device.config_change), device.reset.eq(port.reset)]
        m.d.comb += [port.queues[q].used.eq(device.used[q]) for q in range(transport.num_queues)]
        # Without MSI the recorder stays on the bus, empty.
        self.msi_recorder(m, self.recorder, transport.msi if self.has_msi else None)
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
