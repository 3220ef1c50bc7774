# amaranth: UnusedElaboratable=no
"""AXI4-Lite (issue 7): the signature, the bridge in front of the transport running the Linux driver
sequence, responses to unaligned and out-of-range addresses, the MSI master, and the master
adapter for a pipelined Wishbone initiator (alone, and behind the virtqueue engine)."""

import random
import re
from collections import deque
from dataclasses import dataclass

import pytest
from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import wiring

from hw import wishbone
from hw.axi4lite import (AXI4LiteMSIMaster, AXI4LiteToWishbone, Response, Signature,
                         WishboneToAXI4Lite)
from hw.regmap import CONFIG_OFFSET, MAGIC, Status
from hw.virtqueue import VirtqueueEngine
from sim.axi4lite import AXIMemory, AXIMMIO, AXIWriteSink, axi_read, axi_write
from sim.bus import BusError, CycleCounter, stream_send
from sim.device import DeviceModel
from sim.driver import VirtioMMIODriver
from sim.engine import StreamDevice
from sim.memory import GuestMemory
from sim.virtqueue import DriverRing
from sim.waves import Traces, members, simulate, transport_filter, transport_traces


class AXITop(Elaboratable):
    """Test wiring: ``transport`` behind an AXI4-Lite bridge."""
    def __init__(self, transport):
        self.transport = transport
        self.bridge = AXI4LiteToWishbone(addr_width=len(self.transport.bus.adr) + 2)
        self.axi = self.bridge.axi

    def elaborate(self, platform):
        m = Module()
        m.submodules.transport = self.transport
        m.submodules.bridge = self.bridge
        wiring.connect(m, self.bridge.wb, self.transport.bus)
        return m


def traces(top):
    groups = transport_traces(top.transport)
    names = transport_filter(top.transport, shift=0)
    return Traces({"AXI4-Lite": members(top.axi), **groups},
                  filters=[(top.axi.awaddr, names), (top.axi.araddr, names)] + groups.filters)


@pytest.fixture
def axi_top(make):
    """``axi_top(**params)``: an :class:`AXITop` around ``make(**params)``."""
    return lambda **params: AXITop(make(**params))


@pytest.fixture
def run_axi(request):
    """``run_axi(top, body, ...)``: run ``body(ctx, io, device, bus_log)`` against ``top``;
    ``bus_log`` counts Wishbone requests."""
    return lambda top, body, **kwargs: _run_axi(top, body, name=request.node.name, **kwargs)


def _run_axi(top, body, *, name, config=None, echo_used=None):
    dut = top.transport
    if config is None:
        config = bytes(range(0x40, 0x40 + dut.config_size))
    device = DeviceModel(dut.device, config=config, echo_used=echo_used)
    clock = CycleCounter()
    requests = []
    done = []

    async def watch(ctx):
        async for _, _, cyc, stb, ack, adr in ctx.tick().sample(
                dut.bus.cyc, dut.bus.stb, dut.bus.ack, dut.bus.adr):
            if cyc and stb and ack:
                requests.append(adr)

    async def testbench(ctx):
        await body(ctx, AXIMMIO(ctx, top.axi), device, requests)
        done.append(True)

    simulate(top, testbench, processes=[device.run, clock.run, watch], name=name,
             traces=traces(top))
    assert done, "testbench did not finish"
    return device


# --- signature -----------------------------------------------------------------------------------

def test_signature_members_are_axi4_lite_from_the_initiator():
    sig = Signature(addr_width=12)
    outs = {"awaddr", "awprot", "awvalid", "wdata", "wstrb", "wvalid", "bready", "araddr",
            "arprot", "arvalid", "rready"}
    ins = {"awready", "wready", "bresp", "bvalid", "arready", "rdata", "rresp", "rvalid"}
    assert {n for n, m in sig.members.items() if m.flow == wiring.Out} == outs
    assert {n for n, m in sig.members.items() if m.flow == wiring.In} == ins
    assert sig.members["awaddr"].shape == 12
    assert sig.members["wstrb"].shape == 4
    assert sig == Signature(addr_width=12) and sig != Signature(addr_width=13)
    assert hash(sig) == hash(Signature(addr_width=12))
    assert repr(sig) == "axi4lite.Signature(addr_width=12)"


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError),
                                        ("12", TypeError), (True, TypeError)])
def test_signature_rejects_bad_address_widths(bad, error):
    with pytest.raises(error, match=rf"addr_width must be a positive integer, not {bad!r}"):
        Signature(addr_width=bad)


@pytest.mark.parametrize("bad, error", [(2, ValueError), (None, TypeError), (4.0, TypeError)])
def test_bridge_rejects_bad_address_widths(bad, error):
    with pytest.raises(error, match=rf"addr_width must be an integer of at least 3, not "
                                    rf"{bad!r}"):
        AXI4LiteToWishbone(addr_width=bad)


@pytest.mark.parametrize("bad, error", [(2, ValueError), (65, ValueError), ("64", TypeError)])
def test_msi_master_rejects_bad_address_widths(bad, error):
    with pytest.raises(error, match=rf"addr_width must be an integer from 3 to 64, not "
                                    rf"{bad!r}"):
        AXI4LiteMSIMaster(addr_width=bad)


def test_bridge_ports_connect_to_the_transport(axi_top):
    top = axi_top()
    assert top.bridge.wb.signature == top.transport.bus.signature.flip()
    assert top.axi.signature == Signature(addr_width=len(top.transport.bus.adr) + 2).flip()


# --- the driver over AXI4-Lite -------------------------------------------------------------------

CONFIGS = [
    pytest.param(dict(num_queues=q, config_size=c, **n), id=f"{q}q-cfg{c}{'-notify' if n else ''}")
    for q, c, n in ((1, 0, {}), (2, 64, {}), (2, 16, dict(notify_base=0x1000,
                                                           notify_multiplier=4)))
]


@pytest.mark.parametrize("params", CONFIGS)
def test_linux_sequence_over_axi4_lite(params, axi_top, run_axi, linux_sequence):
    # the driver sequence of tests/test_driver.py, through the AXI4-Lite bridge
    top = axi_top(device_features=linux_sequence.FEATURES, queue_size_max=256, **params)
    dut = top.transport
    config = bytes((7 * i + 3) & 0xff for i in range(params["config_size"]))
    notification = "notify_base" in params

    async def body(ctx, io, device, requests):
        drv = VirtioMMIODriver(io, notification=notification)
        await linux_sequence.check(ctx, drv, dut, device, config=config)
        if notification:
            assert drv.notify_offset(1) == dut.doorbell(1) != dut.regs["QueueNotify"].offset
        assert set(io.responses) == {Response.OKAY}
    run_axi(top, body, config=config, echo_used=2)


# --- responses ----------------------------------------------------------------------------------

def test_unaligned_addresses_get_slverr_and_do_not_touch_the_bus(axi_top, run_axi):
    top = axi_top()
    regs = top.transport.regs

    async def body(ctx, io, device, requests):
        status = regs["Status"].offset
        for low in (1, 2, 3):
            data, resp, _ = await axi_read(ctx, top.axi, regs["MagicValue"].offset + low)
            assert (data, resp) == (0, Response.SLVERR)
            resp, _ = await axi_write(ctx, top.axi, status + low, Status.ACKNOWLEDGE.value)
            assert resp == Response.SLVERR
        assert requests == []
        assert await io.read(status) == 0                 # the writes did nothing
    run_axi(top, body)


def test_out_of_range_addresses_read_zero_okay_like_wishbone(undefined_offsets, axi_top, run_axi):
    top = axi_top(config_size=16)
    dut = top.transport
    last = (1 << top.bridge.addr_width) - 4

    async def body(ctx, io, device, requests):
        for offset in undefined_offsets(dut)[:4] + [CONFIG_OFFSET + dut.config_size, last]:
            data, resp, _ = await axi_read(ctx, top.axi, offset)
            assert (data, resp) == (0, Response.OKAY), hex(offset)
            resp, _ = await axi_write(ctx, top.axi, offset, 0xffff_ffff)
            assert resp == Response.OKAY
        assert await io.read(dut.regs["MagicValue"].offset) == MAGIC
        assert len(requests) == 2 * 6 + 1
    run_axi(top, body)


@pytest.mark.parametrize("aw_delay, w_delay", [(0, 0), (0, 3), (3, 0), (2, 5)])
def test_write_waits_for_both_address_and_data(aw_delay, w_delay, axi_top, run_axi):
    top = axi_top()
    status = top.transport.regs["Status"]

    async def body(ctx, io, device, requests):
        resp, _ = await axi_write(ctx, top.axi, status.offset, Status.ACKNOWLEDGE.value,
                                  aw_delay=aw_delay, w_delay=w_delay)
        assert resp == Response.OKAY
        assert requests == [status.word]
        assert await io.read(status.offset) == Status.ACKNOWLEDGE.value
    run_axi(top, body)


def test_latency(axi_top, run_axi):
    top = axi_top(config_size=16)
    regs = top.transport.regs

    async def body(ctx, io, device, requests):
        _, _, register_read = await axi_read(ctx, top.axi, regs["MagicValue"].offset)
        _, _, config_read = await axi_read(ctx, top.axi, CONFIG_OFFSET)
        _, write = await axi_write(ctx, top.axi, regs["QueueSel"].offset, 0)
        _, _, unaligned = await axi_read(ctx, top.axi, 1)
        # cycles from ARVALID/AWVALID to the end of the response handshake
        assert (register_read, config_read, write, unaligned) == (5, 5, 4, 2)
    run_axi(top, body)


def test_reads_and_writes_alternate_when_both_wait(axi_top, run_axi):
    top = axi_top()
    axi = top.axi
    regs = top.transport.regs

    async def body(ctx, io, device, requests):
        ctx.set(axi.araddr, regs["MagicValue"].offset)
        ctx.set(axi.awaddr, regs["QueueSel"].offset)
        ctx.set(axi.wdata, 0)
        ctx.set(axi.wstrb, 0b1111)
        for signal in (axi.arvalid, axi.awvalid, axi.wvalid, axi.rready, axi.bready):
            ctx.set(signal, 1)
        kinds = []
        for _ in range(40):
            _, _, rvalid, bvalid = await ctx.tick().sample(axi.rvalid, axi.bvalid)
            if rvalid:
                kinds.append("R")
            if bvalid:
                kinds.append("B")
        assert len(kinds) >= 8
        assert all(a != b for a, b in zip(kinds, kinds[1:], strict=False)), kinds
        assert sorted(set(requests)) == sorted({regs["MagicValue"].word, regs["QueueSel"].word})
        for signal in (axi.arvalid, axi.awvalid, axi.wvalid):
            ctx.set(signal, 0)
        for _ in range(4):
            await ctx.tick()
    run_axi(top, body)


# --- MSI master ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stall, addr_width", [(0.0, 64), (0.5, 64), (0.8, 32)],
                         ids=["no-backpressure", "half", "heavy-32bit"])
def test_msi_master_performs_every_message_in_order(stall, addr_width, request):
    dut = AXI4LiteMSIMaster(addr_width=addr_width)
    sink = AXIWriteSink(dut.axi, stall=stall, seed=7)
    rng = random.Random(1)
    messages = [(rng.getrandbits(62) << 2, rng.getrandbits(32)) for _ in range(24)]
    errors = []

    async def watch(ctx):
        async for _, _, error, arvalid in ctx.tick().sample(dut.error, dut.axi.arvalid):
            assert not arvalid
            if error:
                errors.append(True)

    async def testbench(ctx):
        for address, data in messages:
            await stream_send(ctx, dut.msi, {"address": address, "data": data})
            for _ in range(rng.randrange(3)):
                await ctx.tick()
        for _ in range(64):
            await ctx.tick()

    simulate(dut, testbench, processes=[sink.run, watch], name=request.node.name,
             traces={"MSI": members(dut.msi), "AXI4-Lite": members(dut.axi)})
    mask = (1 << addr_width) - 1
    assert [(w.addr, w.data, w.strb) for w in sink.writes] == \
        [(a & mask, d, 0b1111) for a, d in messages]
    assert errors == []


def test_msi_master_flags_error_responses(request):
    dut = AXI4LiteMSIMaster()
    sink = AXIWriteSink(dut.axi, response=Response.SLVERR)
    errors = []

    async def watch(ctx):
        async for _, _, error in ctx.tick().sample(dut.error):
            errors.append(error)

    async def testbench(ctx):
        await stream_send(ctx, dut.msi, {"address": 0xfee0_0000, "data": 0x41})
        for _ in range(16):
            await ctx.tick()

    simulate(dut, testbench, processes=[sink.run, watch], name=request.node.name)
    assert len(sink.writes) == 1
    assert sum(errors) == 1


# --- measured by tests/mutation.py (issue 11) ----------------------------------------------------

def test_unaligned_read_after_a_read_returns_zero_data_with_slverr(axi_top, run_axi):
    # The bridge's Operation: an unaligned read gets SLVERR with read data 0, never the data of
    # the read before it (which a master that ignores RRESP would take as the register's value).
    top = axi_top()
    regs = top.transport.regs

    async def body(ctx, io, device, requests):
        magic = regs["MagicValue"].offset
        for low in (1, 2, 3):
            data, resp, _ = await axi_read(ctx, top.axi, magic)
            assert (data, resp) == (MAGIC, Response.OKAY)
            data, resp, _ = await axi_read(ctx, top.axi, magic + low)
            assert (data, resp) == (0, Response.SLVERR), low
        assert requests == [regs["MagicValue"].word] * 3
    run_axi(top, body)


@pytest.mark.parametrize("response", list(Response), ids=lambda r: r.name)
def test_msi_master_flags_every_response_but_okay(response, request):
    # AXI4LiteMSIMaster's `error`: one pulse per write whose response is not OKAY, whichever
    # response it is (DECERR from an interconnect, SLVERR from the target, EXOKAY, which
    # AXI4-Lite does not allow).
    dut = AXI4LiteMSIMaster()
    sink = AXIWriteSink(dut.axi, response=response)
    errors = []

    async def watch(ctx):
        async for _, _, error in ctx.tick().sample(dut.error):
            errors.append(error)

    async def testbench(ctx):
        for i in range(3):
            await stream_send(ctx, dut.msi, {"address": 0xfee0_0000 + 4 * i, "data": 0x41 + i})
        for _ in range(16):
            await ctx.tick()

    simulate(dut, testbench, processes=[sink.run, watch], name=request.node.name)
    assert [w.data for w in sink.writes] == [0x41, 0x42, 0x43]
    assert sum(errors) == (0 if response == Response.OKAY else 3)


# --- Wishbone to AXI4-Lite master adapter --------------------------------------------------------

@dataclass(frozen=True)
class WishboneRequest:
    write: bool
    word: int
    data: int = 0           # written
    sel: int = 0b1111


@dataclass
class Answer:
    request: WishboneRequest
    kind: str               # "ack" or "err"
    data: int               # dat_r with the answer
    taken: int              # cycle the request was taken
    cycle: int              # cycle of the answer


class PipelinedInitiator:
    """A Wishbone B4 pipelined initiator, the shape of the virtqueue engine's bus master: it
    presents ``requests`` in order, at most ``in_flight`` unanswered, with ``stb`` dropped in a
    cycle with probability ``idle``; ``cyc`` is high while it presents a request or waits for an
    answer. It checks each answer is one cycle of ``ack`` or ``err`` for a request taken.
    """
    def __init__(self, bus, requests, *, in_flight=4, idle=0.0, seed=0):
        self.bus = bus
        self.requests = list(requests)
        self.in_flight = in_flight
        self.idle = idle
        self.random = random.Random(seed)
        self.answers = []
        self.cycle = 0

    async def run(self, ctx, *, quiet=16, bound=50_000):
        bus = self.bus
        pending = deque(self.requests)
        waiting = deque()                   # (request, cycle taken)
        while pending or waiting:
            if self.cycle > bound:
                raise BusError(f"{len(pending)} requests not taken and {len(waiting)} not "
                               f"answered after {bound} cycles")
            present = bool(pending) and len(waiting) < self.in_flight and \
                not (self.idle and self.random.random() < self.idle)
            if present:
                request = pending[0]
                ctx.set(bus.we, request.write)
                ctx.set(bus.adr, request.word)
                ctx.set(bus.sel, request.sel)
                ctx.set(bus.dat_w, request.data)
            ctx.set(bus.stb, present)
            ctx.set(bus.cyc, present or bool(waiting))
            _, _, stall, ack, err, dat_r = await ctx.tick().sample(
                bus.stall, bus.ack, bus.err, bus.dat_r)
            self.cycle += 1
            if present and not stall:
                waiting.append((pending.popleft(), self.cycle))
            if ack and err:
                raise BusError(f"cycle {self.cycle}: ack and err together")
            if ack or err:
                if not waiting:
                    raise BusError(f"cycle {self.cycle}: an answer with no request in flight")
                request, taken = waiting.popleft()
                self.answers.append(Answer(request, "ack" if ack else "err", dat_r, taken,
                                           self.cycle))
        ctx.set(bus.cyc, 0)
        ctx.set(bus.stb, 0)
        for _ in range(quiet):
            _, _, ack, err = await ctx.tick().sample(bus.ack, bus.err)
            if ack or err:
                raise BusError("an answer after every request was answered")


def random_requests(rng, count, *, words, base=0):
    """Runs of reads and runs of writes of random lengths (1 to 6), each run a random kind, so
    that the mix has both long runs of one kind and many switches."""
    requests = []
    while len(requests) < count:
        write = rng.random() < 0.5
        for _ in range(rng.randint(1, 6)):
            word = base + rng.randrange(words)
            if write:
                requests.append(WishboneRequest(True, word, rng.getrandbits(32), rng.randrange(16)))
            else:
                requests.append(WishboneRequest(False, word))
    return requests[:count]


def expected_answers(requests, memory, failing=lambda address: False):
    """Performs ``requests`` in order on ``memory`` (a bytearray, updated): ``(kind, data)`` of
    each, what the adapter must answer if it keeps request order."""
    answers = []
    for request in requests:
        address = 4 * request.word
        if failing(address):
            answers.append(("err", None))
            continue
        word = int.from_bytes(memory[address:address + 4], "little")
        if request.write:
            mask = sum(0xff << 8 * lane for lane in range(4) if request.sel >> lane & 1)
            memory[address:address + 4] = (word & ~mask | request.data & mask).to_bytes(4, "little")
            answers.append(("ack", None))
        else:
            answers.append(("ack", word))
    return answers


def run_adapter(dut, requests, *, name, memory_size=1 << 12, stall=0.0, latency=(1, 1),
                faults=(), in_flight=4, idle=0.0, ready_waits_for_valid=False, seed=0):
    """``requests`` from a :class:`PipelinedInitiator` through ``dut`` into an
    :class:`AXIMemory` over random guest memory. Returns ``(initiator, target, initial bytes,
    guest memory)``."""
    rng = random.Random(seed)
    initial = bytes(rng.getrandbits(8) for _ in range(memory_size))
    guest = GuestMemory(bytearray(initial))
    target = AXIMemory(guest, dut.axi, stall=stall, latency=latency, faults=faults,
                       ready_waits_for_valid=ready_waits_for_valid, seed=seed + 1)
    initiator = PipelinedInitiator(dut.wb, requests, in_flight=in_flight, idle=idle,
                                   seed=seed + 2)
    simulate(dut, initiator.run, background=[target.run], name=name,
             traces={"Wishbone": members(dut.wb), "AXI4-Lite": members(dut.axi)})
    assert target.violations == []
    return initiator, target, initial, guest


def check_answers(initiator, expected):
    got = [(answer.kind, answer.data if answer.kind == "ack" and not answer.request.write
            else None) for answer in initiator.answers]
    assert [answer.request for answer in initiator.answers] == initiator.requests
    assert got == expected


@pytest.mark.parametrize("bad, error", [(0, ValueError), (63, ValueError), (-2, ValueError),
                                        ("20", TypeError), (True, TypeError), (20.0, TypeError)])
def test_wishbone_adapter_rejects_bad_address_widths(bad, error):
    with pytest.raises(error, match=rf"^addr_width must be an integer from 1 to 62, not "
                                    rf"{re.escape(repr(bad))}$"):
        WishboneToAXI4Lite(addr_width=bad)


@pytest.mark.parametrize("addr_width", [1, 20, 62])
def test_wishbone_adapter_ports_are_a_pipelined_target_and_an_axi_initiator(addr_width):
    dut = WishboneToAXI4Lite(addr_width=addr_width)
    assert dut.addr_width == addr_width
    assert dut.wb.signature == \
        wishbone.Signature(addr_width=addr_width, features=("err", "stall")).flip()
    assert dut.axi.signature == Signature(addr_width=addr_width + 2)
    text = rtlil.convert(dut)                       # it elaborates at both extremes
    for port in ("axi__araddr", "axi__awaddr"):
        assert re.search(rf"wire width {addr_width + 2} output \d+ +\\{port}\n", text), port


ADAPTER_CONFIGS = [
    pytest.param(dict(stall=0.0, latency=(1, 1), in_flight=4, idle=0.0, seed=1), id="zero-wait"),
    pytest.param(dict(stall=0.4, latency=(1, 5), in_flight=4, idle=0.3, seed=2),
                 id="random-waits"),
    pytest.param(dict(stall=0.7, latency=(1, 9), in_flight=8, idle=0.1, seed=3),
                 id="heavy-waits-8-in-flight"),
    pytest.param(dict(stall=0.3, latency=(1, 3), in_flight=1, idle=0.2, seed=4),
                 id="one-in-flight"),
    pytest.param(dict(stall=0.3, latency=(1, 4), in_flight=4, idle=0.1, seed=5,
                      ready_waits_for_valid=True), id="readies-wait-for-valid"),
]


@pytest.mark.parametrize("config", ADAPTER_CONFIGS)
def test_wishbone_adapter_serves_a_random_mix_in_request_order(config, request):
    dut = WishboneToAXI4Lite(addr_width=10)
    # 16 words: reads often follow writes to the same word, so order across kinds is checked
    requests = random_requests(random.Random(config["seed"]), 300, words=16, base=0x40)
    initiator, target, initial, guest = run_adapter(dut, requests, name=request.node.name,
                                                    **config)
    reference = bytearray(initial)
    check_answers(initiator, expected_answers(requests, reference))
    assert guest.read(0, guest.size) == bytes(reference)
    # every request became one transaction, in request order, with its byte strobes
    assert [(t.write, t.addr, t.data if t.write else None, t.strb if t.write else None)
            for t in target.log] == \
        [(r.write, 4 * r.word, r.data if r.write else None, r.sel if r.write else None)
         for r in requests]
    assert {t.response for t in target.log} == {Response.OKAY}
    assert target.mixed == 0                # never a read and a write outstanding together


@pytest.mark.parametrize("response", list(Response), ids=lambda r: r.name)
def test_wishbone_adapter_gives_err_for_exactly_the_failed_requests(response, request):
    # One word answers `response`; beyond guest memory (2 KiB of a 4 KiB space) is DECERR.
    dut = WishboneToAXI4Lite(addr_width=10)
    fault = 0x100
    faults = [(fault, fault + 4, response)]
    rng = random.Random(5)
    requests = random_requests(rng, 120, words=8, base=fault // 4 - 4)
    requests += [WishboneRequest(False, 0x200), WishboneRequest(True, 0x3ff, 0x1234_5678)]
    requests += random_requests(rng, 40, words=8, base=fault // 4 - 4)
    assert any(4 * r.word == fault and r.write for r in requests)
    assert any(4 * r.word == fault and not r.write for r in requests)
    failed = response in (Response.SLVERR, Response.DECERR)
    initiator, target, initial, guest = run_adapter(
        dut, requests, name=request.node.name, memory_size=1 << 11, stall=0.3, latency=(1, 4),
        faults=faults, idle=0.2, seed=6)
    reference = bytearray(initial)

    def failing(address):
        return address >= 1 << 11 or (failed and address == fault)
    check_answers(initiator, expected_answers(requests, reference, failing))
    assert guest.read(0, guest.size) == bytes(reference)     # failed writes changed nothing
    errors = [answer.request for answer in initiator.answers if answer.kind == "err"]
    assert errors == [r for r in requests if failing(4 * r.word)]
    assert len(errors) >= 2


def test_wishbone_adapter_keeps_transactions_of_one_kind_outstanding(request):
    # A slow target (6 cycles to each response, room for 8) that takes every address at once:
    # the adapter has OUTSTANDING reads, then OUTSTANDING writes, in flight; never more, never
    # both kinds.
    dut = WishboneToAXI4Lite(addr_width=10)
    requests = [WishboneRequest(False, w) for w in range(12)] + \
        [WishboneRequest(True, w, w, 0b1111) for w in range(12)]
    initiator, target, _, _ = run_adapter(dut, requests, name=request.node.name,
                                          latency=(6, 6), in_flight=16)
    assert target.peak == {"read": WishboneToAXI4Lite.OUTSTANDING,
                           "write": WishboneToAXI4Lite.OUTSTANDING}
    assert target.mixed == 0
    assert [answer.kind for answer in initiator.answers] == ["ack"] * 24


def test_wishbone_adapter_latency(request):
    # The Latency section: with a target that takes every address at once and responds in the
    # next cycle, a request taken in cycle N is answered in N+3, requests of one kind are taken
    # one per cycle, and a request of the other kind is answered 2 cycles after the last answer
    # of the kind before it (it waits for the drain).
    dut = WishboneToAXI4Lite(addr_width=10)
    requests = [WishboneRequest(False, w) for w in range(4)] + \
        [WishboneRequest(True, w, 0, 0b1111) for w in range(3)] + [WishboneRequest(False, 0)]
    initiator, _, _, _ = run_adapter(dut, requests, name=request.node.name, in_flight=8)
    answers = initiator.answers
    assert answers[0].cycle - answers[0].taken == 3
    assert [a.taken for a in answers[:4]] == [answers[0].taken + i for i in range(4)]
    assert [a.cycle for a in answers[:4]] == [answers[0].cycle + i for i in range(4)]
    assert answers[4].cycle == answers[3].cycle + 2
    assert [a.cycle for a in answers[4:7]] == [answers[4].cycle + i for i in range(3)]
    assert answers[7].cycle == answers[6].cycle + 2


class EngineOverAXI(Elaboratable):
    """Test wiring: the virtqueue engine's bus through the adapter."""
    def __init__(self):
        self.engine = VirtqueueEngine(num_queues=1, addr_width=20)
        self.adapter = WishboneToAXI4Lite(addr_width=20)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = self.engine
        m.submodules.adapter = self.adapter
        wiring.connect(m, self.engine.bus, self.adapter.wb)
        return m


@pytest.mark.parametrize("stall, latency, backpressure, waits, seed", [
    (0.0, (1, 1), 0.0, False, 0), (0.4, (1, 5), 0.3, True, 8)],
    ids=["zero-wait", "random-waits"])
def test_wishbone_adapter_behind_the_engine_completes_a_chain(stall, latency, backpressure,
                                                              waits, seed, request):
    top = EngineOverAXI()
    engine = top.engine
    assert engine.bus.signature == top.adapter.wb.signature.flip()
    guest = GuestMemory(bytearray(1 << 16))
    target = AXIMemory(guest, top.adapter.axi, stall=stall, latency=latency,
                       ready_waits_for_valid=waits, seed=seed)
    ring = DriverRing(guest, size=8, base=0x1000)
    payload = bytes((37 * i + 11) & 0xff for i in range(13))
    guest.write(0x3001, payload)                # readable, at an odd address
    guest.write(0x4000, b"\xee" * 16)           # writable: 10 bytes from 0x4002
    head = ring.add([(0x3001, len(payload), False), (0x4002, 10, True)])

    def respond(chain):
        return bytes(b ^ 0x5a for b in chain.data[:7])
    device = StreamDevice(respond, backpressure=backpressure, seed=seed + 1)
    used = []

    async def run_device(ctx):
        await device.run(ctx, engine)

    async def monitor(ctx):
        async for _, _, pulses in ctx.tick().sample(engine.queues.used):
            if pulses & 1:
                used.append(True)

    async def testbench(ctx):
        queues = engine.queues
        ctx.set(queues.size[0], ring.size)
        ctx.set(queues.desc[0], ring.desc)
        ctx.set(queues.driver[0], ring.driver)
        ctx.set(queues.device[0], ring.device)
        ctx.set(queues.ready, 1)
        ctx.set(engine.notify.p.queue, 0)
        ctx.set(engine.notify.valid, 1)
        await ctx.tick()
        ctx.set(engine.notify.valid, 0)
        for _ in range(5000):
            await ctx.tick()
            if used and not ctx.get(engine.busy):
                break
        else:
            raise TimeoutError("the chain was not completed within 5000 cycles")
        await ctx.tick().repeat(8)
        assert not ctx.get(engine.needs_reset)

    simulate(top, testbench, background=[target.run, run_device, monitor],
             name=request.node.name,
             traces={"Wishbone": members(engine.bus), "AXI4-Lite": members(top.adapter.axi)})
    reply = bytes(b ^ 0x5a for b in payload[:7])
    assert [(r.head, r.readable, r.writable, r.data, r.written) for r in device.requests] == \
        [(head, 13, 10, payload, 7)]
    assert guest.read(0x4000, 16) == b"\xee\xee" + reply + b"\xee" * 7
    assert ring.used() == [(head, 7)]
    assert used == [True]
    assert target.violations == []
    assert target.mixed == 0
    assert {t.write for t in target.log} == {False, True}
    assert {t.response for t in target.log} == {Response.OKAY}


def test_axi_memory_flags_a_valid_dropped_or_changed_before_its_handshake(request):
    # The model's own check, which the adapter tests rely on: readies wait for a valid, so
    # the first cycle of each valid has no handshake.
    axi = Signature(addr_width=12).create()
    target = AXIMemory(GuestMemory(bytearray(64)), axi, ready_waits_for_valid=True)

    async def testbench(ctx):
        ctx.set(axi.araddr, 0x10)
        ctx.set(axi.arvalid, 1)
        ctx.set(axi.awaddr, 0x20)
        ctx.set(axi.awvalid, 1)
        await ctx.tick()
        ctx.set(axi.arvalid, 0)                 # dropped before its handshake
        ctx.set(axi.awaddr, 0x24)               # changed before its handshake
        await ctx.tick().repeat(4)

    m = Module()
    m.domains.sync = ClockDomain()
    simulate(m, testbench, background=[target.run], name=request.node.name)
    assert len(target.violations) == 2
    assert "ARVALID dropped" in target.violations[0]
    assert "AW payload changed from (32,) to (36,)" in target.violations[1]
