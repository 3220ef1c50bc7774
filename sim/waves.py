"""Simulation harness: one place that builds a simulator, runs testbenches and writes waveforms.

Waveforms are written when asked for: by the scenario always, by tests when the environment
variable ``VIRTIO_WAVES`` is set (``VIRTIO_WAVES=1 ./run test``). They go to ``build/`` (ignored by
git; the test suite uses one folder per test under ``build/tests/``, see :func:`waves_dir`) as
``NAME.vcd`` plus ``NAME.gtkw``, a GTKWave save file with the signals grouped by interface
and zoomed to fit the whole run.

Registers and commands show by name: :func:`transport_traces` returns its groups together with
GTKWave translate filters, made from the register map, for the host bus address
(:func:`address_filter`) and, with MSI, for the MSI controller's command (:func:`command_filter`);
:func:`simulate` writes each filter next to the save file and attaches it to its trace
(:func:`apply_filters`, by the trace's full hierarchical name). In GTKWave, a trace line preceded
by ``^1 <file>`` with the translate flag in its ``@`` flags shows the filter's names instead of
values; a filter line is ``<value> <name>`` with the value spelled exactly as GTKWave displays it
(hex digits zero-padded to the width of the signal), so the filters write every padding up to the
width they are made for.
"""

import math
import os
import re
from pathlib import Path

from amaranth.sim import Simulator


__all__ = ["BUILD", "CLOCK_PERIOD", "DEFAULT_CYCLES", "SimulationTimeout", "members",
           "transport_traces", "simulate", "waves_requested", "waves_dir",
           "zoom_to_fit", "zoom_level", "Traces", "address_filter", "transport_filter",
           "command_filter", "apply_filters", "trace_names",
           "screenshot", "SCREEN", "TR_HEX", "TR_RJUSTIFY", "TR_FTRANSLATED"]

#: Ignored build folder at the top of the checkout.
BUILD = Path(__file__).resolve().parent.parent / "build"

#: Simulated clock period in seconds (100 MHz).
CLOCK_PERIOD = 10e-9

#: Cycle bound of :func:`simulate` unless a caller passes another: over three times the longest
#: simulation of the test suite (about 60 000 cycles: tests/test_host.py's MSI command over the
#: simulated serial line).
DEFAULT_CYCLES = 200_000

#: GTKWave's Zoom_Best_Fit for a dump ending at time T (in dump units), in a window of the size
#: written below, is ``_BEST_FIT_OFFSET - log2(T)``: measured with GTKWave 3.3.118 on dumps of
#: 8e7, 1.69e9 and 8.07e9 fs. A slightly smaller offset leaves a margin on the right.
_BEST_FIT_OFFSET = 2.09
_MARGIN = 0.1

#: GTKWave trace flags (``@`` lines of a save file; analyzer.h). TR_FTRANSLATED was checked by
#: saving a file from GTKWave 3.3.118 after ``installFileFilter``: it wrote ``@2023`` (translated,
#: right-justified, hex, highlighted) and ``^1 <filter file>`` before the trace.
TR_HEX = 0x2
TR_RJUSTIFY = 0x20
TR_FTRANSLATED = 0x2000


def waves_requested():
    return bool(os.environ.get("VIRTIO_WAVES"))


def members(interface):
    """The signals of an interface object, flat (one GTKWave group instead of nested ones)."""
    return [value for _, _, value in interface.signature.flatten(interface)]


class Traces(dict):
    """Trace groups (``{group name: [signals]}``, what ``write_vcd`` takes) plus translate filters.

    Parameters
    ----------
    filters : list of (Signal, str)
        GTKWave translate filter file contents, with the signal they apply to.
    """
    def __init__(self, *args, filters=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.filters = list(filters)


def address_filter(regs, addr_width, *, shift=2, config_size=0, doorbells=()):
    """A GTKWave translate filter naming the registers of ``regs`` on an address bus.

    Parameters
    ----------
    regs : hw.regmap.RegisterMap
    addr_width : int
        Width of the address signal; sets the hex paddings written.
    shift : int
        2 for a word address (Wishbone ``adr``), 0 for a byte address (AXI4-Lite ``araddr``).
    config_size : int
        Bytes of config space to name ``Config+0x..``.
    doorbells : iterable of (offset, name)
        Extra names (per-queue doorbells). A register at the same address wins.

    Returns the file's text: one ``<hex value> <name>`` line per value and padding.
    """
    from hw.regmap import CONFIG_OFFSET     # sim.waves stays importable without the design

    names = {}
    for offset, name in doorbells:
        names[offset >> shift] = name
    step = 1 << shift
    for offset in range(CONFIG_OFFSET, CONFIG_OFFSET + config_size, step):
        names[offset >> shift] = f"Config+{offset - CONFIG_OFFSET:#04x}"
    for value in {r.offset >> shift for r in regs}:
        names[value] = "/".join(r.name for r in regs if r.offset >> shift == value)
    return _filter_text(f"{regs.msi or 'standard'} register map, "
                        f"{'word' if shift else 'byte'} addresses", names, addr_width)


def _filter_text(title, names, width):
    """A filter file: ``names`` (``{value: name}``) as GTKWave spells values of a ``width``-bit
    signal in hex, zero-padded to the signal's width, so every padding up to ``width``."""
    digits = max(1, (width + 3) // 4)
    lines = [f"# GTKWave translate filter: {title} (generated from hw/regmap.py)"]
    for value in sorted(names):
        if value >> width:
            continue
        for pad in range(len(f"{value:X}"), digits + 1):
            lines.append(f"{value:0{pad}X} {names[value]}")
    return "\n".join(lines) + "\n"


def command_filter(width=None):
    """A GTKWave translate filter naming the MSI commands (:class:`hw.regmap.MsiCmdV2`).

    The MSI controller's ``command`` port carries these values for both personalities: the
    transport translates proposal v1 operations into them.

    Parameters
    ----------
    width : int or None
        Width of the signal shown; ``None`` for the width of MsiCmd (32 bits), whose filter also
        fits every narrower signal.
    """
    from hw.regmap import MsiCmdV2      # sim.waves stays importable without the design

    if width is None:
        width = MsiCmdV2.as_shape().width
    return _filter_text(f"MSI commands (MsiCmdV2), up to {width} bits",
                        {cmd.value: cmd.name for cmd in MsiCmdV2}, width)


def transport_filter(transport, addr_width=None, *, shift=2):
    """:func:`address_filter` for a transport: its registers, config space and doorbells."""
    doorbells = ()
    if transport.notify_window is not None:
        count = transport.num_queues if transport.notify_multiplier else 1
        doorbells = [(transport.doorbell(q), f"Doorbell[q{q}]" if transport.notify_multiplier
                      else "Doorbell") for q in range(count)]
    if addr_width is None:
        addr_width = len(transport.bus.adr) + 2 - shift
    return address_filter(transport.regs, addr_width, shift=shift,
                          config_size=transport.config_size, doorbells=doorbells)


def transport_traces(transport):
    """Trace groups for a :class:`hw.VirtioMMIOTransport`: host bus, interrupt, device side,
    MSI, MSI commands, queues (a :class:`Traces`). The host bus address shows register names and
    the MSI controller's command shows command names."""
    dev = transport.device
    traces = {
        "host bus": members(transport.bus),
        "interrupt": [transport.irq],
        "device status": [dev.status, dev.features, dev.reset, dev.config_change,
                          dev.needs_reset],
        "config port": members(dev.config),
        "notifications": members(dev.notify),
    }
    filters = [(transport.bus.adr, transport_filter(transport))]
    if transport.personality is not None:
        traces["MSI"] = members(transport.msi)
        controller = transport.msi_controller
        traces["MSI commands"] = [controller.command, controller.command_valid]
        filters.append((controller.command, command_filter(len(controller.command))))
    traces["queues"] = members(dev.queues)
    return Traces(traces, filters=filters)


def engine_traces(engine):
    """Trace groups for a :class:`hw.virtqueue.VirtqueueEngine`: its guest-memory bus, the
    device-facing streams, the queues it serves and its status (a :class:`Traces`)."""
    return Traces({
        "notifications": members(engine.notify),
        "guest memory bus": members(engine.bus),
        "request": members(engine.request),
        "read stream": members(engine.read),
        "write stream": members(engine.write),
        "engine": [engine.busy, engine.needs_reset, engine.error_case, engine.error,
                   engine.abort, engine.reset, engine.event_idx],
        "queues": members(engine.queues),
    })


def apply_filters(gtkw_path, filters):
    """Attach translate filters to traces of a GTKWave save file.

    Parameters
    ----------
    gtkw_path : path
    filters : iterable of (names, path)
        Filter file by the full hierarchical names of one signal, as the save file spells them
        without the bit range (``bench.top.msi.command``): :func:`trace_names`. A signal used in
        several modules has a name in each, and the save file spells one of them. Every trace
        line of that signal gets the filter; a trace of the same name elsewhere does not.

    Raises
    ------
    ValueError
        If a filter matches no trace (its signal is not traced, or the names are wrong).
    """
    by_name, unmatched = {}, {}
    for names, path in filters:
        names = {names} if isinstance(names, str) else set(names)
        unmatched[Path(path)] = names
        for name in names:
            by_name[name] = Path(path)
    out, flags = [], 0
    for line in Path(gtkw_path).read_text().splitlines():
        if line.startswith("@"):
            flags = int(line[1:], 16)
        path = None
        if line and not line.startswith(("-", "[", "*", "^", "@", "#")):
            path = by_name.get(re.sub(r"\[\d+:\d+\]$", "", line))
        if path is None:
            out.append(line)
            continue
        unmatched.pop(path, None)
        if out and out[-1].startswith("@"):     # flags that no trace used
            out.pop()
        out += [f"@{flags | TR_FTRANSLATED:x}", f"^1 {path.resolve()}", line, f"@{flags:x}"]
    if unmatched:
        raise ValueError(f"translate filters match no trace of {gtkw_path}: " + "; ".join(
            f"{path} for {' or '.join(sorted(names))}" for path, names in unmatched.items()))
    Path(gtkw_path).write_text("\n".join(out) + "\n")


def trace_names(sim, signal):
    """The full hierarchical names ``signal`` has in the waveforms of ``sim``: one per module
    that uses it (``bench.top.msi.command``, ``bench.top.command``), the names Amaranth's VCD
    writer chooses from for the save file. Raises :class:`ValueError` if the design does not use
    ``signal``.
    """
    # Amaranth 0.5 has no public map from signals to their names; the VCD writer reads this one
    # (amaranth/sim/pysim.py, _VCDWriter), so the names matched are the names written.
    names = {".".join(("bench", *info.name, info.signal_names[signal]))
             for info in sim._design.fragments.values() if signal in info.signal_names}
    if not names:
        raise ValueError(f"signal {signal.name!r} is not used by the simulated design, so it "
                         f"has no hierarchical name to attach a translate filter to")
    return names


def zoom_level(duration):
    """The GTKWave zoom level (``*`` line of a save file) that shows ``duration`` dump time units
    from the start, in the window size :func:`zoom_to_fit` writes."""
    return _BEST_FIT_OFFSET - _MARGIN - math.log2(max(duration, 2))


def zoom_to_fit(gtkw_path, vcd_path):
    """Add a window size and a zoom level that shows the whole VCD to a GTKWave save file
    (Amaranth writes none, so GTKWave would open at femtoseconds)."""
    end = 0
    with open(vcd_path, "rb") as f:
        f.seek(max(0, os.path.getsize(vcd_path) - 65536))
        for match in re.finditer(rb"^#(\d+)", f.read(), re.MULTILINE):
            end = int(match.group(1))
    zoom = zoom_level(end)
    text = Path(gtkw_path).read_text()
    header = (f"[timestart] 0\n[size] 1500 800\n[pos] -1 -1\n"
              f"*{zoom:.6f} 0 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 "
              f"-1 -1 -1\n[sst_width] 250\n[signals_width] 250\n")
    text = re.sub(r"^(\[dumpfile_size\].*\n)", lambda m: m.group(1) + header, text, count=1,
                  flags=re.MULTILINE)
    Path(gtkw_path).write_text(text)


class SimulationTimeout(AssertionError):
    """A simulation ran past its cycle bound: a testbench waits for something that never
    happens (a handshake bug), or the bound is too small for what the test does."""


def waves_dir():
    """Folder waveforms are written to: ``VIRTIO_WAVES_DIR`` if set (the test suite sets one per
    test, so parallel workers never share a file), else :data:`BUILD`."""
    folder = os.environ.get("VIRTIO_WAVES_DIR")
    return Path(folder) if folder else BUILD


def simulate(dut, testbench, *, processes=(), background=(), name=None, traces=(), waves=None,
             cycles=DEFAULT_CYCLES):
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
    cycles : int
        Cycle bound: the testbench must finish within this many clock cycles.

    Returns the (vcd, gtkw) paths when waveforms were written, else ``None``.

    Raises
    ------
    SimulationTimeout
        If the testbench is still running after ``cycles`` cycles.
    """
    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    for process in processes:
        sim.add_process(process)
    for process in background:
        sim.add_testbench(process, background=True)

    async def watchdog(ctx):
        # One timer event, not a tick per cycle: the bound costs nothing while it is not hit.
        await ctx.delay(cycles * CLOCK_PERIOD)
        raise SimulationTimeout(f"simulation {name or 'sim'!r} still running after {cycles} "
                                f"cycles: a testbench waits for something that never happens "
                                f"(or pass a larger cycles=)")

    # Added before the testbench, so that it has started even if the testbench fails at once
    # (otherwise Python warns that its coroutine was never awaited).
    sim.add_testbench(watchdog, background=True)
    sim.add_testbench(testbench)
    if waves is None:
        waves = waves_requested()
    if not waves:
        sim.run()
        return None
    folder = waves_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "sim")
    vcd, gtkw = folder / f"{stem}.vcd", folder / f"{stem}.gtkw"
    with sim.write_vcd(str(vcd), str(gtkw), traces=traces):
        sim.run()
    zoom_to_fit(gtkw, vcd)
    filters, files = [], set()
    for signal, text in getattr(traces, "filters", ()):
        path, index = folder / f"{stem}.{signal.name}.filter", 1
        while path in files:        # two filtered signals of the same name
            path, index = folder / f"{stem}.{signal.name}_{index}.filter", index + 1
        files.add(path)
        path.write_text(text)
        filters.append((trace_names(sim, signal), path))
    apply_filters(gtkw, filters)
    return vcd, gtkw


#: Screen of the virtual X server the screenshots are taken on.
SCREEN = (1600, 900)

_SHOT = r"""
gtkwave "$1" "$2" >"$3.log" 2>&1 &
pid=$!
for i in $(seq 1 300); do
  xwininfo -root -tree 2>/dev/null | grep -q 'GTKWave - ' && break
  kill -0 $pid 2>/dev/null || exit 3
  sleep 0.1
done
sleep "$4"
import -window root "$3"
status=$?
kill $pid
wait $pid 2>/dev/null
exit $status
"""


def screenshot(vcd, gtkw, png, *, settle=2.0, timeout=120):
    """Open ``vcd`` with save file ``gtkw`` in the real GTKWave on a virtual X server (``xvfb-run``)
    and capture the screen to ``png`` with ImageMagick ``import``.

    GTKWave is given ``settle`` seconds to draw after its window appears. Raises
    :class:`RuntimeError` with GTKWave's output if no picture was taken, or if GTKWave could not
    load a translate filter file of the save file.
    """
    import subprocess

    png = Path(png)
    png.unlink(missing_ok=True)
    width, height = SCREEN
    for _attempt in range(2):     # xvfb-run -a can lose a race for a display number
        result = subprocess.run(
            ["xvfb-run", "-a", "-s", f"-screen 0 {width}x{height}x24", "bash", "-c", _SHOT,
             "shot", str(vcd), str(gtkw), str(png), str(settle)],
            capture_output=True, text=True, timeout=timeout)
        if result.returncode == 0 and png.exists():
            break
    log = Path(f"{png}.log")
    output = log.read_text() if log.exists() else ""
    log.unlink(missing_ok=True)
    if result.returncode or not png.exists():
        raise RuntimeError(f"GTKWave screenshot failed (exit {result.returncode}): "
                           f"{result.stderr}{output}")
    if "filter file" in output.lower():     # GTKWave 3.3: "Could not open filter file!"
        raise RuntimeError(f"GTKWave could not load a translate filter of {gtkw}: {output}")
    return png
