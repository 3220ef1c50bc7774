"""Guest memory as device logic in simulation sees it: bytes at guest physical addresses.

:class:`GuestMemory` wraps a buffer (the guest's memory file mapped with ``mmap`` in the Linux
co-simulation, :mod:`sim.uml`, or a ``bytearray`` in a test) and checks every access against
its bounds: an access outside, or one whose address plus length wraps, raises
:class:`MemoryFault` naming it, which device logic treats as a bus error (decisions.md D11 case 8)
rather than reading or writing somewhere else.
"""

__all__ = ["MemoryFault", "GuestMemory"]


class MemoryFault(Exception):
    """An access outside guest memory: the bus error of a device's memory access."""


class GuestMemory:
    """Bytes ``[0, len(buffer))`` of guest physical memory, starting at address ``base``.

    Parameters
    ----------
    buffer : bytearray, mmap or memoryview
    base : int
        Guest physical address of ``buffer[0]``.
    """

    def __init__(self, buffer, *, base=0):
        self._view = memoryview(buffer)
        self.base = base
        self.size = len(self._view)

    def _range(self, address, length, what):
        start = address - self.base
        if length < 0 or start < 0 or start + length > self.size or address + length > 1 << 64:
            raise MemoryFault(f"{what} of {length} bytes at {address:#x} is outside guest memory "
                              f"[{self.base:#x}, {self.base + self.size:#x})")
        return start

    def check(self, address, length):
        """Raise :class:`MemoryFault` unless ``[address, address + length)`` is guest memory."""
        self._range(address, length, "access")

    def read(self, address, length):
        start = self._range(address, length, "read")
        return bytes(self._view[start:start + length])

    def write(self, address, data):
        start = self._range(address, len(data), "write")
        self._view[start:start + len(data)] = data

    def read_int(self, address, size):
        return int.from_bytes(self.read(address, size), "little")

    def write_int(self, address, value, size):
        self.write(address, value.to_bytes(size, "little"))

    def release(self):
        """Drop the view, so that the buffer (an ``mmap``) can be closed."""
        self._view.release()
