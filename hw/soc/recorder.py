"""An on-chip recorder of MSI messages that the host reads back over the bus.

On a board there is no interrupt controller to receive the transport's MSI writes, so the board
top stores them here and the host (:mod:`boards.host`) reads them like registers.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from .. import wishbone
from .._checks import check_int
from ..msi import MSIMessage


__all__ = ["RECORDER_REGS", "ENTRY_BASE", "ENTRY_WORDS", "MSIRecorder"]

#: Word index of each recorder register.
RECORDER_REGS = {
    "Count":    0,   # R: messages received since the last clear (wraps at 2**32); W: clear
    "Capacity": 1,   # R: number of entries kept
}
#: Word index of entry 0; entry ``i`` holds message ``Count - 1 - ((Count - 1 - i) % Capacity)``,
#: i.e. message ``k`` is in entry ``k % Capacity`` (a ring: the newest ones are kept).
ENTRY_BASE = 0x10
#: Words per entry: address bits 31:0, address bits 63:32, data, unused (reads 0).
ENTRY_WORDS = 4


class MSIRecorder(wiring.Component):
    """Keeps the last ``depth`` MSI messages in block RAM, readable over Wishbone.

    Parameters
    ----------
    depth : int
        Messages kept, a power of two.

    Members
    -------
    msi : In(stream.Signature(MSIMessage))
        The transport's MSI write stream. Always ready: the recorder never stalls the transport.
    bus : In(wishbone.Signature(addr_width=...))
        Registers (:data:`RECORDER_REGS`) and entries (from word :data:`ENTRY_BASE`). Writes to
        ``Count`` clear the recorder; other writes are ignored. Every access is acknowledged
        2 cycles after the request (one cycle for the memory read).
    activity : Out(1)
        One-cycle pulse per recorded message.

    Raises
    ------
    TypeError
        If ``depth`` is not an integer.
    ValueError
        If ``depth`` is not a power of two.
    """

    def __init__(self, *, depth):
        # A power of two: message k goes to entry k % depth, the low bits of the count.
        self._depth = check_int("depth", depth, "a power of two",
                                lambda d: d >= 1 and d & (d - 1) == 0)
        addr_width = ceil_log2(ENTRY_BASE + ENTRY_WORDS * depth)
        self._mem = Memory(shape=MSIMessage, depth=depth, init=[])
        super().__init__({
            "msi":      In(stream.Signature(MSIMessage)),
            "bus":      In(wishbone.Signature(addr_width=addr_width)),
            "activity": Out(1),
        })

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = self._mem
        bus = self.bus
        index_bits = exact_log2(self._depth)

        count = Signal(32)
        wr = mem.write_port()
        rd = mem.read_port()
        m.d.comb += [
            self.msi.ready.eq(1),
            self.activity.eq(self.msi.valid),
            wr.addr.eq(count[:index_bits]),
            wr.data.eq(self.msi.payload),
            wr.en.eq(self.msi.valid),
        ]

        request = bus.cyc & bus.stb & ~bus.ack
        pending = Signal()                     # memory read in flight
        word = Signal(2)
        is_entry = bus.adr >= ENTRY_BASE
        entry_adr = bus.adr - ENTRY_BASE
        m.d.comb += rd.addr.eq(entry_adr[2:2 + index_bits] if index_bits else 0)
        m.d.sync += [pending.eq(request & ~pending), bus.ack.eq(pending)]

        with m.If(request & ~pending):
            m.d.sync += word.eq(entry_adr[:2])
            m.d.sync += bus.dat_r.eq(0)
            with m.If(~is_entry):
                with m.If(bus.adr == RECORDER_REGS["Count"]):
                    m.d.sync += bus.dat_r.eq(count)
                with m.If(bus.adr == RECORDER_REGS["Capacity"]):
                    m.d.sync += bus.dat_r.eq(self._depth)
        with m.If(pending):
            with m.If(bus.adr >= ENTRY_BASE):
                with m.Switch(word):
                    with m.Case(0):
                        m.d.sync += bus.dat_r.eq(rd.data.address[:32])
                    with m.Case(1):
                        m.d.sync += bus.dat_r.eq(rd.data.address[32:])
                    with m.Case(2):
                        m.d.sync += bus.dat_r.eq(rd.data.data)

        clear = request & ~pending & bus.we & (bus.adr == RECORDER_REGS["Count"])
        with m.If(clear):
            m.d.sync += count.eq(0)
        with m.Elif(self.msi.valid):
            m.d.sync += count.eq(count + 1)
        return m
