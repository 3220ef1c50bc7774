"""The main job: end-to-end scenarios in simulation, with transcripts and waveforms.

``wired``: a virtio-net-like device (2 queues, 16 bytes of config space, per-queue doorbells) is
brought up by the driver model exactly as Linux does it; the driver notifies each queue at its own
doorbell, the device answers with used-buffer events, the driver handles the wired interrupts, the
device changes its link status (a config-change interrupt), and the driver tears everything down.

``msi``: the same device with ``msi="v2"`` (non-sharing: vector 0 for config changes, vector q+1
for queue q) and the v2 series driver: MSI vectors are configured and enabled, every interrupt
arrives as an MSI write at an interrupt-controller model, the wired interrupt stays low.

Run it with ``./run demo`` (``python -m sim``).
"""

import argparse
import sys

from hw import VirtioMMIOTransport
from hw.regmap import Feature

from .bus import CycleCounter, SimMMIO, Transcript
from .device import DeviceModel
from .driver import VirtioMMIODriver
from .intc import InterruptControllerModel
from .waves import simulate, transport_traces


__all__ = ["default_transport", "run_scenario", "main"]

#: virtio-net feature bits the scenario offers (virtio 1.2 §5.1.3).
NET_F_MTU, NET_F_MAC, NET_F_STATUS = 3, 5, 16
NET_ID = 1
#: virtio_net_config: mac[6], status (u16), max_virtqueue_pairs (u16), mtu (u16), pad.
NET_CONFIG = bytes([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]) + (0).to_bytes(2, "little") + \
    (1).to_bytes(2, "little") + (1500).to_bytes(2, "little") + bytes(4)
LINK_UP = 1


def default_transport(**overrides):
    params = dict(
        device_id=NET_ID, vendor_id=0x1af4,
        device_features=1 << NET_F_MTU | 1 << NET_F_MAC | 1 << NET_F_STATUS |
        1 << Feature.RING_EVENT_IDX,
        num_queues=2, queue_size_max=256, config_size=len(NET_CONFIG),
        notify_base=0x1000, notify_multiplier=4,
    )
    params.update(overrides)
    return VirtioMMIOTransport(**params)


def describer(dut):
    """Names byte offsets of ``dut`` for transcripts: registers, config space, doorbells."""
    def describe(offset):
        window = dut.notify_window
        if window and window[0] <= offset < window[1]:
            return f"Doorbell[q{(offset - window[0]) // max(dut.notify_multiplier, 1)}]"
        return dut.regs.describe(offset, config_size=dut.config_size)
    return describe


def run_scenario(*, echo=print, waves=True, name="demo"):
    """Run the scenario; returns ``(transcript, device_model, driver, paths)``."""
    dut = default_transport()
    transcript = Transcript(echo=echo)
    clock = CycleCounter()
    device = DeviceModel(dut.device, config=NET_CONFIG, echo_used=4)
    driver_box = {}

    async def wait_irq(ctx, io, timeout=64):
        for _ in range(timeout):
            if ctx.get(dut.irq):
                io.note(f"irq high at cycle {clock.now}")
                return
            await ctx.tick()
        raise AssertionError("no interrupt")

    async def testbench(ctx):
        io = SimMMIO(ctx, dut.bus, describe=describer(dut), transcript=transcript, clock=clock)
        drv = VirtioMMIODriver(io, notification=True)
        driver_box["driver"] = drv
        await drv.bring_up(queues=[0, 1])

        io.note("read the config in a ConfigGeneration loop: mac, status, mtu")
        mac_low, mac_high, status, mtu = await drv.read_config_fields(
            [(0, 4), (4, 2), (6, 2), (10, 2)])
        io.note(f"mac {mac_low | mac_high << 32:012x}, status {status}, mtu {mtu}")
        io.note("query shared memory region 0")
        region = await drv.get_shm_region(0)
        io.note(f"region 0: {'absent' if region is None else region}")

        for q in (0, 1):
            io.note(f"notify queue {q} at its doorbell {drv.notify_offset(q):#x}; "
                    f"the device answers with a used buffer")
            await drv.notify(q)
            await wait_irq(ctx, io)
            status = await drv.interrupt()
            io.note(f"interrupt handled: InterruptStatus {status:#x}")

        io.note("the device brings the link up: config change")
        device.change_config(6, LINK_UP.to_bytes(2, "little"))
        await wait_irq(ctx, io)
        await drv.interrupt()
        (status,) = await drv.read_config_fields([(6, 2)])
        io.note(f"link status now {status}")

        io.note("tear down")
        await drv.remove()
        for _ in range(4):
            await ctx.tick()

    paths = simulate(dut, testbench, processes=[device.run, clock.run], name=name,
                     traces=transport_traces(dut), waves=waves)
    return transcript, device, driver_box.get("driver"), paths


#: (address, data) the interrupt controller hands out per vector (a GICv3 ITS-like doorbell).
MSI_DOORBELL = 0x0800_1004_0040
MSI_MESSAGES = [(MSI_DOORBELL, 0x20 + vector) for vector in range(3)]


def run_msi_scenario(*, echo=print, waves=True, name="demo-msi"):
    """Run the MSI scenario; returns ``(transcript, intc, driver, paths)``."""
    dut = default_transport(msi="v2")
    transcript = Transcript(echo=echo)
    clock = CycleCounter()
    device = DeviceModel(dut.device, config=NET_CONFIG, echo_used=4)
    intc = InterruptControllerModel(dut.msi)
    driver_box = {}

    async def wait_msi(ctx, io, count=1, timeout=64):
        for _ in range(timeout):
            if len(intc.messages) >= count:
                break
            await ctx.tick()
        for m in intc.messages:
            io.note(f"MSI write at cycle {m.cycle}: {m.data:#x} -> {m.address:#x} "
                    f"(vector {m.data - MSI_MESSAGES[0][1]}); irq {ctx.get(dut.irq)}")
        got = intc.take()
        if len(got) < count:
            raise AssertionError("no MSI")
        return got

    async def testbench(ctx):
        io = SimMMIO(ctx, dut.bus, describe=describer(dut), transcript=transcript, clock=clock)
        drv = VirtioMMIODriver(io, msi="v2")
        driver_box["driver"] = drv
        await drv.bring_up(queues=[0, 1], msi_messages=MSI_MESSAGES)
        for q in (0, 1):
            io.note(f"notify queue {q} at {drv.notify_offset(q):#x}; expect vector {q + 1}")
            await drv.notify(q)
            await wait_msi(ctx, io)
        io.note("the device brings the link up: config change, expect vector 0")
        device.change_config(6, LINK_UP.to_bytes(2, "little"))
        await wait_msi(ctx, io)
        io.note("mask vector 2, the device completes a buffer on queue 1: the message pends")
        await drv.mask(2)
        device.raise_used(1)
        for _ in range(8):
            await ctx.tick()
        io.note(f"messages while masked: {len(intc.messages)}; unmask vector 2")
        await drv.unmask(2)
        await wait_msi(ctx, io)
        io.note("tear down: mask the vectors, stop the queues, DISABLE, reset")
        await drv.free_msi_v2()
        await drv.reset()
        for _ in range(4):
            await ctx.tick()

    paths = simulate(dut, testbench, processes=[device.run, intc.run, clock.run], name=name,
                     traces=transport_traces(dut), waves=waves)
    return transcript, intc, driver_box.get("driver"), paths


SCENARIOS = ("wired", "msi")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quiet", action="store_true", help="print only the summaries")
    parser.add_argument("--scenario", choices=SCENARIOS + ("all",), default="all")
    args = parser.parse_args(argv)
    echo = None if args.quiet else print
    opened = []
    if args.scenario in ("wired", "all"):
        print("== scenario 'wired': Linux virtio_mmio, wired interrupt "
              "(cycle, access, register, value)")
        transcript, device, driver, paths = run_scenario(echo=echo)
        print(f"-- {len(transcript.accesses)} register accesses; device received notifications "
              f"for queues {[n.queue for n in device.notifications]}; "
              f"{driver.state.config_changes} config change(s) handled\n")
        opened.append(paths)
    if args.scenario in ("msi", "all"):
        print("== scenario 'msi': proposal v2 MSI, non-sharing mode")
        transcript, intc, driver, paths = run_msi_scenario(echo=echo)
        print(f"-- {len(transcript.accesses)} register accesses; every interrupt arrived as an "
              f"MSI write\n")
        opened.append(paths)
    for vcd, gtkw in opened:
        print(f"waveform: {vcd}")
        print(f"open it:  gtkwave {vcd} {gtkw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
