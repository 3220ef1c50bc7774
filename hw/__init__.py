"""Synthesizable gateware: the virtio-mmio transport and its parts."""

from .transport import VirtioMMIOTransport
from .device import DeviceSignature, QueueSignature, ConfigPortSignature, Notification
from . import regmap, wishbone

__all__ = ["VirtioMMIOTransport", "DeviceSignature", "QueueSignature", "ConfigPortSignature",
           "Notification", "regmap", "wishbone"]
