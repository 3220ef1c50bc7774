"""The Linux virtio_mmio driver model against the gateware (issue 2)."""

import pytest

from hw.regmap import CONFIG_OFFSET, Feature
from sim.driver import (DriverError, FeaturesRefused, NoDevice, VirtioMMIODriver,
                        LINUX_TRANSPORT_FEATURES)


CONFIGS = [
    pytest.param(dict(num_queues=q, config_size=c, shm_regions=s),
                 id=f"{q}q-cfg{c}-{'shm' if s else 'noshm'}")
    for q in (1, 2, 8) for c in (0, 64) for s in ((), ((0x4000_0000, 0x20_0000), (0, 0x1000)))
]


@pytest.mark.parametrize("params", CONFIGS)
def test_linux_sequence(params, make, run, linux_sequence):
    dut = make(device_features=linux_sequence.FEATURES, queue_size_max=256, **params)
    config = bytes((7 * i + 3) & 0xff for i in range(params["config_size"]))

    async def body(ctx, io, device):
        await linux_sequence.check(ctx, VirtioMMIODriver(io), dut, device, config=config,
                                   shm_regions=params["shm_regions"])
    run(dut, body, config=config, echo_used=2)


def test_config_read_retries_when_generation_changes(make, run):
    dut = make(config_size=16)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io)
        reads = []
        original = io.read

        async def read(offset, size=4):
            value = await original(offset, size)
            if offset >= CONFIG_OFFSET:
                reads.append(offset)
                if len(reads) == 1:          # change the config under the first read
                    device.change_config(0, b"\x99")
                    for _ in range(3):
                        await ctx.tick()
            return value
        io.read = read
        (value,) = await drv.read_config_fields([(0, 1)])
        assert value == 0x99
        assert len(reads) == 2
    run(dut, body)


def test_placeholder_device_is_skipped(make, run):
    dut = make(device_id=0)

    async def body(ctx, io, device):
        with pytest.raises(NoDevice):
            await VirtioMMIODriver(io).probe()
    run(dut, body)


def test_device_refuses_features_it_did_not_offer(make, run):
    dut = make()

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io)
        await drv.probe()
        await drv.reset()
        await drv.finalize_features(1 << Feature.VERSION_1 | 1 << 7)
        with pytest.raises(FeaturesRefused):
            await drv.features_ok()
    run(dut, body)


def test_queue_already_ready_is_refused(make, run):
    dut = make()

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io)
        await drv.bring_up(queues=[0])
        with pytest.raises(DriverError, match="already set up"):
            await drv.setup_vq(0)
    run(dut, body)


def test_mainline_driver_strips_the_notification_feature(make, run):
    dut = make(notify_base=0x1000, notify_multiplier=4)

    async def body(ctx, io, device):
        drv = VirtioMMIODriver(io)
        features = await drv.bring_up(queues=[0, 1])
        assert not features >> Feature.MMIO_NOTIFICATION & 1
        assert drv.notify_offset(1) == dut.regs["QueueNotify"].offset
        await drv.notify(1)
        for _ in range(4):
            await ctx.tick()
        assert [n.queue for n in device.notifications] == [1]
    run(dut, body)


def test_linux_transport_filter_matches_reference():
    # reference (d.1) 3: the ring and transport bits vring_transport_features() keeps
    assert Feature.MMIO_MSI not in LINUX_TRANSPORT_FEATURES
    assert Feature.MMIO_NOTIFICATION not in LINUX_TRANSPORT_FEATURES
    assert Feature.VERSION_1 in LINUX_TRANSPORT_FEATURES


def test_device_side_inputs_tied_to_zero_give_a_working_idle_device(make):
    from sim.bus import SimMMIO
    from sim.waves import simulate
    dut = make(config_size=8)

    async def testbench(ctx):
        # No device model: every device-side input stays 0, nobody takes notifications.
        drv = VirtioMMIODriver(SimMMIO(ctx, dut.bus))
        await drv.bring_up(queues=[0, 1])
        assert await drv.read_config_fields([(0, 4), (4, 4)]) == [0, 0]
        for q in (0, 1):
            await drv.notify(q)
        for _ in range(8):
            await ctx.tick()
        assert not ctx.get(dut.irq)
        assert await drv.interrupt() == 0
        await drv.remove()

    simulate(dut, testbench, name="idle_device")
