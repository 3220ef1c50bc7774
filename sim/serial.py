"""A simulated serial line: a bit-level 8N1 model of the host's UART for testbenches.

:class:`SimSerialLine` drives the design's ``rx`` and samples its ``tx``, bit by bit, in two
simulator processes, and offers the *line* API of :mod:`boards.host` (``write``, ``read``,
``settle``) to a testbench, so :class:`boards.host.BridgeMMIO` and the driver model run over it
unchanged.
"""

from collections import deque


__all__ = ["SimSerialLine"]


class SimSerialLine:
    """The host end of a serial line in simulation.

    Parameters
    ----------
    rx : Signal
        The design's serial input (driven here).
    tx : Signal
        The design's serial output (sampled here).
    divisor : int
        Clock cycles per bit (the design's).
    timeout : int
        Cycles :meth:`read` waits for more bytes before returning what it has.
    settle_cycles : int
        Cycles :meth:`settle` waits (more than the bridge's frame timeout).

    Add :meth:`drive` and :meth:`listen` with ``add_process``; call :meth:`attach` with the
    testbench's context before using the line API from the testbench.
    """

    def __init__(self, rx, tx, *, divisor, timeout=4000, settle_cycles=1000):
        self.rx = rx
        self.tx = tx
        self.divisor = divisor
        self.timeout = timeout
        self.settle_cycles = settle_cycles
        self._outgoing = deque()          # bytes, or ("frame", bits) for raw frames
        self.received = bytearray()
        self.framing_errors = 0
        self.sent = 0
        self.ctx = None

    def attach(self, ctx):
        self.ctx = ctx

    # --- line API -----------------------------------------------------------------------------

    def write(self, data):
        for byte in bytes(data):
            self._outgoing.append(self._frame(byte))

    def write_bad_stop(self, byte):
        """Send ``byte`` with a low stop bit (a framing error)."""
        self._outgoing.append(self._frame(byte, stop=0))

    async def read(self, n):
        waited = 0
        step = self.divisor
        while len(self.received) < n and waited < self.timeout + 12 * self.divisor * n:
            await self.ctx.tick().repeat(step)
            waited += step
            if self._outgoing:
                waited = 0                # our own bytes are still going out
        data = bytes(self.received[:n])
        del self.received[:n]
        return data

    async def settle(self):
        await self.idle()
        await self.ctx.tick().repeat(self.settle_cycles)
        self.received.clear()

    async def idle(self):
        """Wait until every written byte is on the line."""
        while self._outgoing or self._busy:
            await self.ctx.tick().repeat(self.divisor)

    # --- bit-level processes ------------------------------------------------------------------

    @staticmethod
    def _frame(byte, stop=1):
        return [0] + [byte >> i & 1 for i in range(8)] + [stop]

    _busy = False

    async def drive(self, ctx):
        ctx.set(self.rx, 1)
        while True:
            if not self._outgoing:
                await ctx.tick()
                continue
            self._busy = True
            for bit in self._outgoing.popleft():
                ctx.set(self.rx, bit)
                await ctx.tick().repeat(self.divisor)
            ctx.set(self.rx, 1)
            self.sent += 1
            self._busy = False

    async def listen(self, ctx):
        div = self.divisor
        countdown = None              # cycles to the next sample point
        bits = []
        async for _, _, tx in ctx.tick().sample(self.tx):
            if countdown is None:
                if not tx:
                    countdown = div // 2        # middle of the start bit
                    bits = []
                continue
            countdown -= 1
            if countdown:
                continue
            bits.append(tx)
            countdown = div
            if len(bits) == 1 and bits[0]:
                countdown = None                # a glitch
            elif len(bits) == 10:
                if bits[9]:
                    self.received.append(sum(b << i for i, b in enumerate(bits[1:9])))
                else:
                    self.framing_errors += 1
                countdown = None


class BusMonitor:
    """Watches a Wishbone initiator every cycle: counts accesses (cycles where ``cyc & stb``
    rises) and remembers the last cycle ``cyc`` or ``stb`` was high."""

    def __init__(self, bus):
        self.bus = bus
        self.accesses = 0
        self.now = 0
        self.last_active = None
        self.stb_without_cyc = 0

    @property
    def idle(self):
        return self.last_active is None or self.last_active < self.now

    async def run(self, ctx):
        previous = 0
        async for _, _, cyc, stb in ctx.tick().sample(self.bus.cyc, self.bus.stb):
            self.now += 1
            if cyc or stb:
                self.last_active = self.now
            if stb and not cyc:
                self.stb_without_cyc += 1
            if cyc and stb and not previous:
                self.accesses += 1
            previous = cyc and stb


def simulate_soc(body, *, soc=None, divisor=6, timeout=200, transport=None, name="soc",
                 waves=None):
    """Run ``async body(ctx, line, soc, monitor)`` against a :class:`~hw.soc.soc.BridgeSoC`
    over a :class:`SimSerialLine`. Returns the SoC."""
    from .waves import simulate, members
    from hw.soc.soc import BOARD_TRANSPORT, BridgeSoC
    if soc is None:
        soc = BridgeSoC(divisor=divisor, timeout=timeout, stretch=16,
                        transport=transport or BOARD_TRANSPORT)
    line = SimSerialLine(soc.rx, soc.tx, divisor=soc.uart_rx.divisor,
                         settle_cycles=2 * soc.bridge.timeout + 20 * soc.uart_rx.divisor)
    monitor = BusMonitor(soc.bridge.bus)
    done = []

    async def testbench(ctx):
        line.attach(ctx)
        await body(ctx, line, soc, monitor)
        done.append(True)

    traces = {"serial": [soc.rx, soc.tx], "bridge bus": members(soc.bridge.bus),
              "leds": [soc.irq, soc.msi_led, soc.activity]}
    simulate(soc, testbench, processes=[line.drive, line.listen, monitor.run], name=name,
             traces=traces, waves=waves)
    assert done, "testbench did not finish"
    return soc
