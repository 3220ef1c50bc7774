"""A transaction-level reference model of the whole transport, in plain Python.

Written from the register map (:mod:`hw.regmap`) and the behaviour spec (decisions.md D1-D10, plus
the README's list of decisions where the sources are silent), not from the gateware: it imports no
Amaranth and shares no code with :mod:`hw.transport`. The differential tests
(``tests/test_differential.py``) drive the gateware and this model with the same random sequences
and require them to agree.

The model is transaction-level: every call is one complete operation (a bus access, a device
event, a change of sink backpressure), applied in order. Between operations the model "settles":
with a sink ready, everything that can be delivered is delivered (round robin, as the gateware
documents); with a sink held, one message (or notification) waits on the stream and the rest stay
pending, coalescing per vector (per queue) as decisions.md D5 (D9) require.

Usage::

    model = TransportModel(device_id=1, vendor_id=0x1af4, num_queues=2, config_size=8, msi="v2")
    model.write(regs["QueueSel"].offset, 1)
    value = model.read(regs["QueueNumMax"].offset)
    model.used(0)
    model.take_messages()        # MSI (address, data) delivered since the last call
    model.take_notifications()   # (queue, next_off, next_wrap) delivered since the last call
"""

from dataclasses import dataclass

from hw.regmap import (CONFIG_OFFSET, MAGIC, NO_VECTOR, VERSION, Feature,
                       MsiCmdV2, MsiOpV1, MsiStateBit, RegisterMap, Status)


__all__ = ["TransportModel", "Vector"]

MASK32 = 0xffff_ffff

#: Status bits only the driver may set (virtio 1.2 §2.1); DEVICE_NEEDS_RESET belongs to the device.
_DRIVER_STATUS = (Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK | Status.FEATURES_OK |
                  Status.FAILED).value


@dataclass
class Vector:
    """One MSI vector (decisions.md D5)."""
    address: int = 0
    data: int = 0
    configured: bool = False
    masked: bool = False
    pend_config: bool = False
    pend_used: bool = False

    @property
    def pending(self):
        return self.pend_config or self.pend_used


@dataclass
class Queue:
    ready: int = 0
    size: int = 0
    desc: int = 0
    driver: int = 0
    device: int = 0


class TransportModel:
    """Reference model of :class:`hw.VirtioMMIOTransport` with the same constructor parameters
    (validated only as far as the model needs), plus the device's config-space contents.

    Parameters
    ----------
    config : bytes
        Contents of the device's config space behind the config port (a device that answers from
        a byte array, like :class:`sim.device.DeviceModel`).
    """

    def __init__(self, *, device_id, vendor_id, device_features=0, num_queues=1,
                 queue_size_max=256, config_size=0, shm_regions=(), msi=None, msi_vectors=None,
                 msi_sharing=False, notify_base=None, notify_multiplier=0, config=b""):
        self.regs = RegisterMap(msi, notify=notify_base is not None)
        self.msi = msi
        self.device_id = device_id
        self.vendor_id = vendor_id
        self.num_queues = num_queues
        if isinstance(queue_size_max, int):
            queue_size_max = (queue_size_max,) * num_queues
        self.queue_size_max = tuple(queue_size_max)
        self.config_size = config_size
        self.shm_regions = tuple(shm_regions)
        self.vectors = (msi_vectors if msi_vectors is not None else num_queues + 1) if msi else 0
        self.sharing = bool(msi_sharing)
        self.notify_base = notify_base
        self.notify_multiplier = notify_multiplier

        # decisions.md D1: VERSION_1 always; 39 with notification addresses (not v1); 40 with v2.
        offered = device_features | 1 << Feature.VERSION_1
        if notify_base is not None and msi != "v1":
            offered |= 1 << Feature.MMIO_NOTIFICATION
        if msi == "v2":
            offered |= 1 << Feature.MMIO_MSI
        self.features = offered
        self.feature_words = max(2, (offered.bit_length() + 31) // 32)

        self.config = bytearray(config.ljust(config_size, b"\0")[:config_size])
        self.messages = []          # delivered MSI (address, data), oldest first
        self.notifications = []     # delivered (queue, next_off, next_wrap)
        self.device_resets = 0      # pulses of device.reset
        self.msi_held = False
        self.notify_held = False
        self.power_on()

    # --- state ------------------------------------------------------------------------------------

    def power_on(self):
        """The power-on state; also what a Status write of 0 returns to (decisions.md D7)."""
        self.dev_fsel = 0
        self.drv_fsel = 0
        self.drv_features = [0] * self.feature_words
        self.drv_bad = [False] * self.feature_words
        self.queue_sel = 0
        self.status = 0
        self.int_status = 0
        self.generation = 0
        self.shm_sel = 0
        self.queues = [Queue() for _ in range(self.num_queues)]
        # MSI (decisions.md D5, D7): vectors unconfigured, unmasked, not pending; maps NO_VECTOR.
        self.msi_enabled = False
        self.vec_sel = 0
        self.staging = [0, 0, 0]            # address low, address high, data
        self.table = [Vector() for _ in range(self.vectors)]
        self.config_map = None
        self.queue_map = [None] * self.num_queues
        self.msi_last = 0                   # round robin: last vector issued
        self.msi_slot = None                # (vector, address, data) offered on the stream
        # Notifications (decisions.md D9): one pending entry per queue, latest data wins.
        self.notify_pending = {}            # queue -> data (next_off:15, next_wrap:1)
        self.notify_last = 0
        self.notify_slot = None             # (queue, data) offered on the stream

    def reset_input(self):
        """The transport's reset input (the sync domain reset): power-on state at once."""
        self.power_on()
        self._settle()

    def accepted(self, bit):
        return bool(self.drv_features[bit // 32] >> (bit % 32) & 1) if bit // 32 < len(
            self.drv_features) else False

    @property
    def irq(self):
        # decisions.md D6: the wired interrupt is high while InterruptStatus is not 0.
        return int(self.int_status != 0)

    @property
    def accepted_features(self):
        value = 0
        for w, word in enumerate(self.drv_features):
            value |= word << (32 * w)
        return value

    def msi_gate(self):
        # decisions.md D2: v2 MSI registers exist once bit 40 is accepted; v1 always.
        if self.msi == "v2":
            return self.accepted(Feature.MMIO_MSI)
        return self.msi == "v1"

    # --- the host bus ---------------------------------------------------------------------------

    def _is_config(self, offset):
        return CONFIG_OFFSET <= offset < CONFIG_OFFSET + self.config_size

    def read(self, offset, sel=0b1111):
        """A read of the word at byte ``offset`` (aligned down); returns the whole 32-bit word."""
        word = offset & ~3
        if self._is_config(word):
            # decisions.md D8/D10: forwarded to the device; the word comes back whole.
            value = int.from_bytes(self.config[word - CONFIG_OFFSET:word - CONFIG_OFFSET + 4],
                                   "little")
        else:
            value = 0
            for reg in self.regs.in_word(word >> 2):
                if reg.access.readable:
                    value |= self._read_register(reg.name) << reg.shift
        self._settle()
        return value & MASK32

    def _read_register(self, name):
        n = self.num_queues
        if name == "MagicValue":
            return MAGIC
        if name == "Version":
            return VERSION[self.msi]
        if name == "DeviceID":
            return self.device_id
        if name == "VendorID":
            return self.vendor_id
        if name == "DeviceFeatures":
            w = self.dev_fsel
            return self.features >> (32 * w) & MASK32 if w < self.feature_words else 0
        if name == "QueueNumMax":
            return self.queue_size_max[self.queue_sel] if self.queue_sel < n else 0
        if name == "QueueReady":
            return self.queues[self.queue_sel].ready if self.queue_sel < n else 0
        if name == "InterruptStatus":
            return self.int_status
        if name == "Status":
            return self.status
        if name == "ConfigGeneration":
            return self.generation
        if name.startswith("SHM"):
            if self.shm_sel >= len(self.shm_regions):
                return MASK32       # decisions.md D10: absent regions read all ones
            base, length = self.shm_regions[self.shm_sel]
            value = length if "Len" in name else base
            return value >> 32 if name.endswith("High") else value & MASK32
        if name == "QueueNotify":
            if self.msi != "v1" and not self.accepted(Feature.MMIO_NOTIFICATION):
                return 0            # decisions.md D2
            fields = {f.name: f for f in self.regs.notify_structure}
            if self.notify_base is None:
                base, mult = self.regs["QueueNotify"].offset, 0
            else:
                base, mult = self.notify_base, self.notify_multiplier
            return fields["notify_base"].place(base) | fields["notify_multiplier"].place(mult)
        if name == "MsiVecNum":
            return self.vectors if self.msi_gate() else 0
        if name == "MsiState":
            if not self.msi_gate():
                return 0
            # decisions.md D3: each flag in both places.
            e, s = int(self.msi_enabled), int(self.sharing)
            return (e << MsiStateBit.ENABLED | e << MsiStateBit.ENABLED_LINUX |
                    s << MsiStateBit.SHARING | s << MsiStateBit.SHARING_LINUX)
        if name == "MsiStatus":
            reg = self.regs["MsiStatus"]
            return (reg.field("max_queue_num").place(n) |
                    int(self.msi_enabled) << reg.field("msi_enabled").lsb)
        raise AssertionError(f"model does not know how to read {name}")

    def write(self, offset, value, sel=0b1111):
        """A write of the 32-bit word ``value`` (lanes already in place) under byte enables
        ``sel`` to the word at byte ``offset``."""
        word = offset & ~3
        value &= MASK32
        if self._is_config(word):
            # decisions.md D8: forwarded with its byte enables.
            for lane in range(4):
                if sel >> lane & 1:
                    self.config[word - CONFIG_OFFSET + lane] = value >> (8 * lane) & 0xff
        elif self.msi == "v1" and word == self.regs["MsiStatus"].offset:
            self._write_v1_pair(value, sel)
        elif sel == 0b1111:
            # decisions.md D8: control registers take only full-word writes.
            regs = [r for r in self.regs.in_word(word >> 2) if r.access.writable]
            if regs:
                self._write_register(regs[0].name, value)
            queue = self._doorbell_queue(word, value)
            if queue is not None:
                self._doorbell(queue, value)
        self._settle()

    def _write_register(self, name, value):
        n = self.num_queues
        sel = self.queue_sel
        if name == "DeviceFeaturesSel":
            self.dev_fsel = min(value, self.feature_words)
        elif name == "DriverFeaturesSel":
            self.drv_fsel = min(value, self.feature_words)
        elif name == "DriverFeatures":
            # README: DriverFeatures writes are ignored once FEATURES_OK is set.
            w = self.drv_fsel
            if not self.status & Status.FEATURES_OK.value and w < self.feature_words:
                offered = self.features >> (32 * w) & MASK32
                self.drv_features[w] = value & offered
                self.drv_bad[w] = bool(value & ~offered)
        elif name == "QueueSel":
            self.queue_sel = min(value, n)
        elif name == "QueueNum":
            # decisions.md D8 + README: ignored while ready, above QueueNumMax, or 0.
            if sel < n and not self.queues[sel].ready and 0 < value <= self.queue_size_max[sel]:
                self.queues[sel].size = value
        elif name == "QueueReady":
            if sel < n:
                self.queues[sel].ready = value & 1
                if not value & 1:
                    # README: a queue's pending notification is dropped when QueueReady falls.
                    self.notify_pending.pop(sel, None)
        elif name.startswith("Queue") and name.endswith(("Low", "High")):
            if sel < n and not self.queues[sel].ready:
                area = name[len("Queue"):-len("Low" if name.endswith("Low") else "High")].lower()
                shift = 32 if name.endswith("High") else 0
                q = self.queues[sel]
                old = getattr(q, area)
                setattr(q, area, old & ~(MASK32 << shift) | value << shift)
        elif name == "InterruptACK":
            # decisions.md D6: InterruptStatus is 0 while MSI is enabled, so an ACK does nothing.
            self.int_status &= ~value & 0b11
        elif name == "Status":
            if value == 0:
                self._soft_reset()
            else:
                # decisions.md D8 + README: FEATURES_OK does not stick after a feature that was not
                # offered, or without VERSION_1.
                allowed = _DRIVER_STATUS
                if any(self.drv_bad) or not self.accepted(Feature.VERSION_1):
                    allowed &= ~Status.FEATURES_OK.value
                self.status |= value & 0xff & allowed
        elif name == "SHMSel":
            self.shm_sel = min(value, len(self.shm_regions))
        elif self.msi == "v2":
            self._write_v2(name, value)
        elif self.msi == "v1" and name in ("MsiAddrLow", "MsiAddrHigh", "MsiData"):
            self._write_staging(name, value)

    def _soft_reset(self):
        # decisions.md D7: power-on state before the next access; no message offered after it.
        self.power_on()
        self.device_resets += 1

    # --- doorbells (decisions.md D9) ------------------------------------------------------------

    def _doorbell_queue(self, word, value):
        """The queue index a full write to ``word`` notifies, or None if it is no doorbell."""
        shared = [self.regs["QueueNotify"].offset]
        if self.notify_base is not None and self.notify_multiplier == 0:
            shared.append(self.notify_base)
        if word in shared:
            return self._doorbell_index(value)
        if self.notify_base is not None and self.notify_multiplier:
            rel = word - self.notify_base
            if rel >= 0 and rel % self.notify_multiplier == 0:
                q = rel // self.notify_multiplier
                if q < self.num_queues:
                    return q
        return None

    def _doorbell_index(self, value):
        # decisions.md D9: the written value is the queue index, or vq_index:16 with
        # NOTIFICATION_DATA. Only the low 16 bits name the queue (hw/device.py Notification).
        return value & 0xffff

    def _doorbell(self, queue, value):
        if queue >= self.num_queues or not self.queues[queue].ready:
            return      # decisions.md D9: dropped
        data = value >> 16 if self.accepted(Feature.NOTIFICATION_DATA) else 0
        self.notify_pending[queue] = data

    # --- MSI ----------------------------------------------------------------------------------

    def _write_staging(self, name, value):
        index = {"MsiAddrLow": 0, "MsiAddrHigh": 1, "MsiData": 2}[name]
        self.staging[index] = value

    def _write_v2(self, name, value):
        if not self.msi_gate():
            return          # decisions.md D2
        if name in ("MsiAddrLow", "MsiAddrHigh", "MsiData"):
            self._write_staging(name, value)
        elif name == "MsiVecSel":
            self.vec_sel = value
        elif name == "MsiCmd":
            try:
                cmd = MsiCmdV2(value)
            except ValueError:
                return      # unknown commands are ignored
            self._command(cmd, self.vec_sel)

    def _write_v1_pair(self, value, sel):
        """Proposal v1: 16-bit MsiStatus (0x0c0) and MsiCmd (0x0c2) share one word and take their
        own byte lanes (decisions.md D8)."""
        status, cmd = self.regs["MsiStatus"], self.regs["MsiCmd"]
        if sel & cmd.lanes == cmd.lanes:
            word = value >> cmd.shift & 0xffff
            op = cmd.field("cmd_op").extract(word)
            arg = cmd.field("cmd_arg").extract(word)
            if op == MsiOpV1.UPDATE.value:
                self._command(MsiCmdV2.CONFIGURE, arg)
            elif op == MsiOpV1.ENABLE.value and arg in (0, 1):
                self._command(MsiCmdV2.ENABLE if arg else MsiCmdV2.DISABLE, None)
        elif sel == status.lanes:
            # README/transport: Linux v1 enables MSI by writing MsiStatus bit 15 (like Dragonball).
            enable = bool(value >> (status.shift + status.field("msi_enabled").lsb) & 1)
            if enable != self.msi_enabled:
                self._command(MsiCmdV2.ENABLE if enable else MsiCmdV2.DISABLE, None)

    def _target(self, selection):
        """The vector a command acts on, or None (decisions.md D5: NO_VECTOR or out of range)."""
        if selection is None or not 0 <= selection < self.vectors:
            return None
        return selection

    def _command(self, cmd, selection):
        v = self._target(selection)
        if cmd is MsiCmdV2.ENABLE:
            # decisions.md D6: set InterruptStatus bits become MSI events, then are cleared.
            was = self.int_status
            self.int_status = 0
            self.msi_enabled = True
            if was & 0b10:
                self._msi_event(config=True)
            if was & 0b01:
                for q in range(self.num_queues):
                    if self.queues[q].ready:
                        self._msi_event(queue=q)
        elif cmd is MsiCmdV2.DISABLE:
            # decisions.md D6: pending vectors fold back into InterruptStatus.
            if any(vec.pend_used for vec in self.table):
                self.int_status |= 0b01
            if any(vec.pend_config for vec in self.table):
                self.int_status |= 0b10
            for vec in self.table:
                vec.pend_used = vec.pend_config = False
            self.msi_enabled = False
        elif cmd is MsiCmdV2.CONFIGURE:
            if v is not None:
                vec = self.table[v]
                vec.address = self.staging[0] | self.staging[1] << 32
                vec.data = self.staging[2]
                vec.configured = True
        elif cmd is MsiCmdV2.MASK:
            if v is not None:
                self.table[v].masked = True
        elif cmd is MsiCmdV2.UNMASK:
            if v is not None:
                self.table[v].masked = False
        elif cmd in (MsiCmdV2.MAP_CONFIG, MsiCmdV2.MAP_QUEUE) and self.sharing:
            # decisions.md D4: MsiVecSel = NO_VECTOR unmaps; other out-of-range values do nothing.
            if selection == NO_VECTOR:
                mapping = None
            elif v is not None:
                mapping = v
            else:
                return
            if cmd is MsiCmdV2.MAP_CONFIG:
                self.config_map = mapping
            elif self.queue_sel < self.num_queues:
                self.queue_map[self.queue_sel] = mapping

    def config_vector(self):
        """decisions.md D4: vector 0 without sharing; the map entry with sharing."""
        return self.config_map if self.sharing else 0

    def queue_vector(self, queue):
        return self.queue_map[queue] if self.sharing else queue + 1

    def _msi_event(self, *, config=False, queue=None):
        v = self.config_vector() if config else self.queue_vector(queue)
        if v is None:
            return          # decisions.md D4: NO_VECTOR raises nothing
        if config:
            self.table[v].pend_config = True
        else:
            self.table[v].pend_used = True

    # --- device side ----------------------------------------------------------------------------

    def used(self, queue):
        """A used-buffer event of ``queue`` (a pulse of ``device.queues[queue].used``)."""
        if self.queues[queue].ready:       # README: ignored for a queue that is not ready
            if self.msi_enabled:
                self._msi_event(queue=queue)
            else:
                self.int_status |= 0b01
        self._settle()

    def config_change(self, offset=None, data=b""):
        """The device changes config bytes (if given) and pulses ``config_change``."""
        if offset is not None:
            self.config[offset:offset + len(data)] = data
            del self.config[self.config_size:]
        self.generation = (self.generation + 1) & 0xff
        self._config_event()
        self._settle()

    def needs_reset(self):
        """A pulse of ``device.needs_reset``: DEVICE_NEEDS_RESET, and with DRIVER_OK a config
        change interrupt the first time (virtio 1.2 §2.1.2)."""
        bit = Status.DEVICE_NEEDS_RESET.value
        if not self.status & bit and self.status & Status.DRIVER_OK.value:
            self._config_event()
        self.status |= bit
        self._settle()

    def _config_event(self):
        if self.msi_enabled:
            self._msi_event(config=True)
        else:
            self.int_status |= 0b10

    # --- sinks -----------------------------------------------------------------------------------

    def hold_msi(self, hold=True):
        self.msi_held = hold
        self._settle()

    def release_msi(self):
        self.hold_msi(False)

    def hold_notify(self, hold=True):
        self.notify_held = hold
        self._settle()

    def release_notify(self):
        self.hold_notify(False)

    def take_messages(self):
        got, self.messages = self.messages, []
        return got

    def take_notifications(self):
        got, self.notifications = self.notifications, []
        return got

    # --- delivery between operations --------------------------------------------------------------

    @staticmethod
    def _round_robin(candidates, last):
        """The lowest candidate above ``last``, else the lowest (hw docstrings: round robin)."""
        above = [c for c in candidates if c > last]
        return min(above) if above else min(candidates)

    def _deliverable(self):
        current = self.msi_slot[0] if self.msi_slot is not None else None
        return [v for v, vec in enumerate(self.table)
                if vec.pending and vec.configured and not vec.masked and self.msi_enabled and
                v != current]

    def _settle(self):
        # MSI (decisions.md D5): a vector's pending bit clears when its message is accepted;
        # events until then coalesce into the message on the stream.
        while True:
            if self.msi_slot is not None:
                if self.msi_held:
                    break
                v, address, data = self.msi_slot
                self.messages.append((address, data))
                self.table[v].pend_config = self.table[v].pend_used = False
                self.msi_slot = None
            candidates = self._deliverable()
            if not candidates:
                break
            v = self._round_robin(candidates, self.msi_last)
            self.msi_last = v
            self.msi_slot = (v, self.table[v].address, self.table[v].data)
        # Notifications (decisions.md D9): the entry leaves "pending" when it is put on the
        # stream; a later doorbell pends again.
        while True:
            if self.notify_slot is not None:
                if self.notify_held:
                    break
                q, data = self.notify_slot
                self.notifications.append((q, data & 0x7fff, data >> 15 & 1))
                self.notify_slot = None
            if not self.notify_pending:
                break
            q = self._round_robin(list(self.notify_pending), self.notify_last)
            self.notify_last = q
            self.notify_slot = (q, self.notify_pending.pop(q))

    # --- what the device side sees --------------------------------------------------------------

    def device_view(self):
        """The device-side outputs: status, accepted features and every queue's registers."""
        view = {"status": self.status, "features": self.accepted_features}
        for q, queue in enumerate(self.queues):
            for member in ("ready", "size", "desc", "driver", "device"):
                view[f"queue{q}.{member}"] = getattr(queue, member)
        return view
