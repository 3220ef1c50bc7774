"""The messages between the UML bridge and the simulation process.

The numbers are read from the bridge's own header, ``sim/uml/kernel/virtio_sim.h`` (which also
describes every message), so they are written in one place. Every message is one 24-byte
``struct virtio_sim_msg``: ``op``, ``size`` (u32 each), ``offset``, ``value`` (u64 each), little
endian, sent on a ``SOCK_SEQPACKET`` socket (one message per packet).
"""

import re
import struct
from dataclasses import dataclass
from pathlib import Path


__all__ = ["HEADER", "ProtocolError", "Message", "constants", "OPS", "MSG_SIZE", "VERSION",
           "HELLO", "READ", "WRITE", "IRQ", "MSI", "MSI_ADDRESS", "MSI_VECTORS", "OK", "REFUSED",
           "ACCESS_SIZES"]

#: The bridge's header: the one place the protocol's numbers are written.
HEADER = Path(__file__).resolve().parent / "kernel" / "virtio_sim.h"


class ProtocolError(Exception):
    """A message on a bridge channel is malformed or truncated, or a channel closed early."""


def constants(header=HEADER):
    """The ``#define VIRTIO_SIM_<NAME> <number>`` lines of ``header`` (decimal or hex), as
    ``{NAME: number}``."""
    found = dict(re.findall(r"^#define\s+VIRTIO_SIM_(\w+)\s+(0x[0-9a-fA-F]+|\d+)\s*$",
                            Path(header).read_text(), re.M))
    return {name: int(value, 0) for name, value in found.items()}


_C = constants()
VERSION, MSG_SIZE = _C["VERSION"], _C["MSG_SIZE"]
HELLO, READ, WRITE, IRQ, MSI = _C["HELLO"], _C["READ"], _C["WRITE"], _C["IRQ"], _C["MSI"]
#: Every MSI message the bridge composes has this address; its data is the vector's number.
MSI_ADDRESS, MSI_VECTORS = _C["MSI_ADDRESS"], _C["MSI_VECTORS"]
OK, REFUSED = _C["OK"], _C["REFUSED"]
#: Op numbers by name, for messages.
OPS = {HELLO: "hello", READ: "read", WRITE: "write", IRQ: "irq", MSI: "msi"}
#: Access sizes a READ or WRITE may have (the sizes logic_iomem passes: readb/w/l/q).
ACCESS_SIZES = (1, 2, 4, 8)

_FORMAT = struct.Struct("<IIQQ")
assert _FORMAT.size == MSG_SIZE, "struct virtio_sim_msg and the Python layout disagree"


@dataclass(frozen=True)
class Message:
    op: int
    size: int = 0
    offset: int = 0
    value: int = 0

    def pack(self):
        return _FORMAT.pack(self.op, self.size, self.offset, self.value)

    @classmethod
    def unpack(cls, data, *, channel="access"):
        """The message in ``data``; :class:`ProtocolError` if it is not exactly one message."""
        if len(data) < MSG_SIZE:
            raise ProtocolError(f"truncated message on the {channel} channel: {len(data)} of "
                                f"{MSG_SIZE} bytes")
        if len(data) > MSG_SIZE:
            raise ProtocolError(f"oversized message on the {channel} channel: more than "
                                f"{MSG_SIZE} bytes")
        return cls(*_FORMAT.unpack(data))

    @property
    def name(self):
        return OPS.get(self.op, f"op {self.op}")
