"""Board bitstreams build with the YoWASP tools and meet the board clock; benchmark parsing."""

import json

import pytest

from boards.bench import count_cells, logic_depth, lut4_of_stat, markdown, summarize_path
from boards.build import BUILD_ROOT, build_board, default_build_dir, tool_env
from boards.top import BOARDS, SOCS, BoardTop, disk_label
from hw.blk import SECTOR
from hw.soc.blksoc import BlkSoC
from hw.soc.soc import BridgeSoC


#: The bitstreams CI builds: the echo SoC on the two boards it was made for, the blk SoC on
#: every board (``boards.build`` builds any pair).
BUILDS = [("icebreaker", "echo"), ("ulx3s", "echo")] + [(board, "blk") for board in sorted(BOARDS)]


@pytest.mark.fpga
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("board, soc", BUILDS, ids=[f"{b}-{s}" for b, s in BUILDS])
def test_bitstream_builds_and_meets_the_board_clock(board, soc, tmp_path):
    result = build_board(board, soc=soc, build_dir=tmp_path / board, echo=lambda text: None)
    assert result.bitstream.exists() and result.bitstream.stat().st_size > 10_000
    assert result.fmax_mhz >= result.clk_mhz, result.summary()


@pytest.mark.parametrize("soc", SOCS)
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_every_soc_elaborates_for_every_board(board, soc):
    top = BoardTop(board, soc=soc)
    assert isinstance(top.soc, {"echo": BridgeSoC, "blk": BlkSoC}[soc])
    plan = top.platform.prepare(top, name="top")
    constraints = "top.pcf" if "top.pcf" in plan.files else "top.lpf"
    assert {"top.il", constraints} <= set(plan.files)
    # the pins of the UART and of every LED the board maps
    text = plan.files[constraints]
    assert text.count("uart_0__") >= 2 and text.count("led_") >= len(top.leds)
    if soc == "blk":
        spec = BOARDS[board]
        assert top.soc.capacity == spec.capacity
        assert top.soc.has_msi == ("msi" in spec.blk)
        label = disk_label(board)
        words = list(top.soc.disk.ram.init)
        assert len(words) == spec.capacity * SECTOR // 4
        assert b"".join(w.to_bytes(4, "little") for w in words)[:len(label)] == label


def test_build_directory_names_the_soc():
    assert default_build_dir("ulx3s") == BUILD_ROOT / "ulx3s"
    assert default_build_dir("icebreaker", "blk") == BUILD_ROOT / "icebreaker-blk"


def test_tool_environment_points_at_yowasp():
    env = tool_env()
    assert env["AMARANTH_USE_YOSYS"] == "builtin"
    for var in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK", "NEXTPNR_ECP5", "ECPPACK"):
        assert "yowasp" in env[var]


def test_board_top_refuses_unknown_board():
    with pytest.raises(ValueError, match=r"board must be one of \['hx8k', 'icebreaker', 'ulx3s', "
                                         r"'ulx3s-25f'\], not 'arty'"):
        BoardTop("arty")


def test_cell_counts_separate_wrapper_flip_flops(tmp_path):
    netlist = {"modules": {"top": {
        "netnames": {"bench_out_irq": {"bits": [5]}, "core.status": {"bits": [6]}},
        "cells": {
            "a": {"type": "SB_LUT4", "connections": {}},
            "b": {"type": "SB_DFFE", "connections": {"Q": [5]}},
            "c": {"type": "SB_DFFSR", "connections": {"Q": [6]}},
            "d": {"type": "SB_RAM40_4K", "connections": {}},
            "e": {"type": "SB_CARRY", "connections": {}},
        }}}}
    path = tmp_path / "n.json"
    path.write_text(json.dumps(netlist))
    counts = count_cells(path, "ice40")
    assert counts == {"lut4": 1, "ff": 2, "bram": 1, "carry": 1, "lutram": 0, "mux": 0,
                      "wrapper_ff": 1, "core_ff": 1}


def test_lut4_by_submodule_reads_each_modules_own_count_from_yosys_stat():
    # the shape of `stat` on a design synthesized with -noflatten (abridged)
    text = """
=== top ===
        +----------Local Count, excluding submodules.
      530 cells
      530   SB_DFF
        1   top.core

=== top.core ===
        +----------Local Count, excluding submodules.
      363   SB_CARRY
     1463   SB_LUT4
        1   top.core.fifo

=== top.core.fifo ===
      134   SB_LUT4

=== design hierarchy ===
     3876 top
     1999   SB_LUT4
"""
    assert lut4_of_stat(text, "ice40") == {"top.core": 1463, "top.core.fifo": 134}
    assert lut4_of_stat(text.replace("SB_LUT4", "LUT4"), "ecp5") == \
        {"top.core": 1463, "top.core.fifo": 134}
    with pytest.raises(ValueError, match=r"no SB_LUT4 count per module in this Yosys stat output"):
        lut4_of_stat(text.replace("SB_LUT4", "SB_LUT"), "ice40")


def test_logic_depth_counts_luts_between_flip_flops(tmp_path):
    # q1 -> lut a -> carry c -> lut b -> d2 (2 levels); q1 -> lut e -> d3 (1 level)
    def cell(kind, ins, outs):
        return {"type": kind, "port_directions": {**{p: "input" for p in ins},
                                                  **{p: "output" for p in outs}},
                "connections": {**ins, **outs}}
    netlist = {"modules": {"top": {
        "netnames": {"q1": {"bits": [1]}, "d2": {"bits": [2]}, "d3": {"bits": [3]},
                     "r2": {"bits": [20]}, "r3": {"bits": [30]}},
        "cells": {
            "f1": cell("SB_DFF", {"D": [9]}, {"Q": [1]}),
            "a": cell("SB_LUT4", {"I0": [1]}, {"O": [4]}),
            "c": cell("SB_CARRY", {"CI": [4]}, {"CO": [5]}),
            "b": cell("SB_LUT4", {"I0": [5], "I1": [1]}, {"O": [2]}),
            "f2": cell("SB_DFFE", {"D": [2]}, {"Q": [20]}),
            "e": cell("SB_LUT4", {"I0": [1]}, {"O": [3]}),
            "f3": cell("SB_DFF", {"D": [3]}, {"Q": [30]}),
        }}}}
    path = tmp_path / "n.json"
    path.write_text(json.dumps(netlist))
    assert logic_depth(path) == (2, [(2, "r2"), (1, "r3")])


def test_critical_path_summary_and_markdown():
    report = {"fmax": {"clk": {"achieved": 90.0, "constraint": 150.0}},
              "critical_paths": [{"from": "clk", "to": "clk", "path": [
                  {"type": "clk-to-q", "delay": 0.5, "from": {"cell": "r1"}, "to": {"cell": "r1"}},
                  {"type": "routing", "delay": 1.5, "net": "core.bus__adr[3]"},
                  {"type": "logic", "delay": 0.4, "to": {"cell": "core.lut"}},
                  {"type": "setup", "delay": 0.1}]}]}
    lines = summarize_path(report)
    assert lines[0].startswith("from clk to clk: 2.50 ns in 4 steps (1 logic, 1 routing)")
    assert "net core.bus__adr[3]" in lines[1]
    cells = {"lut4": 700, "ff": 10, "core_ff": 4, "wrapper_ff": 6, "bram": 1, "carry": 2,
             "lutram": 0, "mux": 0}
    result = {"device": "iCE40 HX8K", "family": "ice40", "config": {"num_queues": 8},
              "seeds": [1], "tools": "t", "cells": cells, "fmax_min": 90.0,
              "fmax_median": 90.0, "fmax_max": 90.0, "target": "x **missed**",
              "missed": ["700 LUT4 > 600"], "critical_path": lines, "advice": "do less",
              "logic_levels": 7, "deepest": [[7, "core.status"]]}
    text = markdown([result], "./run python -m boards.bench")
    assert "| iCE40 HX8K | 700 | 10 (4 + 6) | 1 | 2 | 0 / 0 | 7 | 90.0 / 90.0 / 90.0 |" in text
    assert "`core.status` 7" in text
    assert "## iCE40 HX8K: target missed" in text and "core.bus__adr[3]" in text


@pytest.mark.fpga
@pytest.mark.timeout(1800)
def test_msi_table_in_memory_costs_fewer_luts_than_flip_flops():
    # the measurement behind the hw.msi docstring: both builds differ, and the memory wins
    from boards.build import use_yowasp
    from boards.msi_area import measure
    use_yowasp()
    memory, flops = measure(16, "ice40", "memory"), measure(16, "ice40", "flip-flops")
    assert memory["bram"] > 0 and flops["bram"] == 0
    assert memory["lut4"] < flops["lut4"] and memory["ff"] < flops["ff"]
