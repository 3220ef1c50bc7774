"""The virtio-blk device in gateware (issue 14): every request type, out-of-range requests that
never reach the disk, the status byte's place, D11 case 10 for chains of the wrong shape, the
configuration space, the RAM disk, and randomized requests of every type and shape."""

import random
import re
import struct

import pytest
from amaranth.lib import wiring

from hw.blk import DISK_DEPTH, DISK_RULE, BlkStatus, BlkType, RamDisk, VirtioBlk, VirtioBlkDevice
from hw.virtqueue import RingError
from sim.busmemory import WishboneMemory
from sim.engine import EngineBench
from sim.memory import GuestMemory


RING, DATA = 0x1000, 0x8000
CAPACITY = 16               # sectors
SERIAL = b"test-serial-0001"


class Blk:
    """Engine + blk device + RAM disk, with rings in guest memory (sim.engine.EngineBench)."""

    def __init__(self, *, image=b"", size=16, disk_timing=None, **bench):
        words = CAPACITY * 128
        image = image.ljust(CAPACITY * 512, b"\0")
        init = [int.from_bytes(image[i:i + 4], "little") for i in range(0, len(image), 4)]
        self.device = VirtioBlkDevice(capacity=CAPACITY, serial=SERIAL)
        self.disk = self.slow_disk = None
        connect, processes = None, ()
        if disk_timing is None:
            self.disk = RamDisk(addr_width=self.device.disk_addr_width, words=words, init=init)

            def connect(m):
                m.submodules.disk = self.disk
                wiring.connect(m, self.device.disk, self.disk.bus)
        else:
            # A disk that stalls and answers late, in place of the RAM disk.
            self.slow_disk = WishboneMemory(GuestMemory(bytearray(image)), **disk_timing)

            async def disk(ctx):
                await self.slow_disk.serve(ctx, self.device.disk)
            processes = (disk,)
        self.bench = EngineBench(device=self.device, connect=connect, processes=processes,
                                 **bench)
        self.ring = self.bench.ring(0, size=size, base=RING)
        self.image = None

    def run(self, requests):
        """Each request: (type, sector, readable data, writable data length[, header split]).
        Returns [(status, data written, used length)]."""
        bench, ring = self.bench, self.ring
        layout = []
        cursor = DATA
        for kind, sector, data, out_length, *split in requests:
            header = struct.pack("<IIQ", kind, 0, sector)
            buffers, pieces = [], [header[:8], header[8:]] if split else [header]
            for piece in pieces + ([data] if data else []):
                bench.guest.write(cursor + 1, piece)
                buffers.append((cursor + 1, len(piece), False))
                cursor += len(piece) + 8
            if out_length:
                buffers.append((cursor + 3, out_length, True))
                data_at = cursor + 3
                cursor += out_length + 8
            else:
                data_at = None
            buffers.append((cursor + 2, 1, True))
            bench.guest.write(cursor + 2, b"\xaa")           # the status: not yet written
            layout.append((buffers, data_at, out_length, cursor + 2))
            cursor += 16

        heads = []

        async def testbench(ctx):
            bench.set_queue(ctx, 0)
            heads.extend(ring.add(buffers) for buffers, *_ in layout)
            await bench.notify(ctx, 0)
            await bench.until_idle(ctx)
            if self.slow_disk is not None:
                self.image = self.slow_disk.memory.read(0, CAPACITY * 512)
            else:
                self.image = b"".join(ctx.get(self.disk.ram.data[i]).to_bytes(4, "little")
                                      for i in range(CAPACITY * 128))
            self.error_case = ctx.get(bench.engine.error_case)
        bench.run(testbench)
        used = dict(ring.used())
        results = []
        for index, (_, data_at, out_length, status_at) in enumerate(layout):  # noqa: B007
            data = bench.guest.read(data_at, out_length) if data_at is not None else b""
            results.append((bench.guest.read(status_at, 1)[0], data, used.get(heads[index])))
        return results


def serve(requests, **kwargs):
    blk = Blk(**kwargs)
    return blk, blk.run(requests)


def sector_data(sector, count=1):
    return b"".join(bytes((sector * 7 + i) & 0xff for i in range(512)) for sector in
                    range(sector, sector + count))


@pytest.mark.parametrize("disk_timing", [
    None, dict(stall=0.4, latency=(1, 8), seed=1),
], ids=["ram-disk", "slow-disk"])
def test_write_then_read_sectors(disk_timing):
    data = sector_data(3, 2)
    blk, results = serve([(BlkType.OUT, 3, data, 0), (BlkType.IN, 3, b"", 1024),
                          (BlkType.IN, 4, b"", 512)], stall=0.3, disk_timing=disk_timing)
    assert results[0] == (BlkStatus.OK, b"", 1)
    assert results[1] == (BlkStatus.OK, data, 1025)
    assert results[2] == (BlkStatus.OK, data[512:], 513)
    assert blk.image[3 * 512:5 * 512] == data
    assert blk.image[:3 * 512] == bytes(3 * 512)


def test_a_disk_answering_with_nothing_in_flight_fails_the_simulation():
    # decisions.md D11i: the disk port counts an answer only with a request in flight; a disk
    # that acknowledges otherwise (or in the cycle it takes a request) fails the simulation with
    # a message naming the rule instead of hanging the device.
    with pytest.raises(AssertionError, match=re.escape(DISK_RULE)) as failure:
        serve([(BlkType.IN, 3, b"", 1024)],
              disk_timing=dict(stall=0.4, latency=(1, 8), seed=2, spurious=0.3))
    assert "at the earliest in the cycle after it takes it" in str(failure.value)


def test_read_of_an_initial_image_under_wait_states():
    image = sector_data(0, CAPACITY)
    _, results = serve([(BlkType.IN, 15, b"", 512), (BlkType.IN, 0, b"", 2048)], image=image,
                       stall=0.3, latency=(1, 5), seed=3)
    assert results[0] == (BlkStatus.OK, image[15 * 512:], 513)
    assert results[1] == (BlkStatus.OK, image[:2048], 2049)


def test_header_split_across_descriptors():
    data = sector_data(1)
    blk, results = serve([(BlkType.OUT, 1, data, 0, "split"), (BlkType.IN, 1, b"", 512, "split")])
    assert results[1] == (BlkStatus.OK, data, 513)


# (2 ** 32 - 1, 1): the last sector number of the low word; its end, 2 ** 32, needs 33 bits.
@pytest.mark.parametrize("sector, count", [(CAPACITY, 1), (CAPACITY - 1, 2), (1 << 32, 1),
                                           ((1 << 64) - 1, 1), ((1 << 32) - 1, 1)])
def test_out_of_range_write_is_ioerr_and_never_reaches_the_disk(sector, count):
    image = sector_data(0, CAPACITY)
    blk, results = serve([(BlkType.OUT, sector, sector_data(0, count), 0)], image=image)
    assert results[0] == (BlkStatus.IOERR, b"", 1)
    assert blk.image == image


@pytest.mark.parametrize("sector, count", [(CAPACITY, 1), (CAPACITY - 1, 2), (1 << 40, 1),
                                           ((1 << 32) - 1, 1)])
def test_out_of_range_read_is_ioerr_with_zeros_and_the_status_last(sector, count):
    _, results = serve([(BlkType.IN, sector, b"", 512 * count)], image=sector_data(0, CAPACITY))
    assert results[0] == (BlkStatus.IOERR, bytes(512 * count), 512 * count + 1)


@pytest.mark.parametrize("length", [100, 256, 513])
def test_partial_sectors_are_ioerr(length):
    image = sector_data(0, CAPACITY)
    blk, results = serve([(BlkType.OUT, 0, b"x" * length, 0), (BlkType.IN, 0, b"", length)],
                         image=image)
    assert results[0] == (BlkStatus.IOERR, b"", 1)
    assert results[1] == (BlkStatus.IOERR, bytes(length), length + 1)
    assert blk.image == image


@pytest.mark.parametrize("room", [20, 8, 30])
def test_get_id_answers_the_serial_zero_padded(room):
    _, results = serve([(BlkType.GET_ID, 0, b"", room)])
    assert results[0] == (BlkStatus.OK, SERIAL.ljust(max(room, 20), b"\0")[:room], room + 1)


def test_get_id_with_readable_bytes_after_the_header_answers_the_serial():
    # The readable bytes are taken before the serial is written (the engine's order): a device
    # that wrote first would wait forever for the engine to take its beats.
    # 64 bytes: more than the engine holds in its answer FIFO and its packer.
    _, results = serve([(BlkType.GET_ID, 0, b"z" * 64, 20), (BlkType.FLUSH, 0, b"", 0)])
    assert results == [(BlkStatus.OK, SERIAL.ljust(20, b"\0"), 21), (BlkStatus.OK, b"", 1)]


def test_read_with_readable_bytes_after_the_header_is_served():
    # As for GET_ID: the readable bytes are taken and dropped before the sectors are written.
    image = sector_data(0, CAPACITY)
    _, results = serve([(BlkType.IN, 2, b"z" * 64, 512), (BlkType.FLUSH, 0, b"", 0)],
                       image=image)
    assert results == [(BlkStatus.OK, image[2 * 512:3 * 512], 513), (BlkStatus.OK, b"", 1)]


def test_read_of_no_sectors_is_ok_and_reads_nothing():
    # found by the randomized test below: the device went to the disk for a word it could not
    # write anywhere, and waited for ever
    _, results = serve([(BlkType.IN, 3, b"", 0), (BlkType.FLUSH, 0, b"", 0)])
    assert results == [(BlkStatus.OK, b"", 1), (BlkStatus.OK, b"", 1)]


def _request(bench, at, kind, sector, out_length):
    """A request chain at ``at``: header, ``out_length`` writable bytes, status."""
    bench.guest.write(at, struct.pack("<IIQ", kind, 0, sector))
    return [(at, 16, False), (at + 0x100, out_length, True), (at + 0x100 + out_length, 1, True)]


@pytest.mark.parametrize("when", [60, 150, 400, 900])
@pytest.mark.parametrize("kind", [BlkType.IN, BlkType.OUT])
def test_a_reset_during_disk_accesses_settles_them_and_the_next_request_is_served(kind, when):
    # The disk answers late: a reset finds requests in flight on the disk port. They complete
    # (cyc held), and the device takes the next request only then: the driver sets the queue
    # up again at once, and no answer to the chain given up reaches the next.
    image = sector_data(0, CAPACITY)
    blk = Blk(image=image, disk_timing=dict(stall=0.3, latency=(20, 60), seed=when))
    bench = blk.bench
    seen = {}

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        if kind == BlkType.IN:
            chain = _request(bench, DATA, BlkType.IN, 0, 2048)
        else:
            bench.guest.write(DATA, struct.pack("<IIQ", BlkType.OUT, 0, 8) + bytes(2048))
            chain = [(DATA, 16, False), (DATA + 16, 2048, False), (DATA + 0x1000, 1, True)]
        blk.ring.add(chain)
        await bench.notify(ctx, 0)
        await ctx.tick().repeat(when)
        seen["busy"] = ctx.get(blk.device.busy)
        await bench.reset(ctx)
        bench.set_queue(ctx, 0, ready=False)
        await ctx.tick()
        fresh = bench.ring(0, size=8, base=RING + 0x2000)
        bench.set_queue(ctx, 0)
        fresh.add(_request(bench, DATA + 0x3000, BlkType.IN, 3, 512))
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        seen["used"] = fresh.used()
    bench.run(testbench)
    assert seen["busy"]                                 # the reset came mid-request
    assert blk.slow_disk.violations == []               # cyc held while answers were due
    assert seen["used"] == [(0, 513)]
    assert bench.guest.read(DATA + 0x3000 + 0x100, 513) == image[3 * 512:4 * 512] + b"\0"
    # a T_OUT given up wrote at most the sectors it was writing, nothing elsewhere
    assert blk.slow_disk.memory.read(0, 8 * 512) == image[:8 * 512]
    assert blk.slow_disk.memory.read(12 * 512, 4 * 512) == image[12 * 512:]


def test_a_t_out_status_reaches_guest_memory_only_after_every_disk_write_is_acknowledged():
    # T_FLUSH is OK at once because a T_OUT's status is written only once the disk port has
    # acknowledged every write of it (D18). The disk answers 40 to 60 cycles after it takes a
    # request, far later than the engine needs to write a status byte; the check is made in the
    # cycle the status byte lands in guest memory, not once everything is idle.
    data = sector_data(5, 2)
    status_at = DATA + 0x1002
    landed = []

    def on_write(access):
        if access.address == status_at & ~3 and access.sel >> (status_at & 3) & 1:
            landed.append(len(blk.slow_disk.writes()))
    blk = Blk(disk_timing=dict(latency=(40, 60), seed=5), on_write=on_write)
    bench = blk.bench
    bench.guest.write(DATA, struct.pack("<IIQ", BlkType.OUT, 0, 5) + data)
    bench.guest.write(status_at, b"\xaa")

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        blk.ring.add([(DATA, 16, False), (DATA + 16, len(data), False), (status_at, 1, True)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
    bench.run(testbench)
    # the status byte was written once, when every one of the request's words had been written
    # (and acknowledged: the disk model writes a word when it answers it)
    assert landed == [len(data) // 4]
    assert blk.ring.used() == [(0, 1)]
    assert bench.guest.read(status_at, 1)[0] == BlkStatus.OK
    assert blk.slow_disk.memory.read(5 * 512, len(data)) == data
    assert len(blk.slow_disk.writes()) == len(data) // 4


@pytest.mark.parametrize("kind", [BlkType.OUT, BlkType.IN])
def test_the_disk_port_keeps_at_most_disk_depth_requests_in_flight(kind):
    # D18: up to DISK_DEPTH requests in flight, so that a disk that answers L cycles after it
    # takes a request moves DISK_DEPTH words every L cycles; never more (a target may hold no
    # more). Counted from the disk's side: a request is in flight from the cycle it is taken
    # to the cycle it is answered.
    image = sector_data(0, CAPACITY)
    requests = [(BlkType.OUT, 2, sector_data(9, 2), 0)] if kind == BlkType.OUT else \
        [(BlkType.IN, 2, b"", 1024)]
    blk, results = serve(requests, image=image, disk_timing=dict(latency=(10, 14), seed=6))
    log = blk.slow_disk.log
    most = max(sum(1 for a in log if a.taken <= cycle <= a.cycle)
               for cycle in range(log[0].taken, log[-1].cycle + 1))
    assert most == DISK_DEPTH
    expected = image[2 * 512:4 * 512] if kind == BlkType.IN else b""
    assert results == [(BlkStatus.OK, expected, len(expected) + 1)]
    assert len(log) == 256


def test_flush_is_ok():
    _, results = serve([(BlkType.FLUSH, 0, b"", 0)])
    assert results[0] == (BlkStatus.OK, b"", 1)


@pytest.mark.parametrize("kind", [2, 11, 13, 0xffff_ffff])
def test_other_types_are_unsupp(kind):
    image = sector_data(0, CAPACITY)
    blk, results = serve([(kind, 0, b"y" * 512, 4)], image=image)
    assert results[0] == (BlkStatus.UNSUPP, bytes(4), 5)
    assert blk.image == image


def test_a_chain_without_a_status_byte_is_d11_case_10():
    blk = Blk()
    bench, ring = blk.bench, blk.ring
    bench.guest.write(DATA, struct.pack("<IIQ", BlkType.IN, 0, 0))

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA, 16, False)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        assert ctx.get(bench.engine.error_case) == RingError.DEVICE
    bench.run(testbench)
    assert ring.used() == [] and len(bench.events.needs_reset) == 1


@pytest.mark.parametrize("readable", [1, 12, 15])
def test_a_header_shorter_than_16_bytes_is_d11_case_10(readable):
    blk = Blk()
    bench, ring = blk.bench, blk.ring

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        ring.add([(DATA, readable, False), (DATA + 0x40, 1, True)])
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx)
        assert ctx.get(bench.engine.error_case) == RingError.DEVICE
    bench.run(testbench)
    assert ring.used() == [] and len(bench.events.needs_reset) == 1


def test_config_space_holds_capacity_and_seg_max():
    from amaranth.sim import Simulator
    device = VirtioBlkDevice(capacity=0x1_2345_6789 & 0xffff_ffff, seg_max=14, size_max=8192)
    got = []

    async def testbench(ctx):
        for word in range(4):
            ctx.set(device.config.addr, word)
            ctx.set(device.config.r_stb, 1)
            await ctx.tick()
            ctx.set(device.config.r_stb, 0)
            got.append(ctx.get(device.config.r_data))
    sim = Simulator(device)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == [0x2345_6789, 0, 8192, 14]


def test_composed_blk_offers_exactly_the_features_it_implements():
    # VERSION_1 (the transport), EVENT_IDX (the engine), SIZE_MAX, SEG_MAX and FLUSH (the
    # device); not INDIRECT_DESC, RING_PACKED or IN_ORDER, which the engine does not implement.
    from amaranth.sim import Simulator

    from sim.bus import SimMMIO
    top = VirtioBlk(capacity=CAPACITY)
    regs = top.transport.regs
    words = []

    async def testbench(ctx):
        io = SimMMIO(ctx, top.bus)
        for word in range(2):
            await io.write(regs["DeviceFeaturesSel"].offset, word)
            words.append(await io.read(regs["DeviceFeatures"].offset))
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert words == [1 << 1 | 1 << 2 | 1 << 9 | 1 << 29, 1 << (32 - 32)]


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(capacity=0), ValueError, "capacity must be an integer from 1 to 2 ** 32 - 1, not 0"),
    (dict(capacity=1 << 32), ValueError,
     "capacity must be an integer from 1 to 2 ** 32 - 1, not 4294967296"),
    (dict(capacity=8, seg_max=0), ValueError, "seg_max must be an integer from 1 to 254, not 0"),
    (dict(capacity=8, size_max=1000), ValueError,
     "size_max must be a multiple of 512 from 512 to 2 ** 31, not 1000"),
    (dict(capacity=8, serial="text"), TypeError,
     "serial must be bytes of at most 20, not 'text'"),
    (dict(capacity=8, serial=b"x" * 21), TypeError,
     "serial must be bytes of at most 20, not b'xxxxxxxxxxxxxxxxxxxxx'"),
])
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=f"^{message}$".replace("*", r"\*").replace("(", r"\(")
                       .replace(")", r"\)")):
        VirtioBlkDevice(**kwargs)


def _expected(image, kind, sector, data, out_length):
    """What the device must answer, from the request alone (D18): (status, bytes written)."""
    zeros = bytes(out_length)
    if kind == BlkType.IN:
        if out_length % 512 == 0 and sector + out_length // 512 <= CAPACITY:
            return BlkStatus.OK, bytes(image[sector * 512:sector * 512 + out_length])
        return BlkStatus.IOERR, zeros
    if kind == BlkType.OUT:
        if len(data) % 512 == 0 and sector + len(data) // 512 <= CAPACITY:
            image[sector * 512:sector * 512 + len(data)] = data
            return BlkStatus.OK, zeros
        return BlkStatus.IOERR, zeros
    if kind == BlkType.GET_ID:
        return BlkStatus.OK, SERIAL.ljust(max(out_length, 20), b"\0")[:out_length]
    if kind == BlkType.FLUSH:
        return BlkStatus.OK, zeros
    return BlkStatus.UNSUPP, zeros


@pytest.mark.parametrize("seed", range(6))
def test_random_requests_of_every_type_and_shape(seed):
    """Random types, sectors (some out of range), whole and partial sectors, readable bytes a
    request does not use, split headers, under random wait states on the engine's bus and
    (odd seeds) the disk port: every request gets the answer D18 gives it, in order, and the
    disk ends as the in-range writes left it."""
    rng = random.Random(seed)
    image = bytearray(sector_data(0, CAPACITY))
    initial = bytes(image)
    requests, expected, touched = [], [], []
    for _ in range(8):
        kind = rng.choice([BlkType.IN, BlkType.IN, BlkType.OUT, BlkType.OUT, BlkType.GET_ID,
                           BlkType.FLUSH, rng.choice([2, 11, 0xffff_ffff])])
        sector = rng.choice([rng.randrange(CAPACITY), CAPACITY - 1, CAPACITY, 1 << 33])
        count = rng.choice([0, 1, 2])
        length = rng.choice([512 * count, 512 * count, rng.randrange(1, 600)])
        data, out_length = b"", 0
        if kind == BlkType.OUT:
            data = bytes(rng.randrange(256) for _ in range(length))
            out_length = rng.choice([0, 0, rng.randrange(1, 40)])
        else:
            data = bytes(rng.randrange(256) for _ in range(rng.choice([0, 0, 0, 4, 37])))
            out_length = length if kind == BlkType.IN else rng.choice([0, 8, 20, 33])
        split = ("split",) if rng.random() < 0.3 else ()
        requests.append((kind, sector, data, out_length, *split))
        status, written = _expected(image, kind, sector, data, out_length)
        expected.append((status, written, out_length + 1))
        moved = len(data) if kind == BlkType.OUT else out_length
        touched.append(status == BlkStatus.OK and kind in (BlkType.IN, BlkType.OUT) and moved)
    # up to 5 descriptors a request: a ring of 64 holds them all
    disk_timing = dict(stall=0.3, latency=(1, 6), seed=seed) if seed % 2 else None
    blk, results = serve(requests, image=initial, size=64, stall=0.2, latency=(1, 3), seed=seed,
                         disk_timing=disk_timing)
    assert results == expected
    assert blk.image == bytes(image)
    assert disk_timing is None or (blk.slow_disk.accesses > 0) == any(touched)
