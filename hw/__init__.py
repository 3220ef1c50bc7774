"""Synthesizable gateware: the virtio-mmio transport and its parts.

:mod:`hw.soc` (not imported here) is an example system around the transport: UART, bridge,
echo device and MSI recorder, as the board tops in ``boards/`` carry it.
"""

from .transport import VirtioMMIOTransport
from .device import DeviceSignature, QueuesSignature, ConfigPortSignature, Notification
from . import regmap, wishbone, axi4lite
from .axi4lite import AXI4LiteTransport

__all__ = ["VirtioMMIOTransport", "DeviceSignature", "QueuesSignature", "ConfigPortSignature",
           "Notification", "AXI4LiteTransport", "regmap", "wishbone", "axi4lite"]
