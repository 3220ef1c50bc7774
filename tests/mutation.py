"""Mutation testing of hw/: how many plausible bugs does the quick tier of the suite catch?

Each mutant below is one plausible bug (a wrong arm, a dropped term, an off-by-one, an inverted
condition, a wrong constant, a swapped Mux), written as the exact original text of a file in hw/
and its replacement. A mutant is applied to a copy of the tree in a temporary folder (the working
tree is never touched), the selected tests run there with ``-x``, and the mutant is *killed* if a
test fails. The run ends with the kill rate and the survivors. An original text that is not found
exactly once is an error before anything runs, so a mutant never silently stops applying when
the code changes: update its text instead.

Equivalent mutants (no behaviour can tell them from the original) carry the reason; they do not
count in the kill rate and are listed in docs/mutation.md.

Usage (from the checkout root)::

    python tests/mutation.py                  # every mutant, 2 at a time, against the quick tier
    python tests/mutation.py --list           # the mutant table
    python tests/mutation.py --only NAME ...  # some mutants (repeat --only), equivalent or not
    python tests/mutation.py -j 1 -- -n 2     # one mutant at a time, each pytest on 2 workers
    python tests/mutation.py -m "not slow"    # another marker expression for the test selection

It is a benchmark, not part of CI: a full run takes tens of minutes on 2 cores.
"""

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent

#: The quick tier: no formal proofs, no slow cases, no FPGA flow.
DEFAULT_MARKERS = "not slow and not formal and not fpga and not linux"

#: Until every test carries its marker, these stay out of the quick tier by name: the formal
#: harnesses and the board builds (whole files), and the tests that drive Icarus Verilog,
#: Verilator, GTKWave or a C compiler.
DEFAULT_IGNORE = ("tests/test_formal.py", "tests/test_boards.py")
DEFAULT_DESELECT = ("icarus or verilator or real_gtkwave or c_header_compiles")

#: The test file that mirrors each mutated module runs first, so that a killed mutant is
#: usually killed within seconds. The costly randomized suite runs last.
FIRST = {
    "hw/msi.py": ("tests/test_msi.py",),
    "hw/axi4lite.py": ("tests/test_axi4lite.py",),
    "hw/transport.py": ("tests/test_transport.py", "tests/test_msi.py"),
    "hw/notify.py": ("tests/test_notify.py",),
    "hw/logic.py": ("tests/test_notify.py", "tests/test_msi.py"),
    "hw/regmap.py": ("tests/test_reset.py", "tests/test_regmap.py"),
}
LAST = ("tests/test_differential.py",)

#: ``--hw``: the test files that drive hw/ directly (the register block, MSI, doorbells, AXI4-Lite,
#: the driver model against it, the differential model). On a loaded machine the rest of the
#: quick tier (boards, export, waveforms, generators) costs more than it kills.
HW_TESTS = tuple(f"tests/test_{name}.py" for name in (
    "msi", "axi4lite", "transport", "notify", "wishbone", "regmap", "reset", "driver",
    "differential"))


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    replacement: str
    description: str
    #: Why no behaviour can tell this mutant from the original, for an equivalent mutant.
    equivalent: "str | None" = None


M = Mutant
MUTANTS = (
    # --- hw/msi.py: MSIController ------------------------------------------------------------
    M("msi-accept-cycle-event-lost", "hw/msi.py",
      "pending_reg.eq(pending_reg & ~done | hit)",
      "pending_reg.eq((pending_reg | hit) & ~done)",
      "fixed map: an event in the cycle its vector's message is accepted is lost (D5)"),
    M("msi-accept-cycle-used-lost-sharing", "hw/msi.py",
      "pend_used.eq(pend_used & ~done | Mux(live, used_hot, 0))",
      "pend_used.eq((pend_used | Mux(live, used_hot, 0)) & ~done)",
      "sharing: a used-buffer event in the cycle of its vector's acceptance is lost (D5)"),
    M("msi-accept-cycle-config-lost-sharing", "hw/msi.py",
      "pend_config.eq(pend_config & ~done | Mux(live, config_hot, 0))",
      "pend_config.eq((pend_config | Mux(live, config_hot, 0)) & ~done)",
      "sharing: a config event in the cycle of its vector's acceptance is lost (D5)"),
    M("msi-enable-bit0-wrong-bit", "hw/msi.py",
      "Mux(enabling & self.int_status[0], self.queue_ready, 0)",
      "Mux(enabling & self.int_status[1], self.queue_ready, 0)",
      "ENABLE hands InterruptStatus bit 1 (not bit 0) to the queue vectors (D6)"),
    M("msi-enable-bit0-first-queue-only", "hw/msi.py",
      "Mux(enabling & self.int_status[0], self.queue_ready, 0)",
      "Mux(enabling & self.int_status[0], self.queue_ready[0], 0)",
      "ENABLE hands bit 0 to queue 0's vector only, not to every ready queue's (D6)"),
    M("msi-enable-bit1-wrong-bit", "hw/msi.py",
      "config_event = self.config_event | enabling & self.int_status[1]",
      "config_event = self.config_event | enabling & self.int_status[0]",
      "ENABLE hands InterruptStatus bit 0 (not bit 1) to the config vector (D6)"),
    M("msi-map-queue-out-of-range", "hw/msi.py",
      "is_cmd[MsiCmdV2.MAP_QUEUE] & map_ok & (self.queue_sel < n)",
      "is_cmd[MsiCmdV2.MAP_QUEUE] & map_ok",
      "MAP_QUEUE with QueueSel out of range is not refused by the controller",
      equivalent="QueueSel is stored saturated at num_queues, and an Amaranth 0.5 Array "
                 "assignment with an index that has no element assigns nothing (ArrayProxy "
                 "lowers to a SwitchValue with one case per element)"),
    M("msi-map-no-vector-refused", "hw/msi.py",
      "map_ok = sel_ok | sel_none",
      "map_ok = sel_ok",
      "MAP_* with MsiVecSel = NO_VECTOR is ignored instead of unmapping"),
    M("msi-vec-sel-off-by-one", "hw/msi.py",
      "sel_ok.eq(less_than(self.wdata, nv)),",
      "sel_ok.eq(less_than(self.wdata, nv + 1)),",
      "MsiVecSel = MsiVecNum is taken as a vector"),
    M("msi-fixed-map-off-by-one", "hw/msi.py",
      "used_hot.eq(queue_events << 1)",
      "used_hot.eq(queue_events)",
      "fixed map: queue q raises vector q instead of q + 1 (D4)"),
    M("msi-target-mux-swapped", "hw/msi.py",
      "target.eq(Mux(self.use_arg, self.arg[:vbits], sel))",
      "target.eq(Mux(self.use_arg, sel, self.arg[:vbits]))",
      "the command's vector: MsiVecSel and v1 cmd_arg swapped"),
    M("msi-mask-does-not-hold", "hw/msi.py",
      "holding = is_cmd[MsiCmdV2.MASK] | disabling",
      "holding = disabling",
      "a vector staged when MASK is performed is still sent (D5)"),
    M("msi-fold-bits-swapped-sharing", "hw/msi.py",
      "fold = Cat(pend_used.any(), pend_config.any())",
      "fold = Cat(pend_config.any(), pend_used.any())",
      "sharing: DISABLE folds config into bit 0 and used into bit 1 (D6)"),
    M("msi-fold-bits-swapped", "hw/msi.py",
      "fold = Cat(pending_reg[1:].any(), pending_reg[0])",
      "fold = Cat(pending_reg[0], pending_reg[1:].any())",
      "fixed map: DISABLE folds vector 0 into bit 0 and the queues into bit 1 (D6)"),
    M("msi-resend-current", "hw/msi.py",
      "deliverable = pending & sendable & ~current & ~staged",
      "deliverable = pending & sendable & ~staged",
      "the vector on the stream can be chosen again before it is accepted"),
    M("msi-read-always-enabled", "hw/msi.py",
      "read.en.eq(free)",
      "read.en.eq(1)",
      "the table is read while the stream stalls: the payload changes under valid"),
    M("msi-enable-mux-rewritten", "hw/msi.py",
      "enabled_next = Mux(disabling, 0, enabled | enabling)",
      "enabled_next = Mux(enabling, 1, enabled & ~disabling)",
      "ENABLE takes precedence over DISABLE",
      equivalent="ENABLE and DISABLE are two values of one command: they are never performed in "
                 "the same cycle, so the precedence between them cannot be observed"),
    M("msi-wishbone-master-ready", "hw/msi.py",
      "self.msi.ready.eq(bus.ack)",
      "self.msi.ready.eq(bus.stb)",
      "the Wishbone MSI master takes the message before the bus acknowledges it"),
    # --- hw/axi4lite.py ----------------------------------------------------------------------
    M("axi-unaligned-read-keeps-data", "hw/axi4lite.py",
      "adr.eq(axi.araddr[2:]), we.eq(0), sel.eq(0b1111), rdata.eq(0),",
      "adr.eq(axi.araddr[2:]), we.eq(0), sel.eq(0b1111),",
      "an unaligned read's SLVERR comes with the previous read's data, not 0"),
    M("axi-msi-error-slverr-only", "hw/axi4lite.py",
      "self.error.eq(axi.bresp != Response.OKAY)",
      "self.error.eq(axi.bresp == Response.SLVERR)",
      "the MSI master reports SLVERR only, not DECERR (or EXOKAY)"),
    M("axi-write-priority-ignored", "hw/axi4lite.py",
      "take_write = write_req & ~(read_req & prefer_read)",
      "take_write = write_req",
      "writes always win over waiting reads: reads starve"),
    M("axi-unaligned-write-bit1-ignored", "hw/axi4lite.py",
      "with m.If(axi.awaddr[:2] != 0):",
      "with m.If(axi.awaddr[0] != 0):",
      "a write at offset 2 in a word is not refused"),
    M("axi-msi-master-either-handshake", "hw/axi4lite.py",
      "with m.If(aw_done & w_done):",
      "with m.If(aw_done | w_done):",
      "the MSI master waits for the response after the first of AW and W"),
    # --- hw/transport.py ---------------------------------------------------------------------
    M("transport-enable-keeps-config-bit", "hw/transport.py",
      "handed_over = Mux(enabling, 0b11, 0)",
      "handed_over = Mux(enabling, Const(0b01, 2), 0)",
      "ENABLE leaves InterruptStatus bit 1 set after handing it over (D6)"),
    M("transport-queue-ready-read-out-of-range", "hw/transport.py",
      "pipe.read_value(\"QueueReady\", Mux(qsel_ok, ready.bit_select(sel_index, 1), 0))",
      "pipe.read_value(\"QueueReady\", ready.bit_select(sel_index, 1))",
      "QueueReady of an out-of-range QueueSel reads some queue's bit instead of 0"),
    M("transport-queue-num-off-by-one", "hw/transport.py",
      "less_than(self.bus.dat_w, size + 1)",
      "less_than(self.bus.dat_w, size)",
      "QueueNum = QueueNumMax is refused"),
    M("transport-needs-reset-without-driver-ok", "hw/transport.py",
      "dev.needs_reset & ~status.needs_reset & status.driver_ok",
      "dev.needs_reset & ~status.needs_reset",
      "DEVICE_NEEDS_RESET sends a config change before DRIVER_OK (virtio 1.2 §2.1.2)"),
    M("transport-aborted-read-acked", "hw/pipeline.py",
      "bus.ack.eq(self.write | self.reading & bus.cyc & bus.stb),",
      "bus.ack.eq(self.write | self.reading),",
      "a read the master abandoned is still acknowledged"),
    M("transport-features-after-features-ok", "hw/transport.py",
      "with m.If(features_write & ~status.features_ok & (drv_fsel == w)):",
      "with m.If(features_write & (drv_fsel == w)):",
      "DriverFeatures still change after FEATURES_OK"),
    M("transport-disable-cycle-event-lost", "hw/transport.py",
      "events = Mux(msi_enabled & ~disabling | enabling, 0, Cat(used_event, config_event))",
      "events = Mux(msi_enabled | enabling, 0, Cat(used_event, config_event))",
      "an event in the cycle of DISABLE is lost (D6)"),
    M("transport-map-queue-truncated-sel", "hw/transport.py",
      "msi.queue_sel.eq(queues.sel),",
      "msi.queue_sel.eq(queues.sel[:max(1, ceil_log2(self._num_queues))]),",
      "MAP_QUEUE sees QueueSel's index bits only: an out-of-range QueueSel maps a real queue"),
    M("transport-generation-not-reset", "hw/transport.py",
      "generation = pipe.state(8, name=\"generation\")",
      "generation = Signal(8)",
      "Status := 0 leaves ConfigGeneration as it was (its documented reset is 0, D7)"),
    # --- hw/notify.py, hw/logic.py -------------------------------------------------------------
    M("notify-take-cycle-doorbell-lost", "hw/notify.py",
      "pending.eq((pending & ~take | ring) & self.queue_ready)",
      "pending.eq((pending | ring) & ~take & self.queue_ready)",
      "a doorbell in the cycle its queue is handed to the device is lost (D9)"),
    M("notify-teardown-keeps-pending", "hw/notify.py",
      "pending.eq((pending & ~take | ring) & self.queue_ready)",
      "pending.eq(pending & ~take | ring)",
      "a pending notification survives QueueReady := 0"),
    M("logic-round-robin-no-rotation", "hw/logic.py",
      "m.d.sync += above.eq(Mux(any_high, below_high, below_any))",
      "m.d.sync += above.eq(below_any)",
      "the round-robin restarts from the lowest request every time: starvation"),
    M("logic-less-than-power-of-two", "hw/logic.py",
      "    if limit == 1 << width:\n        return high == 0\n",
      "",
      "less_than's shortcut for a power-of-two limit removed",
      equivalent="for limit == 2**width every low value is below the limit, so "
                 "`(high == 0) & (low < limit)` is `high == 0`: the shortcut only saves logic"),
    # --- hw/regmap.py: documented reset values -------------------------------------------------
    M("regmap-interrupt-status-reset", "hw/regmap.py",
      "\"Pending interrupt causes: bit 0 used buffer, bit 1 configuration change\", 0,",
      "\"Pending interrupt causes: bit 0 used buffer, bit 1 configuration change\", 1,",
      "the register map documents a wrong reset value for InterruptStatus"),
)


# --- running -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Result:
    mutant: Mutant
    outcome: str                    # "killed", "survived", "timeout", "error"
    by: str = ""
    seconds: float = 0.0
    output: str = ""


def check_applies(mutants, root=ROOT):
    """Every original text must appear exactly once in its file."""
    problems = []
    for mutant in mutants:
        text = (root / mutant.path).read_text()
        count = text.count(mutant.original)
        if count != 1:
            problems.append(f"{mutant.name}: original text found {count} times in {mutant.path}: "
                            f"{mutant.original!r}")
    names = [m.name for m in mutants]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        problems.append(f"duplicate mutant names: {sorted(duplicates)}")
    if problems:
        raise SystemExit("mutation.py: the mutant table does not match the code:\n  " +
                         "\n  ".join(problems))


def _copy_tree(source, dest):
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", ".pytest_cache",
                                    ".hypothesis", "*.egg-info", "*.vcd", "*.gtkw")
    shutil.copytree(source, dest, ignore=ignore)


def ordered_test_files(root, first=(), ignore=DEFAULT_IGNORE, only=None):
    """The test files in run order: ``first``, the others by name, then :data:`LAST`; all of
    ``tests/`` but ``ignore``, or the files in ``only``."""
    present = sorted(str(p.relative_to(root)) for p in (root / "tests").glob("test_*.py"))
    present = [p for p in present if p not in ignore and (only is None or p in only)]
    head = [p for p in first if p in present]
    tail = [p for p in LAST if p in present and p not in head]
    return head + [p for p in present if p not in head and p not in tail] + tail


_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def run_pytest(tree, files, args, timeout, examples=None):
    """Run pytest in ``tree``. Returns (returncode, first failing test, output, seconds)."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    env.pop("VIRTIO_WAVES", None)
    if examples is not None:
        env["VIRTIO_EXAMPLES"] = str(examples)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               *args, *files]
    start = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, "", out, time.monotonic() - start
    seconds = time.monotonic() - start
    output = proc.stdout + proc.stderr
    found = _FAILED.search(output)
    return proc.returncode, found.group(1) if found else "", output, seconds


def pytest_args(options):
    args = []
    if options.markers:
        args += ["-m", options.markers]
    if options.deselect:
        args += ["-k", f"not ({options.deselect})"]
    args += ["--hypothesis-seed", str(options.seed)]
    if options.test_timeout:
        args += ["--timeout", str(options.test_timeout)]
    return args + list(options.pytest)


def run_mutant(mutant, options, source):
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        tree = Path(tmp) / "tree"
        _copy_tree(source, tree)
        target = tree / mutant.path
        text = target.read_text()
        assert text.count(mutant.original) == 1
        target.write_text(text.replace(mutant.original, mutant.replacement))
        files = ordered_test_files(tree, FIRST.get(mutant.path, ()), options.ignore,
                                   options.tests)
        rc, by, output, seconds = run_pytest(tree, files, pytest_args(options),
                                             options.mutant_timeout, options.examples)
    if rc is None:
        return Result(mutant, "timeout", "", seconds, output)
    if rc == 0:
        return Result(mutant, "survived", "", seconds, output)
    if rc in (1, 2) and by:
        return Result(mutant, "killed", by, seconds, output)
    return Result(mutant, "error", f"pytest exit code {rc}", seconds, output)


def run_clean(options, source):
    """The unmutated tree must pass the same selection, or every mutant would look killed."""
    with tempfile.TemporaryDirectory(prefix="mutant-clean-") as tmp:
        tree = Path(tmp) / "tree"
        _copy_tree(source, tree)
        files = ordered_test_files(tree, (), options.ignore, options.tests)
        return run_pytest(tree, files, pytest_args(options), options.mutant_timeout,
                          options.examples)


def print_table(mutants):
    width = max(len(m.name) for m in mutants)
    for m in mutants:
        tag = "  (equivalent)" if m.equivalent else ""
        print(f"{m.name:<{width}}  {m.path:<16}  {m.description}{tag}")
    print(f"{len(mutants)} mutants, {sum(1 for m in mutants if m.equivalent)} equivalent")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Mutation testing of hw/ against the quick tier of the test suite.",
        epilog="Arguments after -- go to pytest (e.g. -- -n 2).")
    parser.add_argument("--list", action="store_true", help="print the mutant table and exit")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this mutant (repeatable)")
    parser.add_argument("--equivalent", action="store_true",
                        help="run the equivalent mutants too (skipped unless named by --only)")
    parser.add_argument("-j", "--jobs", type=int, default=2,
                        help="mutants run in parallel (default 2)")
    parser.add_argument("-m", "--markers", default=DEFAULT_MARKERS,
                        help=f"pytest marker expression (default: {DEFAULT_MARKERS!r})")
    parser.add_argument("--deselect", default=DEFAULT_DESELECT,
                        help="a pytest -k expression of tests left out (default: "
                             f"{DEFAULT_DESELECT!r}; '' for none)")
    parser.add_argument("--ignore", action="append", default=None, metavar="PATH",
                        help=f"test files left out (default: {', '.join(DEFAULT_IGNORE)})")
    parser.add_argument("--tests", nargs="+", metavar="FILE",
                        help="only these test files (tests/test_x.py; still in the run order: "
                             "the mutated module's own tests first)")
    parser.add_argument("--hw", action="store_true",
                        help="only the test files that drive hw/ directly: " +
                             " ".join(Path(f).stem for f in HW_TESTS))
    parser.add_argument("--examples", type=int, metavar="N",
                        help="Hypothesis examples per differential test (VIRTIO_EXAMPLES; "
                             "default: the suite's own)")
    parser.add_argument("--seed", type=int, default=0,
                        help="Hypothesis seed, so that a run is reproducible (default 0)")
    parser.add_argument("--test-timeout", type=int, default=300,
                        help="seconds per test, pytest-timeout (default 300; 0: none)")
    parser.add_argument("--mutant-timeout", type=int, default=3600,
                        help="seconds per mutant run (default 3600); exceeding it kills it")
    parser.add_argument("--no-clean", action="store_true",
                        help="skip the run of the unmutated tree")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.add_argument("pytest", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.ignore is None:
        options.ignore = DEFAULT_IGNORE
    if options.hw:
        options.tests = list(HW_TESTS) + list(options.tests or ())

    check_applies(MUTANTS)
    mutants = MUTANTS
    if options.only:
        known = {m.name: m for m in MUTANTS}
        unknown = [n for n in options.only if n not in known]
        if unknown:
            raise SystemExit(f"mutation.py: no mutant named {', '.join(unknown)} (see --list)")
        mutants = tuple(known[n] for n in options.only)
    elif not (options.equivalent or options.list):
        # an equivalent mutant survives every suite: running it costs a whole run for nothing
        mutants = tuple(m for m in MUTANTS if not m.equivalent)
    if options.list:
        print_table(mutants)
        return 0

    start = time.monotonic()
    results = []
    # One snapshot of the tree at the start: edits made while the run goes on do not leak into
    # the later mutants.
    snapshot = tempfile.TemporaryDirectory(prefix="mutant-source-")
    source = Path(snapshot.name) / "tree"
    _copy_tree(ROOT, source)
    with snapshot, ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        clean = None if options.no_clean else pool.submit(run_clean, options, source)
        futures = [pool.submit(run_mutant, m, options, source) for m in mutants]
        for future in futures:
            r = future.result()
            results.append(r)
            tag = " (equivalent)" if r.mutant.equivalent else ""
            by = f" by {r.by}" if r.by else ""
            print(f"{r.outcome:<8} {r.mutant.name}{tag}{by}  [{r.seconds:.0f} s]", flush=True)
            if r.outcome == "error":
                print("\n".join("    " + line for line in r.output.splitlines()[-15:]))
        clean_result = clean.result() if clean else None

    counted = [r for r in results if not r.mutant.equivalent]
    killed = [r for r in counted if r.outcome in ("killed", "timeout")]
    survivors = [r for r in counted if r.outcome == "survived"]
    errors = [r for r in results if r.outcome == "error"]
    print()
    print(f"kill rate: {len(killed)}/{len(counted)} = "
          f"{100 * len(killed) / max(1, len(counted)):.0f}% of the non-equivalent mutants "
          f"({sum(1 for m in (mutants if options.only else MUTANTS) if m.equivalent)} "
          f"equivalent not counted), "
          f"{time.monotonic() - start:.0f} s")
    if survivors:
        print("survivors:")
        for r in survivors:
            print(f"  {r.mutant.name}: {r.mutant.description}")
    equivalent_survivors = [r for r in results if r.mutant.equivalent and r.outcome == "survived"]
    if equivalent_survivors:
        print("equivalent (survive by construction):")
        for r in equivalent_survivors:
            print(f"  {r.mutant.name}: {r.mutant.equivalent}")
    status = 0
    if clean_result is not None:
        rc, by, output, seconds = clean_result
        if rc != 0:
            print(f"\nTHE UNMUTATED TREE FAILS ({by or f'exit code {rc}'}): these results mean "
                  f"nothing.\n" + "\n".join(output.splitlines()[-20:]))
            status = 1
        else:
            print(f"unmutated tree: passes the selection in {seconds:.0f} s")
    if errors:
        status = 1
    if options.json:
        options.json.write_text(json.dumps([
            {"name": r.mutant.name, "path": r.mutant.path, "outcome": r.outcome, "by": r.by,
             "seconds": round(r.seconds, 1), "equivalent": r.mutant.equivalent}
            for r in results], indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
