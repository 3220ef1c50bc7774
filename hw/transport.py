"""The virtio-mmio device transport: register block, interrupt, doorbells, device side."""

from collections.abc import Sequence
from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, flipped
from amaranth.utils import ceil_log2

from . import wishbone
from ._checks import check_int, is_int
from .device import DeviceSignature, QUEUE_SIZE_WIDTH
from .logic import less_than
from .msi import MSIController, MSIMessage
from .notify import NotificationQueue
from .pipeline import BusPipeline
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


# The checks below raise TypeError for a value of the wrong type and ValueError for one out of
# range, with the same message: what the parameter must be, and what it was (hw._checks).

def _check_int(name, value, low, high, *, hex=True):
    bound = f"{high:#x}" if hex else f"{high}"
    check_int(name, value, f"an integer from {low} to {bound}", lambda v: low <= v <= high)


def _check_device_features(features):
    check_int("device_features", features, "a non-negative integer", lambda f: f >= 0)
    for bit, why in _TRANSPORT_OWNED.items():
        if features >> bit & 1:
            raise ValueError(f"device_features bit {int(bit)} {why}")


def _check_queue_size_max(sizes, num_queues):
    """The per-queue tuple of QueueNumMax."""
    if is_int(sizes):
        sizes = (sizes,) * num_queues
    message = (f"queue_size_max must be an integer or a sequence of {num_queues} integers, not "
               f"{sizes!r}")
    if not isinstance(sizes, Sequence) or isinstance(sizes, str):
        raise TypeError(message)
    if len(sizes) != num_queues:
        raise ValueError(message)
    for size in sizes:
        message = (f"queue_size_max values must be integers from 1 to {_MAX_QUEUE_SIZE}, not "
                   f"{size!r}")
        if not is_int(size):
            raise TypeError(message)
        if not 1 <= size <= _MAX_QUEUE_SIZE:
            raise ValueError(message)
    return tuple(sizes)


def _check_shm_regions(regions):
    """The tuple of (base, length) regions."""
    try:
        regions = tuple(regions)
    except TypeError:
        raise TypeError(f"shm_regions must be a sequence of (base, length), not {regions!r}") \
            from None
    if len(regions) > _MAX_SHM_REGIONS:
        raise ValueError(f"shm_regions may hold at most {_MAX_SHM_REGIONS} regions, not "
                         f"{len(regions)}")
    for region in regions:
        message = (f"shm_regions entries must be (base, length) with length >= 1 and "
                   f"base + length <= 2**64, not {region!r}")
        if (not isinstance(region, tuple) or len(region) != 2 or
                not all(is_int(v) for v in region)):
            raise TypeError(message)
        base, length = region
        if not (0 <= base and 1 <= length and base + length <= 1 << 64):
            raise ValueError(message)
    return regions


def _check_msi(msi, vectors, sharing, num_queues):
    """MsiVecNum: ``vectors``, or its default (decisions.md D4); the controller checks its
    range."""
    if msi not in PERSONALITIES:
        # a choice among three values, as in RegisterMap: ValueError whatever the type
        raise ValueError(f"msi must be one of {PERSONALITIES!r}, not {msi!r}")
    if msi is None:
        if vectors is not None or sharing:
            raise ValueError("msi_vectors and msi_sharing need msi='v2' or msi='v1'")
        return None
    if not isinstance(sharing, bool):
        raise TypeError(f"msi_sharing must be a bool, not {sharing!r}")
    if msi == "v1" and sharing:
        raise ValueError("msi_sharing needs msi='v2': proposal v1 has the fixed mapping only")
    return num_queues + 1 if vectors is None else vectors


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

    Raises
    ------
    TypeError
        If a parameter has the wrong type: an integer parameter that is not an ``int`` (a
        ``bool`` is not one), a ``queue_size_max`` that is neither an integer nor a sequence, an
        ``shm_regions`` entry that is not a tuple of two integers, an ``msi_sharing`` that is
        not a ``bool``, an ``msi_vectors`` that is not an integer.
    ValueError
        If a parameter is out of its range (see above), ``device_features`` has a bit that the
        transport owns, ``msi`` is not one of its three values, ``msi_vectors``/``msi_sharing``
        are given without ``msi`` (or sharing with ``"v1"``), ``msi_vectors`` is below
        ``num_queues + 1`` without sharing, or the doorbell window overlaps the registers or the
        config space. Each message names the parameter and the value.

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
        _check_int("device_id", device_id, 0, 0xffff_ffff)
        _check_int("vendor_id", vendor_id, 0, 0xffff_ffff)
        _check_device_features(device_features)
        _check_int("num_queues", num_queues, 1, _MAX_QUEUES, hex=False)
        queue_size_max = _check_queue_size_max(queue_size_max, num_queues)
        message = (f"config_size must be a multiple of 4 from 0 to "
                   f"{WINDOW_SIZE - CONFIG_OFFSET:#x}, not {config_size!r}")
        if not is_int(config_size):
            raise TypeError(message)
        if config_size % 4 or not 0 <= config_size <= WINDOW_SIZE - CONFIG_OFFSET:
            raise ValueError(message)
        shm_regions = _check_shm_regions(shm_regions)
        msi_vectors = _check_msi(msi, msi_vectors, msi_sharing, num_queues)
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
        self._queue_size_max = queue_size_max
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
        message = (f"notify_multiplier must be 0 or a power of two from 4 to 0x8000, not "
                   f"{multiplier!r}")
        if not is_int(multiplier):
            raise TypeError(message)
        if base is None:
            if multiplier != 0:
                raise ValueError(f"notify_multiplier {multiplier!r} needs a notify_base")
            return
        # Proposal v2 2/5: the QueueNotify read structure holds 16-bit base and multiplier.
        base_message = f"notify_base must be a multiple of 4 from 0 to 0xfffc, not {base!r}"
        if not is_int(base):
            raise TypeError(base_message)
        if not 0 <= base <= 0xffff or base % 4:
            raise ValueError(base_message)
        if (not 0 <= multiplier <= 0xffff or
                (multiplier and (multiplier < 4 or multiplier & (multiplier - 1)))):
            raise ValueError(message)
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
        # The bus pipeline (see Latency in the class docstring, and hw/pipeline.py) is shared by
        # the concerns below; each owns its registers, its write rules and its read values.
        # Their order only needs to respect the arguments, but it is the order of the netlist,
        # and Yosys/ABC map the same logic in another order to up to ~10 LUTs more or fewer
        # (boards.bench when the concerns were split: 594 iCE40 LUT4 in this order, 599 with
        # features before queues; docs/benchmark.md has today's count).
        pipe = BusPipeline(m, self.bus, self._regs)
        status = self._identity_and_status(m, pipe)
        queues = self._queue_registers(m, pipe)
        accepted = self._feature_negotiation(m, pipe, status)
        interrupt = self._interrupt_status(m, pipe, status, queues)
        self._msi_registers(m, pipe, status, accepted, queues, interrupt)
        self._doorbells(m, pipe, status, accepted, queues)
        self._config_space(m, pipe)
        self._shared_memory(m, pipe)
        pipe.finish(reset=status.reset)
        return m

    # --- concerns -------------------------------------------------------------------------------

    def _identity_and_status(self, m, pipe):
        """Identity registers, Status and the device reset (decisions.md D7, D8)."""
        dev = self.device
        for name, value in (("MagicValue", MAGIC), ("Version", VERSION[self._msi]),
                            ("DeviceID", self._device_id), ("VendorID", self._vendor_id)):
            pipe.read_value(name, value)

        status = pipe.state(8, name="status")
        # decisions.md D7: Status := 0 returns every register of the transport to its init
        # value. The request is registered like any write (`reset`, also the device's reset
        # pulse), so it lands at the end of the ack cycle and is done before the next access
        # completes.
        reset = dev.reset
        m.d.sync += reset.eq(pipe.full_write & pipe.at(self._regs["Status"].word) &
                             (self.bus.dat_w == 0))
        needs_reset = status[_bit(Status.DEVICE_NEEDS_RESET)]
        with m.If(dev.needs_reset):
            m.d.sync += needs_reset.eq(1)
        # Set by the feature negotiation (`_feature_negotiation`): FEATURES_OK may not stick.
        features_refused = Signal()
        with m.If(pipe.write_strobe("Status")):
            # decisions.md D8: bits are only set; FEATURES_OK does not stick after a feature that
            # was not offered, or without VIRTIO_F_VERSION_1. (A write of 0 is `reset`, and
            # sets nothing.) A `needs_reset` pulse in the cycle of the write is kept (D10c:
            # nothing lost).
            allowed = Mux(features_refused, _DRIVER_STATUS & ~Status.FEATURES_OK.value,
                          _DRIVER_STATUS)
            m.d.sync += status.eq(status | pipe.wdata[:8] & allowed |
                                  dev.needs_reset << _bit(Status.DEVICE_NEEDS_RESET))
        pipe.read_value("Status", status)
        m.d.comb += dev.status.eq(status)
        return SimpleNamespace(
            reset=reset, features_refused=features_refused, needs_reset=needs_reset,
            features_ok=status[_bit(Status.FEATURES_OK)],
            driver_ok=status[_bit(Status.DRIVER_OK)])

    def _feature_negotiation(self, m, pipe, status):
        """DeviceFeatures/DriverFeatures and their selectors (virtio 1.2 §2.2). Returns the
        accepted feature bits."""
        words = self._feature_words
        dev_fsel = pipe.selector("DeviceFeaturesSel", words, state_name="device_features_sel")
        drv_fsel = pipe.selector("DriverFeaturesSel", words, state_name="driver_features_sel")
        drv_features = [pipe.state(32, name=f"driver_features{w}") for w in range(words)]
        drv_bad = pipe.state(words, name="driver_features_bad")  # a word has bits not offered
        accepted = Cat(drv_features)

        features_write = pipe.write_strobe("DriverFeatures")
        for w in range(words):
            offered = self._features >> (32 * w) & 0xffff_ffff
            not_offered = pipe.stage((self.bus.dat_w & ~offered & 0xffff_ffff).any(),
                                     f"driver_features{w}_not_offered")
            # Frozen once FEATURES_OK is set, so that device.features is stable.
            with m.If(features_write & ~status.features_ok & (drv_fsel == w)):
                m.d.sync += [drv_features[w].eq(pipe.wdata & offered), drv_bad[w].eq(not_offered)]
        m.d.comb += status.features_refused.eq(drv_bad.any() | ~accepted[Feature.VERSION_1])

        dev_features = Signal(32)
        with m.Switch(dev_fsel):
            for w in range(words):
                with m.Case(w):
                    m.d.comb += dev_features.eq(self._features >> (32 * w) & 0xffff_ffff)
        pipe.read_value("DeviceFeatures", dev_features)
        m.d.comb += self.device.features.eq(accepted)
        return accepted

    def _queue_registers(self, m, pipe):
        """QueueSel and the registers of the selected queue, held on the device side."""
        n = self._num_queues
        queues = self.device.queues
        queue_sel = pipe.selector("QueueSel", n, state_name="queue_sel")   # `n`: out of range
        pipe.add_state(queues.ready, *queues.size, *queues.desc, *queues.driver, *queues.device)
        ready = queues.ready
        qsel_ok = queue_sel < n
        sel_index = queue_sel[:max(1, ceil_log2(n))]

        size_ok = {}
        for size in sorted(set(self._queue_size_max)):
            # A QueueNum of 0 is ignored like one above QueueNumMax.
            size_ok[size] = pipe.stage((self.bus.dat_w != 0) &
                                       less_than(self.bus.dat_w, size + 1),
                                       f"queue_num_fits_{size}")
        # Which queue a queue register write goes to, and whether that queue is open to it (not
        # ready), decided in cycle N from the state then: QueueSel and QueueReady only change
        # in an ack cycle, so they do not change between cycle N and N+1. Each register's
        # enable in cycle N+1 is then one AND of two flip-flops (plus the reset).
        selected = [pipe.stage(queue_sel == q, f"queue{q}_selected") for q in range(n)]
        writable = [pipe.stage((queue_sel == q) & ~ready[q], f"queue{q}_writable")
                    for q in range(n)]
        queue_num = pipe.write_strobe("QueueNum")
        for q in range(n):
            with m.If(queue_num & writable[q] & size_ok[self._queue_size_max[q]]):
                m.d.sync += queues.size[q].eq(pipe.wdata)
        queue_ready = pipe.write_strobe("QueueReady")
        for q in range(n):
            with m.If(queue_ready & selected[q]):
                m.d.sync += ready[q].eq(pipe.wdata[0])
        for name, area, half in _QUEUE_ADDRESS_REGISTERS:
            strobe = pipe.write_strobe(name)
            for q in range(n):
                with m.If(strobe & writable[q]):
                    m.d.sync += getattr(queues, area)[q].word_select(half, 32).eq(pipe.wdata)

        queue_num_max = Array(Const(size, QUEUE_SIZE_WIDTH) for size in self._queue_size_max)
        pipe.read_value("QueueNumMax", Mux(qsel_ok, queue_num_max[sel_index], 0))
        pipe.read_value("QueueReady", Mux(qsel_ok, ready.bit_select(sel_index, 1), 0))
        return SimpleNamespace(sel=queue_sel, ready=ready, used=queues.used)

    def _interrupt_status(self, m, pipe, status, queues):
        """InterruptStatus and InterruptACK, the wired interrupt, and the hand-over of events to
        and from MSI (decisions.md D6). Returns the InterruptStatus register and the
        configuration change event."""
        dev = self.device
        int_status = pipe.state(2, name="int_status")            # InterruptBit
        used_event = (queues.used & queues.ready).any()
        # virtio 1.2 §2.1.2: DEVICE_NEEDS_RESET with DRIVER_OK set sends a config change.
        config_event = dev.config_change | dev.needs_reset & ~status.needs_reset & status.driver_ok
        ack_bits = Mux(pipe.write_strobe("InterruptACK"), pipe.wdata[:2], 0)

        # decisions.md D6: while MSI is enabled, events go to MSI, InterruptStatus stays 0 and
        # InterruptACK is ignored; ENABLE hands set bits over to MSI, DISABLE folds them back.
        # (The controller's ports are driven by `_msi_registers`.)
        msi_enabled = enabling = disabling = Const(0)
        fold = Const(0, 2)
        controller = self._msi_controller
        if controller is not None:
            msi_enabled = controller.enabled
            fold = controller.fold
            enabling = controller.command_valid & (controller.command == MsiCmdV2.ENABLE.value)
            disabling = controller.command_valid & (controller.command == MsiCmdV2.DISABLE.value)
        # An event in the cycle of ENABLE goes to MSI; one in the cycle of DISABLE comes here,
        # next to the pending vectors the controller folds back. An event in the cycle of an
        # InterruptACK stays set.
        events = Mux(msi_enabled & ~disabling | enabling, 0, Cat(used_event, config_event))
        handed_over = Mux(enabling, 0b11, 0)
        int_next = Signal(2)
        m.d.comb += int_next.eq(int_status & ~ack_bits & ~handed_over | events | fold)
        m.d.sync += int_status.eq(int_next)
        m.d.comb += self.irq.eq(int_status.any())
        pipe.read_value("InterruptStatus", int_status)
        return SimpleNamespace(status=int_status, config_event=config_event)

    def _msi_registers(self, m, pipe, status, accepted, queues, interrupt):
        """The MSI registers and the MSI controller (decisions.md D2 to D7)."""
        if self._msi is None:
            return
        regs = self._regs
        m.submodules.msi = msi = ResetInserter(status.reset)(self._msi_controller)
        wiring.connect(m, msi.msi, flipped(self.msi))
        msi_gate = Const(1)
        if self._msi == "v2":
            # decisions.md D2: the MSI registers exist once bit 40 is accepted.
            msi_gate = accepted[Feature.MMIO_MSI]
        m.d.comb += [
            msi.queue_events.eq(queues.used & queues.ready),
            msi.config_event.eq(interrupt.config_event),
            msi.int_status.eq(interrupt.status),
            msi.queue_ready.eq(queues.ready),
            msi.queue_sel.eq(queues.sel),
            msi.wdata.eq(pipe.wdata),
        ]
        for name, strobe in (("MsiAddrLow", msi.addr_lo_we), ("MsiAddrHigh", msi.addr_hi_we),
                             ("MsiData", msi.data_we)):
            m.d.comb += strobe.eq(pipe.write_strobe(name, msi_gate))
        if self._msi == "v2":
            self._msi_v2_commands(m, pipe, msi, msi_gate)
            pipe.read_value("MsiVecNum", Mux(msi_gate, self._msi_vectors, 0))
            pipe.read_value("MsiState", Mux(msi_gate, self._msi_state(msi.enabled), 0))
        else:
            self._msi_v1_commands(m, pipe, msi)
            msi_status = regs["MsiStatus"]
            pipe.read_value("MsiStatus", (
                msi_status.field("max_queue_num").place(self._num_queues) |
                msi.enabled << msi_status.field("msi_enabled").lsb) << msi_status.shift)

    def _doorbells(self, m, pipe, status, accepted, queues):
        """QueueNotify and the per-queue doorbells (decisions.md D9), and the notification
        queue toward the device."""
        n = self._num_queues
        with_data = bool(self._features >> Feature.NOTIFICATION_DATA & 1)
        m.submodules.notify = notify = ResetInserter(status.reset)(
            NotificationQueue(num_queues=n, with_data=with_data))
        wiring.connect(m, notify.notify, flipped(self.device.notify))
        m.d.comb += notify.queue_ready.eq(queues.ready)
        doorbell_hit = Signal()
        doorbell_queue = Signal.like(notify.doorbell.p.queue)
        self._decode_doorbell(m, self.bus.adr, self.bus.dat_w, pipe.at, doorbell_hit,
                              doorbell_queue)
        m.d.comb += [
            # a queue that does not exist is dropped here, so only the index bits are kept
            notify.doorbell.valid.eq(pipe.stage(pipe.full_write & doorbell_hit &
                                                less_than(doorbell_queue, n), "doorbell")),
            notify.doorbell.p.queue.eq(pipe.stage(doorbell_queue[:max(1, ceil_log2(n))],
                                                  "doorbell_queue")),
        ]
        if with_data:
            with m.If(accepted[Feature.NOTIFICATION_DATA]):
                # decisions.md D9: vq_index:16, next_off:15, next_wrap:1
                m.d.comb += notify.doorbell.p.as_value()[16:].eq(pipe.wdata[16:])
        if self._regs["QueueNotify"].access.readable:
            pipe.read_value("QueueNotify", self._notify_structure(accepted))

    def _shared_memory(self, m, pipe):
        """SHMSel and the selected region's SHMLen/SHMBase (virtio 1.2 §4.2.2); an absent
        region reads all ones."""
        shm_count = len(self._shm_regions)
        shm_sel = pipe.selector("SHMSel", shm_count, state_name="shm_sel")  # no such region
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
        for name, value in shm.items():
            pipe.read_value(name, value)

    def _config_space(self, m, pipe):
        """ConfigGeneration and the device-specific configuration space, forwarded to the
        device's config port."""
        dev = self.device
        generation = pipe.state(8, name="generation")
        with m.If(dev.config_change):
            m.d.sync += generation.eq(generation + 1)
        pipe.read_value("ConfigGeneration", generation)
        if self._config_size:
            cfg = dev.config
            is_config = self._is_config(self.bus.adr)
            m.d.comb += [
                cfg.addr.eq(self.bus.adr - CONFIG_OFFSET // 4),
                cfg.sel.eq(self.bus.sel),
                cfg.w_data.eq(self.bus.dat_w),
                cfg.r_stb.eq(pipe.read & is_config),
                cfg.w_stb.eq(pipe.write & is_config),
            ]
            # a config-space read samples the device's r_data in cycle N+1
            pipe.read_window(is_config, cfg.r_data, "read_config")

    # --- helpers of the concerns ----------------------------------------------------------------

    def _msi_state(self, enabled):
        """MsiState (decisions.md D3): each flag in bit 0/1 (spec) and bit 31/30 (Linux)."""
        sharing = Const(int(self._msi_sharing), 1)
        value = Const(0, 32)
        for bit, flag in ((MsiStateBit.ENABLED, enabled), (MsiStateBit.ENABLED_LINUX, enabled),
                          (MsiStateBit.SHARING, sharing), (MsiStateBit.SHARING_LINUX, sharing)):
            value = value | (flag << bit)
        return value

    def _msi_v2_commands(self, m, pipe, msi, gate):
        """Proposal v2 MsiVecSel and MsiCmd writes. The command is recognised in cycle N and
        performed in cycle N+1; unknown command values are ignored."""
        m.d.comb += msi.vec_sel_we.eq(pipe.write_strobe("MsiVecSel", gate))
        known = Cat(self.bus.dat_w == cmd.value for cmd in MsiCmdV2).any()
        command = pipe.stage(pipe.full_write & pipe.at(self._regs["MsiCmd"].word) & known & gate,
                             "command")
        m.d.comb += [msi.command.eq(pipe.wdata), msi.command_valid.eq(command)]

    def _msi_v1_commands(self, m, pipe, msi):
        """Proposal v1: the 16-bit MsiStatus and MsiCmd share one word; each takes its own two
        byte lanes (decisions.md D8). The command is decoded in cycle N and
        performed in cycle N+1."""
        regs, bus = self._regs, self.bus
        status, cmd = regs["MsiStatus"], regs["MsiCmd"]
        assert status.word == cmd.word
        in_word = pipe.write & pipe.at(cmd.word)
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
            msi.command.eq(pipe.stage(command, "command")),
            msi.command_valid.eq(pipe.stage(valid, "command_valid")),
            msi.use_arg.eq(1),
            msi.arg.eq(fields(pipe.wdata)[1]),
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
