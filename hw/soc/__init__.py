"""An example system on a chip around the transport, as the board tops carry it.

Synthesizable, platform-independent gateware: an 8N1 UART (:mod:`.uart`), a framed
UART-to-Wishbone bridge (:mod:`.bridge`), a device that answers every notification
(:mod:`.echo`), an on-chip recorder of MSI messages (:mod:`.recorder`), and the system that joins
them to a :class:`~hw.VirtioMMIOTransport` (:mod:`.soc`). The pins, bitstream builds and the host
tool that talks to the bridge live in ``boards/``; the simulated serial line in :mod:`sim.serial`.
"""

from .soc import BOARD_TRANSPORT, RECORDER_BASE, BridgeSoC

__all__ = ["BOARD_TRANSPORT", "RECORDER_BASE", "BridgeSoC"]
