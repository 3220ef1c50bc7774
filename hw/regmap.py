"""The virtio-mmio register map: the one source of truth.

Every offset, bit and command code of the transport is written here once. The gateware decoder
(:mod:`hw.transport`), the driver model (:mod:`sim.driver`), the transcript printer and the docs
all read this module; nothing else in the tree spells an offset.

Three personalities share the map (decisions.md D1):

* ``None``: standard virtio-mmio Version 2 (virtio 1.x §4.2.2, reference table (a.1));
* ``"v2"``: proposal v2 (seed ``000_…``): MsiVecNum, MsiState, MsiCmd, MsiVecSel, MsiAddr*, MsiData;
* ``"v1"``: proposal v1 (seed ``002_…``): Version 3, 16-bit MsiStatus/MsiCmd, MsiAddr*, MsiData.
"""

from dataclasses import dataclass, field
import enum as py_enum

from amaranth.lib import enum

from ._checks import check_bool, check_int


__all__ = [
    "Access", "Field", "Register", "RegisterMap", "register_map", "PERSONALITIES",
    "MAGIC", "VERSION", "CONFIG_OFFSET", "CONTROL_SIZE", "WINDOW_SIZE", "NO_VECTOR",
    "Status", "InterruptBit", "Feature", "MsiCmdV2", "MsiOpV1", "MsiStateBit",
]


#: Personalities of the core, by the value of the constructor's ``msi`` parameter.
PERSONALITIES = (None, "v2", "v1")

#: ``MagicValue``: "virt" in little endian (virtio 1.2 §4.2.2).
MAGIC = 0x74726976

#: ``Version`` per personality (decisions.md D1).
VERSION = {None: 2, "v2": 2, "v1": 3}

#: Start of the device-specific configuration space.
CONFIG_OFFSET = 0x100

#: Size of the control register block (offsets below :data:`CONFIG_OFFSET`).
CONTROL_SIZE = CONFIG_OFFSET

#: The register window without notification addresses: control block plus config space.
WINDOW_SIZE = 0x1000

#: ``VIRTIO_MMIO_MSI_NO_VECTOR``: MsiVecSel value meaning "no vector" (proposal v2 4/5).
NO_VECTOR = 0xffff_ffff


class Access(py_enum.Enum):
    """Access type of a register, as the virtio specification names it."""
    R  = "R"
    W  = "W"
    RW = "RW"

    @property
    def readable(self):
        return self in (Access.R, Access.RW)

    @property
    def writable(self):
        return self in (Access.W, Access.RW)


class Status(enum.Flag, shape=8):
    """Device status bits (virtio 1.2 §2.1)."""
    ACKNOWLEDGE        = 1
    DRIVER             = 2
    DRIVER_OK          = 4
    FEATURES_OK        = 8
    DEVICE_NEEDS_RESET = 64
    FAILED             = 128


class InterruptBit(enum.Flag, shape=2):
    """InterruptStatus / InterruptACK bits (virtio 1.2 §4.2.2)."""
    USED_BUFFER   = 1
    CONFIG_CHANGE = 2


class Feature(py_enum.IntEnum):
    """Feature bit numbers the transport knows about (virtio 1.2 §6, proposal v2 1/5, 3/5)."""
    RING_INDIRECT_DESC = 28
    RING_EVENT_IDX     = 29
    VERSION_1          = 32
    ACCESS_PLATFORM    = 33
    RING_PACKED        = 34
    IN_ORDER           = 35
    ORDER_PLATFORM     = 36
    SR_IOV             = 37
    NOTIFICATION_DATA  = 38
    #: Proposal v2 meaning; virtio 1.2+ gave bit 39 to NOTIF_CONFIG_DATA (reference (f.1) 2).
    MMIO_NOTIFICATION  = 39
    #: Proposal v2 meaning; virtio 1.2+ gave bit 40 to RING_RESET (reference (f.1) 2).
    MMIO_MSI           = 40


class MsiCmdV2(enum.Enum, shape=32):
    """MsiCmd command codes of proposal v2 (4/5, 5/5)."""
    ENABLE     = 1
    DISABLE    = 2
    CONFIGURE  = 3
    MASK       = 4
    UNMASK     = 5
    MAP_CONFIG = 6
    MAP_QUEUE  = 7


class MsiOpV1(enum.Enum, shape=4):
    """``cmd_op`` values of the 16-bit MsiCmd of proposal v1 (1/2)."""
    UPDATE = 1
    ENABLE = 2


class MsiStateBit(py_enum.IntEnum):
    """MsiState bit positions (decisions.md D3: each flag mirrored in both places)."""
    ENABLED       = 0    # spec v2 4/5
    SHARING       = 1    # spec v2 5/5
    SHARING_LINUX = 30   # Linux v2 uapi, kvmtool
    ENABLED_LINUX = 31   # Linux v2 uapi, kvmtool


@dataclass(frozen=True)
class Field:
    """A bit field of a register.

    Parameters
    ----------
    name : str
    lsb : int
        Position of the least significant bit.
    width : int
    description : str

    Raises
    ------
    TypeError
        If ``name`` or ``description`` is not a string, or ``lsb`` or ``width`` not an integer.
    ValueError
        If the field does not lie within a 32-bit word (``lsb`` from 0, ``width`` from 1,
        ``lsb + width`` at most 32).
    """
    name: str
    lsb: int
    width: int
    description: str = ""

    def __post_init__(self):
        _check_str("name", self.name)
        _check_str("description", self.description)
        check_int("lsb", self.lsb, "an integer from 0 to 31", lambda lsb: 0 <= lsb <= 31)
        check_int("width", self.width, f"an integer from 1 to {32 - self.lsb} (lsb {self.lsb})",
                  lambda width: 1 <= width <= 32 - self.lsb)

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.lsb

    def extract(self, value):
        return (value >> self.lsb) & ((1 << self.width) - 1)

    def place(self, value):
        if not 0 <= value < (1 << self.width):
            raise ValueError(f"Value {value:#x} does not fit field {self.name} of width "
                             f"{self.width}")
        return value << self.lsb


@dataclass(frozen=True)
class Register:
    """One register of the map.

    Parameters
    ----------
    name : str
        Name as the virtio specification spells it.
    offset : int
        Byte offset from the device's base address.
    access : Access
    description : str
        One-line meaning, used by the generated docs.
    reset : int or None
        Value a read returns after reset, or ``None`` for write-only registers and registers whose
        value is a constant given at construction time.
    width : int
        Access width in bits: 32, or 16 for the proposal v1 registers at 0x0c0/0x0c2.
    linux : str or None
        The Linux ``VIRTIO_MMIO_*`` macro suffix, where one exists.
    fields : tuple of Field

    Raises
    ------
    TypeError
        If ``name`` or ``description`` is not a string, ``linux`` neither a string nor ``None``,
        ``access`` not an :class:`Access`, ``offset``, ``width`` or ``reset`` (when given) not an
        integer, or ``fields`` not a tuple of :class:`Field`.
    ValueError
        If ``width`` is neither 16 nor 32, ``offset`` is negative or not a multiple of the
        access size, or ``reset`` does not fit ``width`` bits.
    """
    name: str
    offset: int
    access: Access
    description: str
    reset: "int | None" = None
    width: int = 32
    linux: "str | None" = None
    fields: tuple = field(default=())

    def __post_init__(self):
        _check_str("name", self.name)
        _check_str("description", self.description)
        if self.linux is not None:
            _check_str("linux", self.linux)
        if not isinstance(self.access, Access):
            raise TypeError(f"access must be an Access, not {self.access!r}")
        check_int("width", self.width, "16 or 32", lambda width: width in (16, 32))
        check_int("offset", self.offset, f"a non-negative multiple of {self.width // 8}",
                  lambda offset: offset >= 0 and offset % (self.width // 8) == 0)
        if self.reset is not None:
            check_int("reset", self.reset, f"None or an integer of {self.width} bits",
                      lambda reset: 0 <= reset < 1 << self.width)
        if not isinstance(self.fields, tuple) or not all(isinstance(f, Field)
                                                         for f in self.fields):
            raise TypeError(f"fields must be a tuple of Field, not {self.fields!r}")

    @property
    def word(self):
        """Word (32-bit) address of the register, as it appears on a 32-bit bus."""
        return self.offset >> 2

    @property
    def lanes(self):
        """Byte-enable mask of the lanes this register occupies within its word."""
        first = self.offset & 3
        return ((1 << (self.width // 8)) - 1) << first

    @property
    def shift(self):
        """Bit position of the register within its 32-bit word."""
        return (self.offset & 3) * 8

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"Register {self.name} has no field {name!r}")


def _check_str(name, value):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {value!r}")


R, W, RW = Access.R, Access.W, Access.RW

_STANDARD = (
    Register("MagicValue", 0x000, R, "Magic value 0x74726976 (\"virt\")", MAGIC,
             linux="MAGIC_VALUE"),
    Register("Version", 0x004, R, "Device version: 2 (standard, v2) or 3 (proposal v1)",
             linux="VERSION"),
    Register("DeviceID", 0x008, R, "Virtio subsystem device ID; 0 means no device",
             linux="DEVICE_ID"),
    Register("VendorID", 0x00c, R, "Virtio subsystem vendor ID", linux="VENDOR_ID"),
    Register("DeviceFeatures", 0x010, R,
             "32 bits of the device's feature bits, word selected by DeviceFeaturesSel",
             linux="DEVICE_FEATURES"),
    Register("DeviceFeaturesSel", 0x014, W, "Word select for DeviceFeatures",
             linux="DEVICE_FEATURES_SEL"),
    Register("DriverFeatures", 0x020, W,
             "32 bits of the features accepted by the driver, word selected by DriverFeaturesSel",
             linux="DRIVER_FEATURES"),
    Register("DriverFeaturesSel", 0x024, W, "Word select for DriverFeatures",
             linux="DRIVER_FEATURES_SEL"),
    Register("QueueSel", 0x030, W, "Selects the queue that the queue registers act on",
             linux="QUEUE_SEL"),
    Register("QueueNumMax", 0x034, R,
             "Maximum size of the selected queue; 0 if the queue does not exist",
             linux="QUEUE_NUM_MAX"),
    Register("QueueNum", 0x038, W, "Size of the selected queue", linux="QUEUE_NUM"),
    Register("QueueReady", 0x044, RW, "Selected queue is ready (bit 0); reads back the last write",
             0, linux="QUEUE_READY"),
    Register("QueueNotify", 0x050, W,
             "Available buffer notification: queue index, or notification data",
             linux="QUEUE_NOTIFY"),
    Register("InterruptStatus", 0x060, R,
             "Pending interrupt causes: bit 0 used buffer, bit 1 configuration change", 0,
             linux="INTERRUPT_STATUS"),
    Register("InterruptACK", 0x064, W, "Write 1 to clear InterruptStatus bits",
             linux="INTERRUPT_ACK"),
    Register("Status", 0x070, RW, "Device status; writing 0 resets the device", 0, linux="STATUS"),
    Register("QueueDescLow", 0x080, W, "Descriptor Area address, bits 31:0",
             linux="QUEUE_DESC_LOW"),
    Register("QueueDescHigh", 0x084, W, "Descriptor Area address, bits 63:32",
             linux="QUEUE_DESC_HIGH"),
    Register("QueueDriverLow", 0x090, W, "Driver Area address, bits 31:0", linux="QUEUE_AVAIL_LOW"),
    Register("QueueDriverHigh", 0x094, W, "Driver Area address, bits 63:32",
             linux="QUEUE_AVAIL_HIGH"),
    Register("QueueDeviceLow", 0x0a0, W, "Device Area address, bits 31:0", linux="QUEUE_USED_LOW"),
    Register("QueueDeviceHigh", 0x0a4, W, "Device Area address, bits 63:32",
             linux="QUEUE_USED_HIGH"),
    Register("SHMSel", 0x0ac, W, "Selects a shared memory region", linux="SHM_SEL"),
    Register("SHMLenLow", 0x0b0, R, "Length of the selected region, bits 31:0; all ones if absent",
             linux="SHM_LEN_LOW"),
    Register("SHMLenHigh", 0x0b4, R,
             "Length of the selected region, bits 63:32; all ones if absent",
             linux="SHM_LEN_HIGH"),
    Register("SHMBaseLow", 0x0b8, R, "Base of the selected region, bits 31:0; all ones if absent",
             linux="SHM_BASE_LOW"),
    Register("SHMBaseHigh", 0x0bc, R, "Base of the selected region, bits 63:32; all ones if absent",
             linux="SHM_BASE_HIGH"),
    Register("ConfigGeneration", 0x0fc, R,
             "Configuration atomicity value; changes with every configuration change", 0,
             linux="CONFIG_GENERATION"),
)

_NOTIFY_STRUCTURE = (
    Field("notify_base", 0, 16, "Byte offset of queue 0's doorbell"),
    Field("notify_multiplier", 16, 16, "Distance between doorbells; 0: one shared doorbell"),
)

_V2 = (
    Register("MsiVecNum", 0x0c0, R, "Number of MSI vectors", linux="MSI_VEC_NUM"),
    Register("MsiState", 0x0c4, R, "MSI enabled (bits 0 and 31) and sharing mode (bits 1 and 30)",
             0, linux="MSI_STATE", fields=(
                 Field("msi_enabled", MsiStateBit.ENABLED, 1, "MSI enabled (spec)"),
                 Field("msi_sharing", MsiStateBit.SHARING, 1, "sharing mode (spec)"),
                 Field("msi_sharing_linux", MsiStateBit.SHARING_LINUX, 1, "sharing mode (Linux)"),
                 Field("msi_enabled_linux", MsiStateBit.ENABLED_LINUX, 1, "MSI enabled (Linux)"),
             )),
    Register("MsiCmd", 0x0c8, W, "MSI command (MsiCmdV2)", linux="MSI_COMMAND"),
    Register("MsiVecSel", 0x0d0, W, "Selects the MSI vector for MsiCmd; 0xffffffff = NO_VECTOR",
             linux="MSI_VEC_SEL"),
    Register("MsiAddrLow", 0x0d4, W, "Staging MSI address, bits 31:0", linux="MSI_ADDRESS_LOW"),
    Register("MsiAddrHigh", 0x0d8, W, "Staging MSI address, bits 63:32", linux="MSI_ADDRESS_HIGH"),
    Register("MsiData", 0x0dc, W, "Staging MSI data", linux="MSI_DATA"),
)

_V1 = (
    Register("MsiStatus", 0x0c0, R, "16-bit: queue count (10:0) and MSI enabled (15)", width=16,
             linux="MSI_STATUS", fields=(
                 Field("max_queue_num", 0, 11, "Number of queues"),
                 Field("msi_enabled", 15, 1, "MSI enabled"),
             )),
    Register("MsiCmd", 0x0c2, W, "16-bit MSI command: cmd_arg (11:0), cmd_op (15:12)", width=16,
             linux="MSI_COMMAND", fields=(
                 Field("cmd_arg", 0, 12, "Vector index (UPDATE) or 1/0 (ENABLE)"),
                 Field("cmd_op", 12, 4, "MsiOpV1"),
             )),
    Register("MsiAddrLow", 0x0c4, W, "Staging MSI address, bits 31:0", linux="MSI_ADDRESS_LOW"),
    Register("MsiAddrHigh", 0x0c8, W, "Staging MSI address, bits 63:32", linux="MSI_ADDRESS_HIGH"),
    Register("MsiData", 0x0cc, W, "Staging MSI data", linux="MSI_DATA"),
)


class RegisterMap:
    """The register map of one personality.

    Parameters
    ----------
    msi : None or "v2" or "v1"
    notify : bool
        Notification addresses are configured: QueueNotify becomes readable (proposal v2 2/5).
        Proposal v1 always has the read structure.

    Use ``regs["QueueSel"]`` for a register by name, ``regs.at(offset)`` for the register at a
    byte offset, and iterate for all registers in offset order.

    Raises
    ------
    ValueError
        If ``msi`` is not one of :data:`PERSONALITIES` (a choice among values, whatever its type).
    TypeError
        If ``notify`` is not a bool.
    """
    def __init__(self, msi=None, *, notify=False):
        if msi not in PERSONALITIES:
            raise ValueError(f"msi must be one of {PERSONALITIES!r}, not {msi!r}")
        self._msi = msi
        self._notify = check_bool("notify", notify)
        regs = list(_STANDARD)
        if msi == "v2":
            regs += _V2
        elif msi == "v1":
            regs += _V1
        if msi == "v1" or notify:
            # Proposals v1 (1/2) and v2 (2/5): QueueNotify becomes RW; a read returns the
            # notification structure.
            plain = next(r for r in regs if r.name == "QueueNotify")
            regs[regs.index(plain)] = Register(
                plain.name, plain.offset, RW,
                plain.description + "; a read returns {notify_base:16, notify_multiplier:16}",
                linux=plain.linux, fields=_NOTIFY_STRUCTURE)
        regs.sort(key=lambda r: r.offset)
        self._by_name = {r.name: r for r in regs}
        self._by_offset = {r.offset: r for r in regs}
        assert len(self._by_name) == len(regs) == len(self._by_offset)

    @property
    def msi(self):
        return self._msi

    @property
    def notify_structure(self):
        """Fields of the QueueNotify read structure (proposal v1 1/2, v2 2/5)."""
        return _NOTIFY_STRUCTURE

    def __getitem__(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"No register {name!r} in the {self._msi!r} register map") from None

    def __contains__(self, name):
        return name in self._by_name

    def __iter__(self):
        return iter(self._by_name.values())

    def __len__(self):
        return len(self._by_name)

    def at(self, offset):
        """The register at byte ``offset``, or ``None``."""
        return self._by_offset.get(offset)

    def in_word(self, word):
        """The registers that live in 32-bit word ``word`` (two for the v1 16-bit pair)."""
        return [r for r in self if r.word == word]

    def describe(self, offset, *, config_size=0):
        """A human name for byte ``offset``: a register, ``Config+0x..``, or ``undefined``."""
        reg = self.at(offset)
        if reg is not None:
            return reg.name
        if CONFIG_OFFSET <= offset < CONFIG_OFFSET + config_size:
            return f"Config+{offset - CONFIG_OFFSET:#04x}"
        for reg in self:
            if reg.offset < offset < reg.offset + reg.width // 8:
                return f"{reg.name}+{offset - reg.offset}"
        return f"undefined@{offset:#05x}"


def register_map(msi=None, *, notify=False):
    """The :class:`RegisterMap` of personality ``msi``."""
    return RegisterMap(msi, notify=notify)
