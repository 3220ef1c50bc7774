"""Host side of the block-device SoC: virtio-blk requests through a ring in on-chip memory.

The board's :class:`~hw.soc.blksoc.BlkSoC` has no CPU and no host memory: its guest RAM is
block RAM that the host reaches through the UART bridge, at
:data:`~hw.soc.blksoc.GUEST_WINDOW` plus the guest physical address. :class:`BlkClient` brings
the device up with the driver model (:class:`sim.driver.VirtioMMIODriver`, as
:mod:`boards.host` does), lays out queue 0's split ring in guest RAM with
:class:`sim.virtqueue.DriverRing`, and performs requests (virtio 1.2 §5.2.6): a 16-byte header,
the data, a status byte, one chain each; it rings the doorbell and reads the used ring until the
request comes back.

:class:`DriverRing` reads and writes memory synchronously, the bridge is a serial line:
:class:`BridgeGuestMemory` gives the ring a local copy of guest RAM, and the client moves words
between the copy and the board at the points where a driver's memory accesses must be visible:
:meth:`~BridgeGuestMemory.flush` before the doorbell (in the order the ring wrote them, so
avail.idx lands after the descriptors and the ring entry, §2.7.13),
:meth:`~BridgeGuestMemory.fetch` of what the device wrote (the used ring, the status byte and
the data) once the request is used.

Command line (``python -m boards.host PORT blk ...``)::

    blk info                        # capacity, seg_max, serial (T_GET_ID)
    blk read SECTOR [--count N] [--output FILE]
    blk write SECTOR FILE           # zero-padded to whole sectors
"""

from collections import OrderedDict
from dataclasses import dataclass

from hw._checks import check_int
from hw.blk import BLK_DEVICE_ID, SECTOR, BlkStatus, BlkType, VirtioBlkDevice
from hw.regmap import Status
from hw.soc.blksoc import GUEST_RAM, GUEST_WINDOW
from sim.memory import GuestMemory
from sim.virtqueue import DriverRing


__all__ = ["BlkError", "BridgeGuestMemory", "RingLayout", "plan_layout", "BlkClient",
           "run_blk", "hexdump"]

#: Entries of the ring the client lays out (capped by QueueNumMax): one request at a time.
QUEUE_SIZE = 4
#: Reads of used.idx before the client gives up on a request (a request takes well under one
#: read's time on the serial line).
POLLS = 64
#: Written to the status byte before a request: a device that never wrote it shows.
STATUS_UNSET = 0xff


class BlkError(Exception):
    """The device did not do what the request needed (no used buffer, a wrong used element, a
    device that is not virtio-blk)."""


class BridgeGuestMemory:
    """Guest RAM over an MMIO accessor, as a local copy with explicit synchronisation.

    Parameters
    ----------
    io : accessor
        ``async read(offset, size)`` and ``async write(offset, value, size)`` on the bridge's bus
        (:class:`boards.host.BridgeMMIO`).
    base, size : int
        Guest RAM ``[base, base + size)`` in guest physical bytes.
    window : int
        Bridge offset of guest physical address 0.

    ``read_int``, ``write_int``, ``read``, ``write`` and ``check`` act on the copy (the API of
    :class:`sim.memory.GuestMemory`, which :class:`~sim.virtqueue.DriverRing` uses); an access
    outside guest RAM raises :class:`~sim.memory.MemoryFault`. :attr:`accesses` counts bus
    accesses.
    """

    def __init__(self, io, *, base, size, window=GUEST_WINDOW):
        self.io = io
        self.window = window
        self.copy = GuestMemory(bytearray(size), base=base)
        self._dirty = OrderedDict()         # word address -> byte mask, oldest write first
        self.accesses = 0

    @property
    def base(self):
        return self.copy.base

    @property
    def size(self):
        return self.copy.size

    def check(self, address, length):
        self.copy.check(address, length)

    def read(self, address, length):
        return self.copy.read(address, length)

    def write(self, address, data):
        self.copy.write(address, data)
        for offset in range(len(data)):
            word = (address + offset) & ~3
            self._dirty[word] = self._dirty.get(word, 0) | 1 << ((address + offset) & 3)
            self._dirty.move_to_end(word)

    def read_int(self, address, size):
        return self.copy.read_int(address, size)

    def write_int(self, address, value, size):
        self.write(address, value.to_bytes(size, "little"))

    @property
    def dirty(self):
        """Words written since the last :meth:`flush`, as ``{word address: byte mask}``."""
        return dict(self._dirty)

    async def flush(self):
        """Write every word written since the last flush to the board, in the order of the last
        write to each, touching only the bytes written (whole words, halves or single bytes)."""
        while self._dirty:
            word, mask = self._dirty.popitem(last=False)
            value = self.copy.read_int(word, 4)
            for offset, size in _pieces(mask):
                part = value >> 8 * offset & ((1 << 8 * size) - 1)
                await self.io.write(self.window + word + offset, part, size)
                self.accesses += 1

    async def fetch(self, address, length):
        """Read ``[address, address + length)`` (whole words) from the board into the copy.

        Raises
        ------
        MemoryFault
            If the range is not in guest RAM.
        ValueError
            If the range holds words not yet flushed (they would be lost).
        """
        first, end = address & ~3, (address + length + 3) & ~3
        self.copy.check(first, end - first)
        pending = [word for word in range(first, end, 4) if word in self._dirty]
        if pending:
            raise ValueError(f"fetch of [{address:#x}, {address + length:#x}) would overwrite "
                             f"writes not flushed yet (word {pending[0]:#x})")
        for word in range(first, end, 4):
            value = await self.io.read(self.window + word, 4)
            self.accesses += 1
            self.copy.write_int(word, value, 4)


def _pieces(mask):
    """``(byte offset, size)`` naturally aligned accesses that cover exactly ``mask``."""
    if mask == 0b1111:
        return [(0, 4)]
    pieces = []
    for half in (0, 2):
        bits = mask >> half & 0b11
        if bits == 0b11:
            pieces.append((half, 2))
        else:
            pieces += [(half + lane, 1) for lane in range(2) if bits >> lane & 1]
    return pieces


@dataclass(frozen=True)
class RingLayout:
    """Where the client puts things in guest RAM (guest physical byte addresses)."""
    ring: int           # DriverRing base: descriptor table, then the available ring
    used: int           # the used ring, on the 4 KiB boundary after the available ring
    header: int         # the 16-byte request header
    status: int         # the status byte
    data: int           # the data buffer
    data_size: int      # bytes of data per request (whole sectors)


def plan_layout(base, size, queue_size):
    """Lay out a ring of ``queue_size`` entries and one request's buffers in ``[base, base +
    size)``.

    :class:`~sim.virtqueue.DriverRing` puts the used ring on the 4 KiB boundary after the
    available ring (as ``vring_init`` does), so the ring ends just below a boundary inside the
    RAM; header and status follow the used ring, and the data gets the larger of the spaces left
    before the ring and after the status byte.

    Raises
    ------
    ValueError
        If the RAM has no such boundary with room for the ring, or no room for a sector.
    """
    front = 16 * queue_size + 6 + 2 * queue_size           # descriptors, available ring
    used_size = 6 + 8 * queue_size
    end = base + size
    boundary = max(4096, (base + front + 4095) & ~4095)
    ring = (boundary - front) & ~15
    if ring < base or boundary + used_size > end:
        raise ValueError(f"guest RAM [{base:#x}, {end:#x}) has no 4 KiB boundary with "
                         f"{front} bytes of ring below it and {used_size} above it")
    header = (boundary + used_size + 15) & ~15
    status = header + 16
    after = (status + 1 + 15) & ~15
    below, above = ring - base, end - after
    data, room = (base, below) if below > above else (after, above)
    if room < SECTOR:
        raise ValueError(f"guest RAM [{base:#x}, {end:#x}) has no room for a sector beside "
                         f"the ring")
    return RingLayout(ring, boundary, header, status, data, room // SECTOR * SECTOR)


class BlkClient:
    """A virtio-blk driver over the bridge, with its ring in the SoC's guest RAM.

    Parameters
    ----------
    io : accessor
        On the bridge's bus (:class:`boards.host.BridgeMMIO`): the transport at 0, guest memory
        at ``window``.
    ram : (int, int)
        Guest RAM ``(base, size)`` of the SoC (:data:`~hw.soc.blksoc.GUEST_RAM`).
    window : int
        Bridge offset of guest physical address 0.
    queue_size : int
        Ring entries (at most QueueNumMax).
    polls : int
        Reads of used.idx before a request is given up.

    Use :meth:`start`, then any of :meth:`read`, :meth:`write`, :meth:`get_id`,
    :meth:`request`, then :meth:`stop` (which resets the device).

    Raises
    ------
    TypeError, ValueError
        If ``queue_size`` or ``polls`` is not a positive integer.
    """

    def __init__(self, io, *, ram=GUEST_RAM, window=GUEST_WINDOW, queue_size=QUEUE_SIZE,
                 polls=POLLS):
        self.io = io
        self.ram = ram
        self.window = window
        self.queue_size = check_int("queue_size", queue_size, "a positive integer",
                                    lambda n: n >= 1)
        self.polls = check_int("polls", polls, "a positive integer", lambda n: n >= 1)
        self.memory = BridgeGuestMemory(io, base=ram[0], size=ram[1], window=window)
        self.driver = self.ring = self.layout = None
        self.capacity = self.seg_max = self.features = None
        #: InterruptStatus of each request, as the client acknowledged it.
        self.interrupts = []

    async def start(self):
        """Bring-up as Linux's ``virtio_dev_probe`` does it, with queue 0's ring in guest RAM:
        probe, reset, ACKNOWLEDGE, DRIVER, features, the ring, DRIVER_OK."""
        from .host import make_driver
        from sim.driver import VirtioMMIODriver
        probe = VirtioMMIODriver(self.io)
        device_id = await probe.probe()
        if device_id != BLK_DEVICE_ID:
            raise BlkError(f"device ID {device_id:#x} is not virtio-blk ({BLK_DEVICE_ID})")
        drv = make_driver(self.io, await probe.get_features(), want_msi=False)
        await drv.probe()
        await drv.reset()
        await drv.add_status(Status.ACKNOWLEDGE)
        await drv.add_status(Status.DRIVER)
        self.features = await drv.negotiate(VirtioBlkDevice.FEATURES)
        await drv.find_notify()
        # virtio 1.2 §5.2.4: capacity (le64 at 0), seg_max (le32 at 12)
        self.capacity, self.seg_max = await drv.read_config_fields([(0, 8), (12, 4)])
        await drv.write("QueueSel", 0)
        size = min(self.queue_size, await drv.read("QueueNumMax"))
        if size < 3:
            raise BlkError(f"queue 0 has QueueNumMax {size}: a request needs 3 descriptors")
        self.layout = plan_layout(*self.ram, size)
        self.ring = DriverRing(self.memory, size=size, base=self.layout.ring)
        assert self.ring.device == self.layout.used
        await self.memory.flush()           # the zeroed ring, before the device may look
        await drv.setup_vq(0, size, desc=self.ring.desc, driver=self.ring.driver,
                           device=self.ring.device)
        await drv.add_status(Status.DRIVER_OK)
        self.driver = drv
        return self.features

    async def stop(self):
        """Driver removal: reset, queue torn down, Status 0 checked."""
        await self.driver.remove()

    @property
    def sectors_per_request(self):
        return self.layout.data_size // SECTOR

    async def request(self, kind, sector=0, *, out=b"", length=0):
        """One request of type ``kind`` (:class:`hw.blk.BlkType`) for ``sector``, with ``out``
        as its readable data and ``length`` writable bytes of data. Returns ``(status, data)``:
        the status byte and the ``length`` bytes the device wrote (read back only when the
        status is OK: :class:`hw.blk.VirtioBlkDevice` writes zeros for a failed read).

        Raises
        ------
        ValueError
            If ``out`` or ``length`` does not fit the data buffer, or both are given.
        BlkError
            If the request is not used within :attr:`polls` reads of used.idx, or the used
            element is not the request's.
        """
        layout, memory, ring = self.layout, self.memory, self.ring
        if out and length:
            raise ValueError("a request has readable or writable data, not both")
        if max(len(out), length) > layout.data_size:
            raise ValueError(f"at most {layout.data_size} bytes of data per request, not "
                             f"{max(len(out), length)}")
        header = (kind.to_bytes(4, "little") + bytes(4) + sector.to_bytes(8, "little"))
        memory.write(layout.header, header)
        memory.write(layout.status, bytes([STATUS_UNSET]))
        buffers = [(layout.header, 16, False)]
        if out:
            memory.write(layout.data, out)
            buffers.append((layout.data, len(out), False))
        if length:
            buffers.append((layout.data, length, True))
        buffers.append((layout.status, 1, True))
        head = ring.add(buffers)
        await memory.flush()
        await self.driver.notify(0)
        await self._wait_used()
        await memory.fetch(ring.device, 4 + 8 * ring.size)
        used = ring.used()
        if used != [(head, length + 1)]:
            raise BlkError(f"used ring holds {used}, expected [({head}, {length + 1})] "
                           f"(descriptor {head}, {length + 1} bytes written)")
        await memory.fetch(layout.status, 1)
        status = memory.read(layout.status, 1)[0]
        data = b""
        if length and status == BlkStatus.OK:
            await memory.fetch(layout.data, length)
            data = memory.read(layout.data, length)
        # The wired interrupt, if the device raised it (with EVENT_IDX it may not have).
        self.interrupts.append(await self.driver.interrupt())
        return status, data

    async def _wait_used(self):
        ring = self.ring
        for _ in range(self.polls):
            await self.memory.fetch(ring.device, 4)
            if self.memory.read_int(ring.device + 2, 2) != ring.used_seen:
                return
        status = await self.driver.get_status()
        broken = " (DEVICE_NEEDS_RESET: the engine found the ring malformed)" \
            if status & Status.DEVICE_NEEDS_RESET.value else ""
        raise BlkError(f"no used buffer after {self.polls} reads of used.idx at guest "
                       f"address {ring.device + 2:#x}; Status {status:#04x}{broken}")

    async def read(self, sector, count=1):
        """``count`` sectors from ``sector``, as bytes; in as few requests as the buffer allows.
        Raises :class:`BlkError` naming the status if a request fails."""
        data = b""
        for first in range(sector, sector + count, self.sectors_per_request):
            n = min(self.sectors_per_request, sector + count - first)
            status, chunk = await self.request(BlkType.IN, first, length=n * SECTOR)
            _check_status(status, f"read of {n} sector(s) at {first}")
            data += chunk
        return data

    async def write(self, sector, data):
        """``data`` (whole sectors) to the disk from ``sector``."""
        if len(data) % SECTOR:
            raise ValueError(f"data must be whole sectors of {SECTOR} bytes, not {len(data)} "
                             f"bytes")
        step = self.sectors_per_request * SECTOR
        for offset in range(0, len(data), step):
            chunk = data[offset:offset + step]
            first = sector + offset // SECTOR
            status, _ = await self.request(BlkType.OUT, first, out=chunk)
            _check_status(status, f"write of {len(chunk) // SECTOR} sector(s) at {first}")

    async def get_id(self):
        """The device's serial (T_GET_ID), without the zero padding."""
        status, serial = await self.request(BlkType.GET_ID, length=20)
        _check_status(status, "GET_ID")
        return serial.rstrip(b"\0")


def _check_status(status, what):
    if status != BlkStatus.OK:
        names = {v: k for k, v in vars(BlkStatus).items() if not k.startswith("_")}
        raise BlkError(f"{what}: status {names.get(status, f'{status:#04x}')}")


def hexdump(data, *, start=0):
    """``xxd``-style lines: offset, 16 bytes in hex, the printable ones as text."""
    lines = []
    for offset in range(0, len(data), 16):
        row = data[offset:offset + 16]
        text = "".join(chr(b) if 0x20 <= b < 0x7f else "." for b in row)
        lines.append(f"{start + offset:08x}: {row.hex(' '):<47}  {text}")
    return lines


async def run_blk(io, action, *, sector=0, count=1, data=None, echo=print, **client):
    """What ``blk ACTION`` does on the command line, over any accessor: bring-up, the request(s),
    removal. Returns a dict: ``capacity``, ``seg_max``, the negotiated ``features``, the bus
    ``accesses`` to guest memory, ``serial`` for info and ``data`` for a read.

    Raises
    ------
    BlkError
        If the device is not virtio-blk, a request fails or is not answered.
    """
    blk = BlkClient(io, **client)
    await blk.start()
    out = {"capacity": blk.capacity, "seg_max": blk.seg_max, "features": blk.features}
    failed = True
    try:
        if action == "info":
            out["serial"] = await blk.get_id()
            echo(f"virtio-blk: {blk.capacity} sectors ({blk.capacity * SECTOR} bytes), seg_max "
                 f"{blk.seg_max}, serial {out['serial'].decode(errors='replace')!r}; "
                 f"features {blk.features:#018x}")
        elif action == "read":
            out["data"] = await blk.read(sector, count)
            echo(f"read {count} sector(s) from sector {sector}: OK")
        elif action == "write":
            padded = bytes(data) + bytes(-len(data) % SECTOR)
            await blk.write(sector, padded)
            echo(f"wrote {len(padded) // SECTOR} sector(s) from sector {sector} ({len(data)} "
                 f"bytes{', zero-padded' if len(padded) != len(data) else ''}): OK")
        else:
            raise ValueError(f"action must be info, read or write, not {action!r}")
        failed = False
    finally:
        try:
            await blk.stop()
        except Exception:
            if not failed:
                raise           # else the request's error is the one to report
    out["accesses"] = blk.memory.accesses
    return out

