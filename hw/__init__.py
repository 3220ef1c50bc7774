"""Synthesizable gateware: the virtio-mmio transport and its parts."""

from .transport import VirtioMMIOTransport
from .device import DeviceSignature, QueuesSignature, ConfigPortSignature, Notification
from . import regmap, wishbone, axi4lite
from .axi4lite import AXI4LiteTransport

__all__ = ["VirtioMMIOTransport", "DeviceSignature", "QueuesSignature", "ConfigPortSignature",
           "Notification", "AXI4LiteTransport", "regmap", "wishbone", "axi4lite"]
