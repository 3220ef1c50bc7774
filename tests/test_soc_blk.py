"""The block-device SoC: guest RAM shared by bridge and engine, the bus map, and the host tool's
virtio-blk requests through rings in on-chip memory, over a simulated serial line."""

import asyncio
from collections import deque

import pytest

from boards.host import BridgeMMIO, _parser, run_blk_command
from boards.host_blk import (BlkClient, BlkError, BridgeGuestMemory, RingLayout, hexdump,
                             plan_layout, run_blk)
from boards.top import BoardTop
from hw.blk import SECTOR, BlkStatus, BlkType, VirtioBlkDevice
from hw.regmap import MAGIC, Feature, Status
from hw.soc.blksoc import BLK_MAP, BOARD_BLK, GUEST_RAM, GUEST_WINDOW, BlkSoC
from hw.soc.decoder import WishboneDecoder
from hw.soc.guestram import GuestRAM
from hw.soc.soc import RECORDER_BASE
from sim.bus import wishbone_read, wishbone_write
from sim.serial import BusMonitor, SimSerialLine
from sim.waves import members, simulate


IMAGE = b"sector zero of the test disk\n"


# --- guest RAM ------------------------------------------------------------------------------

async def pipelined(ctx, bus, requests, *, bound=2000):
    """Issue ``(we, adr, dat_w)`` requests back to back on a pipelined port, honouring
    ``stall``; returns the answers in order as ``(ack, err, dat_r)`` and the cycles taken."""
    pending, in_flight, answers = deque(requests), deque(), []
    ctx.set(bus.cyc, 1)
    ctx.set(bus.sel, 0b1111)
    for cycle in range(1, bound + 1):
        if pending:
            we, adr, dat_w = pending[0]
            ctx.set(bus.stb, 1)
            ctx.set(bus.we, we)
            ctx.set(bus.adr, adr)
            ctx.set(bus.dat_w, dat_w)
        else:
            ctx.set(bus.stb, 0)
        _, _, stb, stall, ack, err, dat_r = await ctx.tick().sample(
            bus.stb, bus.stall, bus.ack, bus.err, bus.dat_r)
        if ack or err:
            assert in_flight, "an answer without a request in flight"
            in_flight.popleft()
            answers.append((ack, err, dat_r))
        if stb and not stall:
            in_flight.append(pending.popleft())
        if not pending and not in_flight:
            ctx.set(bus.cyc, 0)
            ctx.set(bus.stb, 0)
            return answers, cycle
    raise AssertionError(f"{len(pending)} requests not taken, {len(in_flight)} unanswered "
                         f"after {bound} cycles")


def test_guest_ram_serves_both_initiators_and_starves_neither():
    ram = GuestRAM(addr_width=11, base=0x800, size=0x1000)
    first = 0x800 // 4
    reads = [(0, first + i, 0) for i in range(256)]           # the engine reads words 0..255
    done = {}

    async def engine(ctx):
        await ctx.tick().repeat(20)                            # after the host's first writes
        done["answers"], done["cycles"] = await pipelined(ctx, ram.dma, reads)

    async def host(ctx):
        for i in range(256):
            ctx.set(ram.ram.data[ram.index(0x800 + 4 * i)], 0x1000_0000 + i)
        await ctx.tick()
        waits = []
        # While the engine streams, the host writes and reads words the engine does not read.
        for i in range(12):
            waits.append(await wishbone_write(ctx, ram.host, first + 512 + i, 0xabc0 + i,
                                              timeout=3))
            value, cycles = await wishbone_read(ctx, ram.host, first + 512 + i, timeout=3)
            assert value == 0xabc0 + i
            waits.append(cycles)
        assert max(waits) == 2                  # the engine was in the way: one cycle lost
        while "answers" not in done:
            await ctx.tick()

    simulate(ram, host, background=[engine], name="guest_ram_sharing")
    assert done["answers"] == [(1, 0, 0x1000_0000 + i) for i in range(256)]
    # 256 requests, one per cycle, less the cycles the host's 24 accesses took from it.
    assert done["cycles"] <= 256 + 24 + 2


def test_guest_ram_outside_its_window_errs_for_the_engine_and_reads_zero_for_the_host():
    ram = GuestRAM(addr_width=11, base=0x800, size=0x1000)

    async def testbench(ctx):
        # A word below the RAM aliases word 0x7fc // 4 % 1024 = 511 of the memory.
        await wishbone_write(ctx, ram.host, 0x17fc // 4, 0x5555_aaaa)
        await wishbone_write(ctx, ram.host, 0x7fc // 4, 0x1234_5678)     # dropped
        assert (await wishbone_read(ctx, ram.host, 0x7fc // 4))[0] == 0
        assert ctx.get(ram.ram.data[ram.index(0x17fc)]) == 0x5555_aaaa
        answers, _ = await pipelined(ctx, ram.dma, [(0, 0x7fc // 4, 0), (1, 0x1800 // 4, 7),
                                                    (0, 0x17fc // 4, 0)])
        assert [(ack, err) for ack, err, _ in answers] == [(0, 1), (0, 1), (1, 0)]
        assert answers[2][2] == 0x5555_aaaa

    simulate(ram, testbench, name="guest_ram_outside")


def test_guest_ram_straddling_4k_keeps_every_word_apart():
    ram = GuestRAM(addr_width=11, base=0x800, size=0x1000)
    indices = {ram.index(address) for address in range(0x800, 0x1800, 4)}
    assert indices == set(range(1024))
    assert ram.index(0x1000) == 0 and ram.index(0x800) == 512
    with pytest.raises(ValueError, match=r"address 0x1800 is outside the RAM \[0x800, 0x1800\)"):
        ram.index(0x1800)


# --- constructor checks ---------------------------------------------------------------------

CASES = [
    (lambda: GuestRAM(addr_width=11, base=0x800, size=0x1001), ValueError,
     r"size must be a power of two of at least 4, not 4097"),
    (lambda: GuestRAM(addr_width=11, base=0x802, size=0x1000), ValueError,
     r"base must be a non-negative multiple of 4, not 2050"),
    (lambda: GuestRAM(addr_width=11, base="0", size=0x1000), TypeError,
     r"base must be a non-negative multiple of 4, not '0'"),
    (lambda: GuestRAM(addr_width=10, base=0x800, size=0x1000), ValueError,
     r"RAM \[0x800, 0x1800\) does not fit a guest physical space of 0x1000 bytes "
     r"\(addr_width 10\)"),
    (lambda: WishboneDecoder(addr_width=16, windows=[]), TypeError,
     r"windows must be a mapping of name -> \(base, addr_width\), not \[\]"),
    (lambda: WishboneDecoder(addr_width=16, windows={"bus": (0, 4)}), ValueError,
     r"window name must be an identifier other than 'bus', not 'bus'"),
    (lambda: WishboneDecoder(addr_width=16, windows={"a": 0}), TypeError,
     r"window 'a' must be a pair of integers \(base, addr_width\), not 0"),
    (lambda: WishboneDecoder(addr_width=16, windows={"a": (0x10, 4)}), ValueError,
     r"window 'a' must have addr_width >= 1 and a base aligned to its size 0x40, not "
     r"\(0x10, 4\)"),
    (lambda: WishboneDecoder(addr_width=8, windows={"a": (0x400, 4)}), ValueError,
     r"window 'a' \[0x400, 0x440\) ends beyond the bus's 0x400 bytes"),
    (lambda: WishboneDecoder(addr_width=16, windows={"a": (0, 8), "b": (0x100, 4)}), ValueError,
     r"window 'b' \[0x100, 0x140\) overlaps window 'a' at 0x0"),
    (lambda: BlkSoC(divisor=6, timeout=20, capacity=0), ValueError,
     r"capacity must be a positive integer, not 0"),
    (lambda: BlkSoC(divisor=6, timeout=20, capacity=1, image=b"x" * 513), ValueError,
     r"image of 513 bytes does not fit 1 sectors \(512 bytes\)"),
    (lambda: BlkSoC(divisor=6, timeout=20, capacity=1, image="x"), TypeError,
     r"image must be bytes, not 'x'"),
    (lambda: BlkSoC(divisor=6, timeout=20, capacity=1, blk=[]), TypeError,
     r"blk must be a mapping of VirtioBlk parameters, not \[\]"),
    (lambda: BlkSoC(divisor=6, timeout=20, capacity=1, blk={"capacity": 4}), ValueError,
     r"blk must not set capacity: the SoC sets capacity from its own parameter and "
     r"addr_width from the guest RAM"),
    (lambda: BlkSoC(divisor=6, timeout=20, capacity=1, ram_base=0x20000, ram_size=0x1000),
     ValueError, r"guest RAM \[0x20000, 0x21000\) ends beyond the guest window of 0x20000 "
                 r"bytes"),
    (lambda: BlkSoC(divisor=6, timeout=20, capacity=1,
                    blk={**BOARD_BLK, "notify_base": 0x8000}),
     ValueError, r"transport window 0\.\.0xffff .* overlaps the recorder at 0x8000"),
    (lambda: BlkSoC(divisor=6, timeout=20, capacity=1, stretch=0), ValueError,
     r"stretch must be a positive integer, not 0"),
    (lambda: BoardTop("icebreaker", soc="eth"), ValueError,
     r"soc must be one of \['echo', 'blk'\], not 'eth'"),
    (lambda: BoardTop("icebreaker", soc=None), TypeError,
     r"soc must be a string, one of \['echo', 'blk'\], not None"),
    (lambda: BlkClient(None, queue_size=0), ValueError,
     r"queue_size must be a positive integer, not 0"),
    (lambda: BlkClient(None, polls=1.5), TypeError, r"polls must be a positive integer, not 1.5"),
    (lambda: plan_layout(0, 0x1000, 4), ValueError,
     r"guest RAM \[0x0, 0x1000\) has no 4 KiB boundary with 78 bytes of ring below it and 38 "
     r"above it"),
    (lambda: plan_layout(0xf00, 0x200, 4), ValueError,
     r"guest RAM \[0xf00, 0x1100\) has no room for a sector beside the ring"),
]


@pytest.mark.parametrize("make, error, message", CASES, ids=range(len(CASES)))
def test_constructor_refuses(make, error, message):
    with pytest.raises(error, match=message) as info:
        make()
    assert type(info.value) is error


# --- host side, without the gateware ----------------------------------------------------------

def test_layout_of_the_default_guest_ram_straddles_4k():
    layout = plan_layout(*GUEST_RAM, 4)
    # desc 0xfb0 (64 bytes), avail 0xff0..0xffd, used from 0x1000 (38 bytes)
    assert layout == RingLayout(ring=0xfb0, used=0x1000, header=0x1030, status=0x1040,
                                data=0x1050, data_size=3 * SECTOR)
    assert layout.data + layout.data_size <= GUEST_RAM[0] + GUEST_RAM[1]


class DictBus:
    """An accessor over a dict of words that records every access."""
    def __init__(self):
        self.words = {}
        self.log = []

    async def read(self, offset, size=4):
        self.log.append(("R", offset, size))
        return self.words.get(offset & ~3, 0) >> 8 * (offset & 3) & ((1 << 8 * size) - 1)

    async def write(self, offset, value, size=4):
        self.log.append(("W", offset, size, value))
        shift, mask = 8 * (offset & 3), (1 << 8 * size) - 1
        word = self.words.get(offset & ~3, 0)
        self.words[offset & ~3] = word & ~(mask << shift) | value << shift


def test_guest_memory_flushes_in_the_order_of_last_writes_touching_only_bytes_written():
    bus = DictBus()
    memory = BridgeGuestMemory(bus, base=0x800, size=0x100, window=0x20000)
    memory.write_int(0x810, 0x1122_3344, 4)        # a whole word
    memory.write_int(0x806, 0xbeef, 2)             # the upper half of word 0x804
    memory.write(0x809, b"\x01")                   # byte 1 of word 0x808
    memory.write(0x80b, b"\x03")                   # byte 3 of the same word
    memory.write_int(0x812, 0x5566, 2)             # word 0x810 again: it moves last
    asyncio.run(memory.flush())
    assert bus.log == [("W", 0x20806, 2, 0xbeef), ("W", 0x20809, 1, 1), ("W", 0x2080b, 1, 3),
                       ("W", 0x20810, 4, 0x5566_3344)]
    assert memory.dirty == {}
    bus.words[0x20804] = 0xcafe_0000 | 0x1234
    asyncio.run(memory.fetch(0x805, 2))
    assert memory.read_int(0x804, 4) == 0xcafe_1234 and bus.log[-1] == ("R", 0x20804, 4)
    memory.write(0x804, b"\0")
    with pytest.raises(ValueError, match=r"would overwrite writes not flushed yet \(word "
                                         r"0x804\)"):
        asyncio.run(memory.fetch(0x800, 8))


def test_command_line_parses_blk_actions_and_the_old_commands():
    parse = _parser().parse_args
    args = parse(["/dev/ttyUSB1", "blk", "read", "0x10", "--count", "2", "--baud", "9600"])
    assert (args.command, args.action, args.sector, args.count, args.output, args.baud) == \
        ("blk", "read", 16, 2, None, 9600)
    args = parse(["/dev/ttyUSB1", "blk", "write", "3", "f.bin"])
    assert (args.action, args.sector, args.file, args.baud) == ("write", 3, "f.bin", 115200)
    assert parse(["/dev/ttyUSB1", "--baud", "57600", "msi"]).baud == 57600
    assert parse(["/dev/ttyUSB1", "probe", "--baud", "9600"]).baud == 9600
    assert parse(["/dev/ttyUSB1", "recorder"]).command == "recorder"


def test_hexdump_shows_offsets_bytes_and_text():
    assert hexdump(b"AB\x00" + bytes(range(0x41, 0x51)), start=0x200) == [
        "00000200: 41 42 00 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d  AB.ABCDEFGHIJKLM",
        "00000210: 4e 4f 50                                         NOP"]


# --- the SoC and the host tool over a simulated serial line ----------------------------------

def make_soc(**overrides):
    params = dict(divisor=4, timeout=200, capacity=8, image=IMAGE, stretch=16)
    params.update(overrides)
    return BlkSoC(**params)


def simulate_blk(body, soc, *, name, cycles=400_000):
    """Run ``async body(ctx, io, line, monitor)`` against ``soc`` over a simulated serial line,
    ``io`` a :class:`BridgeMMIO` on it."""
    divisor = soc.uart_rx.divisor
    line = SimSerialLine(soc.rx, soc.tx, divisor=divisor,
                         settle_cycles=2 * soc.bridge.timeout + 20 * divisor)
    monitor = BusMonitor(soc.bridge.bus)
    done = []

    async def testbench(ctx):
        line.attach(ctx)
        io = BridgeMMIO(line)
        await body(ctx, io, line, monitor)
        assert io.errors == []
        done.append(True)

    traces = {"serial": [soc.rx, soc.tx], "bridge bus": members(soc.bridge.bus),
              "engine bus": members(soc.blk.dma), "disk": members(soc.blk.disk),
              "leds": [soc.irq, soc.activity]}
    simulate(soc, testbench, processes=[line.drive, line.listen, monitor.run], name=name,
             traces=traces, cycles=cycles)
    assert done, "testbench did not finish"


def disk_sector(ctx, soc, sector):
    words = [ctx.get(soc.disk.ram.data[SECTOR // 4 * sector + i]) for i in range(SECTOR // 4)]
    return b"".join(word.to_bytes(4, "little") for word in words)


def test_bus_map_reaches_transport_guest_ram_and_holes():
    soc = make_soc()
    assert soc.decoder.windows == {"transport": (BLK_MAP["transport"], 11),
                                   "guest": (GUEST_WINDOW, 11)}

    async def body(ctx, io, line, monitor):
        assert await io.read(soc.transport.regs["MagicValue"].offset) == MAGIC
        address = GUEST_RAM[0] + 0x24
        await io.write(GUEST_WINDOW + address, 0x0bad_cafe)
        assert ctx.get(soc.guest.ram.data[soc.guest.index(address)]) == 0x0bad_cafe
        assert await io.read(GUEST_WINDOW + address) == 0x0bad_cafe
        assert await io.read(GUEST_WINDOW + GUEST_RAM[0] - 4) == 0      # below the RAM
        assert await io.read(RECORDER_BASE) == 0                          # no MSI: a hole
        assert monitor.idle

    simulate_blk(body, soc, name="blk_soc_map")


def test_info_reports_capacity_seg_max_and_serial():
    soc = make_soc()

    async def body(ctx, io, line, monitor):
        lines = []
        features = []

        def note(text):
            lines.append(text)
            features.append(ctx.get(soc.transport.device.features))   # what the device took
        out = await run_blk(io, "info", echo=note)
        assert (out["capacity"], out["seg_max"], out["serial"]) == (8, 2, b"amaranth-virtio-blk")
        assert lines == [f"virtio-blk: 8 sectors (4096 bytes), seg_max 2, serial "
                         f"'amaranth-virtio-blk'; features {out['features']:#018x}"]
        wanted = VirtioBlkDevice.FEATURES | 1 << Feature.VERSION_1 | 1 << Feature.RING_EVENT_IDX
        assert features == [out["features"]] and out["features"] & wanted == wanted
        # removal reset the device, and left no request behind
        assert await io.read(soc.transport.regs["Status"].offset) == Status.ACKNOWLEDGE.value
        assert not ctx.get(soc.blk.engine.busy) and not ctx.get(soc.blk.device.busy)

    simulate_blk(body, soc, name="blk_info")


@pytest.mark.slow
def test_request_beyond_the_disk_gets_ioerr_and_the_disk_is_untouched():
    soc = make_soc(capacity=2)

    async def body(ctx, io, line, monitor):
        blk = BlkClient(io)
        await blk.start()
        # Sector 2 of 2: word 256 of a 256-word disk, which would land on sector 0.
        status, data = await blk.request(BlkType.OUT, 2, out=bytes(range(256)) * 2)
        assert (status, data) == (BlkStatus.IOERR, b"")
        with pytest.raises(BlkError, match=r"read of 1 sector\(s\) at 2: status IOERR"):
            await blk.read(2)
        assert blk.interrupts == [1, 0]             # EVENT_IDX: used_event 0 asked for one
        await blk.stop()
        assert disk_sector(ctx, soc, 0) == IMAGE + bytes(SECTOR - len(IMAGE))
        assert disk_sector(ctx, soc, 1) == bytes(SECTOR)

    simulate_blk(body, soc, name="blk_ioerr")


def test_descriptor_outside_guest_ram_is_reported_after_bounded_polls():
    soc = make_soc()

    async def body(ctx, io, line, monitor):
        blk = BlkClient(io, polls=3)
        await blk.start()
        # A data buffer below the guest RAM: the engine's write gets err (D11 case 8).
        from dataclasses import replace
        blk.layout = replace(blk.layout, data=GUEST_RAM[0] - SECTOR)
        with pytest.raises(BlkError, match=r"no used buffer after 3 reads of used.idx at guest "
                                           r"address 0x1002; Status 0x4f \(DEVICE_NEEDS_RESET"):
            await blk.request(BlkType.IN, 0, length=SECTOR)
        assert ctx.get(soc.blk.engine.error_case) == 8
        await blk.stop()
        assert await io.read(soc.transport.regs["Status"].offset) == Status.ACKNOWLEDGE.value

    simulate_blk(body, soc, name="blk_bad_descriptor")


@pytest.mark.slow
def test_host_tool_writes_a_block_and_reads_it_back(tmp_path):
    soc = make_soc()
    payload = bytes((7 * i + 3) & 0xff for i in range(SECTOR))
    source, copy = tmp_path / "block.bin", tmp_path / "copy.bin"
    source.write_bytes(payload)

    async def body(ctx, io, line, monitor):
        lines = []
        args = _parser().parse_args(["sim", "blk", "write", "3", str(source)])
        assert await run_blk_command(io, args, echo=lines.append) == 0
        assert disk_sector(ctx, soc, 3) == payload
        assert disk_sector(ctx, soc, 0) == IMAGE + bytes(SECTOR - len(IMAGE))
        assert disk_sector(ctx, soc, 2) == disk_sector(ctx, soc, 4) == bytes(SECTOR)
        args = _parser().parse_args(["sim", "blk", "read", "3", "--output", str(copy)])
        assert await run_blk_command(io, args, echo=lines.append) == 0
        assert lines == ["wrote 1 sector(s) from sector 3 (512 bytes): OK",
                         "read 1 sector(s) from sector 3: OK", f"512 bytes to {copy}"]
        assert monitor.idle

    simulate_blk(body, soc, name="blk_write_read", cycles=600_000)
    assert copy.read_bytes() == payload


@pytest.mark.slow
def test_sector_zero_shows_the_image_with_msi_and_the_recorder_in_the_map():
    soc = make_soc(blk={**BOARD_BLK, "msi": "v2", "msi_vectors": 2})
    assert soc.has_msi and "recorder" in soc.decoder.windows

    async def body(ctx, io, line, monitor):
        from boards.host import read_recorder
        lines = []
        args = _parser().parse_args(["sim", "blk", "read", "0"])
        assert await run_blk_command(io, args, echo=lines.append) == 0
        assert lines[1] == "00000000: " + IMAGE[:16].hex(" ") + "  " + IMAGE[:16].decode()
        assert len(lines) == 1 + SECTOR // 16
        # the host does not accept MSI: the wired interrupt, nothing recorded
        assert await read_recorder(io) == ([], 0)

    simulate_blk(body, soc, name="blk_read_msi", cycles=400_000)
