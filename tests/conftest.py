"""Fixtures of the test suite: a transport with test defaults, a runner that simulates it against
the device and interrupt controller models, and shared checks.

Every test writes its waveforms (``VIRTIO_WAVES=1``) into a folder of its own,
``build/tests/<test id>/``, so parallel workers (``pytest -n 2``) never share a file.

Tiers (markers are registered in ``pyproject.toml``): ``formal`` runs SymbiYosys, ``fpga`` runs
synthesis or place and route, ``slow`` is any other test over about 10 s, ``verilog`` drives Icarus
Verilog or Verilator, ``gtkwave`` opens GTKWave under Xvfb. The quick tier is
``-m "not slow and not formal and not fpga and not linux"``.
"""

import re

import pytest

from hw import VirtioMMIOTransport
from hw.regmap import CONFIG_OFFSET, Feature, Status
from sim.bus import CycleCounter, SimMMIO
from sim.device import DeviceModel, device_view
from sim.intc import InterruptControllerModel
from sim.waves import BUILD, simulate, transport_traces


@pytest.fixture(autouse=True)
def waves_dir(request, monkeypatch):
    """This test's waveform folder (``sim.waves.waves_dir`` reads ``VIRTIO_WAVES_DIR``)."""
    test_id = request.node.nodeid.removeprefix("tests/")
    folder = BUILD / "tests" / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id)[:200]
    monkeypatch.setenv("VIRTIO_WAVES_DIR", str(folder))
    return folder


def _make(**overrides):
    params = dict(device_id=1, vendor_id=0x1af4, num_queues=2, config_size=16)
    params.update(overrides)
    params.setdefault("queue_size_max", [64, 128] if params["num_queues"] == 2 else 64)
    return VirtioMMIOTransport(**params)


@pytest.fixture
def make():
    """``make(**overrides)``: a :class:`hw.VirtioMMIOTransport` with the suite's defaults (device
    1, vendor 0x1af4, 2 queues of 64 and 128 entries, 16 bytes of config space)."""
    return _make


@pytest.fixture
def run(request):
    """``run(dut, body, ...)``: simulate ``dut`` with a :class:`DeviceModel` and run
    ``body(ctx, io, device)`` to completion, ``io`` a :class:`SimMMIO` on the host bus; with an
    MSI personality, ``body(ctx, io, device, intc)`` with an :class:`InterruptControllerModel` on
    the MSI stream. Waveforms are named after the test. Returns the device model."""
    def run(dut, body, *, config=None, stall=0.0, echo_used=None, seed=0, name=None,
            msi_stall=0.0):
        if config is None:
            config = bytes(range(0x40, 0x40 + dut.config_size))
        device = DeviceModel(dut.device, config=config, stall=stall, echo_used=echo_used,
                             seed=seed)
        clock = CycleCounter()
        processes = [device.run, clock.run]
        extra = ()
        if dut.personality is not None:
            intc = InterruptControllerModel(dut.msi, stall=msi_stall, seed=seed)
            processes.append(intc.run)
            extra = (intc,)
        done = []

        async def testbench(ctx):
            io = SimMMIO(ctx, dut.bus, clock=clock)
            await body(ctx, io, device, *extra)
            done.append(True)

        simulate(dut, testbench, processes=processes, name=name or request.node.name,
                 traces=transport_traces(dut))
        assert done, "testbench did not finish"
        return device
    return run


@pytest.fixture
def undefined_offsets():
    """``undefined_offsets(dut)``: every word offset of the control block that holds no
    register."""
    def undefined_offsets(dut):
        used = {r.word for r in dut.regs}
        return [4 * w for w in range(CONFIG_OFFSET // 4) if w not in used]
    return undefined_offsets


@pytest.fixture
def snapshot():
    """``await snapshot(ctx, io, dut)``: everything the driver can read (without moving
    selectors), the device side (``device.<name>``, :func:`sim.device.device_view`) and the
    wired interrupt."""
    async def snapshot(ctx, io, dut):
        values = {}
        for r in dut.regs:
            if r.access.readable:
                values[r.name] = await io.read(r.offset)
        values.update({f"device.{k}": v for k, v in device_view(ctx, dut.device).items()})
        values["irq"] = ctx.get(dut.irq)
        return values
    return snapshot


class LinuxSequence:
    """The whole Linux driver sequence against a transport, shared by the Wishbone and AXI4-Lite
    driver tests."""

    #: Device features of the transport under test: MAC (5), RING_EVENT_IDX, and bit 30, which
    #: the Linux driver does not know and must not accept.
    FEATURES = 1 << 5 | 1 << Feature.RING_EVENT_IDX | 1 << 30

    async def check(self, ctx, drv, dut, device, *, config, shm_regions=(), queue_size=128):
        """Through the accessor behind ``drv``: bring-up, config reads, SHM queries, a doorbell
        and an interrupt per queue, removal."""
        n = dut.num_queues
        features = await drv.bring_up(queues=range(n), queue_size=queue_size)
        # Linux keeps device bits it knows and the ring bits, drops what it does not know (30).
        assert features & ~(1 << Feature.MMIO_NOTIFICATION) == \
            1 << 5 | 1 << Feature.RING_EVENT_IDX | 1 << Feature.VERSION_1
        assert ctx.get(dut.device.features) == features
        assert await drv.get_status() == (Status.ACKNOWLEDGE | Status.DRIVER |
                                          Status.FEATURES_OK | Status.DRIVER_OK).value
        view = device_view(ctx, dut.device)
        for q in range(n):
            vq = drv.state.queues[q]
            assert (view[f"queue{q}.ready"], view[f"queue{q}.size"], view[f"queue{q}.desc"],
                    view[f"queue{q}.driver"], view[f"queue{q}.device"]) == \
                (1, queue_size, vq.desc, vq.driver, vq.device)
        if config:
            fields = [(0, 4), (4, 2), (6, 1), (8, 8), (len(config) - 4, 4)]
            values = await drv.read_config_fields(fields)
            assert values == [int.from_bytes(config[o:o + s], "little") for o, s in fields]
        for rid, region in enumerate(shm_regions):
            assert await drv.get_shm_region(rid) == region
        assert await drv.get_shm_region(len(shm_regions)) is None
        # Every queue: notify, the device answers, the driver handles the interrupt.
        for q in range(n):
            await drv.notify(q)
            await ctx.tick().repeat(8)
            assert ctx.get(dut.irq)
            assert await drv.interrupt() == 1
            assert not ctx.get(dut.irq)
        assert [note.queue for note in device.notifications] == list(range(n))
        assert all(vq.interrupts == n for vq in drv.state.queues.values())
        await drv.remove()
        assert [ctx.get(dut.device.queues[q].ready) for q in range(n)] == [0] * n


@pytest.fixture
def linux_sequence():
    """A :class:`LinuxSequence`: ``.FEATURES`` to offer, ``await .check(ctx, drv, dut, ...)``."""
    return LinuxSequence()
