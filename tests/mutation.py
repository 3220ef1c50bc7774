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
    python tests/mutation.py --linux          # survivors again against the Linux tests

``--linux`` runs every mutant that the selected tests leave alive a second time, in the same
mutated copy, against the tests marked ``linux`` (tests/test_linux.py: the real kernel's drivers
against the RTL). Those that can reach the module (:data:`LINUX_TESTS`) run, each bounded by
``--linux-timeout``; a mutant killed there is reported with the Linux test that killed it, and the
summary counts the mutants killed only by Linux. The kernel is built (or found) in the
checkout's build/linux/ before the first mutant and shared by every copy.

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
    # the engine's own tests, then its randomized differential test, then the blk device on it
    "hw/virtqueue.py": ("tests/test_virtqueue.py", "tests/test_realign.py",
                        "tests/test_engine_differential.py", "tests/test_blk.py"),
    "hw/realign.py": ("tests/test_realign.py", "tests/test_virtqueue.py",
                      "tests/test_engine_differential.py", "tests/test_blk.py"),
    "hw/blk.py": ("tests/test_blk.py", "tests/test_soc_blk.py"),
}
LAST = ("tests/test_differential.py",)

#: ``--linux``: the file of the tests marked ``linux`` (they boot the User-Mode Linux kernel
#: against the RTL), and the ones that can reach each module, as a pytest ``-k`` expression. Only
#: the virtio-blk tests run the engine and the blk device in gateware; every other Linux test
#: drives the transport with a device model in Python (sim/rng.py, sim/console.py), so running
#: them for a mutant of the engine would cost minutes and could kill nothing. A module not listed
#: gets every Linux test.
LINUX_FILE = "tests/test_linux.py"
LINUX_TESTS = {
    "hw/virtqueue.py": "virtio_blk",
    "hw/realign.py": "virtio_blk",
    "hw/blk.py": "virtio_blk",
}

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
    # --- hw/blk.py: VirtioBlkDevice (D18) ------------------------------------------------------
    M("blk-status-read-out-of-range-unsupp", "hw/blk.py",
      "m.next = \"DRAIN\"        # readable bytes after the header, if any\n"
      "                    with m.Else():\n"
      "                        m.d.sync += status.eq(BlkStatus.IOERR)",
      "m.next = \"DRAIN\"        # readable bytes after the header, if any\n"
      "                    with m.Else():\n"
      "                        m.d.sync += status.eq(BlkStatus.UNSUPP)",
      "a T_IN out of range or of partial sectors is answered UNSUPP, not IOERR"),
    M("blk-status-write-out-of-range-ok", "hw/blk.py",
      "m.next = \"DISK_WRITE\"\n"
      "                    with m.Else():\n"
      "                        m.d.sync += status.eq(BlkStatus.IOERR)",
      "m.next = \"DISK_WRITE\"\n"
      "                    with m.Else():\n"
      "                        m.d.sync += status.eq(BlkStatus.OK)",
      "a T_OUT out of range is answered OK (the disk untouched): the write is lost silently"),
    M("blk-status-unknown-type-ioerr", "hw/blk.py",
      "m.d.sync += status.eq(BlkStatus.UNSUPP)",
      "m.d.sync += status.eq(BlkStatus.IOERR)",
      "a request of an unknown type is answered IOERR, not UNSUPP"),
    M("blk-capacity-last-sector-refused", "hw/blk.py",
      "(end <= self._capacity)",
      "(end < self._capacity)",
      "a request ending at the last sector of the disk is out of range"),
    M("blk-capacity-one-past-the-end", "hw/blk.py",
      "(end <= self._capacity)",
      "(end <= self._capacity + 1)",
      "a request ending one sector past the disk is in range (it wraps onto sector 0)"),
    M("blk-capacity-high-word-ignored", "hw/blk.py",
      "(header[3] == 0) & (end <= self._capacity)",
      "(end <= self._capacity)",
      "the sector's high word is ignored: sector 2 ** 32 + s is served as sector s"),
    M("blk-capacity-end-wraps", "hw/blk.py",
      "end = Signal(34)",
      "end = Signal(32)",
      "the request's end is computed in 32 bits: a request past sector 2 ** 32 - 1 wraps into "
      "range"),
    M("blk-whole-sectors-256", "hw/blk.py",
      "whole_out = data_out[:9] == 0",
      "whole_out = data_out[:8] == 0",
      "a T_IN of a multiple of 256 bytes (half sectors) is served, not IOERR"),
    M("blk-disk-ack-with-nothing-in-flight", "hw/blk.py",
      "answered.eq(disk.ack & (in_flight != 0))",
      "answered.eq(disk.ack)",
      "an ack with nothing in flight is counted as an answer (D18)",
      equivalent="under the disk's contract (decisions.md D11i) no ack comes with nothing in "
                 "flight, and a disk that breaks it fails every simulation by the DISK_RULE "
                 "check, mutant or not"),
    M("blk-disk-stalled-request-counted", "hw/blk.py",
      "in_flight.eq(in_flight + issued - answered)",
      "in_flight.eq(in_flight + present - answered)",
      "a request the disk stalls is counted in flight: the count never returns to 0"),
    M("blk-disk-read-room-off-by-one", "hw/blk.py",
      "room.eq(in_flight + sectors.level < DISK_DEPTH)",
      "room.eq(in_flight + sectors.level <= DISK_DEPTH)",
      "T_IN requests one read more than the word FIFO has room for"),
    M("blk-disk-write-depth-unbounded", "hw/blk.py",
      "present.eq(self.read.valid & (in_flight != DISK_DEPTH))",
      "present.eq(self.read.valid)",
      "T_OUT issues writes with DISK_DEPTH already in flight (the port's bound, D18)"),
    M("blk-write-status-before-ack", "hw/blk.py",
      "with m.Elif(in_flight == 0):",
      "with m.Else():",
      "a T_OUT's status is written before its disk writes are acknowledged (FLUSH relies on "
      "it, D18)"),
    M("blk-settle-skipped", "hw/blk.py",
      "with m.If(in_flight == 0):\n                    m.next = \"IDLE\"",
      "m.next = \"IDLE\"",
      "a chain given up does not wait for its disk answers: they reach the next request"),
    M("blk-fill-serial-not-zeros", "hw/blk.py",
      "serial_word.eq(ZERO_WORD)",
      "serial_word.eq(0)",
      "the writable bytes of a failed read (any fill) get the serial instead of zeros"),
    M("blk-get-id-space-padded", "hw/blk.py",
      "ljust(20, b\"\\0\")",
      "ljust(20, b\" \")",
      "T_GET_ID pads a short serial with spaces, not zeros (D18)"),
    M("blk-config-size-max-seg-max-swapped", "hw/blk.py",
      "self._size_max,\n                                                    self._seg_max",
      "self._seg_max,\n                                                    self._size_max",
      "config space: size_max at 12 and seg_max at 8 (§5.2.4)"),
    M("blk-fill-last-beat-count-4", "hw/blk.py",
      "self.write.p.count.eq(count(data_out))",
      "self.write.p.count.eq(4)",
      "the last fill beat carries 4 bytes where fewer remain: they overwrite the status byte"),
    M("blk-shape-15-byte-header", "hw/blk.py",
      "(self.request.p.readable < 16)",
      "(self.request.p.readable < 15)",
      "a chain with a 15-byte header is taken, not refused (D11 case 10)"),
    M("blk-shape-no-status-byte", "hw/blk.py",
      " | (self.request.p.writable == 0)",
      "",
      "a chain with no writable byte is taken, not refused (D11 case 10)"),
    # --- hw/virtqueue.py: VirtqueueEngine (D11) ----------------------------------------------
    M("vq-avail-count-at-queue-num", "hw/virtqueue.py",
      "with m.If(avail_count > size):",
      "with m.If(avail_count >= size):",
      "QueueNum buffers published at once are taken for case 1 (one more than QueueNum is)"),
    M("vq-head-check-off-by-one", "hw/virtqueue.py",
      "with m.If(~bus.err & (halfword & ~mask).any()):",
      "with m.If(~bus.err & (halfword & ~(mask | size)).any()):",
      "a head index from QueueNum to 2 * QueueNum - 1 is accepted (D11 case 2)"),
    M("vq-next-checked-without-the-flag", "hw/virtqueue.py",
      "bad_next.eq(chains & (data_in[16:] & ~mask).any())",
      "bad_next.eq((data_in[16:] & ~mask).any())",
      "a descriptor's next field is checked (case 3) even with NEXT clear, where it is ignored"),
    M("vq-next-check-dropped", "hw/virtqueue.py",
      "bad_next.eq(chains & (data_in[16:] & ~mask).any())",
      "bad_next.eq(0)",
      "a next field of QueueNum or more is followed (masked), not D11 case 3"),
    M("vq-chain-one-past-max-chain", "hw/virtqueue.py",
      "too_long.eq(chains & ((grown >= self._max_chain) | (grown >= size))),",
      "too_long.eq(chains & ((grown > self._max_chain) | (grown >= size))),",
      "a chain of max_chain + 1 descriptors is fetched past the store (D11 case 4)"),
    M("vq-chain-longer-than-queue-num", "hw/virtqueue.py",
      "too_long.eq(chains & ((grown >= self._max_chain) | (grown >= size))),",
      "too_long.eq(chains & (grown >= self._max_chain)),",
      "a chain longer than QueueNum (a loop in a small ring) is only caught at max_chain"),
    M("vq-order-check-dropped", "hw/virtqueue.py",
      "with m.Elif(seen_writable & ~writable):",
      "with m.Elif(seen_writable & ~writable & 0):",
      "a readable descriptor after a writable one is served (D11 case 5)"),
    M("vq-zero-length-check-dropped", "hw/virtqueue.py",
      "zero_length.eq(length_less.all()),",
      "zero_length.eq(0),",
      "a descriptor of length 0 is served (D11 case 6)"),
    M("vq-indirect-check-dropped", "hw/virtqueue.py",
      "with m.If(flags & _DESC_F_INDIRECT):",
      "with m.If(flags & 0):",
      "an INDIRECT descriptor is served as a buffer (D11 case 7)"),
    M("vq-total-carry-dropped", "hw/virtqueue.py",
      "with m.Elif(total_carry):",
      "with m.Elif(total_carry & 0):",
      "readable or writable totals beyond 2 ** 32 - 1 wrap (D11 case 11)"),
    M("vq-buffer-end-off-bus-unchecked", "hw/virtqueue.py",
      "off_bus.eq(address[baw:].any() | sum_last[baw:].any()),",
      "off_bus.eq(address[baw:].any()),",
      "a buffer that starts on the bus and runs past its top is served (wraps; D11a)"),
    M("vq-queue-size-any-number", "hw/virtqueue.py",
      "bad_size.eq((size == 0) | (size & mask).any())",
      "bad_size.eq(size == 0)",
      "a QueueNum that is not a power of two is served with a mask (D11 case 12)"),
    M("vq-avail-ring-misalignment-unchecked", "hw/virtqueue.py",
      "misaligned = (areas[0][:2].any() | areas[1][0] | areas[2][:2].any())",
      "misaligned = (areas[0][:2].any() | areas[2][:2].any())",
      "an odd Driver Area address is served (D11a)"),
    M("vq-ring-at-the-top-refused", "hw/virtqueue.py",
      "past_top.append(area[low:baw].all() & end[low] & (end[:low] != 0))",
      "past_top.append(area[low:baw].all() & end[low])",
      "a ring area ending exactly at the top of the bus is refused (D11a)"),
    M("vq-ring-past-the-top-served", "hw/virtqueue.py",
      "beyond = Cat(area[baw:] for area in areas).any() | Cat(past_top).any()",
      "beyond = Cat(area[baw:] for area in areas).any()",
      "a ring area running past the top of the bus is served (wraps to 0; D11a)"),
    # ring positions and their wrap
    M("vq-head-entry-unmasked", "hw/virtqueue.py",
      "ring_entry(driver_base, avail & mask)",
      "ring_entry(driver_base, avail)",
      "the available ring's entry is read at last_avail, not last_avail % QueueNum (2nd lap)"),
    M("vq-read-ahead-entry-unmasked", "hw/virtqueue.py",
      "ring_entry(driver_base, new_used & mask)",
      "ring_entry(driver_base, new_used)",
      "the entry read ahead in INTERRUPT is not wrapped (2nd lap, several buffers, one notify)"),
    M("vq-used-element-unmasked", "hw/virtqueue.py",
      "control(device_base, slot=Cat(1, avail & mask), inc=sent[0])",
      "control(device_base, slot=Cat(1, avail), inc=sent[0])",
      "the used element is written at used_idx, not used_idx % QueueNum (2nd lap)"),
    M("vq-used-event-entry-wrong", "hw/virtqueue.py",
      "ring_entry(driver_base, size)   # used_event",
      "ring_entry(driver_base, mask)   # used_event",
      "used_event is read from ring[QueueNum - 1], not after the ring"),
    # the order of the writes that return a buffer (D11d)
    M("vq-element-before-data-acked", "hw/virtqueue.py",
      "with m.If((unpacker.done | unpacker.ending) & packer.done & ~staged & settled):",
      "with m.If((unpacker.done | unpacker.ending) & packer.done & ~staged):",
      "the used element is written before every data write was acknowledged"),
    M("vq-used-idx-before-element-acked", "hw/virtqueue.py",
      "acked = (outstanding == 0) | ((outstanding == 1) & bus.ack & ~bus.err)",
      "acked = 1",
      "used.idx goes out before the element's words are acknowledged"),
    M("vq-used-idx-over-an-error", "hw/virtqueue.py",
      "acked = (outstanding == 0) | ((outstanding == 1) & bus.ack & ~bus.err)",
      "acked = (outstanding == 0) | ((outstanding == 1) & (bus.ack | bus.err))",
      "used.idx is published in the cycle the element's write fails"),
    M("vq-used-len-words", "hw/virtqueue.py",
      "written.eq(written + unpacker.o.p.n)]",
      "written.eq(written + 4)]",
      "the used length counts words, not the bytes written"),
    # event suppression (D11e)
    M("vq-event-idx-compares-new-index", "hw/virtqueue.py",
      "notify = Mux(self.event_idx, halfword == avail,",
      "notify = Mux(self.event_idx, halfword == new_used,",
      "EVENT_IDX: the interrupt when used_event equals the new used.idx, not the old"),
    M("vq-no-interrupt-inverted", "hw/virtqueue.py",
      "(halfword & _AVAIL_F_NO_INTERRUPT) == 0)",
      "(halfword & _AVAIL_F_NO_INTERRUPT) != 0)",
      "VRING_AVAIL_F_NO_INTERRUPT read inverted"),
    M("vq-avail-event-new-index", "hw/virtqueue.py",
      "issue_dat.eq(avail.replicate(2))]",
      "issue_dat.eq(new_used.replicate(2))]",
      "avail_event is published as last_avail + 1"),
    M("vq-avail-event-published-once", "hw/virtqueue.py",
      "m.d.sync += [last_avail[q].eq(new_used), published.bit_select(q, 1).eq(0)]",
      "m.d.sync += last_avail[q].eq(new_used)",
      "avail_event is published after the first batch only, never again"),
    M("vq-avail-event-never", "hw/virtqueue.py",
      "with m.Elif(self.event_idx & ~published.bit_select(q, 1)):",
      "with m.Elif(self.event_idx & ~published.bit_select(q, 1) & 0):",
      "with EVENT_IDX the engine goes idle without publishing avail_event"),
    M("vq-avail-recheck-skipped", "hw/virtqueue.py",
      "published.bit_select(q, 1).eq(1)]\n                    m.next = \"AVAIL\"",
      "published.bit_select(q, 1).eq(1)]\n                    m.next = \"IDLE\"",
      "after publishing avail_event, avail.idx is not read again (the lost-wakeup race)"),
    # teardown (D11f) and the contract with device logic (D11h)
    M("vq-teardown-ignores-queue-ready", "hw/virtqueue.py",
      "with m.If(self.reset | ~self.queues.ready.bit_select(q, 1)):",
      "with m.If(self.reset):",
      "QueueReady = 0 does not end the chain in hand"),
    M("vq-request-while-not-ready", "hw/virtqueue.py",
      "m.d.comb += serving.eq(~self.reset & self.queues.ready.bit_select(q, 1))",
      "m.d.comb += serving.eq(1)",
      "a request is presented in the cycle of a reset or of QueueReady = 0"),
    M("vq-teardown-keeps-the-fault", "hw/virtqueue.py",
      "m.d.sync += self.error_case.eq(self.error_case)",
      "m.d.sync += []",
      "a bus error answered in the cycle of a teardown is kept in error_case (D11f)"),
    M("vq-queue-index-kept-after-teardown", "hw/virtqueue.py",
      "m.d.sync += [pending[i].eq(0), checked[i].eq(0), published[i].eq(0),\n"
      "                             last_avail[i].eq(0), shadow_avail[i].eq(0)]",
      "m.d.sync += [pending[i].eq(0), checked[i].eq(0), published[i].eq(0),\n"
      "                             shadow_avail[i].eq(0)]",
      "a queue made ready again goes on from its old index, not 0"),
    M("vq-queue-checks-kept-after-teardown", "hw/virtqueue.py",
      "m.d.sync += [pending[i].eq(0), checked[i].eq(0), published[i].eq(0),",
      "m.d.sync += [pending[i].eq(0), published[i].eq(0),",
      "a queue set up again is not checked again (a new QueueNum or ring address)"),
    M("vq-stale-beat-after-abort", "hw/virtqueue.py",
      "m.d.comb += [self.abort.eq(held), packer.load.eq(1), unpacker.clear.eq(1),\n"
      "                         fifo_clear.eq(1)]",
      "m.d.comb += self.abort.eq(held)",
      "a beat of a dropped chain stays offered on read after abort (the issue-21 hang)"),
    M("vq-abort-with-no-chain-held", "hw/virtqueue.py",
      "m.d.comb += [self.abort.eq(held), packer.load.eq(1)",
      "m.d.comb += [self.abort.eq(1), packer.load.eq(1)",
      "abort pulses also when device logic holds no chain"),
    M("vq-error-with-no-chain-held", "hw/virtqueue.py",
      "refused.eq(self.error & (held | handshake)),",
      "refused.eq(self.error),",
      "error counts while device logic holds no chain (a request offered, not taken)"),
    M("vq-round-robin-from-queue-0", "hw/virtqueue.py",
      "q.eq(pick), turn.eq(pick),",
      "q.eq(pick), turn.eq(0),",
      "queues are picked from queue 0 each time, not after the one served last (D11g)"),
    M("vq-more-than-outstanding", "hw/virtqueue.py",
      "credit.eq(outstanding != OUTSTANDING),",
      "credit.eq(1),",
      "more than OUTSTANDING requests in flight"),
    M("vq-halfword-swapped", "hw/virtqueue.py",
      "halfword.eq(Mux(halves[0], data_in[16:], data_in[:16]))",
      "halfword.eq(Mux(halves[0], data_in[:16], data_in[16:]))",
      "a 16-bit ring field is read from the wrong half of its word"),
    M("vq-connect-drops-device-needs-reset", "hw/virtqueue.py",
      "device.needs_reset.eq(self.needs_reset | extra)]",
      "device.needs_reset.eq(self.needs_reset)]",
      "connect_transport drops device logic's own needs_reset"),
    M("vq-connect-leaves-needs-reset-unwired", "hw/virtqueue.py",
      "device.needs_reset.eq(self.needs_reset | extra)]",
      "]",
      "connect_transport leaves the transport's needs_reset unconnected (a D11 fault is silent)"),
    # --- hw/realign.py: Packer, Unpacker -----------------------------------------------------
    M("rl-packer-flush-count", "hw/realign.py",
      "out.count.eq(held), out.last.eq(1),",
      "out.count.eq(4), out.last.eq(1),",
      "the last beat flushed from the residue says 4 bytes"),
    M("rl-packer-last-count", "hw/realign.py",
      "out.count.eq(Mux(self.i.p.last & fits, total, 4)),",
      "out.count.eq(Mux(self.i.p.last, total, 4)),",
      "a beat before a flushed last beat says more than 4 bytes"),
    M("rl-packer-rotation", "hw/realign.py",
      "m.d.comb += rotated.eq(_rotate(self.i.p.data, self.i.p.lo - held))",
      "m.d.comb += rotated.eq(_rotate(self.i.p.data, self.i.p.lo + held))",
      "a word joins the held bytes rotated the wrong way"),
    M("rl-packer-join-lane", "hw/realign.py",
      "Mux(held > j, _bytes(residue)[j], _bytes(rotated)[j])",
      "Mux(held >= j, _bytes(residue)[j], _bytes(rotated)[j])",
      "one held byte too many is kept in the joined beat"),
    M("rl-packer-never-flushes", "hw/realign.py",
      "flush.eq(self.i.p.last & ~fits)]",
      "flush.eq(0)]",
      "bytes left over after the run's last word are never sent"),
    M("rl-unpacker-sel-unshifted", "hw/realign.py",
      "self.o.p.sel.eq(Array(Const(s, 4) for s in (0, 1, 3, 7, 15))[take] << self.lane),",
      "self.o.p.sel.eq(Array(Const(s, 4) for s in (0, 1, 3, 7, 15))[take]),",
      "a word's byte selects start at lane 0, not at the destination lane"),
    M("rl-unpacker-rotation", "hw/realign.py",
      "self.o.p.data.eq(_rotate(window, head[:2] - self.lane)),",
      "self.o.p.data.eq(_rotate(window, head[:2] + self.lane)),",
      "the bytes are rotated the wrong way onto the destination lanes"),
    M("rl-unpacker-count-unclamped", "hw/realign.py",
      "m.d.comb += beat.eq(Mux(self.i.p.count > 4, 4, self.i.p.count))",
      "m.d.comb += beat.eq(self.i.p.count)",
      "a write beat's count above 4 is taken as is, not as 4"),
    M("rl-unpacker-ending-with-bytes-held", "hw/realign.py",
      "self.ending.eq(accept & self.i.p.last & (beat == 0) & (count == 0))",
      "self.ending.eq(accept & self.i.p.last & (beat == 0))",
      "an empty last beat ends the chain with bytes still held (lost)"),
    M("rl-unpacker-overfull", "hw/realign.py",
      "self.i.ready.eq(~ended & ((count <= 3) |",
      "self.i.ready.eq(~ended & ((count <= 4) |",
      "a beat is taken with 4 bytes held: the store overflows"),
)


# --- running -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Result:
    mutant: Mutant
    outcome: str                    # "killed", "survived", "timeout", "error"
    by: str = ""
    seconds: float = 0.0
    output: str = ""
    #: The outcome came from the Linux run (``--linux``): the simulation tests let it survive.
    linux: bool = False
    #: Seconds of the Linux run, if there was one.
    linux_seconds: float = 0.0


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
_TALLY = re.compile(r"^=*\s*(\d+ (?:passed|failed|errors?|skipped|deselected)\b.*?) in [\d.]+s",
                    re.MULTILINE)


def _tally(output):
    """pytest's last count line ("2 passed", "1 failed, 1 passed"), so that a survivor's line
    shows that its tests ran."""
    found = _TALLY.findall(output)
    return found[-1] if found else "no count"


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


def _outcome(mutant, rc, by, output, seconds):
    if rc is None:
        return Result(mutant, "timeout", "", seconds, output)
    if rc == 0:
        return Result(mutant, "survived", "", seconds, output)
    if rc in (1, 2) and by:
        return Result(mutant, "killed", by, seconds, output)
    return Result(mutant, "error", f"pytest exit code {rc}", seconds, output)


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
        result = _outcome(mutant, *run_pytest(tree, files, pytest_args(options),
                                              options.mutant_timeout, options.examples))
        if options.linux and result.outcome == "survived":
            result = run_linux(mutant, options, tree, result)
    return result


def _share_kernel_cache(tree):
    """Point ``tree``'s build/linux/ at the checkout's: the copy leaves build/ out, and the
    kernel (sim/uml/kernel.py) is cached under the build/ next to the code that asks for it,
    keyed by its inputs, none of which is in hw/; without this every mutant would build it."""
    cache = ROOT / "build" / "linux"
    cache.mkdir(parents=True, exist_ok=True)
    (tree / "build").mkdir(exist_ok=True)
    link = tree / "build" / "linux"
    if not link.exists():
        link.symlink_to(cache, target_is_directory=True)


def build_kernel(source):
    """Build the UML kernels for ``source`` into the shared cache before any mutant runs (a
    few minutes the first time, seconds once cached), so that no Linux run pays for it inside
    its timeout. Returns (ok, output)."""
    _share_kernel_cache(source)
    env = dict(os.environ, PYTHONPATH=str(source), PYTHONDONTWRITEBYTECODE="1")
    # One build makes both variants (mainline and the proposal's driver patches).
    proc = subprocess.run([sys.executable, "-m", "sim.uml", "--build"], cwd=source, env=env,
                          capture_output=True, text=True)
    return proc.returncode == 0, proc.stdout + proc.stderr


def linux_selection(mutant, options):
    """The ``-k`` expression of the Linux tests a mutant runs against (None: all of them)."""
    return options.linux_tests or LINUX_TESTS.get(mutant.path)


def linux_args(selection, options):
    args = ["-m", "linux", "--hypothesis-seed", str(options.seed)]
    if selection:
        args += ["-k", selection]
    # A mutant that makes the guest hang would otherwise hold the run for the test's own bound
    # of the boot (15 minutes for virtio-blk); a test over --linux-timeout fails, named.
    args += ["--timeout", str(options.linux_timeout)]
    return args + list(options.pytest)


def run_linux(mutant, options, tree, survived):
    """A mutant the simulation tests left alive, against the Linux tests in the same tree."""
    _share_kernel_cache(tree)
    rc, by, output, seconds = run_pytest(tree, [LINUX_FILE],
                                         linux_args(linux_selection(mutant, options), options),
                                         options.mutant_timeout)
    result = _outcome(mutant, rc, by, survived.output + output, survived.seconds + seconds)
    if rc == 5:     # no test selected: an error in the selection, not a survivor
        result = Result(mutant, "error", "no Linux test selected", result.seconds, output)
    result.linux, result.linux_seconds = True, seconds
    return result


def run_clean(options, source):
    """The unmutated tree must pass the same selection, or every mutant would look killed."""
    with tempfile.TemporaryDirectory(prefix="mutant-clean-") as tmp:
        tree = Path(tmp) / "tree"
        _copy_tree(source, tree)
        files = ordered_test_files(tree, (), options.ignore, options.tests)
        return run_pytest(tree, files, pytest_args(options), options.mutant_timeout,
                          options.examples)


def run_clean_linux(killed, options, source):
    """The unmutated tree against the Linux tests that killed mutants (run only when some did:
    a Linux run costs minutes), or a broken kernel or co-simulation would look like kills."""
    selections = {linux_selection(r.mutant, options) for r in killed}
    selection = None if None in selections else " or ".join(f"({s})" for s in
                                                            sorted(selections))
    with tempfile.TemporaryDirectory(prefix="mutant-clean-linux-") as tmp:
        tree = Path(tmp) / "tree"
        _copy_tree(source, tree)
        _share_kernel_cache(tree)
        return run_pytest(tree, [LINUX_FILE], linux_args(selection, options),
                          options.mutant_timeout)


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
    parser.add_argument("--linux", action="store_true",
                        help="run every mutant the selected tests leave alive again against "
                             "the tests marked linux (they boot the UML kernel; built first "
                             "if it is not cached in build/linux/)")
    parser.add_argument("--linux-tests", metavar="EXPR",
                        help="a pytest -k expression of the Linux tests for every mutant "
                             "(default: per module, LINUX_TESTS: the virtio-blk tests for "
                             "hw/blk.py, hw/virtqueue.py and hw/realign.py, all for the others)")
    parser.add_argument("--linux-timeout", type=int, default=600,
                        help="seconds per Linux test (default 600; an unmutated virtio-blk "
                             "boot takes about 65 s on 2 cores): a test over it fails, which "
                             "kills the mutant; --mutant-timeout bounds the whole Linux run")
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
    if options.linux:
        ok, output = build_kernel(source)
        if not ok:
            snapshot.cleanup()
            raise SystemExit("mutation.py: --linux: the UML kernel did not build:\n" + output)
    with snapshot, ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        clean = None if options.no_clean else pool.submit(run_clean, options, source)
        futures = [pool.submit(run_mutant, m, options, source) for m in mutants]
        for future in futures:
            r = future.result()
            results.append(r)
            tag = " (equivalent)" if r.mutant.equivalent else ""
            by = f" by {r.by}" if r.by else ""
            where = f", Linux {r.linux_seconds:.0f} s: {_tally(r.output)}" if r.linux else ""
            print(f"{r.outcome:<8} {r.mutant.name}{tag}{by}  [{r.seconds:.0f} s{where}]",
                  flush=True)
            if r.outcome == "error":
                print("\n".join("    " + line for line in r.output.splitlines()[-15:]))
        clean_result = clean.result() if clean else None
        by_linux = [r for r in results if r.linux and r.outcome in ("killed", "timeout")]
        clean_linux = run_clean_linux(by_linux, options, source) \
            if by_linux and not options.no_clean else None

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
    if options.linux:
        linux_killed = [r for r in killed if r.linux]
        ran = [r for r in results if r.linux]
        print(f"killed only by Linux: {len(linux_killed)} of the {len(ran)} mutants the "
              f"simulation tests left alive" +
              (f" ({', '.join(r.mutant.name for r in linux_killed)})" if linux_killed else ""))
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
    for clean_run, what, failed in (
            (clean_result, "the selection", "these results mean nothing"),
            (clean_linux, "the Linux tests that killed mutants",
             "the kills by Linux mean nothing")):
        if clean_run is None:
            continue
        rc, by, output, seconds = clean_run
        if rc != 0:
            print(f"\nTHE UNMUTATED TREE FAILS {what.upper()} ({by or f'exit code {rc}'}): "
                  f"{failed}.\n" + "\n".join(output.splitlines()[-20:]))
            status = 1
        else:
            print(f"unmutated tree: passes {what} in {seconds:.0f} s")
    if errors:
        status = 1
    if options.json:
        options.json.write_text(json.dumps([
            {"name": r.mutant.name, "path": r.mutant.path, "outcome": r.outcome, "by": r.by,
             "seconds": round(r.seconds, 1), "equivalent": r.mutant.equivalent,
             "linux": r.linux, "linux_seconds": round(r.linux_seconds, 1)}
            for r in results], indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
