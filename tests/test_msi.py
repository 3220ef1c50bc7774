"""MSI vector table, mapping and delivery (issue 3; decisions.md D2 to D7)."""

import itertools
import random

import pytest
from amaranth.hdl import ClockDomain, Module

from hw.msi import MSIWishboneMaster
from hw.regmap import NO_VECTOR, Feature, InterruptBit, MsiCmdV2, MsiOpV1, MsiStateBit
from sim.bus import SimMMIO, wait_until, wishbone_write
from sim.driver import VirtioMMIODriver
from sim.waves import simulate


VERSION_1 = 1 << Feature.VERSION_1
MSI_F = 1 << Feature.MMIO_MSI
USED, CONFIG = InterruptBit.USED_BUFFER.value, InterruptBit.CONFIG_CHANGE.value


def message(vector):
    """A distinct (address, data) per vector, with high address bits in use."""
    return 0x1_0000_0000 * (vector + 1) + 0xfee0_0000 + 4 * vector, 0x4000 + vector


async def settle(ctx, cycles=6):
    await ctx.tick().repeat(cycles)


async def v2_up(drv, dut, *, configure_all=True):
    """Negotiate bit 40, configure every vector, ENABLE, make every queue ready."""
    await drv.write_features(VERSION_1 | MSI_F)
    if configure_all:
        for v in range(dut.msi_vectors):
            await drv.msi_write_msg(v, *message(v))
    await drv.msi_command(MsiCmdV2.ENABLE)
    await drv.enable_queues(range(dut.num_queues))


# --- construction -------------------------------------------------------------------------------

@pytest.mark.parametrize("params, message", [
    (dict(msi="v2", num_queues=4, msi_vectors=4),
     r"msi_vectors must be at least num_queues \+ 1 = 5 in non-sharing mode"),
    (dict(msi="v2", msi_vectors=0, msi_sharing=True),
     r"msi_vectors must be an integer from 1 to 2048, not 0"),
    (dict(msi="v2", msi_vectors=4096, msi_sharing=True),
     r"msi_vectors must be an integer from 1 to 2048, not 4096"),
    (dict(msi="v1", msi_sharing=True), r"msi_sharing needs msi='v2'"),
    (dict(msi_vectors=4), r"msi_vectors and msi_sharing need msi='v2' or msi='v1'"),
])
def test_constructor_refuses(params, message, make):
    with pytest.raises(ValueError, match=message):
        make(**params)


def test_constructor_refuses_a_sharing_flag_that_is_not_a_bool(make):
    with pytest.raises(TypeError, match=r"msi_sharing must be a bool, not 1"):
        make(msi="v2", msi_sharing=1)


def test_msi_feature_offered_only_by_v2(make):
    assert make(msi="v2").features & MSI_F
    assert not make(msi="v1").features & MSI_F
    assert not make().features & MSI_F


# --- scenarios through the driver model -----------------------------------------------------------

@pytest.mark.parametrize("num_queues", [1, 4])
@pytest.mark.parametrize("mode", ["v2-non-sharing", "v2-sharing", "v1"])
def test_every_event_sends_its_message(mode, num_queues, make, run):
    personality = mode[:2]
    sharing = mode == "v2-sharing"
    params = dict(msi=personality, num_queues=num_queues, queue_size_max=16)
    if sharing:
        params.update(msi_sharing=True, msi_vectors=2)
    dut = make(**params)
    messages = [message(v) for v in range(num_queues + 1)]

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=personality)
        await drv.bring_up(queues=range(num_queues), msi_messages=messages)
        if personality == "v2":
            state = await io.read(dut.regs["MsiState"].offset)
            assert state >> MsiStateBit.ENABLED & 1 and state >> MsiStateBit.ENABLED_LINUX & 1
            assert bool(state >> MsiStateBit.SHARING & 1) == sharing
        for q in range(num_queues):
            device.raise_used(q)
            await settle(ctx)
            # sharing: every queue on vector 1 (MAP_QUEUE); otherwise vector q+1
            assert intc.take() == [messages[1 if sharing else q + 1]], q
        device.change_config()
        await settle(ctx)
        assert intc.take() == [messages[0]]
        assert not ctx.get(dut.irq)
        assert await io.read(dut.regs["InterruptStatus"].offset) == 0
    run(dut, body)


@pytest.mark.parametrize("sharing", [False, True])
def test_msi_state_mirrors_each_flag_in_both_places(sharing, make, run):
    dut = make(msi="v2", num_queues=1, msi_sharing=sharing)
    def flag(bit):
        return 1 << bit

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(VERSION_1 | MSI_F)
        share = (flag(MsiStateBit.SHARING) | flag(MsiStateBit.SHARING_LINUX)) if sharing else 0
        assert await io.read(dut.regs["MsiState"].offset) == share
        await drv.msi_command(MsiCmdV2.ENABLE)
        assert await io.read(dut.regs["MsiState"].offset) == \
            share | flag(MsiStateBit.ENABLED) | flag(MsiStateBit.ENABLED_LINUX)
        assert await io.read(dut.regs["MsiVecNum"].offset) == dut.msi_vectors
    run(dut, body)


def test_linux_v2_teardown_bug_leaves_msi_on_until_reset(make, run):
    dut = make(msi="v2", num_queues=2)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi="v2")
        await drv.bring_up(queues=range(2), msi_messages=[message(v) for v in range(3)])
        await drv.free_msi_v2(linux_bug=True)            # sends ENABLE, not DISABLE
        assert await io.read(dut.regs["MsiState"].offset) >> MsiStateBit.ENABLED & 1
        await drv.reset()
        await drv.write_features(VERSION_1 | MSI_F)
        assert await io.read(dut.regs["MsiState"].offset) == 0
    run(dut, body)


# --- every vector: mask, pending, configure, NO_VECTOR ------------------------------------------

def test_masked_events_pend_and_are_delivered_once_on_unmask_for_every_vector(make, run):
    n = 8
    dut = make(msi="v2", num_queues=n, queue_size_max=16)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        for v in range(n + 1):
            await drv.msi_command(MsiCmdV2.MASK, v)
        for q in range(n):
            device.raise_used(q)
            device.raise_used(q, delay=3)                # two events: one message
        device.change_config()
        await settle(ctx, 10)
        assert intc.take() == []
        for v in reversed(range(n + 1)):
            await drv.msi_command(MsiCmdV2.UNMASK, v)
            await settle(ctx, 3)
            assert intc.take() == [message(v)], v
        await settle(ctx, 10)
        assert intc.take() == []
    run(dut, body)


def test_events_before_configure_are_delivered_on_configure_for_every_vector(make, run):
    n = 8
    dut = make(msi="v2", num_queues=n, queue_size_max=16)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut, configure_all=False)
        for q in range(n):
            device.raise_used(q)
        device.change_config()
        await settle(ctx, 10)
        assert intc.take() == []
        for v in range(n + 1):
            await drv.msi_write_msg(v, *message(v))
            await settle(ctx, 3)
            assert intc.take() == [message(v)], v
    run(dut, body)


def test_configure_of_a_masked_vector_keeps_it_pending(make, run):
    dut = make(msi="v2", num_queues=1)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut, configure_all=False)
        await drv.msi_command(MsiCmdV2.MASK, 1)
        device.raise_used(0)
        await drv.msi_write_msg(1, *message(1))
        await settle(ctx)
        assert intc.take() == []
        await drv.msi_command(MsiCmdV2.UNMASK, 1)
        await settle(ctx)
        assert intc.take() == [message(1)]
    run(dut, body)


def test_reconfigure_takes_effect_for_the_next_message(make, run):
    dut = make(msi="v2", num_queues=1)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        await drv.msi_write_msg(1, 0xfee0_1000, 0x77)
        device.raise_used(0)
        await settle(ctx)
        assert intc.take() == [(0xfee0_1000, 0x77)]
    run(dut, body)


@pytest.mark.parametrize("vector", [3, NO_VECTOR], ids=["out-of-range", "NO_VECTOR"])
def test_sharing_mode_no_vector_raises_nothing(vector, make, run):
    dut = make(msi="v2", num_queues=2, msi_sharing=True, msi_vectors=3)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        # Maps start at NO_VECTOR: nothing at all.
        device.raise_used(0)
        device.raise_used(1)
        device.change_config()
        await settle(ctx)
        assert intc.take() == []
        # Map queue 1 to vector 2, config to vector 0, then try to remap queue 1.
        await io.write(dut.regs["QueueSel"].offset, 1)
        await drv.msi_command(MsiCmdV2.MAP_QUEUE, 2)
        await drv.msi_command(MsiCmdV2.MAP_CONFIG, 0)
        await drv.msi_command(MsiCmdV2.MAP_QUEUE, vector)
        device.raise_used(0)
        device.raise_used(1)
        device.change_config()
        await settle(ctx)
        got = intc.take()
        if vector == NO_VECTOR:
            assert got == [message(0)]                 # queue 1 unmapped, queue 0 never mapped
        else:
            assert sorted(got) == sorted([message(0), message(2)])   # out of range: no change
    run(dut, body)


def test_map_commands_do_nothing_in_non_sharing_mode(make, run):
    dut = make(msi="v2", num_queues=2)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        await io.write(dut.regs["QueueSel"].offset, 0)
        await drv.msi_command(MsiCmdV2.MAP_QUEUE, NO_VECTOR)
        await drv.msi_command(MsiCmdV2.MAP_CONFIG, 2)
        device.raise_used(0)
        device.change_config()
        await settle(ctx)
        assert sorted(intc.take()) == sorted([message(1), message(0)])
    run(dut, body)


# --- coalescing and backpressure ------------------------------------------------------------------

def test_events_coalesce_until_accepted_and_later_events_send_again(make, run):
    dut = make(msi="v2", num_queues=2)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        intc.hold = True
        for delay in (1, 2, 5, 9):
            device.raise_used(1, delay=delay)
        await settle(ctx, 15)
        intc.hold = False
        await settle(ctx, 4)
        assert intc.take() == [message(2)]
        device.raise_used(1)
        await settle(ctx)
        assert intc.take() == [message(2)]
    run(dut, body)


@pytest.mark.parametrize("seed", range(3))
def test_backpressure_loses_no_vector_and_invents_none(seed, make, run):
    n = 6
    rng = random.Random(seed)
    dut = make(msi="v2", num_queues=n, queue_size_max=16)
    vector_of = {("used", q): q + 1 for q in range(n)} | {("config", None): 0}

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        last_event = {}
        # every queue and the config event in every cycle of a burst, a random subset between
        for burst in range(60):
            active = sorted(vector_of, key=str) if burst % 2 else \
                rng.sample(sorted(vector_of, key=str), k=3)
            intc.hold = rng.random() < 0.5              # long random stretches of stall
            for _ in range(rng.randrange(1, 20)):
                for kind, q in active:                  # events every cycle
                    if kind == "used":
                        device.raise_used(q)
                    else:
                        device.change_config()
                    last_event[vector_of[(kind, q)]] = device.now + 1
                await ctx.tick()
        intc.hold = False
        await settle(ctx, 20)
        last_accept = {}
        for m in intc.messages:
            vector = next(v for v in range(n + 1) if message(v) == (m.address, m.data))
            last_accept[vector] = m.cycle
        assert set(last_accept) == set(last_event)      # every vector with events, no other
        for vector, cycle in last_event.items():
            assert last_accept[vector] >= cycle, vector # the last event is covered too
    run(dut, body, msi_stall=0.3, seed=seed)


# --- ENABLE / DISABLE / reset --------------------------------------------------------------------

def test_enable_delivers_interrupt_status_and_clears_it(make, run):
    dut = make(msi="v2", num_queues=3)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(VERSION_1 | MSI_F)
        for v in range(4):
            await drv.msi_write_msg(v, *message(v))
        await drv.enable_queues([0, 2])
        device.raise_used(0)
        device.change_config()
        await settle(ctx)
        assert await io.read(dut.regs["InterruptStatus"].offset) == USED | CONFIG
        assert ctx.get(dut.irq)
        await drv.msi_command(MsiCmdV2.ENABLE)
        assert not ctx.get(dut.irq)
        assert await io.read(dut.regs["InterruptStatus"].offset) == 0
        await settle(ctx)
        # bit 1 to the config vector; bit 0 to every ready queue's vector
        assert sorted(intc.take()) == sorted([message(0), message(1), message(3)])
    run(dut, body)


def test_disable_folds_pending_vectors_into_interrupt_status(make, run):
    dut = make(msi="v2", num_queues=2)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        await drv.msi_command(MsiCmdV2.MASK, 0)
        await drv.msi_command(MsiCmdV2.MASK, 2)
        device.raise_used(1)
        device.change_config()
        await settle(ctx)
        assert intc.take() == []
        await drv.msi_command(MsiCmdV2.DISABLE)
        assert ctx.get(dut.irq)
        assert await io.read(dut.regs["InterruptStatus"].offset) == USED | CONFIG
        state = await io.read(dut.regs["MsiState"].offset)
        assert not state >> MsiStateBit.ENABLED & 1
        # Back to the wired interrupt: ACK works again, events set InterruptStatus.
        await io.write(dut.regs["InterruptACK"].offset, USED | CONFIG)
        assert not ctx.get(dut.irq)
        device.raise_used(0)
        await settle(ctx)
        assert await io.read(dut.regs["InterruptStatus"].offset) == USED
        assert intc.take() == []
    run(dut, body)


def test_interrupt_ack_is_ignored_while_msi_is_enabled(make, run):
    dut = make(msi="v2", num_queues=1)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        await drv.msi_command(MsiCmdV2.MASK, 1)
        device.raise_used(0)
        await settle(ctx)
        await io.write(dut.regs["InterruptACK"].offset, 3)
        assert await io.read(dut.regs["InterruptStatus"].offset) == 0
        await drv.msi_command(MsiCmdV2.DISABLE)
        assert await io.read(dut.regs["InterruptStatus"].offset) == USED
    run(dut, body)


def test_reset_in_the_middle_of_traffic_offers_nothing_afterwards(make, run):
    dut = make(msi="v2", num_queues=4, queue_size_max=16)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        await drv.msi_command(MsiCmdV2.MASK, 1)
        intc.hold = True
        for q in range(4):
            device.raise_used(q)
        await settle(ctx)
        assert ctx.get(dut.msi.valid)
        await io.write(dut.regs["Status"].offset, 0)
        assert not ctx.get(dut.msi.valid)
        intc.hold = False
        await settle(ctx, 10)
        assert intc.take() == []
        # power-on state: disabled, vectors unconfigured, unmasked, not pending
        await drv.write_features(VERSION_1 | MSI_F)
        assert await io.read(dut.regs["MsiState"].offset) == 0
        await drv.msi_command(MsiCmdV2.ENABLE)
        await drv.enable_queues([0])
        device.raise_used(0)
        await settle(ctx)
        assert intc.take() == []                         # vector 1 is unconfigured again
        await drv.msi_write_msg(1, *message(1))
        await settle(ctx)
        assert intc.take() == [message(1)]
    run(dut, body)


def test_reset_clears_the_staging_registers(make, run):
    dut = make(msi="v2", num_queues=1)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)                   # staging holds vector 1's address and data
        await io.write(dut.regs["Status"].offset, 0)
        await drv.write_features(VERSION_1 | MSI_F)
        await io.write(dut.regs["MsiVecSel"].offset, 1)
        await drv.msi_command(MsiCmdV2.CONFIGURE)          # no staging writes since reset
        await drv.msi_command(MsiCmdV2.ENABLE)
        await drv.enable_queues([0])
        device.raise_used(0)
        await settle(ctx)
        assert intc.take() == [(0, 0)]                      # decisions.md D7: staging is 0
    run(dut, body)


def test_reset_returns_sharing_maps_to_no_vector(make, run):
    dut = make(msi="v2", num_queues=2, msi_sharing=True, msi_vectors=2)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        await io.write(dut.regs["QueueSel"].offset, 1)
        await drv.msi_command(MsiCmdV2.MAP_QUEUE, 1)
        await drv.msi_command(MsiCmdV2.MAP_CONFIG, 0)
        device.raise_used(1)
        device.change_config()
        await settle(ctx)
        assert sorted(intc.take()) == sorted([message(0), message(1)])
        await io.write(dut.regs["Status"].offset, 0)
        await v2_up(drv, dut)                    # vectors configured again, but no maps
        device.raise_used(1)
        device.change_config()
        await settle(ctx)
        assert intc.take() == []
    run(dut, body)


# --- bad inputs -----------------------------------------------------------------------------------

def test_msi_registers_need_bit_40(make, run):
    dut = make(msi="v2", num_queues=1)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        assert await io.read(dut.regs["MsiVecNum"].offset) == 0
        await drv.msi_write_msg(1, *message(1))
        await drv.msi_command(MsiCmdV2.ENABLE)
        assert await io.read(dut.regs["MsiState"].offset) == 0
        await drv.enable_queues([0])
        device.raise_used(0)
        await settle(ctx)
        assert intc.take() == []
        assert await io.read(dut.regs["InterruptStatus"].offset) == USED   # plain device
        await drv.write_features(VERSION_1 | MSI_F)
        assert await io.read(dut.regs["MsiVecNum"].offset) == 2
        assert await io.read(dut.regs["MsiState"].offset) == 0      # the ENABLE above did nothing
    run(dut, body)


def test_selector_and_staging_writes_before_bit_40_do_nothing(make, run):
    # decisions.md D2: before bit 40 the MSI registers ignore writes, so after it MsiVecSel is
    # still vector 0 and the staging registers still 0: a bare CONFIGURE sets vector 0 to
    # address 0, data 0, and vector 1 (queue 0, non-sharing) stays unconfigured.
    dut = make(msi="v2", num_queues=1)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        for name, value in (("MsiVecSel", 1), ("MsiAddrLow", 0xfee0_1000),
                            ("MsiAddrHigh", 0x1), ("MsiData", 0x4041)):
            await io.write(dut.regs[name].offset, value)
        await drv.write_features(VERSION_1 | MSI_F)
        await drv.msi_command(MsiCmdV2.CONFIGURE)
        await drv.msi_command(MsiCmdV2.ENABLE)
        await drv.enable_queues([0])
        device.raise_used(0)
        await settle(ctx)
        assert intc.take() == []                    # vector 1 was never configured: pending
        device.change_config()
        await settle(ctx)
        assert intc.take() == [(0, 0)]
    run(dut, body)


@pytest.mark.parametrize("vector", [2, 0x100, NO_VECTOR], ids=hex)
def test_commands_with_no_or_out_of_range_vector_do_nothing(vector, make, run):
    dut = make(msi="v2", num_queues=1)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        for cmd in (MsiCmdV2.MASK, MsiCmdV2.CONFIGURE, MsiCmdV2.UNMASK):
            await drv.msi_command(cmd, vector)
        # Vector 0 and 1 are untouched: still unmasked and configured as before.
        device.raise_used(0)
        device.change_config()
        await settle(ctx)
        assert sorted(intc.take()) == sorted([message(0), message(1)])
    run(dut, body)


@pytest.mark.parametrize("value", [0, 8, 0x101, 0xffff_ffff], ids=hex)
def test_unknown_commands_are_ignored(value, make, run):
    dut = make(msi="v2", num_queues=1)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(VERSION_1 | MSI_F)
        await drv.msi_write_msg(1, *message(1))
        await io.write(dut.regs["MsiCmd"].offset, value)
        assert await io.read(dut.regs["MsiState"].offset) == 0
    run(dut, body)


@pytest.mark.parametrize("sel", [0b0001, 0b0011, 0b1100, 0b0111])
def test_v2_partial_writes_are_ignored(sel, make, run):
    dut = make(msi="v2", num_queues=1)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(VERSION_1 | MSI_F)
        await drv.msi_write_msg(1, *message(1))
        await wishbone_write(ctx, dut.bus, dut.regs["MsiCmd"].word, MsiCmdV2.ENABLE.value, sel=sel)
        assert await io.read(dut.regs["MsiState"].offset) == 0
    run(dut, body)


def test_v1_sixteen_bit_registers_take_their_own_lanes(make, run):
    dut = make(msi="v1", num_queues=2)
    status, cmd = dut.regs["MsiStatus"], dut.regs["MsiCmd"]
    update = cmd.field("cmd_op").place(MsiOpV1.UPDATE.value)
    enable = cmd.field("cmd_op").place(MsiOpV1.ENABLE.value)
    enabled = status.field("msi_enabled").mask

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        assert await io.read(status.offset, 2) == status.field("max_queue_num").place(2)
        for v in range(3):
            address, data = message(v)
            await io.write(dut.regs["MsiAddrLow"].offset, address & 0xffff_ffff)
            await io.write(dut.regs["MsiAddrHigh"].offset, address >> 32)
            await io.write(dut.regs["MsiData"].offset, data)
            await io.write(cmd.offset, update | v, 2)
        # 8-bit halves of MsiCmd do nothing
        await wishbone_write(ctx, dut.bus, cmd.word, (enable | 1) << cmd.shift, sel=0b0100)
        await wishbone_write(ctx, dut.bus, cmd.word, (enable | 1) << cmd.shift, sel=0b1000)
        assert not await io.read(status.offset, 2) & enabled
        # MsiCmd ENABLE 1 / 0, and the MsiStatus bit-15 write the Linux v1 driver uses
        await io.write(cmd.offset, enable | 1, 2)
        assert await io.read(status.offset, 2) & enabled
        await io.write(cmd.offset, enable | 0, 2)
        assert not await io.read(status.offset, 2) & enabled
        await io.write(status.offset, enabled, 2)
        assert await io.read(status.offset, 2) & enabled
        await drv.enable_queues(range(2))
        device.raise_used(1)
        await settle(ctx)
        assert intc.take() == [message(2)]
        # a 32-bit write of the whole word counts as MsiCmd only
        await io.write(status.offset, (enable | 0) << cmd.shift | enabled, 4)
        assert not await io.read(status.offset, 2) & enabled
        # unknown op, ENABLE with an argument other than 0/1, and an UPDATE of a vector out
        # of range do nothing
        await io.write(cmd.offset, 0xf << 12 | 1, 2)
        await io.write(cmd.offset, enable | 2, 2)
        await io.write(cmd.offset, update | 0xfff, 2)
        assert not await io.read(status.offset, 2) & enabled
    run(dut, body)


# --- latency and rate -----------------------------------------------------------------------------

def test_event_to_message_latency_and_sustained_rate(make, run):
    n = 8
    dut = make(msi="v2", num_queues=n, queue_size_max=16)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        await settle(ctx)
        # latency: event in cycle N, request on the stream in cycle N + latency
        ctx.set(dut.device.queues[3].used, 1)
        await ctx.tick()
        ctx.set(dut.device.queues[3].used, 0)
        latency = 1
        while not ctx.get(dut.msi.valid):
            assert latency < 8, "no MSI request within 8 cycles of the event"
            await ctx.tick()
            latency += 1
        assert latency <= 3
        await settle(ctx)
        intc.take()
        # rate: every vector has an event in the same cycle; always-ready sink
        for q in range(n):
            ctx.set(dut.device.queues[q].used, 1)
        await ctx.tick()
        for q in range(n):
            ctx.set(dut.device.queues[q].used, 0)
        await settle(ctx, 3 * n)
        cycles = [m.cycle for m in intc.messages]
        assert len(cycles) == n
        # decisions.md D12: messages for different vectors follow each other every cycle
        assert [b - a for a, b in itertools.pairwise(cycles)] == [1] * (n - 1), cycles
        print(f"event-to-request latency {latency} cycles; a message every cycle")
    run(dut, body)


def test_no_message_for_a_used_buffer_event_of_a_queue_that_is_not_ready(make, run):
    # decisions.md D10a on the MSI path: queue 1 has a configured vector but is not ready
    dut = make(msi="v2", num_queues=2, queue_size_max=16)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        await io.write(dut.regs["QueueSel"].offset, 1)
        await io.write(dut.regs["QueueReady"].offset, 0)
        await settle(ctx)
        intc.take()
        for queue in (1, 0):            # queue 0, which is ready, shows the event would send
            device.raise_used(queue)
            await settle(ctx)
        assert intc.take() == [message(1)]      # queue 0's vector (non-sharing: queue + 1)
        assert await io.read(dut.regs["InterruptStatus"].offset) == 0
        await drv.msi_command(MsiCmdV2.DISABLE)     # nothing pending for queue 1 to fold back
        assert await io.read(dut.regs["InterruptStatus"].offset) == 0
    run(dut, body)


# --- the Wishbone MSI master ----------------------------------------------------------------------

@pytest.mark.parametrize("ack_delay", [0, 3])
def test_wishbone_master_performs_one_write_per_message(ack_delay):
    dut = MSIWishboneMaster(addr_width=30)
    sent = [(0xfee0_0000 + 4 * i, 0x100 + i) for i in range(5)]
    writes = []

    async def testbench(ctx):
        bus = dut.bus
        for address, data in sent:
            ctx.set(dut.msi.valid, 1)
            ctx.set(dut.msi.p.address, address)
            ctx.set(dut.msi.p.data, data)
            for _ in range(ack_delay):
                assert ctx.get(bus.cyc) and ctx.get(bus.stb) and not ctx.get(dut.msi.ready)
                await ctx.tick()
            assert ctx.get(bus.we) and ctx.get(bus.sel) == 0b1111
            writes.append((ctx.get(bus.adr) << 2, ctx.get(bus.dat_w)))
            ctx.set(bus.ack, 1)
            assert ctx.get(dut.msi.ready)
            await ctx.tick()
            ctx.set(bus.ack, 0)
        ctx.set(dut.msi.valid, 0)
        assert not ctx.get(bus.cyc)

    top = Module()
    top.domains.sync = ClockDomain()        # the master is combinational; the bench needs a clock
    top.submodules.dut = dut
    simulate(top, testbench, name=f"msi_master_{ack_delay}")
    assert writes == sent


def test_wishbone_master_refuses_bad_address_width():
    with pytest.raises(ValueError, match="addr_width must be an integer from 1 to 62, not 0"):
        MSIWishboneMaster(addr_width=0)


# --- measured by tests/mutation.py (issue 11): cycle-exact hand-over and acceptance ------------

def simulate_exact(dut, body):
    """Run ``body(ctx, io, accepted)`` against ``dut`` with no device model and no interrupt
    controller model: the body drives ``device.queues.used``, ``device.config_change`` and
    ``msi.ready`` itself, in the cycles it chooses. ``accepted`` collects ``(address, data)`` of
    every message the stream hands over."""
    accepted = []
    done = []

    async def sink(ctx):
        async for _, _, valid, ready, payload in ctx.tick().sample(
                dut.msi.valid, dut.msi.ready, dut.msi.p):
            if valid and ready:
                accepted.append((payload.address, payload.data))

    async def testbench(ctx):
        await body(ctx, SimMMIO(ctx, dut.bus), accepted)
        done.append(True)

    simulate(dut, testbench, processes=[sink], name="exact")
    assert done, "testbench did not finish"


@pytest.mark.parametrize("kind", ["used", "config"])
@pytest.mark.parametrize("sharing", [False, True], ids=["fixed-map", "sharing"])
def test_event_in_the_cycle_of_acceptance_sends_another_message(sharing, kind, make):
    # decisions.md D5: events before the acceptance coalesce into the message on the stream; an
    # event from the acceptance cycle on (the cycle the sink takes the message) causes another.
    params = dict(msi="v2", num_queues=2)
    if sharing:
        params.update(msi_sharing=True, msi_vectors=3)
    dut = make(**params)
    queue = 1
    vector = 0 if kind == "config" else (2 if sharing else queue + 1)

    def event(ctx):
        if kind == "used":
            ctx.set(dut.device.queues.used, 1 << queue)
        else:
            ctx.set(dut.device.config_change, 1)

    def quiet(ctx):
        ctx.set(dut.device.queues.used, 0)
        ctx.set(dut.device.config_change, 0)

    async def body(ctx, io, accepted):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        ctx.set(dut.msi.ready, 0)
        await v2_up(drv, dut)
        if sharing:
            await io.write(dut.regs["QueueSel"].offset, queue)
            await drv.msi_command(MsiCmdV2.MAP_QUEUE, vector if kind == "used" else 1)
            await drv.msi_command(MsiCmdV2.MAP_CONFIG, vector if kind == "config" else 1)
        # offset: cycles from the acceptance (cycle 0) to the second event
        for offset in (-1, 0, 1, 2):
            accepted.clear()
            event(ctx)
            await ctx.tick()
            quiet(ctx)
            # the message is offered; the sink stalls
            await wait_until(ctx, dut.msi.valid, timeout=16, what="an offered MSI message")
            for _ in range(3):
                await ctx.tick()
            for cycle in range(min(offset, 0), max(offset, 0) + 1):
                ctx.set(dut.msi.ready, cycle == 0)
                if cycle == offset:
                    event(ctx)
                await ctx.tick()
                quiet(ctx)
            ctx.set(dut.msi.ready, 1)
            for _ in range(12):
                await ctx.tick()
            ctx.set(dut.msi.ready, 0)
            expected = 1 if offset < 0 else 2
            assert accepted == [message(vector)] * expected, f"second event at {offset:+d}"

    simulate_exact(dut, body)


@pytest.mark.parametrize("bit", ["used", "config"])
@pytest.mark.parametrize("sharing", [False, True], ids=["fixed-map", "sharing"])
def test_enable_hands_each_interrupt_status_bit_to_its_own_vectors(sharing, bit, make, run):
    # decisions.md D6: on ENABLE, bit 0 goes to the vector of every ready queue (and no other),
    # bit 1 to the config vector; each bit alone, so that a swap or a dropped term shows.
    params = dict(msi="v2", num_queues=3)
    if sharing:
        params.update(msi_sharing=True, msi_vectors=4)
    dut = make(**params)
    ready = [0, 2]                                  # queue 1 is not ready
    if sharing:
        # queue 0 -> 3, queue 1 (not ready) -> 0, queue 2 -> 1, config -> 2
        queue_vector, config_vector = {0: 3, 1: 0, 2: 1}, 2
    else:
        queue_vector, config_vector = {q: q + 1 for q in range(3)}, 0
    expected = [config_vector] if bit == "config" else [queue_vector[q] for q in ready]

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(VERSION_1 | MSI_F)
        for v in range(dut.msi_vectors):
            await drv.msi_write_msg(v, *message(v))
        if sharing:
            for q, v in queue_vector.items():
                await io.write(dut.regs["QueueSel"].offset, q)
                await drv.msi_command(MsiCmdV2.MAP_QUEUE, v)
            await drv.msi_command(MsiCmdV2.MAP_CONFIG, config_vector)
        await drv.enable_queues(ready)
        if bit == "used":
            device.raise_used(ready[0])             # one queue's event sets bit 0
        else:
            device.change_config()
        await settle(ctx)
        expected_bit = USED if bit == "used" else CONFIG
        assert await io.read(dut.regs["InterruptStatus"].offset) == expected_bit
        assert intc.take() == []
        await drv.msi_command(MsiCmdV2.ENABLE)
        await settle(ctx)
        assert sorted(intc.take()) == sorted(message(v) for v in expected)
        assert await io.read(dut.regs["InterruptStatus"].offset) == 0
        assert not ctx.get(dut.irq)
        # handed over, so nothing is left to fold back
        await drv.msi_command(MsiCmdV2.DISABLE)
        assert await io.read(dut.regs["InterruptStatus"].offset) == 0
        assert intc.take() == []
    run(dut, body)


@pytest.mark.parametrize("queue_sel", [2, 3, 0xffff_ffff], ids=hex)
def test_map_queue_with_queue_sel_out_of_range_changes_no_map_entry(queue_sel, make, run):
    # decisions.md D4/D8: MAP_QUEUE maps queue QueueSel; a QueueSel at or above the number of
    # queues names no queue, so no entry changes (a power-of-two queue count, so that the
    # selector's low bits name a real queue).
    dut = make(msi="v2", num_queues=2, msi_sharing=True, msi_vectors=3)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        for q, v in ((0, 1), (1, 2)):
            await io.write(dut.regs["QueueSel"].offset, q)
            await drv.msi_command(MsiCmdV2.MAP_QUEUE, v)
        await io.write(dut.regs["QueueSel"].offset, queue_sel)
        await drv.msi_command(MsiCmdV2.MAP_QUEUE, 0)
        await drv.msi_command(MsiCmdV2.MAP_QUEUE, NO_VECTOR)
        for q in (0, 1):
            device.raise_used(q)
            await settle(ctx)
            assert intc.take() == [message(q + 1)], q
    run(dut, body)


@pytest.mark.parametrize("bit", ["used", "config"])
@pytest.mark.parametrize("sharing", [False, True], ids=["fixed-map", "sharing"])
def test_disable_folds_each_kind_of_event_into_its_own_bit(sharing, bit, make, run):
    # decisions.md D6: on DISABLE a pending vector's config events go to InterruptStatus bit 1,
    # its queue events to bit 0; one kind at a time, so that a swap of the two shows.
    params = dict(msi="v2", num_queues=2)
    if sharing:
        params.update(msi_sharing=True, msi_vectors=2)
    dut = make(**params)

    async def body(ctx, io, device, intc):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await v2_up(drv, dut)
        if sharing:
            # both kinds on one vector, so that only the pending kind can tell the bit
            await io.write(dut.regs["QueueSel"].offset, 1)
            await drv.msi_command(MsiCmdV2.MAP_QUEUE, 1)
            await drv.msi_command(MsiCmdV2.MAP_CONFIG, 1)
        for v in range(dut.msi_vectors):
            await drv.msi_command(MsiCmdV2.MASK, v)
        if bit == "used":
            device.raise_used(1)
        else:
            device.change_config()
        await settle(ctx)
        assert intc.take() == []
        await drv.msi_command(MsiCmdV2.DISABLE)
        expected_bit = USED if bit == "used" else CONFIG
        assert await io.read(dut.regs["InterruptStatus"].offset) == expected_bit
        assert ctx.get(dut.irq)
    run(dut, body)


def test_offered_message_holds_while_the_sink_stalls(make):
    # A stream's payload may not change while valid is high and ready low (amaranth.lib.stream):
    # the message offered first is the one accepted, even though another vector waits behind it.
    dut = make(msi="v2", num_queues=2)

    async def body(ctx, io, accepted):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        ctx.set(dut.msi.ready, 0)
        await v2_up(drv, dut)
        ctx.set(dut.device.queues.used, 0b11)
        await ctx.tick()
        ctx.set(dut.device.queues.used, 0)
        await wait_until(ctx, dut.msi.valid, timeout=16, what="an offered MSI message")
        offered = ctx.get(dut.msi.p)
        offered = (offered.address, offered.data)
        assert offered in (message(1), message(2))
        for _ in range(8):
            await ctx.tick()
            assert ctx.get(dut.msi.valid)
            payload = ctx.get(dut.msi.p)
            assert (payload.address, payload.data) == offered
        ctx.set(dut.msi.ready, 1)
        for _ in range(8):
            await ctx.tick()
        assert accepted[0] == offered
        assert sorted(accepted) == [message(1), message(2)]
    simulate_exact(dut, body)


def test_vectors_with_events_in_every_cycle_share_the_stream_fairly(make):
    # The sender picks among waiting vectors round-robin: with every vector's event in every
    # cycle and a sink that is always ready, each vector gets its turn, none is starved.
    n = 4
    dut = make(msi="v2", num_queues=n, queue_size_max=16)

    async def body(ctx, io, accepted):
        drv = VirtioMMIODriver(io, msi=dut.personality)
        ctx.set(dut.msi.ready, 1)
        await v2_up(drv, dut)
        for _ in range(8):
            await ctx.tick()
        accepted.clear()
        ctx.set(dut.device.queues.used, (1 << n) - 1)
        ctx.set(dut.device.config_change, 1)
        for _ in range(100):
            await ctx.tick()
        ctx.set(dut.device.queues.used, 0)
        ctx.set(dut.device.config_change, 0)
        counts = [accepted.count(message(v)) for v in range(n + 1)]
        assert min(counts) >= sum(counts) // (n + 1) - 2, counts
    simulate_exact(dut, body)
