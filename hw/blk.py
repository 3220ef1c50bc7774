"""A virtio-blk device (virtio 1.2 §5.2) on the virtqueue engine, with its disk behind a port.

:class:`VirtioBlkDevice` serves the requests the engine (:class:`hw.virtqueue.VirtqueueEngine`)
hands it from the request queue, and keeps its sectors behind ``disk``, a pipelined Wishbone
master port: connect it to :class:`RamDisk` (block RAM) or to an SDRAM or flash controller.
:class:`VirtioBlk` wires transport, engine and device into one component.

Requests (§5.2.6)
-----------------
A chain is a 16-byte header (type, reserved, sector), data, and a status byte at the very end of
the writable part. The device always writes the whole writable part: data (or zeros where it
has none: a failed read, GET_ID's padding), then the status byte, so the status lands where the
driver looks for it whatever happened, and the used length is the writable total.

========== ======= ================================================================
type       value   response
========== ======= ================================================================
T_IN       0       the sectors, OK; IOERR if out of range or not whole sectors
T_OUT      1       the sectors written, OK; IOERR (disk untouched) if out of range
T_FLUSH    4       OK (writes are complete when acknowledged)
T_GET_ID   8       the serial, up to 20 bytes, zero padded, OK
other              UNSUPP
========== ======= ================================================================

"Out of range" is a request that does not end within ``capacity`` sectors; such a request never
reaches ``disk``. A chain without a 16-byte readable header or a writable status byte has the
wrong shape for the device: it raises the engine's ``error`` (decisions.md D11 case 10).

Configuration space (§5.2.4): ``capacity`` (le64 at 0), ``size_max`` (le32 at 8) and ``seg_max``
(le32 at 12); the device offers VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX and
VIRTIO_BLK_F_FLUSH. Together they bound a request's data to ``seg_max * size_max`` bytes, and so
the time the device spends on one request.
"""

from amaranth.hdl import Array, Assert, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from . import wishbone
from ._checks import check_int
from .device import ConfigPortSignature
from .realign import ReadBeat, WriteBeat
from .transport import VirtioMMIOTransport
from .virtqueue import ChainRequest, VirtqueueEngine


__all__ = ["BLK_DEVICE_ID", "BlkFeature", "BlkType", "BlkStatus", "CONFIG_SIZE",
           "VirtioBlkDevice", "RamDisk", "VirtioBlk", "connect_blk"]

#: Device ID of a block device (virtio 1.2 §5).
BLK_DEVICE_ID = 2
#: Bytes of configuration space the device implements (capacity, size_max, seg_max).
CONFIG_SIZE = 16
SECTOR = 512


class BlkFeature:
    SIZE_MAX = 1
    SEG_MAX = 2
    FLUSH = 9


class BlkType:
    IN = 0
    OUT = 1
    FLUSH = 4
    GET_ID = 8


class BlkStatus:
    OK = 0
    IOERR = 1
    UNSUPP = 2


def _words(serial):
    padded = serial.ljust(20, b"\0")
    return [int.from_bytes(padded[i:i + 4], "little") for i in range(0, 20, 4)]


#: Requests the device keeps in flight on its disk port (and words it holds for the engine).
DISK_DEPTH = 4

#: What a simulation reports when the disk breaks its contract.
DISK_RULE = ("VirtioBlkDevice.disk: ack with no request in flight; the disk must answer a request "
             "at the earliest in the cycle after it takes it (pipelined Wishbone, see the device's "
             "disk member)")

#: The index of the zero word after the serial's five (T_GET_ID's padding, every other fill).
ZERO_WORD = 5


class VirtioBlkDevice(wiring.Component):
    """virtio-blk request processing.

    Parameters
    ----------
    capacity : int
        Disk size in 512-byte sectors (1 to 2 ** 32 - 1).
    seg_max : int
        The ``seg_max`` the device reports: data buffers per request (the engine's
        ``max_chain`` - 2 leaves room for header and status).
    size_max : int
        The ``size_max`` it reports: bytes per data buffer (512 to 2 ** 31, a multiple of 512).
    serial : bytes
        What T_GET_ID answers (up to 20 bytes).

    Members
    -------
    config : In(ConfigPortSignature(config_size=CONFIG_SIZE))
    reset : In(1)
        The transport's device reset.
    abort : In(1)
        The engine dropped the chain.
    request : In(stream.Signature(ChainRequest))
    read : In(stream.Signature(ReadBeat))
    write : Out(stream.Signature(WriteBeat))
    error : Out(1)
        The chain has the wrong shape (D11 case 10).
    disk : Out(wishbone.Signature(addr_width=disk_addr_width, features=("stall",)))
        The sectors, word-addressed: sector ``s`` is words ``128 * s`` to ``128 * s + 127``.
        Wishbone B4 pipelined, up to :data:`DISK_DEPTH` requests in flight, whole words
        (``sel`` 0b1111); the target may stall and answer as late as it likes, in order, but
        not in the cycle it takes the request (an ``ack`` with nothing in flight fails a
        simulation with :data:`DISK_RULE`).
        A stalled request is withdrawn when the chain is given up (D18).
        From a target without waits a T_IN or T_OUT moves a word a cycle. A T_OUT's status is
        written once every write is acknowledged.
    busy : Out(1)
        A request is in hand.

    Raises
    ------
    TypeError, ValueError
        If a parameter is not of its type or out of its range.
    """

    FEATURES = 1 << BlkFeature.SIZE_MAX | 1 << BlkFeature.SEG_MAX | 1 << BlkFeature.FLUSH

    def __init__(self, *, capacity, seg_max=14, size_max=4096, serial=b"amaranth-virtio-blk"):
        self._capacity = check_int("capacity", capacity, "an integer from 1 to 2 ** 32 - 1",
                                   lambda c: 1 <= c < 1 << 32)
        self._seg_max = check_int("seg_max", seg_max, "an integer from 1 to 254",
                                  lambda n: 1 <= n <= 254)
        self._size_max = check_int("size_max", size_max,
                                   "a multiple of 512 from 512 to 2 ** 31",
                                   lambda n: 512 <= n <= 1 << 31 and n % 512 == 0)
        if not isinstance(serial, bytes) or len(serial) > 20:
            raise TypeError(f"serial must be bytes of at most 20, not {serial!r}")
        self._serial = serial
        self.disk_addr_width = max(1, ceil_log2(capacity * SECTOR // 4))
        super().__init__({
            "config":  In(ConfigPortSignature(config_size=CONFIG_SIZE)),
            "reset":   In(1),
            "abort":   In(1),
            "request": In(stream.Signature(ChainRequest)),
            "read":    In(stream.Signature(ReadBeat)),
            "write":   Out(stream.Signature(WriteBeat)),
            "error":   Out(1),
            "disk":    Out(wishbone.Signature(addr_width=self.disk_addr_width,
                                              features=("stall",))),
            "busy":    Out(1),
        })

    @property
    def capacity(self):
        return self._capacity

    def elaborate(self, platform):
        m = Module()

        # --- configuration space: read data on the cycle after r_stb ------------------------
        config_words = Array(Const(w, 32) for w in (self._capacity & 0xffff_ffff,
                                                    self._capacity >> 32, self._size_max,
                                                    self._seg_max))
        with m.If(self.config.r_stb):
            m.d.sync += self.config.r_data.eq(config_words[self.config.addr])

        # --- the request in hand -----------------------------------------------------------
        header = Array(Signal(32, name=f"header_{i}") for i in range(4))
        beat = Signal(range(4))
        data_in = Signal(32)            # readable bytes after the header
        data_out = Signal(32)           # writable bytes before the status byte
        status = Signal(8)
        word = Signal(self.disk_addr_width)
        serial_word = Signal(range(ZERO_WORD + 1))
        reading = Signal()              # T_IN in range: DRAIN leads to DISK_READ
        to_read = Signal(30)            # T_IN: words not yet requested from the disk

        kind = header[0]
        sector = header[2]
        sectors_in = data_in[9:]
        sectors_out = data_out[9:]

        def in_range(sectors):
            end = Signal(34)
            m.d.comb += end.eq(sector + sectors)
            return (header[3] == 0) & (end <= self._capacity)

        def count(left):
            return Mux(left > 4, 4, left)

        # --- the disk port: Wishbone B4 pipelined, up to DISK_DEPTH requests in flight -------
        disk = self.disk
        in_flight = Signal(range(DISK_DEPTH + 1))
        present = Signal()                  # the state presents a request
        issued = Signal()
        answered = Signal()
        m.d.comb += [
            disk.cyc.eq(present | (in_flight != 0)), disk.stb.eq(present),
            disk.sel.eq(0b1111), disk.adr.eq(word), disk.dat_w.eq(self.read.p.data),
            issued.eq(present & ~disk.stall),
            answered.eq(disk.ack & (in_flight != 0)),
        ]
        m.d.sync += in_flight.eq(in_flight + issued - answered)
        # The disk's side of the contract, checked in simulation (decisions.md D11i).
        m.d.sync += Assert(~disk.ack | (in_flight != 0), DISK_RULE)
        with m.If(issued):
            m.d.sync += word.eq(word + 1)
        # T_IN: the words read wait here for the engine; a read is requested only with room
        # for its answer.
        # Emptied in IDLE: a chain given up may have left words in it.
        sectors = SyncFIFO(width=32, depth=DISK_DEPTH)
        clear = Signal()
        m.submodules.sectors = ResetInserter(clear)(sectors)
        m.d.comb += sectors.w_data.eq(disk.dat_r)
        room = Signal()
        m.d.comb += room.eq(in_flight + sectors.level < DISK_DEPTH)

        def leave():
            """The end of every busy state: the engine dropped the chain, or the device was
            reset; the disk accesses in flight complete first (SETTLE)."""
            with m.If(self.abort | self.reset):
                m.next = "SETTLE"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.request.ready.eq(1)
                with m.If(self.request.valid):
                    m.d.sync += [data_in.eq(self.request.p.readable - 16),
                                 data_out.eq(self.request.p.writable - 1), beat.eq(0)]
                    with m.If((self.request.p.readable < 16) | (self.request.p.writable == 0)):
                        m.d.comb += self.error.eq(1)
                    with m.Else():
                        m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += self.read.ready.eq(1)
                with m.If(self.read.valid):
                    m.d.sync += [header[beat].eq(self.read.p.data), beat.eq(beat + 1)]
                    with m.If(beat == 3):
                        m.next = "DECODE"
                leave()

            with m.State("DECODE"):
                # FILL writes the serial from serial_word 0 (T_GET_ID), zeros from ZERO_WORD.
                m.d.sync += [word.eq(sector << 7), serial_word.eq(ZERO_WORD),
                             status.eq(BlkStatus.OK), reading.eq(0)]
                whole_in = data_in[:9] == 0
                whole_out = data_out[:9] == 0
                with m.If(kind == BlkType.IN):
                    with m.If(whole_out & in_range(sectors_out)):
                        m.d.sync += reading.eq(1)
                        m.next = "DRAIN"        # readable bytes after the header, if any
                    with m.Else():
                        m.d.sync += status.eq(BlkStatus.IOERR)
                        m.next = "DRAIN"
                with m.Elif(kind == BlkType.OUT):
                    with m.If(whole_in & in_range(sectors_in)):
                        m.next = "DISK_WRITE"
                    with m.Else():
                        m.d.sync += status.eq(BlkStatus.IOERR)
                        m.next = "DRAIN"
                with m.Elif(kind == BlkType.GET_ID):
                    m.d.sync += serial_word.eq(0)
                    m.next = "DRAIN"
                with m.Elif(kind == BlkType.FLUSH):
                    m.next = "DRAIN"
                with m.Else():
                    m.d.sync += status.eq(BlkStatus.UNSUPP)
                    m.next = "DRAIN"
                leave()

            # T_IN: sector words from the disk into the writable part, the reads requested
            # ahead of the engine taking the words (one a cycle from a disk without waits).
            with m.State("DISK_READ"):
                m.d.comb += [present.eq((to_read != 0) & room), sectors.w_en.eq(answered),
                             self.write.valid.eq(sectors.r_rdy),
                             self.write.p.data.eq(sectors.r_data), self.write.p.count.eq(4),
                             sectors.r_en.eq(self.write.ready)]
                with m.If(issued):
                    m.d.sync += to_read.eq(to_read - 1)
                with m.If(self.write.valid & self.write.ready):
                    m.d.sync += data_out.eq(data_out - 4)
                    with m.If(data_out == 4):
                        m.next = "STATUS"
                leave()

            # T_OUT: each beat of readable data written to the disk in the cycle it is taken;
            # the status only once every write is acknowledged (T_FLUSH needs no more).
            with m.State("DISK_WRITE"):
                with m.If(data_in != 0):
                    m.d.comb += [present.eq(self.read.valid & (in_flight != DISK_DEPTH)),
                                 disk.we.eq(1), self.read.ready.eq(issued)]
                    with m.If(issued):
                        m.d.sync += data_in.eq(data_in - 4)
                with m.Elif(in_flight == 0):
                    m.next = "FILL"
                leave()

            # Every request: the rest of the readable part (taken before anything is written:
            # the engine takes write beats only once it has delivered every read beat), then
            # the sectors (T_IN), the serial (T_GET_ID) or zeros, then the status byte.
            with m.State("DRAIN"):
                with m.If((data_in == 0) & reading & (data_out != 0)):
                    m.d.sync += to_read.eq(data_out[2:])
                    m.next = "DISK_READ"        # (a T_IN of no sectors reads none)
                with m.Elif(data_in == 0):
                    m.next = "FILL"
                with m.Else():
                    m.d.comb += self.read.ready.eq(1)
                    with m.If(self.read.valid):
                        m.d.sync += data_in.eq(data_in - count(data_in))
                leave()
            with m.State("FILL"):
                serial = Array(Const(w, 32) for w in _words(self._serial) + [0])
                with m.If(data_out == 0):
                    m.next = "STATUS"
                with m.Else():
                    m.d.comb += [self.write.valid.eq(1),
                                 self.write.p.data.eq(serial[serial_word]),
                                 self.write.p.count.eq(count(data_out))]
                    with m.If(self.write.ready):
                        m.d.sync += data_out.eq(data_out - count(data_out))
                        with m.If(serial_word != ZERO_WORD):
                            m.d.sync += serial_word.eq(serial_word + 1)
                leave()
            with m.State("STATUS"):
                m.d.comb += [self.write.valid.eq(1), self.write.p.data.eq(status),
                             self.write.p.count.eq(1), self.write.p.last.eq(1)]
                with m.If(self.write.ready):
                    m.next = "IDLE"
                leave()
            with m.State("SETTLE"):
                # The chain is gone: the disk's answers still due are taken and dropped.
                with m.If(in_flight == 0):
                    m.next = "IDLE"
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE")), clear.eq(fsm.ongoing("IDLE"))]
        return m


class RamDisk(wiring.Component):
    """Block RAM behind a pipelined Wishbone target port: the disk of :class:`VirtioBlkDevice`.

    Parameters
    ----------
    addr_width : int
        Word address width of ``bus``.
    words : int
        Depth (up to ``2 ** addr_width``).
    init : iterable of int
        Initial contents (32-bit words, little-endian bytes).

    Members
    -------
    bus : In(wishbone.Signature(addr_width=addr_width, features=("stall",)))
        Wishbone B4 pipelined, never stalls: takes a request every cycle and acknowledges each
        on the cycle after (reads and writes).
    """

    def __init__(self, *, addr_width, words, init=()):
        self._words = check_int("words", words, f"an integer from 1 to {1 << addr_width}",
                                lambda n: 1 <= n <= 1 << addr_width)
        #: The words (a test reads them with ``ctx.get(disk.ram.data[i])``).
        self.ram = memory.Memory(shape=32, depth=self._words, init=init)
        super().__init__({"bus": In(wishbone.Signature(addr_width=addr_width,
                                                       features=("stall",)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = ram = self.ram
        read = ram.read_port()
        write = ram.write_port(granularity=8)
        bus = self.bus
        request = bus.cyc & bus.stb
        m.d.comb += [read.addr.eq(bus.adr), write.addr.eq(bus.adr), write.data.eq(bus.dat_w),
                     bus.dat_r.eq(read.data)]
        with m.If(request & bus.we):
            m.d.comb += write.en.eq(bus.sel)
        m.d.sync += bus.ack.eq(request)
        return m


class VirtioBlk(wiring.Component):
    """Transport, virtqueue engine and virtio-blk device, wired (the disk port left out).

    The caller connects three ports: ``bus`` to the CPU, ``dma`` to guest memory and ``disk``
    to the sectors. A :class:`RamDisk` holding the whole disk is sized from the device::

        disk = RamDisk(addr_width=blk.device.disk_addr_width, words=capacity * 128)

    (a 512-byte sector is 128 words of 4 bytes; ``disk_addr_width`` is the narrowest word address
    that reaches them all.) Any other pipelined Wishbone target with ``stall`` does as well, on
    the terms of :class:`VirtioBlkDevice`'s ``disk``.

    Parameters
    ----------
    capacity : int
        Sectors.
    addr_width : int
        Word address width of the engine's bus (guest memory).
    max_chain : int
        The engine's longest chain; the device reports ``seg_max = max_chain - 2``.
    queue_size_max : int
        QueueNumMax of the one request queue.
    serial : bytes
    **personality
        For :class:`hw.VirtioMMIOTransport` (``msi``, ``notify_base``, ...).

    Attributes
    ----------
    transport : hw.VirtioMMIOTransport
        The register block (device ID 2, one queue, :data:`CONFIG_SIZE` bytes of config
        space), offering the engine's and the device's feature bits.
    engine : hw.virtqueue.VirtqueueEngine
        The virtqueue engine: it reads the request queue's chains from guest memory through
        ``dma``, hands them to ``device`` and returns them to the used ring.
    device : VirtioBlkDevice
        The request processing; its ``disk_addr_width`` is the word address width of ``disk``
        and ``capacity`` its size in sectors.

    Members
    -------
    bus : In(wishbone.Signature(...))
        The transport's register block.
    irq : Out(1)
    dma : Out(wishbone.Signature(addr_width=addr_width, features=("err", "stall")))
        The engine's bus master into guest memory.
    disk : Out(wishbone.Signature(addr_width=device.disk_addr_width, features=("stall",)))
        The device's disk port.
    msi : Out(...)
        With ``msi``: the transport's MSI stream.
    """

    def __init__(self, *, capacity, addr_width=30, max_chain=16, queue_size_max=64,
                 serial=b"amaranth-virtio-blk", **personality):
        self.engine = VirtqueueEngine(num_queues=1, addr_width=addr_width, max_chain=max_chain)
        self.device = VirtioBlkDevice(capacity=capacity, seg_max=max_chain - 2, serial=serial)
        self.transport = VirtioMMIOTransport(
            device_id=BLK_DEVICE_ID, vendor_id=0x1af4, num_queues=1,
            queue_size_max=queue_size_max, config_size=CONFIG_SIZE,
            device_features=VirtqueueEngine.FEATURES | VirtioBlkDevice.FEATURES, **personality)
        members = {
            "bus":  In(wishbone.Signature(addr_width=len(self.transport.bus.adr))),
            "irq":  Out(1),
            "dma":  Out(self.engine.bus.signature),
            "disk": Out(self.device.disk.signature),
        }
        if "msi" in self.transport.signature.members:
            members["msi"] = Out(self.transport.msi.signature)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.transport = transport = self.transport
        m.submodules.engine = engine = self.engine
        m.submodules.device = device = self.device
        wiring.connect(m, wiring.flipped(self.bus), transport.bus)
        m.d.comb += self.irq.eq(transport.irq)
        if "msi" in self.signature.members:
            wiring.connect(m, transport.msi, wiring.flipped(self.msi))
        connect_blk(m, transport, engine, device)
        wiring.connect(m, engine.bus, wiring.flipped(self.dma))
        wiring.connect(m, device.disk, wiring.flipped(self.disk))
        return m


def connect_blk(m, transport, engine, device):
    """The device-side wiring of a transport, an engine and a :class:`VirtioBlkDevice` (the
    host bus, the engine's bus master and the disk port are the caller's)."""
    engine.connect_transport(m, transport.device)
    wiring.connect(m, transport.device.config, device.config)
    m.d.comb += [device.reset.eq(transport.device.reset), device.abort.eq(engine.abort),
                 engine.error.eq(device.error)]
    wiring.connect(m, engine.request, device.request)
    wiring.connect(m, engine.read, device.read)
    wiring.connect(m, device.write, engine.write)
