"""Board bitstreams build with the YoWASP tools and meet the board clock; benchmark parsing."""

import json

import pytest

from boards.bench import count_cells, logic_depth, markdown, summarize_path
from boards.build import build_board, tool_env
from boards.top import BOARDS, BoardTop


@pytest.mark.fpga
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_bitstream_builds_and_meets_the_board_clock(board, tmp_path):
    result = build_board(board, build_dir=tmp_path / board, echo=lambda text: None)
    assert result.bitstream.exists() and result.bitstream.stat().st_size > 10_000
    assert result.fmax_mhz >= result.clk_mhz, result.summary()


def test_tool_environment_points_at_yowasp():
    env = tool_env()
    assert env["AMARANTH_USE_YOSYS"] == "builtin"
    for var in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK", "NEXTPNR_ECP5", "ECPPACK"):
        assert "yowasp" in env[var]


def test_board_top_refuses_unknown_board():
    with pytest.raises(ValueError, match=r"board must be one of \['icebreaker', 'ulx3s'\]"):
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
