"""The device side of a split virtqueue (virtio 1.2 §2.7), in simulation.

:class:`SplitRing` takes available descriptor chains from guest memory and returns them through
the used ring, for device logic written in Python (the virtio-rng device of :mod:`sim.rng`).
Every chain is fetched and checked whole before any data moves, with the rules of
decisions.md D11: a malformed ring raises :class:`RingError`, whose ``case`` is the row of D11's
table, and the device then reports DEVICE_NEEDS_RESET and stops serving until the driver resets
it. A chain is a list of :class:`Buffer`.
"""

from dataclasses import dataclass

from .memory import MemoryFault


__all__ = ["RingError", "Buffer", "Chain", "SplitRing", "DriverRing", "DESC_F_NEXT",
           "DESC_F_WRITE", "DESC_F_INDIRECT", "AVAIL_F_NO_INTERRUPT"]

DESC_F_NEXT, DESC_F_WRITE, DESC_F_INDIRECT = 1, 2, 4
AVAIL_F_NO_INTERRUPT = 1
_DESC_SIZE = 16


class RingError(Exception):
    """A driver error in a ring: ``case`` is the row of decisions.md D11's table."""
    def __init__(self, case, message):
        super().__init__(f"D11 case {case}: {message}")
        self.case = case


@dataclass(frozen=True)
class Buffer:
    address: int
    length: int
    writable: bool


@dataclass(frozen=True)
class Chain:
    head: int
    buffers: tuple

    @property
    def writable(self):
        return [b for b in self.buffers if b.writable]

    @property
    def readable(self):
        return [b for b in self.buffers if not b.writable]


class SplitRing:
    """One queue's split ring in ``memory`` (a :class:`sim.memory.GuestMemory`).

    Parameters
    ----------
    memory : GuestMemory
    size : int
        QueueNum.
    desc, driver, device : int
        Guest physical addresses of the descriptor table, the available (driver) ring and the
        used (device) ring.
    max_chain : int or None
        The device's longest chain (D11 case 4); ``None`` means QueueNum.
    """

    def __init__(self, memory, *, size, desc, driver, device, max_chain=None):
        if size == 0 or size & (size - 1):
            raise RingError(12, f"QueueNum {size} is not a power of two")
        self.memory = memory
        self.size = size
        self.desc, self.driver, self.device = desc, driver, device
        self.max_chain = size if max_chain is None else min(max_chain, size)
        self.last_avail = 0     # next available-ring index to take (free-running, 16 bits)
        self.used_idx = 0       # next used-ring index to fill
        self.in_flight = 0

    def _read(self, address, size):
        try:
            return self.memory.read_int(address, size)
        except MemoryFault as fault:
            raise RingError(8, str(fault)) from None

    def _write(self, address, value, size):
        try:
            self.memory.write_int(address, value, size)
        except MemoryFault as fault:
            raise RingError(8, str(fault)) from None

    def available(self):
        """How many chains the driver has made available and the device has not taken."""
        avail_idx = self._read(self.driver + 2, 2)
        count = (avail_idx - self.last_avail) & 0xffff
        if count > self.size:
            raise RingError(1, f"avail.idx {avail_idx} is {count} past the last index taken "
                               f"({self.last_avail}), more than QueueNum {self.size}")
        return count

    def interrupt_suppressed(self):
        """The driver set VRING_AVAIL_F_NO_INTERRUPT (no EVENT_IDX negotiated)."""
        return bool(self._read(self.driver, 2) & AVAIL_F_NO_INTERRUPT)

    def pop(self):
        """The next available chain, checked whole (D11), or ``None`` if there is none."""
        if not self.available():
            return None
        if self.in_flight >= self.size:
            raise RingError(9, f"more than QueueNum {self.size} buffers in flight")
        slot = self.driver + 4 + 2 * (self.last_avail % self.size)
        head = self._read(slot, 2)
        if head >= self.size:
            raise RingError(2, f"head index {head} >= QueueNum {self.size}")
        buffers, index, seen_writable, totals = [], head, False, [0, 0]
        while True:
            if len(buffers) == self.max_chain:
                raise RingError(4, f"chain from head {head} is longer than {self.max_chain} "
                                   f"descriptors (or loops)")
            entry = self.desc + _DESC_SIZE * index
            address, length = self._read(entry, 8), self._read(entry + 8, 4)
            flags, following = self._read(entry + 12, 2), self._read(entry + 14, 2)
            if flags & DESC_F_INDIRECT:
                raise RingError(7, f"descriptor {index} is INDIRECT, which was not offered")
            if length == 0:
                raise RingError(6, f"descriptor {index} has length 0")
            if address + length > 1 << 64:
                raise RingError(8, f"descriptor {index} wraps past 2^64")
            try:
                self.memory.check(address, length)
            except MemoryFault as fault:
                raise RingError(8, f"descriptor {index}: {fault}") from None
            writable = bool(flags & DESC_F_WRITE)
            if seen_writable and not writable:
                raise RingError(5, f"readable descriptor {index} after a writable one")
            seen_writable |= writable
            totals[writable] += length
            if totals[writable] > 0xffff_ffff:
                raise RingError(11, f"chain from head {head} has more than 2^32 - 1 "
                                    f"{'writable' if writable else 'readable'} bytes")
            buffers.append(Buffer(address, length, writable))
            if not flags & DESC_F_NEXT:
                break
            if following >= self.size:
                raise RingError(3, f"descriptor {index} has next {following} >= QueueNum "
                                   f"{self.size}")
            index = following
        self.last_avail = (self.last_avail + 1) & 0xffff
        self.in_flight += 1
        return Chain(head, tuple(buffers))

    def push(self, chain, written):
        """Return ``chain`` to the driver with ``written`` bytes written (used elem, then
        used.idx, in that order, as §2.7.8.2 requires)."""
        elem = self.device + 4 + 8 * (self.used_idx % self.size)
        self._write(elem, chain.head, 4)
        self._write(elem + 4, written, 4)
        self.used_idx = (self.used_idx + 1) & 0xffff
        self._write(self.device + 2, self.used_idx, 2)
        self.in_flight -= 1


class DriverRing:
    """The driver's side of a split ring in ``memory``, for tests of device logic: lays out the
    descriptor table, the available ring and the used ring from ``base`` (as ``vring_init``
    does, the used ring aligned to 4 KiB), makes chains available and reads what was used.

    The descriptor fields can be written directly (:meth:`write_desc`) to build malformed
    rings.
    """

    def __init__(self, memory, *, size, base):
        self.memory = memory
        self.size = size
        self.desc = base
        self.driver = base + _DESC_SIZE * size
        self.device = (self.driver + 6 + 2 * size + 4095) & ~4095
        self.avail_idx = 0
        self.used_seen = 0
        self._next_free = 0
        for address in range(self.desc, self.device + 6 + 8 * size, 2):
            memory.write_int(address, 0, 2)

    def write_desc(self, index, address, length, flags=0, next=0):
        entry = self.desc + _DESC_SIZE * index
        self.memory.write_int(entry, address, 8)
        self.memory.write_int(entry + 8, length, 4)
        self.memory.write_int(entry + 12, flags, 2)
        self.memory.write_int(entry + 14, next, 2)

    def publish(self, head, *, count=1):
        """Put ``head`` in the available ring and advance avail.idx by ``count`` (more than 1
        only to build D11 case 1)."""
        self.memory.write_int(self.driver + 4 + 2 * (self.avail_idx % self.size), head, 2)
        self.avail_idx = (self.avail_idx + count) & 0xffff
        self.memory.write_int(self.driver + 2, self.avail_idx, 2)

    def add(self, buffers):
        """Make a chain of ``(address, length, writable)`` buffers available; returns its head."""
        indices = [(self._next_free + i) % self.size for i in range(len(buffers))]
        self._next_free = (self._next_free + len(buffers)) % self.size
        pairs = zip(indices, buffers, strict=True)
        for position, (index, (address, length, writable)) in enumerate(pairs):
            last = position == len(buffers) - 1
            flags = (0 if last else DESC_F_NEXT) | (DESC_F_WRITE if writable else 0)
            self.write_desc(index, address, length, flags, 0 if last else indices[position + 1])
        self.publish(indices[0])
        return indices[0]

    def suppress_interrupts(self, suppress=True):
        self.memory.write_int(self.driver, AVAIL_F_NO_INTERRUPT if suppress else 0, 2)

    def used(self):
        """The used elements added since the last call, as ``(id, length)``."""
        used_idx = self.memory.read_int(self.device + 2, 2)
        got = []
        while self.used_seen != used_idx:
            elem = self.device + 4 + 8 * (self.used_seen % self.size)
            got.append((self.memory.read_int(elem, 4), self.memory.read_int(elem + 4, 4)))
            self.used_seen = (self.used_seen + 1) & 0xffff
        return got
