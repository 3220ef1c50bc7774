"""Every register reads its documented reset value after power-on and after Status := 0
(decisions.md D7), for every personality, with and without notification addresses.

The expected values come from the register map's ``reset`` column, from the access rules for the
registers it documents no reset value for (decisions.md D8: write-only registers read 0; D2: the
v2 MSI registers and the QueueNotify structure read 0 until their feature bit is accepted), and
from the constructor's parameters for constant registers (identity, sizes, SHM regions).
"""

import pytest

from hw.regmap import (VERSION, Access, Feature, MsiCmdV2, MsiOpV1, MsiStateBit, Status,
                       register_map)

from sim.driver import VirtioMMIODriver


async def settle(ctx, cycles=4):
    await ctx.tick().repeat(cycles)


SHM = ((0x8000_0000_1000, 0x2_0000_0000),)
ALL_ONES = 0xffff_ffff
NUM_QUEUES = 2
QUEUE_SIZE_MAX = (64, 128)
DEVICE_FEATURES = 1 << 5 | 1 << Feature.RING_EVENT_IDX
PERSONALITIES = [
    pytest.param(dict(msi=None), id="standard"),
    pytest.param(dict(msi="v2"), id="v2"),
    pytest.param(dict(msi="v2", msi_sharing=True, msi_vectors=2), id="v2-sharing"),
    pytest.param(dict(msi="v1"), id="v1"),
]
NOTIFY = [
    pytest.param({}, id="queue-notify"),
    pytest.param(dict(notify_base=0x1000, notify_multiplier=4), id="notify-base"),
]


def transport(make, params, notify):
    return make(device_id=0x1a, vendor_id=0x1af4, device_features=DEVICE_FEATURES,
                num_queues=NUM_QUEUES,
                queue_size_max=QUEUE_SIZE_MAX, config_size=16, shm_regions=SHM,
                **params, **notify)


def expected_after_reset(dut, reg):
    """What ``reg`` reads with every selector at 0 and no feature accepted."""
    if reg.reset is not None:
        return reg.reset                                  # the documented reset value
    if reg.access == Access.W:
        return 0                                          # D8: write-only registers read 0
    base, length = SHM[0]
    constants = {
        "Version": VERSION[dut.personality],
        "DeviceID": 0x1a,
        "VendorID": 0x1af4,
        "DeviceFeatures": DEVICE_FEATURES,                # DeviceFeaturesSel 0: bits 31:0
        "QueueNumMax": QUEUE_SIZE_MAX[0],                 # QueueSel 0
        "SHMLenLow": length & ALL_ONES, "SHMLenHigh": length >> 32,   # SHMSel 0
        "SHMBaseLow": base & ALL_ONES, "SHMBaseHigh": base >> 32,
        "MsiVecNum": 0,                                   # D2: gated until bit 40
    }
    if reg.name in constants:
        return constants[reg.name]
    if reg.name == "MsiStatus":                           # v1: queue count, MSI disabled
        return reg.field("max_queue_num").place(NUM_QUEUES)
    if reg.name == "QueueNotify":
        if dut.personality != "v1":
            return 0                                      # D2: gated until bit 39
        fields = {f.name: f for f in reg.fields}
        base = 0x1000 if dut.notify_base is not None else reg.offset
        multiplier = 4 if dut.notify_base is not None else 0
        return fields["notify_base"].place(base) | fields["notify_multiplier"].place(multiplier)
    raise AssertionError(f"{reg.name}: no documented value after reset")


async def read(io, reg):
    return await io.read(reg.offset, reg.width // 8)


async def check_reset_values(ctx, io, dut, when):
    regs = dut.regs
    for reg in regs:
        got = await read(io, reg)
        assert got == expected_after_reset(dut, reg), f"{reg.name} after {when}: {got:#x}"
    # QueueReady of every queue, not only of the selected one
    for q in range(NUM_QUEUES):
        await io.write(dut.regs["QueueSel"].offset, q)
        assert await read(io, regs["QueueReady"]) == regs["QueueReady"].reset, (q, when)
    await io.write(dut.regs["QueueSel"].offset, 0)
    assert not ctx.get(dut.irq), when
    if dut.personality == "v2":
        # behind the D2 gate: MSI disabled after the reset (the sharing flags are constants, D3)
        drv = VirtioMMIODriver(io, msi=dut.personality)
        await drv.write_features(1 << Feature.VERSION_1 | 1 << Feature.MMIO_MSI)
        sharing = int(dut.msi_sharing) * (1 << MsiStateBit.SHARING | 1 << MsiStateBit.SHARING_LINUX)
        assert await read(io, regs["MsiState"]) == regs["MsiState"].reset | sharing, when
        assert await read(io, regs["MsiVecNum"]) == dut.msi_vectors, when
        await VirtioMMIODriver(io, msi=dut.personality).write_features(0)


async def change_everything(ctx, io, dut, device):
    """Writes and events that move every register away from its reset value."""
    regs = dut.regs
    await VirtioMMIODriver(io, msi=dut.personality).write_features(dut.features)
    await io.write(dut.regs["Status"].offset, (Status.ACKNOWLEDGE | Status.DRIVER).value)
    await io.write(dut.regs["Status"].offset, Status.FEATURES_OK.value)
    for q in range(NUM_QUEUES):
        await io.write(dut.regs["QueueSel"].offset, q)
        await io.write(dut.regs["QueueNum"].offset, 16)
        for name in ("QueueDescLow", "QueueDriverLow", "QueueDeviceLow"):
            await io.write(dut.regs[name].offset, 0x1000 * (q + 1))
        await io.write(dut.regs["QueueReady"].offset, 1)
    await io.write(dut.regs["Status"].offset, Status.DRIVER_OK.value)
    await io.write(dut.regs["DeviceFeaturesSel"].offset, 1)
    await io.write(dut.regs["DriverFeaturesSel"].offset, 1)
    await io.write(dut.regs["SHMSel"].offset, 5)
    device.raise_used(1)
    device.change_config()
    await settle(ctx)
    assert await read(io, regs["InterruptStatus"]) == 0b11
    assert await read(io, regs["ConfigGeneration"]) == 1
    assert await read(io, regs["QueueReady"]) == 1                   # QueueSel is 1
    assert await read(io, regs["Status"]) != 0
    assert await read(io, regs["QueueNumMax"]) == QUEUE_SIZE_MAX[1]
    assert await read(io, regs["SHMLenLow"]) == ALL_ONES              # no region 5
    if dut.personality == "v2":
        await io.write(dut.regs["MsiVecSel"].offset, 0)
        await io.write(dut.regs["MsiAddrLow"].offset, 0xfee0_0000)
        await io.write(dut.regs["MsiData"].offset, 0x41)
        await io.write(dut.regs["MsiCmd"].offset, MsiCmdV2.CONFIGURE.value)
        await io.write(dut.regs["MsiCmd"].offset, MsiCmdV2.ENABLE.value)
        state = await read(io, regs["MsiState"])
        assert state >> MsiStateBit.ENABLED & 1
    elif dut.personality == "v1":
        cmd = regs["MsiCmd"]
        enable = cmd.field("cmd_op").place(MsiOpV1.ENABLE.value) | cmd.field("cmd_arg").place(1)
        await io.write(cmd.offset, enable, cmd.width // 8)
        status = await read(io, regs["MsiStatus"])
        assert regs["MsiStatus"].field("msi_enabled").extract(status) == 1
    if dut.personality is not None:
        assert await read(io, regs["InterruptStatus"]) == 0             # handed over (D6)
        device.change_config()
        await settle(ctx)
    assert await read(io, regs["ConfigGeneration"]) == 1 + (dut.personality is not None)


@pytest.mark.parametrize("notify", NOTIFY)
@pytest.mark.parametrize("params", PERSONALITIES)
def test_every_register_reads_its_reset_value_at_power_on_and_after_status_0(params, notify, make,
                                                                            run):
    dut = transport(make, params, notify)

    async def body(ctx, io, device, *intc):
        await check_reset_values(ctx, io, dut, "power-on")
        await change_everything(ctx, io, dut, device)
        await io.write(dut.regs["Status"].offset, 0)
        await check_reset_values(ctx, io, dut, "Status := 0")
    run(dut, body)


def test_every_readable_register_has_a_documented_value_after_reset(make):
    # The table above covers the whole map: a register added to hw/regmap.py without a reset
    # value, that is neither write-only nor a known constant, fails here rather than unchecked.
    for msi in (None, "v2", "v1"):
        for notify in (False, True):
            dut = transport(make, dict(msi=msi), dict(notify_base=0x1000, notify_multiplier=4)
                            if notify else {})
            for reg in register_map(msi, notify=notify):
                expected_after_reset(dut, reg)
