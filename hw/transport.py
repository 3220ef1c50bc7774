"""The virtio-mmio device transport: register block, interrupt, doorbells, device side."""

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, flipped
from amaranth.utils import ceil_log2

from . import wishbone
from .device import DeviceSignature, QUEUE_SIZE_WIDTH
from amaranth.lib import stream

from .logic import less_than
from .msi import MSIController, MSIMessage
from .notify import NotificationQueue
from .regmap import (CONFIG_OFFSET, MAGIC, VERSION, WINDOW_SIZE, PERSONALITIES, Feature,
                     MsiCmdV2, MsiOpV1, MsiStateBit, RegisterMap, Status)


__all__ = ["VirtioMMIOTransport"]


#: Status bits the driver may set (virtio 1.2 §2.1). DEVICE_NEEDS_RESET belongs to the device;
#: SUSPEND (16) needs VIRTIO_F_SUSPEND, which the transport refuses to offer.
_DRIVER_STATUS = (Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK | Status.FEATURES_OK |
                  Status.FAILED).value

#: Feature bits the transport itself offers or owns; device_features may not contain them.
_TRANSPORT_OWNED = {
    Feature.MMIO_NOTIFICATION: "is offered by the transport when notify_base is set",
    Feature.MMIO_MSI: "is offered by the transport when msi='v2'",
    43: "(VIRTIO_F_SUSPEND) needs Status semantics the transport does not implement",
}

#: QueueDesc/Driver/Device registers: (register, QueuesSignature member, 32-bit half).
_QUEUE_ADDRESS_REGISTERS = (
    ("QueueDescLow", "desc", 0), ("QueueDescHigh", "desc", 1),
    ("QueueDriverLow", "driver", 0), ("QueueDriverHigh", "driver", 1),
    ("QueueDeviceLow", "device", 0), ("QueueDeviceHigh", "device", 1),
)

_MAX_QUEUES = 1024
_MAX_QUEUE_SIZE = 32768
_MAX_SHM_REGIONS = 256


def _bit(flag):
    """Bit position of a one-bit :class:`~hw.regmap.Status` flag."""
    return flag.value.bit_length() - 1


def _check_u(name, value, bits):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise ValueError(f"{name} must be an integer from 0 to {(1 << bits) - 1:#x}, not {value!r}")


class VirtioMMIOTransport(wiring.Component):
    """virtio-mmio device transport (virtio 1.2 §4.2) with optional per-queue notification
    addresses.

    A Wishbone target holds the virtio-mmio registers; the device side (:mod:`hw.device`) hands
    the driver's queue configuration, notifications and config-space accesses to device logic and
    takes its used-buffer and configuration-change events.

    Parameters
    ----------
    device_id : int
        DeviceID (virtio 1.2 §5). 0 is the placeholder "no device" that drivers skip.
    vendor_id : int
        VendorID.
    device_features : int
        Feature bits the device offers, besides those the transport adds itself
        (VIRTIO_F_VERSION_1 always; bit 39 with notification addresses; bit 40 with ``msi="v2"``).
        Ring features (e.g. RING_EVENT_IDX, RING_PACKED, NOTIFICATION_DATA) belong here when the
        device logic implements them.
    num_queues : int
        Number of virtqueues, 1 to 1024.
    queue_size_max : int or sequence of int
        QueueNumMax, for all queues or one per queue; 1 to 32768.
    config_size : int
        Bytes of device-specific configuration space at 0x100, a multiple of 4, at most 0xf00.
    shm_regions : sequence of (base, length)
        Shared memory regions, by id. Absent ids read as all ones.
    msi : None or "v2" or "v1"
        Personality (decisions.md D1). ``None`` is the standard transport with the wired
        interrupt; ``"v2"`` adds the MSI registers of proposal v2 (feature bit 40);
        ``"v1"`` is proposal v1 (Version 3, 16-bit MsiStatus/MsiCmd).
    msi_vectors : int or None
        Number of MSI vectors (MsiVecNum); default ``num_queues + 1``. At least
        ``num_queues + 1`` in non-sharing mode (decisions.md D4).
    msi_sharing : bool
        Sharing mode (``msi="v2"`` only): events are mapped to vectors by MAP_CONFIG and
        MAP_QUEUE. Otherwise vector 0 is the config event and vector q+1 is queue q.
    notify_base : int or None
        Byte offset of queue 0's doorbell, or ``None`` for the single QueueNotify register.
    notify_multiplier : int
        Distance in bytes between doorbells: 0 (one shared doorbell whose data names the queue) or
        a power of two from 4 to 0x8000.

    Members
    -------
    bus : In(wishbone.Signature(addr_width=...))
        Host bus target. Classic Wishbone: one request at a time, held until ``ack``.
    irq : Out(1)
        Wired, level-sensitive interrupt: high while InterruptStatus is not 0.
    device : Out(DeviceSignature(...))
        The device side, see :mod:`hw.device`.
    msi : Out(stream.Signature(MSIMessage))
        With ``msi`` set: MSI writes (64-bit address, 32-bit data) for an interrupt controller;
        :class:`hw.msi.MSIWishboneMaster` turns them into bus writes. While MSI is enabled
        ``irq`` stays low and InterruptStatus reads 0.

    Latency
    -------
    Every access is acknowledged exactly once, whatever the address, byte enables or timing. A
    write presented in cycle N is acknowledged in cycle N+1 and takes effect at the end of cycle
    N+1 (a reset, Status := 0, too), when the bus takes no request, so the next access sees it.
    A read presented in cycle N is acknowledged in cycle N+2: its register is selected in cycle
    N and its value registered into ``dat_r`` at the end of cycle N+1 (a config-space read
    samples the device's ``r_data`` then). ``ack`` is registered, so a master that holds its
    next request at once gets one write every 2 cycles, one read every 3. This pipelining keeps
    every path between the bus and the registers' state to one side of a flip-flop.

    A doorbell write in cycle N reaches ``device.notify`` in cycle N+3 at the earliest; an
    InterruptACK spares events of its ack cycle (they arrive with it, after the driver's read).

    Operation
    ---------
    Access rules (decisions.md D8): control registers (below 0x100) are 32-bit; a write whose byte
    enables are not all set is ignored and a read returns the whole word. Undefined offsets and
    write-only registers read 0; writes to read-only registers and undefined offsets do nothing.
    Config space takes 8/16/32-bit accesses, forwarded with their byte enables; offsets past
    ``config_size`` read 0 and ignore writes.

    Decisions where the sources are silent (documented here and in the README):

    * DriverFeatures writes are ignored once FEATURES_OK is set, so ``device.features`` is stable.
    * FEATURES_OK does not stick if the driver accepted a feature that was not offered
      (decisions.md D8) or did not accept VIRTIO_F_VERSION_1, which this non-legacy transport
      needs (virtio 1.2 §6.1).
    * A QueueNum of 0 is ignored like one above QueueNumMax.
    * QueueReady stores bit 0 of the written value.
    * Used-buffer events for a queue that is not ready are ignored (virtio 1.2 §2.7: the device
      must not notify for a queue it must not use).
    * Doorbells ignore partial byte enables, like the control registers.
    """

    def __init__(self, *, device_id, vendor_id, device_features=0, num_queues=1,
                 queue_size_max=256, config_size=0, shm_regions=(), msi=None,
                 msi_vectors=None, msi_sharing=False, notify_base=None, notify_multiplier=0):
        _check_u("device_id", device_id, 32)
        _check_u("vendor_id", vendor_id, 32)
        if not isinstance(device_features, int) or device_features < 0:
            raise ValueError(f"device_features must be a non-negative integer, not "
                             f"{device_features!r}")
        for bit, why in _TRANSPORT_OWNED.items():
            if device_features >> bit & 1:
                raise ValueError(f"device_features bit {int(bit)} {why}")
        if not isinstance(num_queues, int) or not 1 <= num_queues <= _MAX_QUEUES:
            raise ValueError(f"num_queues must be an integer from 1 to {_MAX_QUEUES}, not "
                             f"{num_queues!r}")
        if isinstance(queue_size_max, int):
            queue_size_max = (queue_size_max,) * num_queues
        if not isinstance(queue_size_max, Sequence) or len(queue_size_max) != num_queues:
            raise ValueError(f"queue_size_max must be an integer or a sequence of {num_queues} "
                             f"integers, not {queue_size_max!r}")
        for size in queue_size_max:
            if not isinstance(size, int) or not 1 <= size <= _MAX_QUEUE_SIZE:
                raise ValueError(f"queue_size_max values must be integers from 1 to "
                                 f"{_MAX_QUEUE_SIZE}, not {size!r}")
        if (not isinstance(config_size, int) or config_size % 4 or
                not 0 <= config_size <= WINDOW_SIZE - CONFIG_OFFSET):
            raise ValueError(f"config_size must be a multiple of 4 from 0 to "
                             f"{WINDOW_SIZE - CONFIG_OFFSET:#x}, not {config_size!r}")
        shm_regions = tuple(shm_regions)
        if len(shm_regions) > _MAX_SHM_REGIONS:
            raise ValueError(f"shm_regions may hold at most {_MAX_SHM_REGIONS} regions, not "
                             f"{len(shm_regions)}")
        for region in shm_regions:
            if (not isinstance(region, tuple) or len(region) != 2 or
                    not all(isinstance(v, int) for v in region) or
                    not (0 <= region[0] and 1 <= region[1] and region[0] + region[1] <= 1 << 64)):
                raise ValueError(f"shm_regions entries must be (base, length) with length >= 1 and "
                                 f"base + length <= 2**64, not {region!r}")
        if msi not in PERSONALITIES:
            raise ValueError(f"msi must be one of {PERSONALITIES!r}, not {msi!r}")
        if msi is None:
            if msi_vectors is not None or msi_sharing:
                raise ValueError("msi_vectors and msi_sharing need msi='v2' or msi='v1'")
        else:
            if msi_vectors is None:
                msi_vectors = num_queues + 1
            if not isinstance(msi_sharing, bool):
                raise ValueError(f"msi_sharing must be a bool, not {msi_sharing!r}")
            if msi == "v1" and msi_sharing:
                raise ValueError("msi_sharing needs msi='v2': proposal v1 has the fixed mapping only")
        self._check_notify(notify_base, notify_multiplier, num_queues, config_size)

        self._regs = RegisterMap(msi, notify=notify_base is not None)
        self._msi = msi
        self._msi_vectors = msi_vectors
        self._msi_sharing = msi_sharing
        self._msi_controller = None
        if msi is not None:
            # validates msi_vectors against the mapping mode (decisions.md D4)
            self._msi_controller = MSIController(num_queues=num_queues, vectors=msi_vectors,
                                                 sharing=msi_sharing)
        self._device_id = device_id
        self._vendor_id = vendor_id
        self._num_queues = num_queues
        self._queue_size_max = tuple(queue_size_max)
        self._config_size = config_size
        self._shm_regions = shm_regions
        self._notify_base = notify_base
        self._notify_multiplier = notify_multiplier

        offered = device_features | 1 << Feature.VERSION_1
        if notify_base is not None and msi != "v1":
            offered |= 1 << Feature.MMIO_NOTIFICATION
        if msi == "v2":
            offered |= 1 << Feature.MMIO_MSI
        self._features = offered
        self._feature_words = max(2, (offered.bit_length() + 31) // 32)

        window_end = WINDOW_SIZE
        if notify_base is not None:
            window_end = max(window_end, self.notify_window[1])
        self._addr_width = ceil_log2(window_end) - 2

        members = {
            "bus":    In(wishbone.Signature(addr_width=self._addr_width)),
            "irq":    Out(1),
            "device": Out(DeviceSignature(num_queues=num_queues, config_size=config_size,
                                          feature_words=self._feature_words)),
        }
        if msi is not None:
            members["msi"] = Out(stream.Signature(MSIMessage))
        super().__init__(members)

    @staticmethod
    def _check_notify(base, multiplier, num_queues, config_size):
        if base is None:
            if multiplier != 0:
                raise ValueError(f"notify_multiplier {multiplier!r} needs a notify_base")
            return
        # Proposal v2 2/5: the QueueNotify read structure holds 16-bit base and multiplier.
        if not isinstance(base, int) or not 0 <= base <= 0xffff or base % 4:
            raise ValueError(f"notify_base must be a multiple of 4 from 0 to 0xfffc, not {base!r}")
        if (not isinstance(multiplier, int) or not 0 <= multiplier <= 0xffff or
                (multiplier and (multiplier < 4 or multiplier & (multiplier - 1)))):
            raise ValueError(f"notify_multiplier must be 0 or a power of two from 4 to 0x8000, not "
                             f"{multiplier!r}")
        start = base
        end = base + (num_queues - 1) * multiplier + 4
        queue_notify = RegisterMap()["QueueNotify"].offset
        if (start, end) == (queue_notify, queue_notify + 4):
            return  # every doorbell is QueueNotify itself
        if start < CONFIG_OFFSET + config_size:
            raise ValueError(f"Doorbell window {start:#x}..{end - 1:#x} overlaps the registers or "
                             f"config space (0x0..{CONFIG_OFFSET + config_size - 1:#x})")

    @property
    def regs(self):
        """The :class:`~hw.regmap.RegisterMap` of this personality."""
        return self._regs

    @property
    def num_queues(self):
        return self._num_queues

    @property
    def queue_size_max(self):
        return self._queue_size_max

    @property
    def config_size(self):
        return self._config_size

    @property
    def shm_regions(self):
        return self._shm_regions

    @property
    def features(self):
        """All feature bits offered to the driver."""
        return self._features

    @property
    def feature_words(self):
        return self._feature_words

    @property
    def device_id(self):
        return self._device_id

    @property
    def vendor_id(self):
        return self._vendor_id

    @property
    def personality(self):
        """The ``msi`` constructor argument: ``None``, ``"v2"`` or ``"v1"``."""
        return self._msi

    @property
    def msi_controller(self):
        """The :class:`~hw.msi.MSIController` inside (its ``command`` port is traced in waveforms),
        or ``None`` without MSI."""
        return self._msi_controller

    @property
    def msi_vectors(self):
        return self._msi_vectors

    @property
    def msi_sharing(self):
        return self._msi_sharing

    @property
    def notify_base(self):
        return self._notify_base

    @property
    def notify_multiplier(self):
        return self._notify_multiplier

    @property
    def notify_window(self):
        """Byte range ``(start, end)`` of the doorbells, or ``None`` without notify_base."""
        if self._notify_base is None:
            return None
        return (self._notify_base,
                self._notify_base + (self._num_queues - 1) * self._notify_multiplier + 4)

    def doorbell(self, queue):
        """Byte offset of ``queue``'s doorbell, as a driver computes it (proposal v2 2/5)."""
        if self._notify_base is None:
            return self._regs["QueueNotify"].offset
        return self._notify_base + queue * self._notify_multiplier

    def elaborate(self, platform):
        m = Module()
        regs = self._regs
        bus = self.bus
        dev = self.device
        n = self._num_queues
        words = self._feature_words

        # The bus is pipelined (see Latency in the class docstring): in the request cycle N the
        # address is decoded into one strobe per register and the write data's value checks are
        # made; both are registered, and the write takes effect at the end of cycle N+1, the ack
        # cycle, in which the bus takes no request. A read's register is selected in cycle N
        # and its value is registered into ``dat_r`` at the end of cycle N+1. So every path
        # from the bus into the state, and from the state onto the bus, starts at a flip-flop.
        state = []

        def register(*args, **kwargs):
            sig = Signal(*args, **kwargs)
            state.append(sig)
            return sig

        def stage(value, name):
            """``value`` in cycle N, registered: available in cycle N+1."""
            sig = Signal.like(Value.cast(value), name=name)
            m.d.sync += sig.eq(value)
            return sig

        # --- bus handshake ------------------------------------------------------------------------
        reading    = Signal()            # cycle N+1 of a read: dat_r is loaded, ack follows
        request    = bus.cyc & bus.stb & ~bus.ack & ~reading
        write      = request & bus.we
        read       = request & ~bus.we
        full_write = write & (bus.sel == 0b1111)
        m.d.sync += [
            reading.eq(read),
            # a read is acknowledged only if the master still holds it (else it was aborted)
            bus.ack.eq(write | reading & bus.cyc & bus.stb),
        ]

        # One decoder of the word address, shared by reads and writes.
        decoded = {}

        def at(word):
            if word not in decoded:
                decoded[word] = bus.adr == word
            return decoded[word]

        wdata = stage(bus.dat_w, "wdata")   # write data in cycle N+1

        strobes = {}

        def written(name, gate=None):
            """A full-word write of register ``name`` (strobe in cycle N+1). ``gate``, a
            register, is applied in cycle N; one strobe per register, so one gate too."""
            if name not in strobes:
                condition = full_write & at(regs[name].word)
                if gate is not None:
                    condition = condition & gate
                strobes[name] = (stage(condition, f"write_{name}"), gate)
            strobe, its_gate = strobes[name]
            assert gate is its_gate, f"{name} is written under two different gates"
            return strobe

        # decisions.md D7: Status := 0 returns every register below to its init value. The
        # request is registered like any write (`reset_now`, also the device's reset pulse), so
        # it lands at the end of the ack cycle and is done before the next access completes.
        reset_now = dev.reset
        m.d.sync += reset_now.eq(full_write & at(regs["Status"].word) & (bus.dat_w == 0))

        # --- state --------------------------------------------------------------------------------
        dev_fsel     = register(range(words + 1))   # `words`: out of range
        drv_fsel     = register(range(words + 1))
        drv_features = [register(32, name=f"driver_features{w}") for w in range(words)]
        drv_bad      = register(words)              # the word holds bits that were not offered
        queue_sel    = register(range(n + 1))       # `n`: out of range
        status       = register(8)
        int_status   = register(2)                  # InterruptBit
        generation   = register(8)
        shm_count    = len(self._shm_regions)
        shm_sel      = register(range(shm_count + 1))  # `shm_count`: no such region
        queues       = dev.queues
        state += [queues.ready, *queues.size, *queues.desc, *queues.driver, *queues.device]

        accepted    = Cat(drv_features)
        ready       = queues.ready
        qsel_ok     = queue_sel < n
        sel_index   = queue_sel[:max(1, ceil_log2(n))]
        features_ok = status[_bit(Status.FEATURES_OK)]
        driver_ok   = status[_bit(Status.DRIVER_OK)]
        needs_reset = status[_bit(Status.DEVICE_NEEDS_RESET)]
        m.d.comb += [dev.status.eq(status), dev.features.eq(accepted)]

        # --- events -------------------------------------------------------------------------------
        used_event = (queues.used & ready).any()
        # virtio 1.2 §2.1.2: DEVICE_NEEDS_RESET with DRIVER_OK set sends a config change.
        config_event = dev.config_change | dev.needs_reset & ~needs_reset & driver_ok
        with m.If(dev.needs_reset):
            m.d.sync += needs_reset.eq(1)
        with m.If(dev.config_change):
            m.d.sync += generation.eq(generation + 1)

        ack_bits = Mux(written("InterruptACK"), wdata[:2], 0)
        msi_enabled = Const(0)
        fold = Const(0, 2)
        msi_gate = Const(1)
        if self._msi is not None:
            m.submodules.msi = msi = ResetInserter(reset_now)(self._msi_controller)
            wiring.connect(m, msi.msi, flipped(self.msi))
            msi_enabled = msi.enabled
            fold = msi.fold
            if self._msi == "v2":
                # decisions.md D2: the MSI registers exist once bit 40 is accepted.
                msi_gate = accepted[Feature.MMIO_MSI]
            m.d.comb += [
                msi.queue_events.eq(queues.used & ready),
                msi.config_event.eq(config_event),
                msi.int_status.eq(int_status),
                msi.queue_ready.eq(ready),
                msi.queue_sel.eq(queue_sel),
                msi.wdata.eq(wdata),
            ]
            self._decode_msi_staging(m, msi, written, msi_gate)
            if self._msi == "v2":
                self._decode_msi_v2(m, msi, full_write, at, stage, wdata, written, msi_gate)
            else:
                self._decode_msi_v1(m, msi, write, at, stage, wdata)
        # decisions.md D6: while MSI is enabled, events go to MSI, InterruptStatus stays 0 and
        # InterruptACK is ignored; ENABLE hands set bits over to MSI, DISABLE folds them back.
        enabling = disabling = Const(0)
        if self._msi is not None:
            enabling = msi.command_valid & (msi.command == MsiCmdV2.ENABLE.value)
            disabling = msi.command_valid & (msi.command == MsiCmdV2.DISABLE.value)
        # An event in the cycle of ENABLE goes to MSI; one in the cycle of DISABLE comes here,
        # next to the pending vectors the controller folds back. An event in the cycle of an
        # InterruptACK stays set.
        events = Mux(msi_enabled & ~disabling | enabling, 0, Cat(used_event, config_event))
        handed_over = Mux(enabling, 0b11, 0)
        int_next = Signal(2)
        m.d.comb += int_next.eq(int_status & ~ack_bits & ~handed_over | events | fold)
        m.d.sync += int_status.eq(int_next)
        m.d.comb += self.irq.eq(int_status.any())

        # --- doorbells ----------------------------------------------------------------------------
        with_data = bool(self._features >> Feature.NOTIFICATION_DATA & 1)
        m.submodules.notify = notify = ResetInserter(reset_now)(
            NotificationQueue(num_queues=n, with_data=with_data))
        wiring.connect(m, notify.notify, flipped(dev.notify))
        m.d.comb += notify.queue_ready.eq(ready)
        doorbell_hit = Signal()
        doorbell_queue = Signal.like(notify.doorbell.p.queue)
        self._decode_doorbell(m, bus.adr, bus.dat_w, at, doorbell_hit, doorbell_queue)
        m.d.comb += [
            # a queue that does not exist is dropped here, so only the index bits are kept
            notify.doorbell.valid.eq(stage(full_write & doorbell_hit &
                                           less_than(doorbell_queue, n), "doorbell")),
            notify.doorbell.p.queue.eq(stage(doorbell_queue[:max(1, ceil_log2(n))],
                                             "doorbell_queue")),
        ]
        if with_data:
            with m.If(accepted[Feature.NOTIFICATION_DATA]):
                # decisions.md D9: vq_index:16, next_off:15, next_wrap:1
                m.d.comb += notify.doorbell.p.as_value()[16:].eq(wdata[16:])

        # --- reads --------------------------------------------------------------------------------
        dev_features = Signal(32)
        with m.Switch(dev_fsel):
            for w in range(words):
                with m.Case(w):
                    m.d.comb += dev_features.eq(self._features >> (32 * w) & 0xffff_ffff)
        shm = {name: Signal(32, name=f"shm_{name}", init=0xffff_ffff)
               for name in ("SHMLenLow", "SHMLenHigh", "SHMBaseLow", "SHMBaseHigh")}
        with m.Switch(shm_sel):
            for i, (base, length) in enumerate(self._shm_regions):
                with m.Case(i):
                    m.d.comb += [
                        shm["SHMLenLow"].eq(length & 0xffff_ffff),
                        shm["SHMLenHigh"].eq(length >> 32),
                        shm["SHMBaseLow"].eq(base & 0xffff_ffff),
                        shm["SHMBaseHigh"].eq(base >> 32),
                    ]
        queue_num_max = Array(Const(size, QUEUE_SIZE_WIDTH) for size in self._queue_size_max)
        read_values = {
            "MagicValue":       MAGIC,
            "Version":          VERSION[self._msi],
            "DeviceID":         self._device_id,
            "VendorID":         self._vendor_id,
            "DeviceFeatures":   dev_features,
            "QueueNumMax":      Mux(qsel_ok, queue_num_max[sel_index], 0),
            "QueueReady":       Mux(qsel_ok, ready.bit_select(sel_index, 1), 0),
            "InterruptStatus":  int_status,
            "Status":           status,
            "ConfigGeneration": generation,
            **shm,
        }
        if "QueueNotify" in regs and regs["QueueNotify"].access.readable:
            read_values["QueueNotify"] = self._notify_structure(accepted)
        if self._msi == "v2":
            read_values["MsiVecNum"] = Mux(msi_gate, self._msi_vectors, 0)
            read_values["MsiState"] = Mux(msi_gate, self._msi_state(msi_enabled), 0)
        elif self._msi == "v1":
            msi_status = regs["MsiStatus"]
            read_values["MsiStatus"] = (
                msi_status.field("max_queue_num").place(n) |
                msi_enabled << msi_status.field("msi_enabled").lsb) << msi_status.shift

        # cycle N: which word is read (one-hot, registered); cycle N+1: its value into dat_r.
        rdata = Const(0, 32)
        for word in sorted({r.word for r in regs if r.access.readable}):
            value = Const(0, 32)
            for r in regs.in_word(word):
                if r.access.readable:
                    value = value | read_values[r.name]
            rdata = rdata | Mux(stage(at(word), f"read_{regs.in_word(word)[0].name}"), value, 0)
        cfg = dev.config
        if self._config_size:
            is_config = self._is_config(bus.adr)
            m.d.comb += [
                cfg.addr.eq(bus.adr - CONFIG_OFFSET // 4),
                cfg.sel.eq(bus.sel),
                cfg.w_data.eq(bus.dat_w),
                cfg.r_stb.eq(read & is_config),
                cfg.w_stb.eq(write & is_config),
            ]
            rdata = Mux(stage(is_config, "read_config"), cfg.r_data, rdata)
        with m.If(reading):
            m.d.sync += bus.dat_r.eq(rdata)

        # --- writes (cycle N+1) -------------------------------------------------------------------
        # (`stage` and `written` add registers, so they are called outside any m.If.)
        def saturated(limit, name):
            # A selector at or beyond `limit` is stored as `limit`: "out of range" (D8). The
            # comparison is made in cycle N.
            below = stage(less_than(bus.dat_w, limit), f"{name}_below_limit")
            return Mux(below, wdata, limit)

        for reg, selector, limit in (("DeviceFeaturesSel", dev_fsel, words),
                                     ("DriverFeaturesSel", drv_fsel, words),
                                     ("QueueSel", queue_sel, n),
                                     ("SHMSel", shm_sel, shm_count)):
            value = saturated(limit, reg)
            with m.If(written(reg)):
                m.d.sync += selector.eq(value)
        features_write = written("DriverFeatures")
        for w in range(words):
            offered = self._features >> (32 * w) & 0xffff_ffff
            not_offered = stage((bus.dat_w & ~offered & 0xffff_ffff).any(),
                                f"driver_features{w}_not_offered")
            with m.If(features_write & ~features_ok & (drv_fsel == w)):
                m.d.sync += [drv_features[w].eq(wdata & offered), drv_bad[w].eq(not_offered)]
        size_ok = {}
        for size in sorted(set(self._queue_size_max)):
            size_ok[size] = stage((bus.dat_w != 0) & less_than(bus.dat_w, size + 1),
                                  f"queue_num_fits_{size}")
        # Which queue a queue register write goes to, and whether that queue is open to it (not
        # ready), decided in cycle N from the state then: QueueSel and QueueReady only change
        # in an ack cycle, so they do not change between cycle N and N+1. Each register's
        # enable in cycle N+1 is then one AND of two flip-flops (plus the reset).
        selected = [stage(queue_sel == q, f"queue{q}_selected") for q in range(n)]
        writable = [stage((queue_sel == q) & ~queues.ready[q], f"queue{q}_writable")
                    for q in range(n)]
        queue_num = written("QueueNum")
        for q in range(n):
            with m.If(queue_num & writable[q] & size_ok[self._queue_size_max[q]]):
                m.d.sync += queues.size[q].eq(wdata)
        queue_ready = written("QueueReady")
        for q in range(n):
            with m.If(queue_ready & selected[q]):
                m.d.sync += queues.ready[q].eq(wdata[0])
        for name, area, half in _QUEUE_ADDRESS_REGISTERS:
            strobe = written(name)
            for q in range(n):
                with m.If(strobe & writable[q]):
                    m.d.sync += getattr(queues, area)[q].word_select(half, 32).eq(wdata)
        status_write = written("Status")
        with m.If(status_write):
            # decisions.md D8: bits are only set; FEATURES_OK does not stick after a feature that
            # was not offered, or without VIRTIO_F_VERSION_1. (A write of 0 is `reset_now`, and
            # sets nothing.)
            refuse = drv_bad.any() | ~accepted[Feature.VERSION_1]
            allowed = Mux(refuse, _DRIVER_STATUS & ~Status.FEATURES_OK.value, _DRIVER_STATUS)
            m.d.sync += status.eq(status | wdata[:8] & allowed)

        with m.If(reset_now):
            m.d.sync += [sig.eq(sig.init) for sig in state]

        return m

    # --- helpers for elaborate() ----------------------------------------------------------------

    def _msi_state(self, enabled):
        """MsiState (decisions.md D3): each flag in bit 0/1 (spec) and bit 31/30 (Linux)."""
        sharing = Const(int(self._msi_sharing), 1)
        value = Const(0, 32)
        for bit, flag in ((MsiStateBit.ENABLED, enabled), (MsiStateBit.ENABLED_LINUX, enabled),
                          (MsiStateBit.SHARING, sharing), (MsiStateBit.SHARING_LINUX, sharing)):
            value = value | (flag << bit)
        return value

    def _decode_msi_staging(self, m, msi, written, gate):
        """MsiAddrLow/High and MsiData writes (cycle N+1)."""
        for name, strobe in (("MsiAddrLow", msi.addr_lo_we), ("MsiAddrHigh", msi.addr_hi_we),
                             ("MsiData", msi.data_we)):
            m.d.comb += strobe.eq(written(name, gate))

    def _decode_msi_v2(self, m, msi, full_write, at, stage, wdata, written, gate):
        """Proposal v2 MsiVecSel and MsiCmd writes. The command is recognised in cycle N and
        performed in cycle N+1; unknown command values are ignored."""
        m.d.comb += msi.vec_sel_we.eq(written("MsiVecSel", gate))
        known = Cat(self.bus.dat_w == cmd.value for cmd in MsiCmdV2).any()
        command = stage(full_write & at(self._regs["MsiCmd"].word) & known & gate, "command")
        m.d.comb += [msi.command.eq(wdata), msi.command_valid.eq(command)]

    def _decode_msi_v1(self, m, msi, write, at, stage, wdata):
        """Proposal v1: 16-bit MsiStatus (0x0c0) and MsiCmd (0x0c2) share one word; each takes
        its own two byte lanes (decisions.md D8). The command is decoded in cycle N and
        performed in cycle N+1."""
        regs, bus = self._regs, self.bus
        status, cmd = regs["MsiStatus"], regs["MsiCmd"]
        assert status.word == cmd.word
        in_word = write & at(cmd.word)
        op_field, arg_field = cmd.field("cmd_op"), cmd.field("cmd_arg")

        def fields(data):
            value = data[cmd.shift:cmd.shift + cmd.width]
            return (value[op_field.lsb:op_field.lsb + op_field.width],
                    value[arg_field.lsb:arg_field.lsb + arg_field.width])

        op, arg = fields(bus.dat_w)
        cmd_write = in_word & ((bus.sel & cmd.lanes) == cmd.lanes)
        # The Linux v1 driver enables MSI with a read-modify-write of MsiStatus bit 15
        # (reference (d.3)); the spec calls MsiStatus read-only. We take bit 15 as msi_enabled,
        # like Dragonball, when only MsiStatus's lanes are written.
        status_write = in_word & (bus.sel == status.lanes)
        enable_bit = bus.dat_w[status.shift + status.field("msi_enabled").lsb]
        command = Signal.like(msi.command)
        valid = Signal()
        with m.If(cmd_write):
            with m.If(op == MsiOpV1.UPDATE.value):
                m.d.comb += [command.eq(MsiCmdV2.CONFIGURE.value), valid.eq(1)]
            with m.Elif((op == MsiOpV1.ENABLE.value) & (arg == 1)):
                m.d.comb += [command.eq(MsiCmdV2.ENABLE.value), valid.eq(1)]
            with m.Elif((op == MsiOpV1.ENABLE.value) & (arg == 0)):
                m.d.comb += [command.eq(MsiCmdV2.DISABLE.value), valid.eq(1)]
        with m.Elif(status_write):
            with m.If(enable_bit & ~msi.enabled):
                m.d.comb += [command.eq(MsiCmdV2.ENABLE.value), valid.eq(1)]
            with m.Elif(~enable_bit & msi.enabled):
                m.d.comb += [command.eq(MsiCmdV2.DISABLE.value), valid.eq(1)]
        m.d.comb += [
            msi.command.eq(stage(command, "command")),
            msi.command_valid.eq(stage(valid, "command_valid")),
            msi.use_arg.eq(1),
            msi.arg.eq(fields(wdata)[1]),
        ]

    def _config_words(self):
        first = CONFIG_OFFSET // 4
        return range(first, first + self._config_size // 4)

    def _is_config(self, adr):
        if not self._config_size:
            return Const(0)
        words = self._config_words()
        return (adr >= words.start) & (adr < words.stop)

    def _notify_structure(self, accepted):
        """The QueueNotify read value (proposal v1 1/2, v2 2/5; decisions.md D2)."""
        fields = {f.name: f for f in self._regs.notify_structure}
        if self._notify_base is None:
            # v1 without doorbells: every queue's notify address is QueueNotify itself.
            base, multiplier = self._regs["QueueNotify"].offset, 0
        else:
            base, multiplier = self._notify_base, self._notify_multiplier
        value = (fields["notify_base"].place(base) |
                 fields["notify_multiplier"].place(multiplier))
        if self._msi == "v1":
            return Const(value, 32)
        return Mux(accepted[Feature.MMIO_NOTIFICATION], value, 0)

    def _decode_doorbell(self, m, adr, dat_w, at, hit, queue):
        """Drive ``hit`` for a write address that is a doorbell and ``queue`` with its queue
        (``at(word)``: the address decoder)."""
        # decisions.md D9: QueueNotify always takes notifications; with multiplier 0 the written
        # value names the queue; otherwise the address does and the data's vq_index is not used.
        shared = [self._regs["QueueNotify"].word]
        per_queue = None
        if self._notify_base is not None:
            base = self._notify_base // 4
            if self._notify_multiplier == 0:
                shared.append(base)
            else:
                shift = ceil_log2(self._notify_multiplier // 4)
                offset = Signal(len(adr) + 1)    # a negative offset has its top bit set
                m.d.comb += offset.eq(adr - base)
                index = offset[shift:]
                aligned = offset[:shift] == 0 if shift else Const(1)
                per_queue = aligned & (index < self._num_queues)
        with m.If(Cat(at(word) for word in shared).any()):
            m.d.comb += [hit.eq(1), queue.eq(dat_w[:16])]
        if per_queue is not None:
            with m.Elif(per_queue):
                m.d.comb += [hit.eq(1), queue.eq(index)]
