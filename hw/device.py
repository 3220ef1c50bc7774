"""The device-side interface of the transport (decisions.md D10), in one place.

Device logic (a network port, a block store, an accelerator) connects to the transport through
one port, ``transport.device``, whose signature is :class:`DeviceSignature`. A device block
declares the flipped signature and is wired in one line::

    class MyDevice(wiring.Component):
        def __init__(self):
            super().__init__({"transport": In(DeviceSignature(num_queues=2, config_size=16))})

    m.submodules.transport = transport = VirtioMMIOTransport(..., num_queues=2, config_size=16)
    m.submodules.device    = device    = MyDevice()
    wiring.connect(m, transport.device, device.transport)

How device logic uses it
------------------------
* **Queues.** ``queues.ready[q]`` is the driver's QueueReady for queue ``q``. While it is 1,
  ``queues.size[q]``, ``queues.desc[q]``, ``queues.driver[q]`` and ``queues.device[q]`` hold the
  ring's size and its three area addresses and do not change (the transport ignores writes to
  them while the queue is ready). The device must not touch a ring whose ready bit is 0
  (virtio 1.2 §4.2.2.1).
* **Notifications.** ``notify`` is a stream of available-buffer notifications (queue index and,
  with VIRTIO_F_NOTIFICATION_DATA, ``next_off``/``next_wrap``). The device may hold ``ready``
  low as long as it likes: notifications for the same queue coalesce (latest data wins), none is
  lost.
* **Used buffers.** Pulse ``queues.used[q]`` for one cycle (or hold it; every cycle counts as an
  event) after putting buffers in the used ring. The transport raises the interrupt (the wired
  interrupt, or the queue's MSI vector). Events for a queue that is not ready are ignored.
* **Configuration.** ``config`` carries the driver's config-space accesses. ``addr`` is the word
  index within config space, ``sel`` the byte enables. A write is presented for one cycle with
  ``w_stb``. A read is presented for one cycle with ``r_stb``; ``r_data`` is sampled on the next
  cycle (the latency of a synchronous memory read port). The transport never waits longer, so an
  absent or stuck device cannot hang the host bus. Pulse ``config_change`` after changing the
  configuration: it bumps ConfigGeneration and raises a configuration-change interrupt.
* **Status.** ``status`` is the device status byte; ``features`` the features the driver accepted
  (stable once FEATURES_OK is set). ``reset`` pulses for one cycle when the driver resets the
  device (Status written with 0): device logic clears its state then.
* **Errors.** Pulse ``needs_reset`` to set DEVICE_NEEDS_RESET; with DRIVER_OK set this also raises
  a configuration-change interrupt (virtio 1.2 §2.1.2).

Inputs left at zero give a working, idle device.
"""

from types import SimpleNamespace

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ._checks import check_int
from .regmap import Status


__all__ = ["Notification", "ConfigPortSignature", "QueuesSignature", "DeviceSignature",
           "QUEUE_SIZE_WIDTH", "ADDRESS_WIDTH"]


#: Width of QueueNum / QueueNumMax values (queue sizes up to 32768, virtio 1.2 §2.7).
QUEUE_SIZE_WIDTH = 16

#: Width of the ring area addresses.
ADDRESS_WIDTH = 64


class Notification(data.Struct):
    """An available-buffer notification as the device sees it.

    The layout matches ``notifications-le.c`` (virtio 1.2 §4.2.3.3): ``queue`` is the queue index;
    ``next_off`` and ``next_wrap`` are zero unless VIRTIO_F_NOTIFICATION_DATA was negotiated.
    """
    queue:     16
    next_off:  15
    next_wrap: 1


class ConfigPortSignature(wiring.Signature):
    """Config-space access port, from the transport's side.

    Parameters
    ----------
    config_size : int
        Size of config space in bytes (a multiple of 4).

    Members
    -------
    addr : Out(range(words))
        Word index within config space.
    sel : Out(4)
        Byte enables of the access.
    w_stb : Out(1)
        A write of ``w_data`` under ``sel`` to ``addr``, for one cycle.
    w_data : Out(32)
    r_stb : Out(1)
        A read of ``addr``, for one cycle.
    r_data : In(32)
        Read data, sampled on the cycle after ``r_stb``.

    Raises
    ------
    TypeError
        If ``config_size`` is not an integer.
    ValueError
        If ``config_size`` is negative or not a multiple of 4.
    """
    def __init__(self, *, config_size):
        self._config_size = check_int("config_size", config_size, "a non-negative multiple of 4",
                                      lambda size: size >= 0 and size % 4 == 0)
        super().__init__({
            "addr":   Out(range(max(1, config_size // 4))),
            "sel":    Out(4),
            "w_stb":  Out(1),
            "w_data": Out(32),
            "r_stb":  Out(1),
            "r_data": In(32),
        })

    @property
    def config_size(self):
        return self._config_size

    def __eq__(self, other):
        return isinstance(other, ConfigPortSignature) and other.config_size == self.config_size

    def __hash__(self):
        return hash((type(self), self._config_size))

    def __repr__(self):
        return f"ConfigPortSignature(config_size={self.config_size})"


class QueuesSignature(wiring.Signature):
    """Every virtqueue's configuration and used-buffer event, from the transport's side.

    One member per field, indexed by queue: ``queues.desc[q]``, ``queues.used[q]``. ``ready``
    and ``used`` are bit vectors; ``size``, ``desc``, ``driver`` and ``device`` are arrays of
    signals (Amaranth 0.5 cannot flip an array of sub-interfaces, so device logic, which sees the
    flipped signature, could not index one; arrays of plain members flip fine). On the
    transport's own port, ``queues[q]`` also gives queue ``q``'s fields as attributes.

    Parameters
    ----------
    num_queues : int

    Members
    -------
    ready : Out(num_queues)
        QueueReady of every queue.
    size : Out(16).array(num_queues)
        QueueNum.
    desc, driver, device : Out(64).array(num_queues)
        Descriptor, Driver and Device Area addresses.
    used : In(num_queues)
        Used-buffer events: the device put buffers in queue q's used ring.

    Raises
    ------
    TypeError
        If ``num_queues`` is not an integer.
    ValueError
        If ``num_queues`` is below 1.
    """
    def __init__(self, num_queues):
        self._num_queues = check_int("num_queues", num_queues, "a positive integer",
                                     lambda n: n >= 1)
        super().__init__({
            "ready":  Out(num_queues),
            "size":   Out(QUEUE_SIZE_WIDTH).array(num_queues),
            "desc":   Out(ADDRESS_WIDTH).array(num_queues),
            "driver": Out(ADDRESS_WIDTH).array(num_queues),
            "device": Out(ADDRESS_WIDTH).array(num_queues),
            "used":   In(num_queues),
        })

    @property
    def num_queues(self):
        return self._num_queues

    def create(self, *, path=None, src_loc_at=0):
        return QueuesInterface(self, path=path, src_loc_at=src_loc_at + 1)

    def __eq__(self, other):
        return isinstance(other, QueuesSignature) and other.num_queues == self.num_queues

    def __hash__(self):
        return hash((type(self), self._num_queues))

    def __repr__(self):
        return f"QueuesSignature({self._num_queues})"


class QueuesInterface(wiring.PureInterface):
    """The interface object of :class:`QueuesSignature`; ``queues[q]`` is queue ``q``."""
    def __len__(self):
        return self.signature.num_queues

    def __getitem__(self, q):
        if not isinstance(q, int) or not 0 <= q < len(self):
            raise IndexError(f"Queue index {q!r} out of range for {len(self)} queues")
        return SimpleNamespace(**{name: getattr(self, name)[q]
                                  for name in ("ready", "size", "desc", "driver", "device",
                                               "used")})


class DeviceSignature(wiring.Signature):
    """Everything device logic sees of the transport, from the transport's side.

    Parameters
    ----------
    num_queues : int
    config_size : int
    feature_words : int
        Number of 32-bit feature words (2 for 64 feature bits).

    Members
    -------
    queues : Out(QueuesSignature(num_queues))
    notify : Out(stream.Signature(Notification))
    config : Out(ConfigPortSignature(config_size=config_size))
    config_change : In(1)
    needs_reset : In(1)
    status : Out(Status)
    features : Out(32 * feature_words)
        Features accepted by the driver.
    reset : Out(1)
        One-cycle pulse when the driver resets the device.

    Raises
    ------
    TypeError
        If ``num_queues``, ``config_size`` or ``feature_words`` is not an integer.
    ValueError
        If ``num_queues`` is below 1, ``config_size`` is negative or not a multiple of 4, or
        ``feature_words`` is below 2.
    """
    def __init__(self, *, num_queues, config_size, feature_words=2):
        self._num_queues = check_int("num_queues", num_queues, "a positive integer",
                                     lambda n: n >= 1)
        self._config_size = check_int("config_size", config_size, "a non-negative multiple of 4",
                                      lambda size: size >= 0 and size % 4 == 0)
        self._feature_words = check_int("feature_words", feature_words,
                                        "an integer of at least 2", lambda words: words >= 2)
        super().__init__({
            "queues":        Out(QueuesSignature(num_queues)),
            "notify":        Out(stream.Signature(Notification)),
            "config":        Out(ConfigPortSignature(config_size=config_size)),
            "config_change": In(1),
            "needs_reset":   In(1),
            "status":        Out(Status),
            "features":      Out(unsigned(32 * feature_words)),
            "reset":         Out(1),
        })

    @property
    def num_queues(self):
        return self._num_queues

    @property
    def config_size(self):
        return self._config_size

    @property
    def feature_words(self):
        return self._feature_words

    def _key(self):
        return (self._num_queues, self._config_size, self._feature_words)

    def __eq__(self, other):
        return isinstance(other, DeviceSignature) and other._key() == self._key()

    def __hash__(self):
        return hash((type(self),) + self._key())

    def __repr__(self):
        return (f"DeviceSignature(num_queues={self._num_queues}, "
                f"config_size={self._config_size}, feature_words={self._feature_words})")
