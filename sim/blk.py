"""The virtio-blk device in gateware, for the Linux co-simulation (``./run linux --device blk``).

:class:`BlkDevice` is a co-simulation device (:mod:`sim.uml.cosim`) whose logic is RTL: the
transport, the virtqueue engine (:class:`hw.virtqueue.VirtqueueEngine`) and the virtio-blk
device (:class:`hw.blk.VirtioBlkDevice`) run together in Amaranth's simulator. Only the outside
world is Python: the engine's bus master is served from the guest's memory
(:class:`sim.busmemory.WishboneMemory`, zero wait states), and the device's disk port from a
host buffer (:class:`DiskModel`, as an SDRAM controller would serve it), which a test can read
after the run.
"""

from amaranth.hdl import Elaboratable, Module

from hw.blk import BLK_DEVICE_ID, CONFIG_SIZE, SECTOR, VirtioBlkDevice, connect_blk
from hw.transport import VirtioMMIOTransport
from hw.virtqueue import VirtqueueEngine

from .busmemory import WishboneMemory
from .ringdevice import VENDOR_ID


__all__ = ["DiskModel", "BlkDevice"]


class DiskModel:
    """A Wishbone B4 pipelined target over ``image`` (a ``bytearray`` of whole sectors): never
    stalls, answers each request on the cycle after it is taken."""

    def __init__(self, image):
        self.image = image
        self.reads = self.writes = 0

    async def serve(self, ctx, bus):
        ctx.set(bus.stall, 0)
        acked = False
        signals = (bus.cyc, bus.stb, bus.we, bus.adr, bus.sel, bus.dat_w)
        async for _, _, cyc, stb, we, adr, sel, dat_w in ctx.tick().sample(*signals):
            if not (cyc and stb):
                if acked:
                    ctx.set(bus.ack, 0)     # idle: nothing else to set (updates cost time)
                    acked = False
                continue
            address = adr * 4
            word = int.from_bytes(self.image[address:address + 4], "little")
            if we:
                mask = sum(0xff << 8 * lane for lane in range(4) if sel >> lane & 1)
                word = word & ~mask | dat_w & mask
                self.image[address:address + 4] = word.to_bytes(4, "little")
                self.writes += 1
            else:
                self.reads += 1
            ctx.set(bus.dat_r, word)
            if not acked:
                ctx.set(bus.ack, 1)
                acked = True


class _Top(Elaboratable):
    def __init__(self, transport, engine, device):
        self.transport, self.engine, self.device = transport, engine, device

    def elaborate(self, platform):
        m = Module()
        m.submodules.transport = self.transport
        m.submodules.engine = self.engine
        m.submodules.device = self.device
        connect_blk(m, self.transport, self.engine, self.device)
        return m


class BlkDevice:
    """virtio-blk in RTL, behind the transport, for the co-simulation.

    Parameters
    ----------
    capacity : int
        Disk size in sectors (default 2048: 1 MiB).
    image : bytes or None
        Initial disk contents (zeros if ``None``).
    queue_size_max : int
    max_chain : int
        The engine's longest chain.
    """

    name = "blk"

    def __init__(self, *, capacity=2048, image=None, queue_size_max=64, max_chain=16):
        self.capacity = capacity
        self.disk = DiskModel(bytearray(image) if image is not None
                              else bytearray(capacity * SECTOR))
        if len(self.disk.image) != capacity * SECTOR:
            raise ValueError(f"image must be {capacity * SECTOR} bytes, not "
                             f"{len(self.disk.image)}")
        self.queue_size_max = queue_size_max
        self.max_chain = max_chain
        self.engine = self.blk = self.memory = None
        #: The malformed rings the engine reported (decisions.md D11), as text.
        self.errors = []
        self._busy = False

    def transport(self, **personality):
        """The transport, engine and device for one run: ``(top, transport)``."""
        transport = VirtioMMIOTransport(
            device_id=BLK_DEVICE_ID, vendor_id=VENDOR_ID, num_queues=1,
            queue_size_max=self.queue_size_max, config_size=CONFIG_SIZE,
            device_features=VirtqueueEngine.FEATURES | VirtioBlkDevice.FEATURES, **personality)
        self.engine = VirtqueueEngine(num_queues=1, addr_width=30, max_chain=self.max_chain)
        self.blk = VirtioBlkDevice(capacity=self.capacity, seg_max=self.max_chain - 2)
        return _Top(transport, self.engine, self.blk), transport

    def bind(self, memory):
        self.memory = WishboneMemory(memory, record=False)

    @property
    def idle(self):
        return not self._busy

    async def run(self, ctx):
        """Samples the engine's and the device's ``busy`` (what :attr:`idle` reports) and the
        engine's ``needs_reset`` (:attr:`errors`)."""
        engine = self.engine
        signals = (engine.busy, self.blk.busy, engine.needs_reset)
        async for _, _, engine_busy, device_busy, needs_reset in ctx.tick().sample(*signals):
            self._busy = bool(engine_busy or device_busy)
            if needs_reset:
                self.errors.append(f"D11 case {ctx.get(engine.error_case)}: the engine stopped "
                                   f"serving until the device is reset")

    def background(self):
        """The models of the outside world, as background testbenches: guest memory on the
        engine's bus and the disk on the device's port."""
        async def memory(ctx):
            while self.memory is None:      # guest memory arrives with the bridge's hello
                await ctx.tick()
            await self.memory.serve(ctx, self.engine.bus)

        async def disk(ctx):
            await self.disk.serve(ctx, self.blk.disk)
        return [memory, disk]
