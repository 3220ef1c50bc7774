"""The main job: the end-to-end scenario and its waveform (issue 2)."""

import re

import pytest

from sim.scenario import run_scenario, run_msi_scenario, main, MSI_MESSAGES
from sim.waves import zoom_to_fit


def test_scenario_runs_the_linux_sequence_and_writes_a_readable_waveform(tmp_path, capsys):
    lines = []
    transcript, device, driver, (vcd, gtkw) = run_scenario(echo=lines.append,
                                                           name="test_scenario")
    names = [name for _, name in transcript.names()]
    # probe first, reset, then the queue setup and DRIVER_OK
    assert names[:4] == ["MagicValue", "Version", "DeviceID", "VendorID"]
    assert "QueueReady" in names and "InterruptACK" in names and "ConfigGeneration" in names
    assert [n.queue for n in device.notifications] == [0, 1]
    assert driver.state.config_changes == 1
    assert any("Doorbell[q1]" in line for line in lines)
    save = gtkw.read_text()
    # grouped by interface, with a zoom line GTKWave reads
    for group in ("host bus", "interrupt", "config port", "notifications", "queues"):
        assert f"-{group}" in save, group
    assert re.search(r"^\*-\d+\.\d+ ", save, re.MULTILINE)
    assert vcd.stat().st_size > 0


def test_msi_scenario_delivers_every_interrupt_as_a_message():
    lines = []
    transcript, intc, driver, (vcd, gtkw) = run_msi_scenario(echo=lines.append,
                                                             name="test_msi_scenario")
    delivered = [line for line in lines if "MSI write" in line]
    # queue 0 -> vector 1, queue 1 -> vector 2, config -> vector 0, then vector 2 after unmask
    expected = [MSI_MESSAGES[v] for v in (1, 2, 0, 2)]
    assert len(delivered) == 4
    assert [f"{data:#x} -> {address:#x}" in line for line, (address, data) in
            zip(delivered, expected, strict=True)] == [True] * 4
    assert all(line.endswith("irq 0") for line in delivered)
    assert "-MSI" in gtkw.read_text()
    assert "MsiCmd" in [name for _, name in transcript.names()]


def test_main_prints_how_to_open_the_waveforms(capsys):
    assert main(["--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"open it:  gtkwave \S+demo\.vcd \S+demo\.gtkw", out)
    assert re.search(r"open it:  gtkwave \S+demo-msi\.vcd \S+demo-msi\.gtkw", out)


@pytest.mark.parametrize("end, best_fit", [(80_000_000, -24.16), (1_690_000_000, -28.56),
                                           (8_070_000_000, -30.82)])
def test_zoom_fits_the_dump_like_gtkwave_best_fit(tmp_path, end, best_fit):
    # best_fit: what GTKWave 3.3.118's Zoom_Best_Fit chose for dumps of these lengths
    vcd = tmp_path / "a.vcd"
    vcd.write_text(f"$timescale 1 fs $end\n#0\n#{end}\n")
    gtkw = tmp_path / "a.gtkw"
    gtkw.write_text('[dumpfile] "a.vcd"\n[dumpfile_size] 10\n')
    zoom_to_fit(gtkw, vcd)
    zoom = float(re.search(r"^\*(-?\d+\.\d+) ", gtkw.read_text(), re.MULTILINE).group(1))
    assert best_fit - 0.3 < zoom <= best_fit    # shows everything, with a small margin
