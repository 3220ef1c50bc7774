"""GTKWave experience (issue 7): waveforms open grouped, zoomed, with register names; the real
GTKWave opens them under Xvfb."""

import re
import shutil
import subprocess
from pathlib import Path

from hw.regmap import RegisterMap
from sim.scenario import run_scenario
from sim.waves import BUILD, SCREEN, TR_FTRANSLATED, address_filter, screenshot

from helpers import make, run


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


def test_test_waveforms_carry_the_filter_too(monkeypatch):
    monkeypatch.setenv("VIRTIO_WAVES", "1")
    dut = make()

    async def body(ctx, io, device):
        await io.read(dut.regs["MagicValue"].offset)
    run(dut, body, name="gtkwave_helpers")
    path, _ = filter_of(BUILD / "gtkwave_helpers.gtkw", "bus__adr")
    assert "QueueReady" in path.read_text()


def test_filter_names_shared_words_once_per_padding():
    # proposal v1 puts two 16-bit registers in one word
    text = address_filter(RegisterMap("v1"), 11)
    regs = RegisterMap("v1")
    word = regs["MsiStatus"].word
    assert f"{word:03X} MsiStatus/MsiCmd" in text.splitlines()
    assert f"{word:X} MsiStatus/MsiCmd" in text.splitlines()


def test_real_gtkwave_opens_the_scenario_waveform(tmp_path):
    for tool in ("gtkwave", "xvfb-run", "import"):
        assert shutil.which(tool), f"{tool} is installed by ./run test"
    _, _, _, (vcd, gtkw) = run_scenario(echo=None, name="gtkwave_shot")
    png = screenshot(vcd, gtkw, tmp_path / "shot.png")
    assert png.stat().st_size > 20_000
    info = subprocess.run(["identify", "-format", "%w %h %k", str(png)], check=True,
                          capture_output=True, text=True).stdout.split()
    width, height, colours = map(int, info)
    assert (width, height) == SCREEN
    assert colours > 16            # a drawn window, not a blank screen
