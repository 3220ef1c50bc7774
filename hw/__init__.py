"""Synthesizable gateware: the virtio-mmio transport and its parts."""

from .transport import VirtioMMIOTransport
from .device import DeviceSignature, QueuesSignature, ConfigPortSignature, Notification
from . import regmap, wishbone

__all__ = ["VirtioMMIOTransport", "DeviceSignature", "QueuesSignature", "ConfigPortSignature",
           "Notification", "regmap", "wishbone"]
