"""AXI4-Lite (issue 7): the signature, the bridge in front of the transport running the Linux driver
sequence, responses to unaligned and out-of-range addresses, and the MSI master."""

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring

from hw.axi4lite import AXI4LiteMSIMaster, AXI4LiteToWishbone, Response, Signature
from hw.regmap import CONFIG_OFFSET, MAGIC, Status
from sim.axi4lite import AXIMMIO, AXIWriteSink, axi_read, axi_write
from sim.bus import CycleCounter, stream_send
from sim.device import DeviceModel
from sim.driver import VirtioMMIODriver
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
