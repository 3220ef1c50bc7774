"""Simulation harness: one place that builds a simulator, runs testbenches and writes waveforms.

Waveforms are written when asked for: by the scenario always, by tests when the environment
variable ``VIRTIO_WAVES`` is set (``VIRTIO_WAVES=1 ./run test``). They go to ``build/`` (ignored by
git) as ``NAME.vcd`` plus ``NAME.gtkw``, a GTKWave save file with the signals grouped by interface
and zoomed to fit the whole run.
"""

import math
import os
import re
from pathlib import Path

from amaranth.sim import Simulator

from .bus import CycleCounter


__all__ = ["BUILD", "CLOCK_PERIOD", "members", "transport_traces", "simulate", "waves_requested",
           "zoom_to_fit"]

#: Ignored build folder at the top of the checkout.
BUILD = Path(__file__).resolve().parent.parent / "build"

#: Simulated clock period in seconds (100 MHz).
CLOCK_PERIOD = 10e-9

#: GTKWave's Zoom_Best_Fit for a dump ending at time T (in dump units), in a window of the size
#: written below, is ``_BEST_FIT_OFFSET - log2(T)``: measured with GTKWave 3.3.118 on dumps of
#: 8e7, 1.69e9 and 8.07e9 fs. A slightly smaller offset leaves a margin on the right.
_BEST_FIT_OFFSET = 2.09
_MARGIN = 0.1


def waves_requested():
    return bool(os.environ.get("VIRTIO_WAVES"))


def members(interface):
    """The signals of an interface object, flat (one GTKWave group instead of nested ones)."""
    return [value for _, _, value in interface.signature.flatten(interface)]


def transport_traces(transport):
    """Trace groups for a :class:`hw.VirtioMMIOTransport`: host bus, interrupt, device side,
    MSI, queues."""
    dev = transport.device
    traces = {
        "host bus": members(transport.bus),
        "interrupt": [transport.irq],
        "device status": [dev.status, dev.features, dev.reset, dev.config_change,
                          dev.needs_reset],
        "config port": members(dev.config),
        "notifications": members(dev.notify),
    }
    if transport.personality is not None:
        traces["MSI"] = members(transport.msi)
    traces["queues"] = members(dev.queues)
    return traces


def zoom_to_fit(gtkw_path, vcd_path):
    """Add a window size and a zoom level that shows the whole VCD to a GTKWave save file
    (Amaranth writes none, so GTKWave would open at femtoseconds)."""
    end = 0
    with open(vcd_path, "rb") as f:
        f.seek(max(0, os.path.getsize(vcd_path) - 65536))
        for match in re.finditer(rb"^#(\d+)", f.read(), re.MULTILINE):
            end = int(match.group(1))
    zoom = _BEST_FIT_OFFSET - _MARGIN - math.log2(max(end, 2))
    text = Path(gtkw_path).read_text()
    header = (f"[timestart] 0\n[size] 1500 800\n[pos] -1 -1\n"
              f"*{zoom:.6f} 0 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 "
              f"-1 -1 -1\n[sst_width] 250\n[signals_width] 250\n")
    text = re.sub(r"^(\[dumpfile_size\].*\n)", lambda m: m.group(1) + header, text, count=1,
                  flags=re.MULTILINE)
    Path(gtkw_path).write_text(text)


def simulate(dut, testbench, *, processes=(), background=(), name=None, traces=(), waves=None,
             deadline=None):
    """Simulate ``dut`` with a clock, run ``testbench(ctx)`` to completion.

    Parameters
    ----------
    processes : iterable of async callables
        Added with ``add_process`` (models of the outside world).
    background : iterable of async callables
        Added with ``add_testbench(..., background=True)``.
    name : str
        Waveform file stem.
    waves : bool or None
        Write waveforms; ``None`` means "if ``VIRTIO_WAVES`` is set".
    deadline : float or None
        Stop the simulation after this many seconds of simulated time (a hang guard).

    Returns the (vcd, gtkw) paths when waveforms were written, else ``None``.
    """
    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    for process in processes:
        sim.add_process(process)
    for process in background:
        sim.add_testbench(process, background=True)
    sim.add_testbench(testbench)

    def run():
        if deadline is None:
            sim.run()
        else:
            sim.run_until(deadline)

    if waves is None:
        waves = waves_requested()
    if not waves:
        run()
        return None
    BUILD.mkdir(exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "sim")
    vcd, gtkw = BUILD / f"{stem}.vcd", BUILD / f"{stem}.gtkw"
    with sim.write_vcd(str(vcd), str(gtkw), traces=traces):
        run()
    zoom_to_fit(gtkw, vcd)
    return vcd, gtkw


__all__.append("CycleCounter")
