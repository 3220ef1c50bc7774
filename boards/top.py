"""Board tops: the :class:`~hw.soc.soc.BridgeSoC` on the iCEBreaker and the ULX3S.

The SoC's serial line goes to the board's USB serial port (the FTDI chip's second channel on
both boards: ``/dev/ttyUSB1`` on Linux), its interrupt and MSI activity to LEDs:

========== ==================== ===================== ====================
board      wired interrupt      MSI message           bridge activity
========== ==================== ===================== ====================
iCEBreaker red LED (``led 0``)  green LED (``led 1``) --
ULX3S      LED 0                LED 1                 LED 2
========== ==================== ===================== ====================
"""

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from hw.soc.soc import BOARD_TRANSPORT, BridgeSoC
from hw.soc.uart import divisor_for


__all__ = ["BOARDS", "DEFAULT_BAUD", "FRAME_TIMEOUT", "BoardTop"]

#: Board name -> (platform class, LED index per SoC output).
BOARDS = {
    "icebreaker": (ICEBreakerPlatform, {"irq": 0, "msi_led": 1}),
    "ulx3s":      (ULX3S_85F_Platform, {"irq": 0, "msi_led": 1, "activity": 2}),
}

DEFAULT_BAUD = 115200

#: Seconds without a byte after which the bridge abandons a partial frame: far above a byte time
#: (87 us at 115200 baud), below the host's response timeout.
FRAME_TIMEOUT = 0.01


class BoardTop(Elaboratable):
    """The SoC with its pins on ``platform``'s default clock, UART 0 and LEDs.

    Parameters
    ----------
    board : str
        A key of :data:`BOARDS`.
    baud : int

    The SoC carries :data:`~hw.soc.soc.BOARD_TRANSPORT`.

    Raises
    ------
    TypeError
        If ``board`` is not a string, or ``baud`` not a number (:func:`~hw.soc.uart.divisor_for`).
    ValueError
        If ``board`` is not a key of :data:`BOARDS`, or ``baud`` is not a rate the board's clock
        can divide to within 2% (:func:`~hw.soc.uart.divisor_for`).
    """

    def __init__(self, board, *, baud=DEFAULT_BAUD):
        if not isinstance(board, str):
            raise TypeError(f"board must be a string, one of {sorted(BOARDS)}, not {board!r}")
        if board not in BOARDS:
            raise ValueError(f"board must be one of {sorted(BOARDS)}, not {board!r}")
        self.board = board
        platform_class, self.leds = BOARDS[board]
        self.platform = platform_class()
        clk = self.platform.default_clk_frequency
        self.clk_frequency = clk
        self.baud = baud
        self.soc = BridgeSoC(
            divisor=divisor_for(clk, baud),
            timeout=round(clk * FRAME_TIMEOUT),
            transport=BOARD_TRANSPORT,
            stretch=int(clk // 10),            # 100 ms blinks
        )

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
