"""An example system on a chip around the transport, as the board tops carry it.

Synthesizable, platform-independent gateware: an 8N1 UART (:mod:`.uart`), a framed
UART-to-Wishbone bridge (:mod:`.bridge`), a device that answers every notification
(:mod:`.echo`), an on-chip recorder of MSI messages (:mod:`.recorder`), and the system that joins
them to a :class:`~hw.VirtioMMIOTransport` (:mod:`.soc`). The block-device system
(:mod:`.blksoc`) carries :class:`hw.blk.VirtioBlk` instead, with a RAM disk and the rings in
on-chip guest memory (:mod:`.guestram`), its targets behind an address decoder (:mod:`.decoder`).
The pins, bitstream builds and the host tool that talks to the bridge live in ``boards/``; the
simulated serial line in :mod:`sim.serial`.
"""

# BlkSoC is imported from .blksoc: importing it here would make every user of the echo system
# import the virtqueue engine too.
from .soc import BOARD_TRANSPORT, RECORDER_BASE, BridgeSoC

__all__ = ["BOARD_TRANSPORT", "RECORDER_BASE", "BridgeSoC"]
