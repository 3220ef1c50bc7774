"""The register layer of the transport: the pipelined bus, as one helper the concerns share."""

from amaranth.hdl import Const, Module, Mux, Signal, Value

from .logic import less_than
from .regmap import RegisterMap


__all__ = ["BusPipeline"]


class BusPipeline:
    """Pipelined access of a Wishbone target to a register map, shared by the register concerns.

    The transport's registers are grouped by concern (Status, features, queues, interrupts,
    ...); each concern keeps its state and rules in one place and asks this helper for what it
    needs from the bus: a write strobe, a value of the request registered for the write, a read
    value, a state register that a device reset clears. The helper alone knows the timing, so a
    concern never builds a bus path of its own. (The shape is amaranth-soc's: there a field
    action owns storage and timing and the peripheral only wires fields, here the concern owns
    the rules and the pipeline the timing.)

    Not a :class:`~amaranth.lib.wiring.Component`: it adds to the module of the component that
    uses it, so every signal it makes is named in that component (``write_Status``,
    ``read_QueueReady``, ``wdata``, ...; waveforms and the benchmark's timing reports show these
    names).

    Parameters
    ----------
    m : Module
        The module of the component the registers belong to.
    bus : wishbone.Interface
        The target side of the host bus (``In(wishbone.Signature(...))``), 32-bit data.
    regs : RegisterMap
        The register map: word addresses, access types.

    Raises
    ------
    TypeError
        If ``m`` is not a :class:`~amaranth.hdl.Module` or ``regs`` not a
        :class:`~hw.regmap.RegisterMap`.

    Attributes
    ----------
    write, read : Value
        A write (any byte enables) or a read is presented in this cycle: cycle N. Combinational.
    full_write : Value
        A write with all four byte enables, cycle N. Control registers take only these
        (decisions.md D8).
    reading : Signal
        Cycle N+1 of a read: ``dat_r`` is loaded at its end.
    wdata : Signal(32)
        The write data of cycle N, registered: the value a write stores in cycle N+1.

    Operation
    ---------
    **Cycle N**, the request: the address is compared with each register word (:meth:`at`),
    once per word for reads and writes alike, and the write data can be checked
    (``bus.dat_w``). Whatever a concern wants of it goes through :meth:`stage`, which registers
    it; nothing in cycle N reaches state directly. (The config space is the exception: its
    accesses are forwarded to the device's config port in cycle N.)

    **Cycle N+1**, ``ack`` for a write (registered), the register update: a concern updates
    its state under a strobe from :meth:`write_strobe` with :attr:`wdata` and the staged
    checks. The bus takes no request in this cycle (``ack`` is high), so the next access sees
    the write. For a read, cycle N+1 registers the value of the register selected in cycle N
    (the values given to :meth:`read_value`, or a :meth:`read_window`'s) into ``dat_r``, and
    ``ack`` follows in cycle N+2, if the master still holds the request (else it was aborted).

    So every path between the bus and the state starts or ends at a flip-flop.

    **Reset**: the registers made with :meth:`state` or named with :meth:`add_state` return to
    their ``init`` value at the end of any cycle in which the ``reset`` given to :meth:`finish`
    is high, whatever else writes them then (decisions.md D7). The transport raises it in the
    ack cycle of a Status := 0 write, like any write.

    How a concern uses it, e.g. a register ``Foo`` that stores a value only if it is below 10::

        foo = pipe.state(8, name="foo")                        # cleared by the reset
        fits = pipe.stage(bus.dat_w < 10, "foo_fits")          # checked in cycle N
        with m.If(pipe.write_strobe("Foo") & fits):            # performed in cycle N+1
            m.d.sync += foo.eq(pipe.wdata)
        pipe.read_value("Foo", foo)

    Calls that add registers (:meth:`stage`, :meth:`write_strobe`, :meth:`selector`,
    :meth:`read_window`) must be made outside any ``m.If``, where a register is loaded every
    cycle.
    """

    def __init__(self, m, bus, regs):
        if not isinstance(m, Module):
            raise TypeError(f"m must be a Module, not {m!r}")
        if not isinstance(regs, RegisterMap):
            raise TypeError(f"regs must be a RegisterMap, not {regs!r}")
        self._m = m
        self._bus = bus
        self._regs = regs
        self._decoded = {}
        self._strobes = {}
        self._state = []
        self._read_values = {}
        self._windows = []
        self._finished = False

        self.reading = Signal()             # cycle N+1 of a read: dat_r is loaded, ack follows
        request = bus.cyc & bus.stb & ~bus.ack & ~self.reading
        self.write = request & bus.we
        self.read = request & ~bus.we
        self.full_write = self.write & (bus.sel == 0b1111)
        m.d.sync += [
            self.reading.eq(self.read),
            # a read is acknowledged only if the master still holds it (else it was aborted)
            bus.ack.eq(self.write | self.reading & bus.cyc & bus.stb),
        ]
        self.wdata = self.stage(bus.dat_w, "wdata")
        # cycle N: which word is read, one register per readable word (`read_{first register}`);
        # the values they select are only known once every concern has given its own.
        self._read_selects = {
            word: self.stage(self.at(word), f"read_{regs.in_word(word)[0].name}")
            for word in sorted({r.word for r in regs if r.access.readable})}

    @property
    def regs(self):
        """The :class:`~hw.regmap.RegisterMap`."""
        return self._regs

    def at(self, word):
        """The request addresses word ``word`` (cycle N, combinational). One comparator per word,
        shared by every use."""
        if word not in self._decoded:
            self._decoded[word] = self._bus.adr == word
        return self._decoded[word]

    def stage(self, value, name):
        """``value`` in cycle N, registered into a signal ``name``: available in cycle N+1."""
        sig = Signal.like(Value.cast(value), name=name)
        self._m.d.sync += sig.eq(value)
        return sig

    def write_strobe(self, name, gate=None):
        """A full-word write of register ``name``: a strobe high in cycle N+1 (``write_{name}``).

        ``gate``, a value that holds still between cycles N and N+1 (a register), is applied in
        cycle N, so the strobe still comes from one flip-flop. There is one strobe per register,
        so every concern that asks for it must give the same gate.
        """
        if name not in self._strobes:
            condition = self.full_write & self.at(self._regs[name].word)
            if gate is not None:
                condition = condition & gate
            self._strobes[name] = (self.stage(condition, f"write_{name}"), gate)
        strobe, its_gate = self._strobes[name]
        if gate is not its_gate:
            raise ValueError(f"Register {name} is written under two different gates")
        return strobe

    def state(self, shape, *, name, init=0):
        """A register of state that the device reset returns to ``init``."""
        sig = Signal(shape, name=name, init=init)
        self._state.append(sig)
        return sig

    def add_state(self, *signals):
        """Existing registers (e.g. the device side's queue configuration) that the device reset
        returns to their ``init`` value."""
        self._state += signals

    def selector(self, name, limit, *, state_name):
        """A selector register written by ``name``: a state register of ``range(limit + 1)``.

        A written value at or beyond ``limit`` is stored as ``limit``, "out of range"
        (decisions.md D8); the comparison is made in cycle N and staged as
        ``{name}_below_limit``.
        """
        sig = self.state(range(limit + 1), name=state_name)
        below = self.stage(less_than(self._bus.dat_w, limit), f"{name}_below_limit")
        value = Mux(below, self.wdata, limit)
        with self._m.If(self.write_strobe(name)):
            self._m.d.sync += sig.eq(value)
        return sig

    def read_value(self, name, value):
        """What a read of register ``name`` returns: ``value`` in cycle N+1, when it is
        registered into ``dat_r`` (an int or a value, within the register's lanes)."""
        reg = self._regs[name]
        if not reg.access.readable:
            raise ValueError(f"Register {name} is not readable")
        if name in self._read_values:
            raise ValueError(f"Register {name} has a read value already")
        self._read_values[name] = value

    def read_window(self, select, value, name):
        """Reads for which ``select`` (cycle N) holds return ``value`` instead of a register: the
        selection is staged as ``name`` and ``value`` sampled in cycle N+1. Later windows take
        precedence."""
        self._windows.append((self.stage(select, name), value))

    def finish(self, *, reset):
        """Build the read multiplexer and the reset of the state; call once, after every
        concern has added its registers and statements (the reset takes precedence over all of
        them)."""
        assert not self._finished, "BusPipeline.finish() called twice"
        self._finished = True
        m, regs = self._m, self._regs
        missing = [r.name for r in regs if r.access.readable and r.name not in self._read_values]
        if missing:
            raise ValueError(f"Readable registers without a read value: {', '.join(missing)}")

        # cycle N+1: the value of the word selected in cycle N (one-hot) into dat_r.
        rdata = Const(0, 32)
        for word, selected in self._read_selects.items():
            value = Const(0, 32)
            for r in regs.in_word(word):
                if r.access.readable:
                    value = value | self._read_values[r.name]
            rdata = rdata | Mux(selected, value, 0)
        for selected, value in self._windows:
            rdata = Mux(selected, value, rdata)
        with m.If(self.reading):
            m.d.sync += self._bus.dat_r.eq(rdata)

        with m.If(reset):
            m.d.sync += [sig.eq(sig.init) for sig in self._state]
