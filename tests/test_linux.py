"""Linux in the loop (sim/uml): the kernel's own virtio drivers drive the transport RTL.

Tests marked ``linux`` boot the real User-Mode Linux kernel (built once from Debian's
linux-source-6.1 and cached, sim/uml/kernel.py) against the transport in simulation, with the
virtio-rng device of sim/rng.py behind it. The fault tests at the end start
tests/fake_guest.py in the kernel's place, to send what a working kernel never sends.
"""

import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

from hw.regmap import Feature, MsiCmdV2, RegisterMap, Status
from sim.bus import CycleCounter, SimMMIO, Transcript
from sim.driver import VirtioMMIODriver
from sim.blk import BlkDevice
from sim.console import CONSOLE_DEVICE_ID, RECEIVEQ, TRANSMITQ, ConsoleDevice
from sim.rng import RNG_DEVICE_ID, RngDevice
from sim.scenario import describer
from sim.uml.cosim import (NOTIFY_BASE, NOTIFY_MULTIPLIER, BridgeError, CoSimulation, DeviceStuck,
                           GuestTimeout, StrayMSI, run_linux)
from sim.uml.__main__ import DEFAULT_COMMANDS
from sim.uml.kernel import (FRAGMENT, VARIANTS, KernelBuildError, check_config, fragment_options,
                            kernel)
from sim.uml.protocol import MSI_ADDRESS, MSI_VECTORS, READ, REFUSED
from sim.waves import simulate


linux = pytest.mark.linux


@pytest.fixture(scope="session")
def uml():
    """The kernel binary (built on first use; ``./run test`` builds it before the suite)."""
    return kernel()


@pytest.fixture(scope="session")
def uml_proposal():
    """The same kernel with the project's driver patches (sim/uml/kernel/patches)."""
    return kernel("proposal")


#: Unbind and rebind the driver: teardown, reset, re-probe.
REBIND = ("echo virtio-mmio.0 > /sys/bus/platform/drivers/virtio-mmio/unbind; "
          "echo virtio-mmio.0 > /sys/bus/platform/drivers/virtio-mmio/bind")


#: Unbind and bind the driver 20 times; what the kernel holds for the device (memory regions,
#: interrupts, virtio devices) must be the same afterwards, and the rng must work.
REBIND_20_TIMES = textwrap.dedent("""
    drv=/sys/bus/platform/drivers/virtio-mmio
    state() {
        cut -c1-40 /proc/iomem; awk '{print $1, $NF}' /proc/interrupts
        ls /sys/bus/virtio/devices
    }
    state > /tmp/before
    i=0
    while [ $i -lt 20 ]; do
        echo virtio-mmio.0 > $drv/unbind || exit 10
        [ "$(cat /sys/class/misc/hw_random/rng_current)" = none ] || exit 11
        echo virtio-mmio.0 > $drv/bind || exit 12
        i=$((i + 1))
    done
    state > /tmp/after
    cmp /tmp/before /tmp/after && echo "state: same"
    echo "rng: $(cat /sys/class/misc/hw_random/rng_current)"
    echo "read: $(head -c 256 /dev/hwrng | wc -c)"
""")


def boot(uml, command, **options):
    """Boot kernel ``uml`` (the proposal's driver is asked for when ``uml`` is that variant)."""
    options.setdefault("driver", next(v for v, name in VARIANTS.items() if name == uml.name))
    device = options.pop("device", None) or RngDevice()
    options.setdefault("timeout", 120)
    result = run_linux(device, command, linux=uml, **options)
    return result, device





def lines_of(result, prefix):
    return [line.removeprefix(prefix).strip() for line in result.console.splitlines()
            if line.startswith(prefix)]


def accesses(result, name=None, *, write=None):
    return [a for a in result.transcript.accesses
            if (name is None or a.name == name) and (write is None or a.write == write)]


# --- the real kernel ----------------------------------------------------------------------------

@linux
def test_the_built_kernel_has_every_option_of_the_fragment(uml):
    config = (uml.parent / "config").read_text()
    assert check_config(config) == []
    lines = config.splitlines()
    # What the co-simulation depends on, in the generated .config (not the fragment): MMIO
    # emulation, the unmodified drivers built in, and no host-backed hw_random.
    for option in ("CONFIG_INDIRECT_IOMEM", "CONFIG_VIRTIO_MMIO", "CONFIG_HW_RANDOM_VIRTIO",
                   "CONFIG_UML_TIME_TRAVEL_SUPPORT", "CONFIG_HOSTFS", "CONFIG_64BIT"):
        assert f"{option}=y" in lines
    assert "CONFIG_UML_RANDOM=y" not in lines and "CONFIG_MODULES=y" not in lines
    # The check itself notices an option that did not come out as set.
    assert check_config(config.replace("CONFIG_VIRTIO_MMIO=y", "")) == \
        ["CONFIG_VIRTIO_MMIO: wanted y, got not set"]
    assert fragment_options(FRAGMENT)["CONFIG_UML_RANDOM"] is None


@linux
def test_probe_and_identity_seen_from_the_guest(uml):
    result, _ = boot(uml, textwrap.dedent("""
        d=/sys/bus/virtio/devices/virtio0
        echo "device: $(cat $d/device)"; echo "vendor: $(cat $d/vendor)"
        echo "features: $(cat $d/features)"; echo "driver: $(basename $(readlink $d/driver))"
        echo "rng: $(cat /sys/class/misc/hw_random/rng_current)"
    """))
    assert result.status == 0
    assert lines_of(result, "device:") == [f"{RNG_DEVICE_ID:#06x}"]
    assert lines_of(result, "vendor:") == ["0x1af4"]
    assert lines_of(result, "driver:") == ["virtio_rng"]
    assert lines_of(result, "rng:") == ["virtio_rng.0"]
    # The negotiated features, bit 0 first: VIRTIO_F_VERSION_1 and nothing else.
    (features,) = lines_of(result, "features:")
    assert features == "".join("1" if bit == Feature.VERSION_1 else "0" for bit in range(64))
    # The transport saw the same negotiation: DriverFeatures high word 1, low word 0.
    assert [a.value for a in accesses(result, "DriverFeatures", write=True)] == [1, 0]
    # Status: reset, ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK; at power-off
    # virtio_dev_shutdown resets the device.
    ack, drv, ok = Status.ACKNOWLEDGE.value, Status.DRIVER.value, Status.FEATURES_OK.value
    assert [a.value for a in accesses(result, "Status", write=True)] == \
        [0, ack, ack | drv, ack | drv | ok, ack | drv | ok | Status.DRIVER_OK.value, 0]


@linux
def test_entropy_through_dev_hwrng_is_the_devices_data(uml):
    result, device = boot(uml, "head -c 512 /dev/hwrng | wc -c; "
                               "head -c 64 /dev/hwrng | od -An -v -tx1")
    assert result.status == 0
    count, *hex_lines = [line for line in result.console.splitlines()
                         if re.fullmatch(r"\s*[0-9a-f]{1,3}(\s+[0-9a-f]{2})*\s*", line)]
    assert int(count) == 512
    read = bytes.fromhex("".join(hex_lines))
    assert len(read) == 64
    # What the guest read is a run of what the device wrote into its buffers, not zeros or
    # stale memory; the device filled at least the 576 bytes read.
    assert read in device.produced and read != bytes(64)
    assert device.bytes >= 576 and device.requests > 0 and device.errors == []
    # One interrupt event per request: each notification is answered by one rising edge
    # (not one event per access while the line is high).
    assert result.irq_events == len(accesses(result, "QueueNotify", write=True)) > 0


@linux
def test_unbind_and_bind_20_times_leaks_nothing(uml):
    result, device = boot(uml, REBIND_20_TIMES)
    assert result.status == 0, result.console[-2000:]
    assert lines_of(result, "state:") == ["same"]
    assert lines_of(result, "rng:") == ["virtio_rng.0"]
    assert lines_of(result, "read:") == ["256"]
    # 21 probes, each after a reset; 20 removals: reset, then the queue torn down.
    assert len(accesses(result, "MagicValue")) == 21
    resets = [i for i, a in enumerate(result.transcript.accesses)
              if a.name == "Status" and a.write and a.value == 0]
    assert len(resets) == 21 + 20 + 1           # and virtio_dev_shutdown's at power-off
    assert len([a for a in accesses(result, "QueueReady", write=True) if a.value == 0]) == 20
    assert len([a for a in accesses(result, "QueueReady", write=True) if a.value == 1]) == 21
    assert device.errors == []
    assert "WARNING" not in result.console and "BUG" not in result.console


@linux
@pytest.mark.parametrize("personality, offered", [
    ({"msi": "v2"}, {Feature.MMIO_MSI}),
    ({"notify": True}, {Feature.MMIO_NOTIFICATION}),
    ({"msi": "v2", "notify": True}, {Feature.MMIO_MSI, Feature.MMIO_NOTIFICATION}),
], ids=["msi-v2", "notify", "msi-v2-notify"])
def test_each_personality_works_with_mainline(uml, personality, offered):
    result, device = boot(uml, "head -c 128 /dev/hwrng | wc -c", **personality)
    assert result.status == 0
    assert "128" in result.console.splitlines()
    # Exactly these bits are offered beyond VERSION_1 (DeviceFeatures with DeviceFeaturesSel 1)
    high = accesses(result, "DeviceFeatures")[0]
    assert high.value == 1 << (Feature.VERSION_1 - 32) | sum(1 << (bit - 32) for bit in offered)
    # ... and mainline Linux, which does not know bits 39 and 40, does not accept it.
    assert accesses(result, "DriverFeatures", write=True)[0].value == 1 << (Feature.VERSION_1 - 32)
    # Mainline rings QueueNotify, never a per-queue doorbell, and takes the wired interrupt.
    assert accesses(result, "QueueNotify", write=True)
    assert not any(a.name.startswith("Doorbell") for a in result.transcript.accesses)
    assert result.irq_events > 0 and device.errors == []


@linux
def test_the_same_command_gives_the_same_transcript(uml):
    command = "head -c 1024 /dev/hwrng > /dev/null; echo virtio-mmio.0 > " \
              "/sys/bus/platform/drivers/virtio-mmio/unbind"
    first, _ = boot(uml, command)
    second, _ = boot(uml, command)
    assert first.status == second.status == 0
    assert first.transcript.accesses == second.transcript.accesses
    assert first.cycles == second.cycles and first.accesses > 100


def _model_transcript(msi=None, sharing=False):
    """sim/driver.py's sequence (mainline, or the ``msi`` series) against the same transport:
    bring-up, removal, bring-up, shutdown (what a probe, an unbind, a bind and a power-off do),
    in plain simulation, with the MSI messages the bridge composes (vector v: data v)."""
    device = RngDevice()
    dut = device.transport(msi=msi, **({"msi_sharing": True} if sharing else {}))
    transcript, clock = Transcript(), CycleCounter()
    messages = None if msi is None else [(MSI_ADDRESS, 0), (MSI_ADDRESS, 1)]

    async def testbench(ctx):
        io = SimMMIO(ctx, dut.bus, describe=describer(dut), transcript=transcript, clock=clock)
        drv = VirtioMMIODriver(io, msi=msi)
        await drv.bring_up(queues=[0], driver_supports=0, msi_messages=messages)
        await drv.remove()
        await drv.bring_up(queues=[0], driver_supports=0, msi_messages=messages)
        await drv.shutdown()

    simulate(dut, testbench, background=[clock.run], name=f"linux_model_sequence_{msi}")
    return transcript


#: Accesses the device's traffic makes (requests and their interrupts) and ring addresses,
#: which the model places elsewhere: compared by name only.
_TRAFFIC = {"QueueNotify", "InterruptStatus", "InterruptACK"}
_ADDRESSES = re.compile(r"Queue(Desc|Driver|Device)(Low|High)")


def _comparable(transcript):
    return [(a.write, a.name, None if _ADDRESSES.fullmatch(a.name) else a.value)
            for a in transcript.accesses if a.name not in _TRAFFIC]


@linux
def test_the_real_drivers_transcript_is_the_models(uml):
    result, _ = boot(uml, REBIND)
    assert result.status == 0
    assert _comparable(result.transcript) == _comparable(_model_transcript())


@linux
def test_waves_of_a_linux_run(uml, waves_dir):
    result, _ = boot(uml, "head -c 64 /dev/hwrng > /dev/null", waves=True)
    vcd, gtkw = result.waves
    assert vcd.parent == waves_dir and vcd.name == "linux-rng.vcd" and gtkw.exists()
    text = vcd.read_text()
    assert re.search(r"^\$var wire 10 \S+ bus__adr \$end$", text, re.M)
    assert re.search(r"^\$var wire 1 \S+ irq \$end$", text, re.M)
    # The dump covers the whole run: its last timestamp is the last simulated cycle's
    # (timescale 1 fs, 10 ns per cycle).
    assert "$timescale 1 fs $end" in text
    last = max(int(t) for t in re.findall(r"^#(\d+)$", text, re.M))
    assert last >= result.cycles * 10_000_000


@linux
def test_a_closed_access_channel_stops_the_guest_with_a_message(uml):
    """The simulation side goes away mid-run: the bridge panics, naming the access it was
    doing, and the run ends with that message instead of a hang."""

    class Closing(CoSimulation):
        def _receive(self):
            msg = super()._receive()
            if msg is not None and len(self.transcript.accesses) == 10:
                self._sock.close()
                raise BridgeError("closed on purpose")
            return msg

    started = time.monotonic()
    with pytest.raises(BridgeError, match="closed on purpose") as info:
        Closing(RngDevice(), "true", linux=uml, timeout=60).run()
    assert time.monotonic() - started < 30
    assert re.search(r"Kernel panic - not syncing: virtio-sim: the simulation closed the access "
                     r"channel during a (read|write) at 0x[0-9a-f]+", info.value.console)


@linux
def test_run_linux_prints_the_console_and_exits_with_the_commands_status(uml):
    """The README's command (``./run linux`` is ``python -m sim.uml``)."""
    command = "cat /sys/class/misc/hw_random/rng_current; head -c 512 /dev/hwrng | wc -c; exit 3"
    done = subprocess.run([sys.executable, "-m", "sim.uml", "--transcript", "--run", command],
                          capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert "virtio_rng.0" in lines and "512" in lines
    assert any(re.fullmatch(r"\s+0  R32 0x0000 MagicValue +-> 0x74726976", line) for line in lines)
    assert re.search(r"\[linux\] mainline driver; exit status 3; .* register accesses", done.stderr)


#: Open the console, write a prompt, read the line the host types in reply.
CONSOLE_DIALOGUE = textwrap.dedent("""
    exec 3<>/dev/hvc0
    echo "hello from the guest" >&3
    read -r line <&3
    echo "the host typed: $line"
""")


@linux
@pytest.mark.parametrize("msi", [None, "v2"], ids=["wired", "msi-v2"])
def test_virtio_blk_on_the_engine_formats_mounts_and_reads_back(uml, uml_proposal, msi):
    """The kernel's virtio_blk driver on the RTL engine and blk device: mkfs, mount, write,
    unmount, drop the caches, mount again and compare (``./run linux --device blk``)."""
    device = BlkDevice()
    result, _ = boot(uml_proposal if msi else uml, DEFAULT_COMMANDS["blk"], device=device,
                     msi=msi, timeout=900)
    assert result.status == 0, result.console[-2000:]
    assert "virtio0: device 0x0002 driver virtio_blk" in result.console
    assert "vda: 2048 sectors, serial amaranth-virtio-blk" in result.console
    written, read = lines_of(result, "written:"), lines_of(result, "read back:")
    assert written == read and len(written) == 1
    assert "compare: identical" in result.console
    assert device.errors == []
    # What Linux wrote is on the device's disk: the ext2 superblock magic, and the file's
    # first block (block-aligned in ext2).
    image = bytes(device.disk.image)
    assert image[1024 + 56:1024 + 58] == b"\x53\xef"
    numbers = "".join(f"{n}\n" for n in range(1, 20001)).encode()
    position = image.find(numbers[:1024])
    assert position > 0 and position % 1024 == 0
    assert device.disk.writes > len(numbers) // 4
    if msi:
        assert result.irq_events == 0 and len(result.msi) > 0
    else:
        assert result.irq_events > 0 and result.msi == []


@linux
def test_console_device_carries_a_line_each_way(uml):
    """A second device through the same interface: virtio-console, two queues."""
    device = ConsoleDevice(input=b"hello from the host\n")
    result, _ = boot(uml, CONSOLE_DIALOGUE, device=device)
    assert result.status == 0, result.console[-1500:]
    assert lines_of(result, "the host typed:") == ["hello from the host"]
    # What the guest wrote, then the tty's echo of what the host typed.
    assert bytes(device.output) == b"hello from the guest\r\nhello from the host\r\n"
    assert accesses(result, "DeviceID")[0].value == CONSOLE_DEVICE_ID and device.errors == []


# --- the proposal's driver side (sim/uml/kernel/patches) ------------------------------------------

@linux
def test_the_proposal_driver_rings_the_queues_own_doorbell(uml_proposal):
    result, device = boot(uml_proposal, "head -c 256 /dev/hwrng | wc -c; "
                                        "cat /sys/bus/virtio/devices/virtio0/features",
                          notify=True)
    assert result.status == 0 and "256" in result.console.splitlines()
    (features,) = [line for line in result.console.splitlines() if re.fullmatch("[01]{64}", line)]
    assert features[Feature.MMIO_NOTIFICATION] == "1" and features[Feature.MMIO_MSI] == "0"
    # The driver read the notification structure once, before setting up the queue ...
    structure = accesses(result, "QueueNotify", write=False)
    assert [a.value for a in structure] == [NOTIFY_MULTIPLIER << 16 | NOTIFY_BASE]
    assert structure[0].cycle < accesses(result, "QueueSel")[0].cycle
    # ... and then rang queue 0 at notify_base, never at QueueNotify.
    rings = accesses(result, "Doorbell[q0]", write=True)
    assert len(rings) == result.irq_events > 0 and {a.offset for a in rings} == {NOTIFY_BASE}
    assert accesses(result, "QueueNotify", write=True) == []
    assert device.errors == []


@linux
def test_with_two_queues_each_rings_its_own_doorbell(uml_proposal):
    result, device = boot(uml_proposal, CONSOLE_DIALOGUE, notify=True,
                          device=ConsoleDevice(input=b"typed\n"))
    assert result.status == 0 and lines_of(result, "the host typed:") == ["typed"]
    for queue in (RECEIVEQ, TRANSMITQ):
        rings = accesses(result, f"Doorbell[q{queue}]", write=True)
        assert rings and {(a.offset, a.value) for a in rings} == \
            {(NOTIFY_BASE + queue * NOTIFY_MULTIPLIER, queue)}
    assert accesses(result, "QueueNotify", write=True) == [] and device.errors == []


@linux
def test_with_two_queues_each_has_its_own_vector(uml_proposal):
    result, device = boot(uml_proposal, CONSOLE_DIALOGUE + "cat /proc/interrupts\n", msi="v2",
                          device=ConsoleDevice(input=b"typed\n"))
    assert result.status == 0 and lines_of(result, "the host typed:") == ["typed"]
    counts = interrupts(result)
    assert counts["virtio0-config"] == 0
    assert counts["virtio0-input"] > 0 and counts["virtio0-output"] > 0
    # The bridge's MSI domain numbers vectors 0, 1, 2: config, receiveq, transmitq.
    assert {data for _, data in result.msi} == {1, 2} and result.irq_events == 0


@linux
def test_the_proposal_driver_refuses_a_doorbell_structure_of_zero(uml_proposal):
    """A device that offers bit 39 but reads QueueNotify as 0 (here the simulation answers
    so): every kick would ring MagicValue, so the driver sets up no queue (D17b)."""
    queue_notify = RegisterMap()["QueueNotify"].offset

    class ZeroStructure(CoSimulation):
        async def _access(self, io, msg):
            value = await super()._access(io, msg)
            return 0 if msg.op == READ and msg.offset == queue_notify else value

    result = ZeroStructure(RngDevice(), "ls /sys/class/misc/hw_random/; true", notify=True,
                           driver="proposal", linux=uml_proposal, timeout=60).run()
    assert result.status == 0
    assert "virtio0: doorbells at 0x0 + i * 0x0 for 1 queues are not in the window" in \
        result.console
    assert accesses(result, "QueueSel") == [] and accesses(result, "Doorbell[q0]") == []


@linux
@pytest.mark.parametrize("personality", [{"notify": True}, {"msi": "v2"}, {"msi": "v1"}],
                         ids=["notify", "msi-v2", "msi-v1"])
def test_the_proposal_is_opt_in(uml, uml_proposal, personality):
    """Without virtio_mmio.proposal=1 the patched driver takes bits 39 and 40 for what virtio
    1.2 calls them, which 6.1 does not implement, and refuses Version 3: it is mainline."""
    command = "head -c 64 /dev/hwrng | wc -c; echo virtio-mmio.0 > " \
              "/sys/bus/platform/drivers/virtio-mmio/unbind; true"
    mainline, _ = boot(uml, command, **personality)
    patched, _ = boot(uml_proposal, command, driver="mainline", **personality)
    assert patched.status == mainline.status == 0
    assert patched.transcript.accesses == mainline.transcript.accesses


@linux
def test_the_proposal_driver_is_mainline_when_nothing_is_offered(uml, uml_proposal):
    command = "head -c 512 /dev/hwrng > /dev/null; echo virtio-mmio.0 > " \
              "/sys/bus/platform/drivers/virtio-mmio/unbind"
    mainline, _ = boot(uml, command)
    proposal, _ = boot(uml_proposal, command)
    assert proposal.status == mainline.status == 0
    assert proposal.transcript.accesses == mainline.transcript.accesses


def interrupts(result):
    """``/proc/interrupts`` as the guest printed it: ``{name: count}`` (the last column is the
    action's name)."""
    counts = {}
    for line in result.console.splitlines():
        fields = line.split()
        if len(fields) >= 4 and re.fullmatch(r"\d+:", fields[0]) and fields[1].isdigit():
            counts[fields[-1]] = int(fields[1])
    return counts


#: MSI mapping modes: the transport's msi_sharing, and the name of the queue's interrupt.
MODES = pytest.mark.parametrize("sharing, queue_irq", [(False, "virtio0-input"),
                                                       (True, "virtio0-virtqueues")],
                                ids=["non-sharing", "sharing"])


@linux
@MODES
def test_msi_v2_traffic_arrives_on_the_queue_vector(uml_proposal, sharing, queue_irq):
    result, device = boot(uml_proposal, "head -c 512 /dev/hwrng | wc -c; cat /proc/interrupts",
                          msi="v2", sharing=sharing)
    assert result.status == 0 and "512" in result.console.splitlines()
    counts = interrupts(result)
    # Named as virtio-pci names them; no configuration change, so vector 0 counts nothing.
    assert counts["virtio0-config"] == 0
    assert 0 < counts[queue_irq] <= len(result.msi)
    # The wired interrupt is not used: no IRQ event, and virtio_mmio did not request it.
    assert result.irq_events == 0 and "virtio0" not in counts
    # One message per request, every one the queue vector's (the bridge numbers vector 0, the
    # configuration vector, 0 and the queue vector 1 in its MSI domain).
    assert len(result.msi) == len(accesses(result, "QueueNotify", write=True))
    assert set(result.msi) == {(MSI_ADDRESS, 1)}
    commands = [a.value for a in accesses(result, "MsiCmd", write=True)]
    assert commands[:2] == [MsiCmdV2.CONFIGURE.value] * 2 and MsiCmdV2.ENABLE.value in commands
    assert (MsiCmdV2.MAP_QUEUE.value in commands) == sharing
    assert device.errors == []


@linux
@pytest.mark.parametrize("msi", ["v2", "v1"])
def test_msi_masking_loses_no_completion(uml_proposal, msi):
    """disable_irq() on the queue's vector: with v2 it is masked at the device, which holds the
    completion that comes meanwhile (pending) and delivers it on enable_irq(); v1 has no mask,
    the message arrives while the interrupt is disabled and the bridge's MSI chip sends it
    again when it is enabled (irq_retrigger)."""
    result, _ = boot(uml_proposal, textwrap.dedent("""
        irq=$(awk '/virtio0-input/ {sub(":", "", $1); print $1}' /proc/interrupts)
        hooks=/sys/module/virtio_sim/parameters
        echo $irq > $hooks/disable_irq
        head -c 4096 /dev/hwrng > /tmp/data &
        reader=$!
        sleep 2
        echo "disabled: $(wc -c < /tmp/data)"
        echo $irq > $hooks/enable_irq
        wait $reader
        echo "enabled: $(wc -c < /tmp/data)"
    """), msi=msi)
    assert result.status == 0
    assert lines_of(result, "disabled:") == ["0"] and lines_of(result, "enabled:") == ["4096"]
    assert result.irq_events == 0
    if msi == "v1":
        return
    commands = [(a.cycle, a.value) for a in accesses(result, "MsiCmd", write=True)]
    masks = [cycle for cycle, value in commands if value == MsiCmdV2.MASK.value]
    unmasks = [cycle for cycle, value in commands if value == MsiCmdV2.UNMASK.value]
    # MASK at disable_irq, before the request; UNMASK at enable_irq, after it.
    assert len(masks) == 1 and masks[0] < accesses(result, "QueueNotify", write=True)[-1].cycle
    assert unmasks[-1] > masks[0]


@linux
def test_msi_v2_unbind_and_bind_20_times_leaks_nothing(uml_proposal):
    result, device = boot(uml_proposal, REBIND_20_TIMES, msi="v2")
    assert result.status == 0, result.console[-2000:]
    assert lines_of(result, "state:") == ["same"] and lines_of(result, "read:") == ["256"]
    commands = [a.value for a in accesses(result, "MsiCmd", write=True)]
    assert commands.count(MsiCmdV2.ENABLE.value) == 21
    assert commands.count(MsiCmdV2.DISABLE.value) == 20        # never the 2020 series' ENABLE
    assert result.irq_events == 0 and device.errors == []


@linux
def test_msi_v2_falls_back_to_the_wired_interrupt_without_enough_vectors(uml_proposal):
    result, _ = boot(uml_proposal, "head -c 256 /dev/hwrng | wc -c; cat /proc/interrupts",
                     msi="v2", sharing=True, vectors=1)
    assert result.status == 0 and "256" in result.console.splitlines()
    assert "virtio0: no MSI (error -28): using the wired interrupt" in result.console
    assert result.msi == [] and result.irq_events > 0 and interrupts(result)["virtio0"] > 0
    assert accesses(result, "MsiCmd", write=True) == []


@linux
@MODES
def test_the_real_msi_drivers_transcript_is_the_models(uml_proposal, sharing, queue_irq):
    result, _ = boot(uml_proposal, REBIND, msi="v2", sharing=sharing)
    assert result.status == 0
    assert _comparable(result.transcript) == _comparable(_model_transcript("v2", sharing))


@linux
def test_a_stray_msi_message_stops_the_guest_with_a_message(uml_proposal):
    """An MSI message that no vector of the guest has is an error in the bridge too (here the
    simulation side is made to pass one on)."""

    class Stray(CoSimulation):
        def _deliver_msi(self, io):
            if self.msi_delivered:
                self._msi_out[:] = [(MSI_ADDRESS, MSI_VECTORS - 1)]
                self._msi_configured.add(self._msi_out[0])
            super()._deliver_msi(io)

    with pytest.raises(BridgeError, match="before the command finished") as info:
        Stray(RngDevice(), "head -c 256 /dev/hwrng > /dev/null", msi="v2", driver="proposal",
              linux=uml_proposal, timeout=60).run()
    assert f"virtio-sim: the device wrote MSI data {MSI_VECTORS - 1:#x} to {MSI_ADDRESS:#x}, " \
        f"a message no vector of the guest has" in info.value.console


@linux
def test_msi_v1_traffic_arrives_on_the_queue_vector(uml_proposal):
    result, device = boot(uml_proposal, "head -c 512 /dev/hwrng | wc -c; cat /proc/interrupts",
                          msi="v1")
    assert result.status == 0 and "512" in result.console.splitlines()
    counts = interrupts(result)
    assert counts["virtio0-config"] == 0 and 0 < counts["virtio0-input"] <= len(result.msi)
    assert result.irq_events == 0 and "virtio0" not in counts
    assert len(result.msi) == len(accesses(result, "QueueNotify", write=True))
    assert set(result.msi) == {(MSI_ADDRESS, 1)}
    # Version 3: the structure read, msi_enabled set last by read-modify-write of MsiStatus.
    assert accesses(result, "Version")[0].value == 3
    status_writes = accesses(result, "MsiStatus", write=True)
    assert status_writes[0].value >> 15 == 1
    assert status_writes[0].cycle > accesses(result, "QueueReady", write=True)[0].cycle
    assert device.errors == []


@linux
def test_mainline_does_not_probe_a_version_3_device(uml):
    result, _ = boot(uml, "ls /sys/bus/virtio/devices | wc -l", msi="v1")
    assert result.status == 0
    assert "virtio-mmio virtio-mmio.0: Version 3 not supported!" in result.console
    assert "0" in result.console.splitlines()
    assert [a.name for a in result.transcript.accesses] == ["MagicValue", "Version"]


@linux
def test_the_real_v1_drivers_transcript_is_the_models(uml_proposal):
    result, _ = boot(uml_proposal, REBIND, msi="v1")
    assert result.status == 0
    assert _comparable(result.transcript) == _comparable(_model_transcript("v1"))


def test_an_msi_message_the_guest_never_configured_is_an_error():
    cosim = CoSimulation(RngDevice(), "true", msi="v2")
    cosim._msi_configured.add((MSI_ADDRESS, 1))
    cosim._msi_out.append((MSI_ADDRESS, 2))
    with pytest.raises(StrayMSI, match=r"the device sent MSI data 0x2 to 0xfee00000, which the "
                                       r"guest never configured \(last access: none\)"):
        cosim._deliver_msi(None)


# --- faults, with tests/fake_guest.py in the kernel's place --------------------------------------

@pytest.fixture
def fake_guest(tmp_path):
    script = tmp_path / "fake-linux"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} "
                      f"{os.path.join(os.path.dirname(__file__), 'fake_guest.py')} \"$@\"\n")
    script.chmod(0o755)

    def run(behaviour, **options):
        options.setdefault("timeout", 20)
        return CoSimulation(options.pop("device", None) or RngDevice(), behaviour,
                            linux=script, **options).run()
    return run


@pytest.mark.parametrize("behaviour, message", [
    ("truncated", r"truncated message on the access channel: 6 of 24 bytes"),
    ("oversized", r"oversized message on the access channel: more than 24 bytes"),
    ("unknown-op", r"malformed op 9 .*: not a read or a write"),
    ("bad-size", r"malformed read .*size 3 is not one of \(1, 2, 4, 8\)"),
    ("misaligned", r"malformed read .*offset 0x2 is not aligned to its size 4"),
    ("too-wide", r"malformed write .*value 0x100 does not fit 1 bytes"),
    ("second-hello", r"malformed hello .*a second hello"),
    ("read-first", r"first message is read .*not a version 1 hello"),
    ("exit-before-hello", r"Linux exited \(status 0\) before the bridge said hello"),
    ("quit-early", r"Linux stopped \(exit status 0\) before the command finished"),
])
def test_a_bad_message_is_an_error_not_a_hang(fake_guest, behaviour, message):
    started = time.monotonic()
    with pytest.raises(BridgeError, match=message) as info:
        fake_guest(behaviour)
    assert time.monotonic() - started < 15
    # The guest is told (REFUSED) where it still listens for an answer.
    refused = {"read-first": f"reply Message(op={READ}, size={REFUSED}, offset=0, value=0)",
               "truncated": None, "oversized": None, "exit-before-hello": None,
               "quit-early": None}
    expected = refused.get(behaviour, "reply REFUSED")
    if expected is not None:
        assert expected in info.value.console.splitlines()


def test_a_silent_guest_times_out_naming_what_was_awaited(fake_guest):
    started = time.monotonic()
    with pytest.raises(GuestTimeout, match=r"did not finish within 2 s \(waiting for its next "
                                           r"request or power-off; 0 accesses so far, the "
                                           r"last: none\)"):
        fake_guest("silent", timeout=2)
    assert time.monotonic() - started < 10


def test_a_device_that_never_completes_is_reported(fake_guest):
    class Stuck(RngDevice):
        idle = False                            # always busy, never done

    offset = RegisterMap()["QueueNotify"].offset
    started = time.monotonic()
    with pytest.raises(DeviceStuck, match=rf"device rng still busy 500 cycles after the guest's "
                                          rf"write at {offset:#x} \(QueueNotify\): it never "
                                          rf"completes"):
        fake_guest("kick", device=Stuck(), work_limit=500)
    assert time.monotonic() - started < 5


def test_interrupt_events_rise_with_the_line_and_precede_the_answer(fake_guest):
    """D16a: an event when the line rises, sent before the answer to the access that raised it;
    none for an access while it stays high; one more for an InterruptACK that leaves it high."""
    result = fake_guest("irq-rules")
    assert result.status == 0, result.console
    counts = {line.split(":")[0]: line.split(":", 1)[1].strip()
              for line in result.console.splitlines() if ":" in line}
    assert (counts["before kick"], counts["kick"], counts["status read"], counts["ack nothing"],
            counts["ack used"]) == ("0", "1", "0", "1", "0")
    assert counts["used"] == "[(0, 16)]" and result.irq_events == 2


def test_an_access_outside_the_window_gets_the_transports_answer(fake_guest):
    result = fake_guest("outside")
    assert result.status == 0 and result.outside == 2
    assert "reply 0x74726976" in result.console                 # MagicValue, inside
    assert result.console.count("reply 0x0") == 2               # read 0, write acknowledged
    assert [a.name for a in result.transcript.accesses] == ["MagicValue"]


def test_a_64_bit_access_is_two_32_bit_ones(fake_guest):
    result = fake_guest("read-magic-64")
    assert "magic64 0x274726976" in result.console              # Version 2 : MagicValue
    assert [a.name for a in result.transcript.accesses] == ["MagicValue", "Version"]


def test_personality_and_driver_are_checked():
    with pytest.raises(ValueError, match=r"msi must be one of \[None, 'v2', 'v1'\], not 'v3'"):
        CoSimulation(RngDevice(), "true", msi="v3")
    with pytest.raises(ValueError, match=r"driver must be one of \['mainline', 'proposal'\], "
                                         r"not 'v1'"):
        CoSimulation(RngDevice(), "true", driver="v1")
    with pytest.raises(ValueError, match=r"variant must be one of \['mainline', 'proposal'\]"):
        kernel("v1")


def test_waiting_for_another_kernel_build_is_bounded(tmp_path, monkeypatch):
    import fcntl

    import sim.uml.kernel as kernel_module
    monkeypatch.setattr(kernel_module, "LOCK_TIMEOUT", 1)
    path = tmp_path / ".lock"
    with open(path, "w") as held, open(path, "w") as waiting:
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(KernelBuildError, match=r"another process has been building the "
                                                   r"kernel for over 1 s"):
            kernel_module._lock(waiting)
        assert time.monotonic() - started < 5
