"""Board tops: a SoC of :mod:`hw.soc` on the iCEBreaker, the ULX3S and two more boards.

Two systems, chosen with ``soc=`` (:data:`SOCS`):

* ``"echo"``: :class:`~hw.soc.soc.BridgeSoC`, the transport with an echo device and the MSI
  recorder;
* ``"blk"``: :class:`~hw.soc.blksoc.BlkSoC`, virtio-blk on the virtqueue engine with a RAM
  disk and the rings in on-chip guest RAM, sized per board (:class:`Board`).

The SoC's serial line goes to the board's USB serial port (the FTDI chip's second channel:
``/dev/ttyUSB1`` on Linux), its interrupt and MSI activity to LEDs:

========== =========================== ============ ========== ========== ===========
board      FPGA                        interrupt    MSI        activity   blk disk
========== =========================== ============ ========== ========== ===========
icebreaker iCE40 UP5K                  red LED (0)  green (1)  --         8 sectors
hx8k       iCE40 HX8K (HX8K breakout)  LED D2 (0)   LED D3 (1) LED D4 (2) 16 sectors
ulx3s      ECP5 LFE5U-85F              LED 0        LED 1      LED 2      128 sectors
ulx3s-25f  ECP5 LFE5U-25F              LED 0        LED 1      LED 2      64 sectors
========== =========================== ============ ========== ========== ===========

"activity" is the bridge working on a frame; "blk disk" the RAM disk of the blk SoC.
``hx8k`` and ``ulx3s-25f`` are the devices of the benchmark (:mod:`boards.bench`) on boards that
carry them. On the iCEBreaker the blk SoC has no MSI, so its MSI LED stays dark: without it the
SoC already takes 95% of the UP5K's 5280 logic cells, and MSI with the recorder adds some 400
LUTs. The disks fill what block RAM is left: 16 sectors take 16 of the HX8K's 32 block RAMs
(the guest RAM 8, the recorder 6).
"""

from dataclasses import dataclass, field

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io
from amaranth_boards.ice40_hx8k_b_evn import ICE40HX8KBEVNPlatform
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_25F_Platform, ULX3S_85F_Platform

from hw.soc.blksoc import BOARD_BLK, BlkSoC
from hw.soc.soc import BOARD_TRANSPORT, BridgeSoC
from hw.soc.uart import divisor_for


__all__ = ["Board", "BOARDS", "SOCS", "BLK_MSI", "DEFAULT_BAUD", "FRAME_TIMEOUT", "disk_label",
           "BoardTop"]

#: The blk SoC's MSI personality where the board has room for it (with the MSI recorder).
BLK_MSI = dict(BOARD_BLK, msi="v2", msi_vectors=2, msi_sharing=False)


@dataclass(frozen=True)
class Board:
    """A board the tops build for: its platform, which LED shows which SoC output, and the blk
    SoC's disk size and :class:`hw.blk.VirtioBlk` parameters."""
    platform: type
    leds: dict
    capacity: int
    blk: dict = field(default_factory=lambda: dict(BOARD_BLK))


BOARDS = {
    "icebreaker": Board(ICEBreakerPlatform, {"irq": 0, "msi_led": 1}, capacity=8),
    "hx8k":       Board(ICE40HX8KBEVNPlatform, {"irq": 0, "msi_led": 1, "activity": 2},
                        capacity=16, blk=BLK_MSI),
    "ulx3s":      Board(ULX3S_85F_Platform, {"irq": 0, "msi_led": 1, "activity": 2},
                        capacity=128, blk=BLK_MSI),
    "ulx3s-25f":  Board(ULX3S_25F_Platform, {"irq": 0, "msi_led": 1, "activity": 2},
                        capacity=64, blk=BLK_MSI),
}

#: The systems a top can carry.
SOCS = ("echo", "blk")

DEFAULT_BAUD = 115200

#: Seconds without a byte after which the bridge abandons a partial frame: far above a byte time
#: (87 us at 115200 baud), below the host's response timeout.
FRAME_TIMEOUT = 0.01


def disk_label(board):
    """What sector 0 of the blk SoC's RAM disk holds after configuration: a line of text that
    ``blk read 0`` shows before anything was written."""
    return f"virtio-blk RAM disk on the {board}: {BOARDS[board].capacity} sectors\n".encode()


class BoardTop(Elaboratable):
    """A SoC with its pins on ``platform``'s default clock, UART 0 and LEDs.

    Parameters
    ----------
    board : str
        A key of :data:`BOARDS`.
    baud : int
    soc : str
        One of :data:`SOCS`: ``"echo"`` carries :data:`~hw.soc.soc.BOARD_TRANSPORT` in a
        :class:`~hw.soc.soc.BridgeSoC`, ``"blk"`` a :class:`~hw.soc.blksoc.BlkSoC` with the
        board's disk (:data:`BOARDS`, sector 0 :func:`disk_label`).

    Raises
    ------
    TypeError
        If ``board`` or ``soc`` is not a string, or ``baud`` not a number
        (:func:`~hw.soc.uart.divisor_for`).
    ValueError
        If ``board`` is not a key of :data:`BOARDS`, ``soc`` not one of :data:`SOCS`, or
        ``baud`` is not a rate the board's clock can divide to within 2%
        (:func:`~hw.soc.uart.divisor_for`).
    """

    def __init__(self, board, *, baud=DEFAULT_BAUD, soc="echo"):
        if not isinstance(board, str):
            raise TypeError(f"board must be a string, one of {sorted(BOARDS)}, not {board!r}")
        if board not in BOARDS:
            raise ValueError(f"board must be one of {sorted(BOARDS)}, not {board!r}")
        if not isinstance(soc, str):
            raise TypeError(f"soc must be a string, one of {list(SOCS)}, not {soc!r}")
        if soc not in SOCS:
            raise ValueError(f"soc must be one of {list(SOCS)}, not {soc!r}")
        self.board = board
        self.soc_name = soc
        spec = BOARDS[board]
        self.leds = spec.leds
        self.platform = spec.platform()
        clk = self.platform.default_clk_frequency
        self.clk_frequency = clk
        self.baud = baud
        common = dict(divisor=divisor_for(clk, baud), timeout=round(clk * FRAME_TIMEOUT),
                      stretch=int(clk // 10))            # 100 ms blinks
        if soc == "echo":
            self.soc = BridgeSoC(transport=BOARD_TRANSPORT, **common)
        else:
            self.soc = BlkSoC(capacity=spec.capacity, image=disk_label(board), blk=spec.blk,
                              **common)

    def elaborate(self, platform):
        m = Module()
        m.submodules.soc = soc = self.soc

        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [soc.rx.eq(rx.i), tx.o.eq(soc.tx)]

        for output, index in self.leds.items():
            led = platform.request("led", index, dir="-")
            m.submodules[f"led{index}"] = buffer = io.Buffer("o", led)
            m.d.comb += buffer.o.eq(getattr(soc, output))
        return m
