"""GTKWave experience (issue 7): waveforms open grouped, zoomed, with register and MSI command
names; the real GTKWave opens them under Xvfb."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from amaranth.hdl import Elaboratable, Module, Signal

from hw.regmap import MsiCmdV2, RegisterMap
from sim.scenario import run_msi_scenario, run_scenario
from sim.waves import (SCREEN, TR_FTRANSLATED, Traces, address_filter, apply_filters,
                       command_filter, screenshot, simulate, transport_traces)


def filter_of(gtkw, trace):
    """The translate filter file attached to ``trace`` in a save file, and the trace's flags."""
    lines = Path(gtkw).read_text().splitlines()
    for i, line in enumerate(lines):
        if re.search(rf"\.{re.escape(trace)}(\[\d+:0\])?$", line):
            assert lines[i - 1].startswith("^1 "), f"no filter before {line}"
            return Path(lines[i - 1][3:]), int(lines[i - 2][1:], 16)
    raise AssertionError(f"no trace {trace}")


def test_scenario_waveform_names_registers_on_the_host_bus():
    _, _, _, (vcd, gtkw) = run_scenario(echo=None, name="gtkwave_filter")
    path, flags = filter_of(gtkw, "bus__adr")
    assert flags & TR_FTRANSLATED
    table = dict(line.split(" ", 1) for line in path.read_text().splitlines()
                 if not line.startswith("#"))
    regs = RegisterMap(None, notify=True)
    # the bus address is 11 bits: GTKWave shows three hex digits
    assert table[f"{regs['Status'].word:03X}"] == "Status"
    assert table[f"{regs['MagicValue'].word:03X}"] == "MagicValue"
    assert table["040"] == "Config+0x00"
    assert table["401"] == "Doorbell[q1]"          # the scenario's doorbells at 0x1000, step 4


def test_test_waveforms_carry_the_filter_too(monkeypatch, make, run, waves_dir):
    monkeypatch.setenv("VIRTIO_WAVES", "1")
    dut = make()

    async def body(ctx, io, device):
        await io.read(dut.regs["MagicValue"].offset)
    run(dut, body, name="gtkwave_helpers")
    path, _ = filter_of(waves_dir / "gtkwave_helpers.gtkw", "bus__adr")
    assert path.parent == waves_dir             # one folder per test: no worker shares a file
    assert "QueueReady" in path.read_text()


def test_filter_names_shared_words_once_per_padding():
    # proposal v1 puts two 16-bit registers in one word
    text = address_filter(RegisterMap("v1"), 11)
    regs = RegisterMap("v1")
    word = regs["MsiStatus"].word
    assert f"{word:03X} MsiStatus/MsiCmd" in text.splitlines()
    assert f"{word:X} MsiStatus/MsiCmd" in text.splitlines()


def filtered_traces(gtkw):
    """``{trace name without bit range: (filter file, flags)}`` for every filtered trace of a save
    file, checking that the flags after it drop the translate flag again."""
    lines = Path(gtkw).read_text().splitlines()
    found = {}
    for i, line in enumerate(lines):
        if line.startswith("^1 "):
            trace, after = lines[i + 1], lines[i + 2]
            assert after.startswith("@") and not int(after[1:], 16) & TR_FTRANSLATED, after
            found[re.sub(r"\[\d+:\d+\]$", "", trace)] = (Path(line[3:]),
                                                          int(lines[i - 1][1:], 16))
    return found


def vcd_ids(vcd):
    """``{full hierarchical name: VCD identifier}``: names of one signal share an identifier."""
    ids, scope = {}, []
    for line in Path(vcd).read_text().split("$enddefinitions", 1)[0].splitlines():
        words = line.split()
        if words[:1] == ["$scope"]:
            scope.append(words[2])
        elif words[:1] == ["$upscope"]:
            scope.pop()
        elif words[:1] == ["$var"]:
            ids[".".join(scope + [words[4]])] = words[3]
    return ids


def filter_table(text):
    return dict(line.split(" ", 1) for line in text.splitlines() if not line.startswith("#"))


@pytest.mark.parametrize("width", [3, 32])
def test_command_filter_names_every_msi_command_as_gtkwave_spells_it(width):
    table = filter_table(command_filter(width))
    digits = (width + 3) // 4
    want = {f"{cmd.value:0{pad}X}": cmd.name
            for cmd in MsiCmdV2 for pad in range(1, digits + 1)}
    assert table == want
    assert table["7" if width == 3 else "00000007"] == "MAP_QUEUE"


def test_command_filter_defaults_to_the_msicmd_register_width():
    assert command_filter() == command_filter(32)
    assert filter_table(command_filter())["00000003"] == "CONFIGURE"


def test_wired_transport_has_no_msi_command_trace(make):
    traces = transport_traces(make())
    assert "MSI commands" not in traces
    assert len(traces.filters) == 1


@pytest.mark.parametrize("msi", ["v2", "v1"])
def test_msi_waveform_names_commands_on_the_controller_command_only(monkeypatch, msi, make, run,
                                                                    waves_dir):
    monkeypatch.setenv("VIRTIO_WAVES", "1")
    dut = make(msi=msi)

    async def body(ctx, io, device, intc):
        await io.read(dut.regs["MagicValue"].offset)
    name = f"gtkwave_msi_{msi}"
    run(dut, body, name=name)
    vcd, gtkw = waves_dir / f"{name}.vcd", waves_dir / f"{name}.gtkw"
    found = filtered_traces(gtkw)
    ids = vcd_ids(vcd)
    command = [trace for trace in found if trace != "bench.top.bus__adr"]
    assert len(found) == 2 and len(command) == 1, found
    # the trace is the MSI controller's command port, whichever module's name the save file uses
    assert ids[command[0]] == ids["bench.top.msi.command"]
    path, flags = found[command[0]]
    assert flags & TR_FTRANSLATED
    assert path.read_text() == command_filter(3)
    group = gtkw.read_text().split("-MSI commands\n", 2)[1]
    traced = {ids[re.sub(r"\[\d+:\d+\]$", "", line)] for line in group.splitlines()
              if line.startswith("bench.")}
    assert traced == {ids["bench.top.msi.command"], ids["bench.top.msi.command_valid"]}


class CommandHarness(Elaboratable):
    """An MSI transport next to an unrelated signal also named ``command``."""
    def __init__(self, transport):
        self.transport = transport
        self.command = Signal(3)

    def elaborate(self, platform):
        m = Module()
        m.submodules.transport = self.transport
        m.d.sync += self.command.eq(self.command + 1)
        return m


def test_filter_goes_to_its_signal_not_to_another_of_the_same_name(make):
    top = CommandHarness(make(msi="v2"))
    groups = transport_traces(top.transport)
    traces = Traces({"harness": [top.command], **groups}, filters=groups.filters)

    async def testbench(ctx):
        await ctx.tick().repeat(2)
    vcd, gtkw = simulate(top, testbench, name="gtkwave_same_name", traces=traces, waves=True)
    found = filtered_traces(gtkw)
    ids = vcd_ids(vcd)
    assert "bench.top.command" in ids          # the harness's own, traced first, not filtered
    assert "bench.top.command" not in found
    assert sorted(ids[trace] for trace in found) == \
        sorted([ids["bench.top.transport.bus__adr"], ids["bench.top.transport.msi.command"]])


def test_apply_filters_matches_full_names_and_fails_on_a_miss(tmp_path):
    gtkw = tmp_path / "x.gtkw"
    gtkw.write_text("@22\nbench.top.command[2:0]\nbench.top.msi.command[2:0]\n")
    apply_filters(gtkw, [({"bench.top.msi.command"}, tmp_path / "c.filter")])
    assert gtkw.read_text().splitlines() == [
        "@22", "bench.top.command[2:0]", f"@{0x22 | TR_FTRANSLATED:x}",
        f"^1 {tmp_path / 'c.filter'}", "bench.top.msi.command[2:0]", "@22"]
    with pytest.raises(ValueError, match=r"match no trace .* for bench\.top\.msi\.cmd"):
        apply_filters(gtkw, [("bench.top.msi.cmd", tmp_path / "c.filter")])


@pytest.mark.gtkwave
@pytest.mark.parametrize("scenario", ["wired", "msi"])
def test_real_gtkwave_opens_the_scenario_waveform(tmp_path, scenario):
    for tool in ("gtkwave", "xvfb-run", "import"):
        assert shutil.which(tool), f"{tool} is installed by ./run test"
    run_it = run_scenario if scenario == "wired" else run_msi_scenario
    _, _, _, (vcd, gtkw) = run_it(echo=None, name=f"gtkwave_shot_{scenario}")
    # screenshot() also fails if GTKWave could not load a translate filter file
    png = screenshot(vcd, gtkw, tmp_path / "shot.png")
    assert png.stat().st_size > 20_000
    info = subprocess.run(["identify", "-format", "%w %h %k", str(png)], check=True,
                          capture_output=True, text=True).stdout.split()
    width, height, colours = map(int, info)
    assert (width, height) == SCREEN
    assert colours > 16            # a drawn window, not a blank screen
