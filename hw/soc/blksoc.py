"""The block-device system the board tops can carry: virtio-blk on a RAM disk, rings on chip.

:class:`BlkSoC` puts :class:`hw.blk.VirtioBlk` (transport, virtqueue engine, virtio-blk device)
behind the UART bridge, with the disk in block RAM (:class:`hw.blk.RamDisk`) and the guest's
memory in block RAM too (:class:`~hw.soc.guestram.GuestRAM`): the host tool
(:mod:`boards.host_blk`) lays out a split ring and the request buffers there over the bridge,
rings the doorbell, and the engine serves the request from on-chip memory.

Bus map (byte offsets on the bridge's bus, :data:`BLK_MAP`)
-----------------------------------------------------------
============================ ===================================================================
from                         what
============================ ===================================================================
0                            the transport's register window (registers, config space at
                             0x100, doorbells from ``notify_base``)
:data:`RECORDER_BASE`        the MSI recorder, with an MSI personality (a hole otherwise)
:data:`GUEST_WINDOW`         guest physical address 0: guest physical address ``a`` is bridge
                             offset ``GUEST_WINDOW + a``, for ``a`` below ``4 << addr_width``
                             of the engine
============================ ===================================================================

Every other offset is a hole (acknowledged, reads 0, writes dropped). In the guest physical
space the RAM occupies ``[ram_base, ram_base + ram_size)``; the engine gets ``err`` elsewhere
(decisions.md D11 case 8), the bridge reads 0. The default, :data:`GUEST_RAM`, is 4 KiB from
0x800: it straddles 0x1000, so that a ring laid out as Linux's ``vring_init`` does (used ring
on the next 4 KiB boundary, :class:`sim.virtqueue.DriverRing`) fits with room for the buffers
on both sides.
"""

from collections.abc import Mapping

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.utils import ceil_log2

from .._checks import check_int, is_int
from ..blk import SECTOR, RamDisk, VirtioBlk

from .bridge import ADDR_WIDTH
from .guestram import GuestRAM
from .recorder import MSIRecorder
from .soc import RECORDER_BASE, RECORDER_DEPTH, SerialSoC


__all__ = ["GUEST_WINDOW", "GUEST_RAM", "BOARD_BLK", "BLK_MAP", "BlkSoC"]

#: Bridge offset of guest physical address 0 (0x20000): the upper half of the bridge's
#: ``4 << ADDR_WIDTH`` bytes, so guest memory of up to 128 KiB fits the window.
GUEST_WINDOW = (4 << ADDR_WIDTH) // 2

#: The default guest RAM, ``(base, size)`` in guest physical bytes (see the module docstring).
GUEST_RAM = (0x800, 0x1000)

#: :class:`hw.blk.VirtioBlk` parameters of the board tops (``capacity`` and ``addr_width`` are
#: the SoC's): a short queue and chain (header, data, status), per-queue doorbells, wired
#: interrupt.
BOARD_BLK = dict(queue_size_max=8, max_chain=4, notify_base=0x1000, notify_multiplier=4)

#: The window of each target on the bridge's bus, by :class:`WishboneDecoder` port name.
BLK_MAP = {"transport": 0, "recorder": RECORDER_BASE, "guest": GUEST_WINDOW}


def _image_words(image, capacity):
    if not isinstance(image, (bytes, bytearray)):
        raise TypeError(f"image must be bytes, not {image!r}")
    if len(image) > capacity * SECTOR:
        raise ValueError(f"image of {len(image)} bytes does not fit {capacity} sectors "
                         f"({capacity * SECTOR} bytes)")
    padded = bytes(image) + bytes(-len(image) % 4)
    return [int.from_bytes(padded[i:i + 4], "little") for i in range(0, len(padded), 4)]


class BlkSoC(SerialSoC):
    """virtio-blk with a RAM disk and on-chip guest memory, behind a UART-to-Wishbone bridge.

    Parameters
    ----------
    divisor : int
        UART clock cycles per bit.
    timeout : int
        Bridge frame timeout in cycles (see :class:`~hw.soc.bridge.UARTBridge`).
    capacity : int
        Disk size in 512-byte sectors, all of them block RAM.
    image : bytes
        Initial disk contents from sector 0 (zeros after it).
    ram_base, ram_size : int
        Guest RAM ``[ram_base, ram_base + ram_size)`` in guest physical bytes
        (:class:`~hw.soc.guestram.GuestRAM`); the engine's bus is just wide enough to reach its
        end.
    blk : mapping
        More :class:`hw.blk.VirtioBlk` parameters (``queue_size_max``, ``max_chain``,
        ``serial``, the transport's personality: ``msi``, ``notify_base``, ...).
    stretch : int
        Cycles an MSI or bridge activity pulse keeps its LED on.

    Members
    -------
    As :class:`~hw.soc.soc.SerialSoC`'s.

    Raises
    ------
    TypeError
        If ``capacity`` or ``stretch`` is not an integer, ``image`` not bytes or ``blk`` not a
        mapping; and as :class:`~hw.soc.uart.UARTReceiver` for ``divisor``,
        :class:`~hw.soc.bridge.UARTBridge` for ``timeout``,
        :class:`~hw.soc.guestram.GuestRAM` for ``ram_base`` and ``ram_size``,
        :class:`hw.blk.VirtioBlk` for the entries of ``blk``.
    ValueError
        If ``capacity`` or ``stretch`` is below 1, ``image`` is longer than the disk, ``blk``
        sets ``capacity`` or ``addr_width``, the transport's window reaches
        :data:`RECORDER_BASE`, or the guest RAM ends beyond the guest window; and as the same
        classes.
    """

    def __init__(self, *, divisor, timeout, capacity, image=b"", ram_base=GUEST_RAM[0],
                 ram_size=GUEST_RAM[1], blk=BOARD_BLK, stretch=1 << 20):
        self._capacity = check_int("capacity", capacity, "a positive integer", lambda c: c >= 1)
        words = _image_words(image, capacity)
        if not isinstance(blk, Mapping):
            raise TypeError(f"blk must be a mapping of VirtioBlk parameters, not {blk!r}")
        fixed = sorted({"capacity", "addr_width"} & set(blk))
        if fixed:
            raise ValueError(f"blk must not set {' or '.join(fixed)}: the SoC sets capacity "
                             f"from its own parameter and addr_width from the guest RAM")
        # The engine's bus reaches the end of the RAM (8 word address bits at least); GuestRAM
        # checks ram_base and ram_size.
        end = ram_base + ram_size if is_int(ram_base) and is_int(ram_size) else 0
        addr_width = max(8, ceil_log2(max(end, 1)) - 2)
        self.guest = GuestRAM(addr_width=addr_width, base=ram_base, size=ram_size)
        if 4 << addr_width > GUEST_WINDOW:
            raise ValueError(f"guest RAM [{ram_base:#x}, {end:#x}) ends beyond the guest window "
                             f"of {GUEST_WINDOW:#x} bytes")
        self.blk = VirtioBlk(capacity=capacity, addr_width=addr_width, **blk)
        #: The transport inside :attr:`blk` (its register map is the host's).
        self.transport = self.blk.transport
        window = 4 << len(self.transport.bus.adr)
        if window > RECORDER_BASE:
            raise ValueError(f"transport window 0..{window - 1:#x} (from notify_base, "
                             f"notify_multiplier) overlaps the recorder at {RECORDER_BASE:#x}")
        self.disk = RamDisk(addr_width=self.blk.device.disk_addr_width,
                            words=capacity * SECTOR // 4, init=words)
        self.recorder = MSIRecorder(depth=RECORDER_DEPTH) if self.has_msi else None
        windows = {"transport": (BLK_MAP["transport"], len(self.transport.bus.adr)),
                   "guest": (BLK_MAP["guest"], addr_width)}
        if self.recorder is not None:
            windows["recorder"] = (BLK_MAP["recorder"], len(self.recorder.bus.adr))
        super().__init__(divisor=divisor, timeout=timeout, stretch=stretch, windows=windows)

    @property
    def capacity(self):
        return self._capacity

    @property
    def has_msi(self):
        """The transport has an MSI stream, connected to an MSI recorder."""
        return "msi" in self.blk.signature.members

    def elaborate(self, platform):
        m = Module()
        self.serial(m)
        m.submodules.blk = blk = self.blk
        m.submodules.guest = guest = self.guest
        m.submodules.disk = disk = self.disk
        m.d.comb += self.irq.eq(blk.irq)
        wiring.connect(m, self.decoder.transport, blk.bus)
        wiring.connect(m, self.decoder.guest, guest.host)
        wiring.connect(m, blk.dma, guest.dma)
        wiring.connect(m, blk.disk, disk.bus)
        if self.recorder is not None:
            self.msi_recorder(m, self.recorder, blk.msi)
        return m
