"""A model of the Linux ``virtio_mmio`` driver and virtio core, register access by register access.

The sequences follow the reference, section (d.1): ``virtio_mmio_probe``,
``register_virtio_device``, ``virtio_dev_probe`` (feature negotiation with the FEATURES_OK
read-back), ``vm_setup_vq``, config reads in a ConfigGeneration loop, ``vm_interrupt``,
``vm_del_vqs`` and ``vm_get_shm_region``.

The model talks to an accessor with ``async read(offset, size)`` and ``async write(offset, value,
size)`` (see :class:`sim.bus.SimMMIO`); it addresses registers by name through
:mod:`hw.regmap` and knows no offsets of its own.
"""

from dataclasses import dataclass, field

from hw.regmap import (CONFIG_OFFSET, MAGIC, Feature, InterruptBit, MsiCmdV2, MsiOpV1,
                       MsiStateBit, RegisterMap, Status)


__all__ = ["DriverError", "NoDevice", "FeaturesRefused", "VirtQueue", "VirtioMMIODriver",
           "LINUX_TRANSPORT_FEATURES", "notification_data"]


class DriverError(Exception):
    """The device did something the Linux driver would refuse."""


class NoDevice(DriverError):
    """DeviceID 0: a placeholder; Linux stops without an error (``-ENODEV``)."""


class FeaturesRefused(DriverError):
    """FEATURES_OK did not stick ("device refuses features")."""


#: Transport feature bits that Linux's ``vring_transport_features()`` keeps (reference (d.1) 3).
LINUX_TRANSPORT_FEATURES = frozenset({
    Feature.RING_INDIRECT_DESC, Feature.RING_EVENT_IDX, Feature.VERSION_1,
    Feature.ACCESS_PLATFORM, Feature.RING_PACKED, Feature.ORDER_PLATFORM,
    Feature.NOTIFICATION_DATA,
})

#: Device-specific feature bits live below this bit (virtio 1.2 §6).
DEVICE_FEATURE_BITS = 24


def notification_data(index, next_off, next_wrap):
    """Linux ``vring_notification_data()``: ``next << 16 | index`` (reference (b.5))."""
    return (next_wrap & 1) << 31 | (next_off & 0x7fff) << 16 | index & 0xffff


@dataclass
class VirtQueue:
    """What the driver set up for one queue."""
    index: int
    size: int
    desc: int
    driver: int
    device: int
    notify_offset: int
    interrupts: int = 0


@dataclass
class DriverState:
    device_id: int = 0
    vendor_id: int = 0
    version: int = 0
    device_features: int = 0
    features: int = 0
    queues: dict = field(default_factory=dict)
    config_changes: int = 0


class VirtioMMIODriver:
    """The Linux virtio-mmio driver, as a sequence of register accesses.

    Parameters
    ----------
    io : accessor
        ``async read(offset, size=4)`` and ``async write(offset, value, size=4)``.
    msi : None or "v2" or "v1"
        Which driver: mainline (``None``), the v2 MSI series (reference (d.2), which also keeps
        bits 39 and 40) or the v1 series (reference (d.3), Version 3).
    notification : bool
        The driver carries the v2 series' per-queue notification patch (reference (d.2), patch
        1/5): it keeps VIRTIO_F_MMIO_NOTIFICATION (39) when offered and then rings each queue at
        ``notify_base + index * notify_multiplier``. The mainline driver strips bit 39.
    """

    def __init__(self, io, *, msi=None, notification=False):
        self.io = io
        self.regs = RegisterMap(msi)
        self.extensions = set()
        if notification or msi == "v2":
            self.extensions.add(Feature.MMIO_NOTIFICATION)
        if msi == "v2":
            self.extensions.add(Feature.MMIO_MSI)
        self.msi = msi
        self.sharing = None
        self._msi_v1_vectors = None
        self.state = DriverState()
        self._notify_base = None
        self._notify_multiplier = 0

    # --- register access by name ------------------------------------------------------------------

    async def read(self, name):
        return await self.io.read(self.regs[name].offset)

    async def write(self, name, value):
        await self.io.write(self.regs[name].offset, value)

    def note(self, text):
        if hasattr(self.io, "note"):
            self.io.note(text)

    # --- virtio_mmio_probe / register_virtio_device ---------------------------------------------

    async def probe(self):
        """``virtio_mmio_probe``: magic, version, device and vendor ID."""
        self.note("probe")
        magic = await self.read("MagicValue")
        if magic != MAGIC:
            raise DriverError(f"wrong magic value {magic:#010x}")
        version = await self.read("Version")
        if version not in ((3,) if self.msi == "v1" else (1, 2)):
            raise DriverError(f"version {version} not supported")
        device_id = await self.read("DeviceID")
        if device_id == 0:
            raise NoDevice("DeviceID 0: placeholder device")
        vendor_id = await self.read("VendorID")
        self.state.version, self.state.device_id, self.state.vendor_id = \
            version, device_id, vendor_id
        return device_id

    async def reset(self):
        """``vm_reset``: Status := 0. Linux does not poll; the reset must be immediate."""
        self.note("reset")
        await self.write("Status", 0)

    async def get_status(self):
        return await self.read("Status")

    async def add_status(self, bits):
        """``virtio_add_status``: read Status, write it back with ``bits`` set."""
        status = await self.read("Status")
        await self.write("Status", status | Status(bits).value)

    # --- virtio_dev_probe: features ---------------------------------------------------------------

    async def get_features(self):
        """``vm_get_features``: high word first, then low word."""
        await self.write("DeviceFeaturesSel", 1)
        high = await self.read("DeviceFeatures")
        await self.write("DeviceFeaturesSel", 0)
        low = await self.read("DeviceFeatures")
        self.state.device_features = high << 32 | low
        return self.state.device_features

    def select_features(self, device_features, driver_supports):
        """What Linux accepts: the driver's device-specific bits and the ring/transport bits
        ``vring_transport_features()`` keeps, of those offered."""
        wanted = driver_supports & ((1 << DEVICE_FEATURE_BITS) - 1)
        for bit in LINUX_TRANSPORT_FEATURES | self.extensions:
            wanted |= 1 << bit
        return device_features & wanted

    async def write_features(self, features):
        """Both DriverFeatures words, high word first, as ``vm_finalize_features`` writes them,
        with no check of what is written (tests of what the device accepts write anything)."""
        await self.write("DriverFeaturesSel", 1)
        await self.write("DriverFeatures", features >> 32 & 0xffff_ffff)
        await self.write("DriverFeaturesSel", 0)
        await self.write("DriverFeatures", features & 0xffff_ffff)

    async def finalize_features(self, features):
        """``vm_finalize_features``: Version 2 requires VIRTIO_F_VERSION_1."""
        if self.msi != "v1" and not features >> Feature.VERSION_1 & 1:
            raise DriverError("device does not offer VIRTIO_F_VERSION_1")
        await self.write_features(features)
        self.state.features = features

    async def features_ok(self):
        """``virtio_features_ok``: set FEATURES_OK and require it to read back."""
        await self.add_status(Status.FEATURES_OK)
        if not await self.read("Status") & Status.FEATURES_OK.value:
            raise FeaturesRefused("device refuses features")

    async def negotiate(self, driver_supports=(1 << DEVICE_FEATURE_BITS) - 1):
        self.note("feature negotiation")
        offered = await self.get_features()
        features = self.select_features(offered, driver_supports)
        await self.finalize_features(features)
        await self.features_ok()
        return features

    # --- vm_find_vqs / vm_setup_vq / vm_del_vqs ---------------------------------------------------

    async def find_notify(self):
        """v2 series ``vm_find_vqs`` step 1: with bit 39 negotiated, read the notification
        structure from QueueNotify. The v1 driver (Version 3, no feature bit) always reads it
        (reference (d.3); the project's v1 patch reads it here, in ``find_vqs``)."""
        if self.msi != "v1" and not self.state.features >> Feature.MMIO_NOTIFICATION & 1:
            self._notify_base = None
            return
        value = await self.read("QueueNotify")
        fields = {f.name: f for f in self.regs.notify_structure}
        self._notify_base = fields["notify_base"].extract(value)
        self._notify_multiplier = fields["notify_multiplier"].extract(value)

    def notify_offset(self, index):
        if self._notify_base is None:
            return self.regs["QueueNotify"].offset
        return self._notify_base + index * self._notify_multiplier

    async def setup_vq(self, index, size=None, *, desc=None, driver=None, device=None):
        """``vm_setup_vq`` for Version 2. Returns the :class:`VirtQueue`."""
        self.note(f"setup queue {index}")
        await self.write("QueueSel", index)
        if await self.read("QueueReady"):
            raise DriverError(f"queue {index} already set up")
        num_max = await self.read("QueueNumMax")
        if num_max == 0:
            raise DriverError(f"queue {index} not available (QueueNumMax 0)")
        size = num_max if size is None else min(size, num_max)
        # A plausible ring layout: 64 KiB per queue, areas as vring_init places them.
        base = 0x8000_0000_0000 + index * 0x1_0000 if desc is None else desc
        desc = base
        driver = base + 16 * size if driver is None else driver
        device = (driver + 6 + 2 * size + 4095) & ~4095 if device is None else device
        await self.write("QueueNum", size)
        for name, value in (("QueueDesc", desc), ("QueueDriver", driver), ("QueueDevice", device)):
            await self.write(f"{name}Low", value & 0xffff_ffff)
            await self.write(f"{name}High", value >> 32)
        await self.write("QueueReady", 1)
        vq = VirtQueue(index, size, desc, driver, device, self.notify_offset(index))
        self.state.queues[index] = vq
        return vq

    async def enable_queues(self, queues):
        """QueueReady := 1 for each queue in ``queues``, with no ring set up: the shortcut of
        tests about doorbells and events, which need a ready queue and no ring
        (:meth:`setup_vq` is what Linux does)."""
        for index in queues:
            await self.write("QueueSel", index)
            await self.write("QueueReady", 1)

    async def del_vq(self, index):
        """``vm_del_vq``: QueueReady := 0 and read it back (Linux WARNs if it is not 0)."""
        self.note(f"tear down queue {index}")
        await self.write("QueueSel", index)
        await self.write("QueueReady", 0)
        if await self.read("QueueReady"):
            raise DriverError(f"queue {index} still ready after QueueReady := 0")
        self.state.queues.pop(index, None)

    async def notify(self, index, data=None):
        """``vm_notify`` / ``vm_notify_with_data``: write the queue index, or the 32-bit
        notification data, to the queue's notify address."""
        value = index if data is None else data
        await self.io.write(self.state.queues[index].notify_offset
                            if index in self.state.queues else self.notify_offset(index), value)

    # --- config space -----------------------------------------------------------------------------

    async def config_read(self, offset, size):
        """``vm_get``: one 1/2/4-byte access; 8-byte fields as two 4-byte reads."""
        if size == 8:
            low = await self.io.read(CONFIG_OFFSET + offset, 4)
            high = await self.io.read(CONFIG_OFFSET + offset + 4, 4)
            return high << 32 | low
        return await self.io.read(CONFIG_OFFSET + offset, size)

    async def config_write(self, offset, value, size):
        await self.io.write(CONFIG_OFFSET + offset, value, size)

    async def read_config_fields(self, fields, *, max_tries=8):
        """``virtio_cread_bytes``-style read of several fields, retried until ConfigGeneration is
        the same before and after (virtio 1.2 §2.5.1). ``fields`` is ``[(offset, size), ...]``."""
        for _ in range(max_tries):
            before = await self.read("ConfigGeneration")
            values = [await self.config_read(offset, size) for offset, size in fields]
            after = await self.read("ConfigGeneration")
            if before == after:
                return values
        raise DriverError(f"ConfigGeneration kept changing over {max_tries} tries")

    # --- interrupts -------------------------------------------------------------------------------

    async def interrupt(self):
        """``vm_interrupt``: read InterruptStatus, acknowledge the same value, dispatch."""
        status = await self.read("InterruptStatus")
        await self.write("InterruptACK", status)
        if status & InterruptBit.CONFIG_CHANGE.value:
            self.state.config_changes += 1
        if status & InterruptBit.USED_BUFFER.value:
            for vq in self.state.queues.values():
                vq.interrupts += 1            # vring_interrupt() on every queue
        return status

    # --- MSI, proposal v2 (reference (d.2)) --------------------------------------------------

    async def msi_command(self, command, vector=None):
        """``writel(vector, MsiVecSel); writel(command, MsiCmd)``."""
        if vector is not None:
            await self.write("MsiVecSel", vector)
        await self.write("MsiCmd", MsiCmdV2(command).value)

    async def msi_write_msg(self, vector, address, data):
        """``mmio_write_msi_msg``: select, stage address and data, CONFIGURE."""
        await self.write("MsiVecSel", vector)
        await self.write("MsiAddrLow", address & 0xffff_ffff)
        await self.write("MsiAddrHigh", address >> 32)
        await self.write("MsiData", data)
        await self.write("MsiCmd", MsiCmdV2.CONFIGURE.value)

    async def mask(self, vector):
        await self.msi_command(MsiCmdV2.MASK, vector)

    async def unmask(self, vector):
        """IRQ start-up (``request_irq``) unmasks the vector."""
        await self.msi_command(MsiCmdV2.UNMASK, vector)

    async def find_vqs_msi_v2(self, queues, messages):
        """``vm_find_vqs`` of the v2 series with MSI negotiated: vectors, ENABLE, maps, queues.

        ``messages`` gives ``(address, data)`` per vector the irq domain allocates. Returns the
        mapping mode (True: sharing)."""
        self.note("MSI bring-up (proposal v2)")
        sharing = bool(await self.read("MsiState") >> MsiStateBit.SHARING_LINUX & 1)
        vec_num = await self.read("MsiVecNum")
        queues = list(queues)
        needed = 2 if sharing else len(queues) + 1
        if vec_num < needed:
            raise DriverError(f"MsiVecNum {vec_num} < {needed}")
        for vector, (address, data) in enumerate(messages[:needed]):
            await self.msi_write_msg(vector, address, data)
        if not await self.read("MsiState") >> MsiStateBit.ENABLED_LINUX & 1:
            await self.msi_command(MsiCmdV2.ENABLE)
        await self.unmask(0)                                  # request_irq(config vector)
        if sharing:
            await self.msi_command(MsiCmdV2.MAP_CONFIG, 0)
            await self.unmask(1)                              # request_irq("virtqueues")
        for index in queues:
            await self.setup_vq(index)
            if sharing:
                await self.msi_command(MsiCmdV2.MAP_QUEUE, 1)   # QueueSel still holds index
            else:
                await self.unmask(index + 1)
        self.sharing = sharing
        return sharing

    async def free_msi_v2(self, *, linux_bug=False):
        """Teardown: free every vector's interrupt, tear down queues, disable MSI. The v2 series
        sends ENABLE instead of DISABLE (reference (d.2) 7, ``linux_bug``).

        ``free_irq`` masks the vector and then, as Linux 6.1's irq core deactivates the
        interrupt, writes it a zeroed message (``msi_domain_deactivate``): MASK, then CONFIGURE
        with address 0 and data 0, vector by vector. This is what the real kernel does with the
        project's MSI patch (tests/test_linux.py; decisions.md D17)."""
        vectors = 2 if self.sharing else len(self.state.queues) + 1
        for vector in range(vectors):
            await self.mask(vector)
            await self.msi_write_msg(vector, 0, 0)
        for index in sorted(self.state.queues):
            await self.del_vq(index)
        await self.msi_command(MsiCmdV2.ENABLE if linux_bug else MsiCmdV2.DISABLE)

    # --- MSI, proposal v1 (reference (d.3)) ----------------------------------------------------

    async def find_vqs_msi_v1(self, queues, messages):
        """``vm_find_vqs`` of the v1 series: configure nvqs+1 vectors with UPDATE, set up the
        queues, then set MsiStatus bit 15 by read-modify-write.

        The v1 driver reads MsiStatus bit 15 as "MSI supported" before all this; the v1 spec
        (and this device, decisions.md D1) defines it as msi_enabled, 0 after reset, so the
        model does not make that check."""
        self.note("MSI bring-up (proposal v1)")
        status_reg, cmd_reg = self.regs["MsiStatus"], self.regs["MsiCmd"]
        queues = list(queues)
        # max_queue_num: how many queues can have vectors (the fixed map needs one each)
        status = await self.io.read(status_reg.offset, status_reg.width // 8)
        if len(queues) > status_reg.field("max_queue_num").extract(status):
            raise DriverError(f"MsiStatus allows MSI for fewer than {len(queues)} queues")
        op, arg = cmd_reg.field("cmd_op"), cmd_reg.field("cmd_arg")
        for vector, (address, data) in enumerate(messages[:len(queues) + 1]):
            await self.write("MsiAddrLow", address & 0xffff_ffff)
            await self.write("MsiAddrHigh", address >> 32)
            await self.write("MsiData", data)
            await self.io.write(cmd_reg.offset, op.place(MsiOpV1.UPDATE.value) | arg.place(vector),
                                cmd_reg.width // 8)
        for index in queues:
            await self.setup_vq(index)
        csr = await self.io.read(status_reg.offset, status_reg.width // 8)
        await self.io.write(status_reg.offset, csr | status_reg.field("msi_enabled").mask,
                            status_reg.width // 8)
        self._msi_v1_vectors = len(queues) + 1

    async def free_msi_v1(self):
        """v1 teardown as Linux 6.1 does it with the project's patch: each vector's interrupt
        freed (no mask in v1; the irq core's deactivation UPDATEs it with a zeroed message),
        the queues torn down, msi_enabled cleared by read-modify-write (decisions.md D17)."""
        status_reg, cmd_reg = self.regs["MsiStatus"], self.regs["MsiCmd"]
        op, arg = cmd_reg.field("cmd_op"), cmd_reg.field("cmd_arg")
        for vector in range(self._msi_v1_vectors):
            for name in ("MsiAddrLow", "MsiAddrHigh", "MsiData"):
                await self.write(name, 0)
            await self.io.write(cmd_reg.offset, op.place(MsiOpV1.UPDATE.value) | arg.place(vector),
                                cmd_reg.width // 8)
        for index in sorted(self.state.queues):
            await self.del_vq(index)
        csr = await self.io.read(status_reg.offset, status_reg.width // 8)
        await self.io.write(status_reg.offset, csr & ~status_reg.field("msi_enabled").mask,
                            status_reg.width // 8)
        self._msi_v1_vectors = None

    async def msi_enable_v1(self, enable):
        """``MsiCmd`` ENABLE with argument 1 or 0 (spec v1)."""
        cmd_reg = self.regs["MsiCmd"]
        value = cmd_reg.field("cmd_op").place(MsiOpV1.ENABLE.value) | \
            cmd_reg.field("cmd_arg").place(int(enable))
        await self.io.write(cmd_reg.offset, value, cmd_reg.width // 8)

    # --- shared memory ------------------------------------------------------------------------

    async def get_shm_region(self, region_id):
        """``vm_get_shm_region``: ``(base, length)``, or ``None`` when the length is all ones."""
        await self.write("SHMSel", region_id)
        length = await self.read("SHMLenLow") | await self.read("SHMLenHigh") << 32
        if length == (1 << 64) - 1:
            return None
        base = await self.read("SHMBaseLow") | await self.read("SHMBaseHigh") << 32
        return base, length

    # --- whole sequences --------------------------------------------------------------------------

    async def bring_up(self, *, queues, driver_supports=(1 << DEVICE_FEATURE_BITS) - 1,
                       queue_size=None, msi_messages=None):
        """``register_virtio_device`` + ``virtio_dev_probe`` + ``find_vqs`` + DRIVER_OK.

        With ``msi_messages`` (``(address, data)`` per vector) the v2 driver sets up MSI when
        bit 40 was negotiated, and the v1 driver always does."""
        await self.probe()
        await self.reset()
        await self.add_status(Status.ACKNOWLEDGE)
        await self.add_status(Status.DRIVER)
        features = await self.negotiate(driver_supports)
        await self.find_notify()
        if msi_messages is not None and self.msi == "v2" and features >> Feature.MMIO_MSI & 1:
            await self.find_vqs_msi_v2(queues, msi_messages)
        elif msi_messages is not None and self.msi == "v1":
            await self.find_vqs_msi_v1(queues, msi_messages)
        else:
            for index in queues:
                await self.setup_vq(index, queue_size)
        await self.add_status(Status.DRIVER_OK)
        self.note("DRIVER_OK")
        # virtio_dev_probe, after the driver's probe: "If probe didn't do it, mark device
        # DRIVER_OK ourselves" reads Status once more (the driver above did it).
        await self.get_status()
        return features

    async def remove(self):
        """Driver removal as Linux 6.1 does it (seen in the co-simulation's transcript of the
        real kernel, tests/test_linux.py): the driver's remove resets the device and then
        deletes its queues (``virtio_reset_device`` before ``del_vqs``); ``virtio_dev_remove``
        then checks that Status reads 0 and sets ACKNOWLEDGE again."""
        await self.reset()
        if self.sharing is not None:            # the queues are on MSI vectors
            await self.free_msi_v2()
            self.sharing = None
        elif self._msi_v1_vectors:
            await self.free_msi_v1()
        else:
            for index in sorted(self.state.queues):
                await self.del_vq(index)
        if await self.get_status() != 0:
            raise DriverError("Status not 0 after reset")
        await self.add_status(Status.ACKNOWLEDGE)

    async def shutdown(self):
        """``virtio_dev_shutdown`` at power-off (Linux 6.1): the queues are marked broken in
        memory only, and the device is reset."""
        await self.reset()
