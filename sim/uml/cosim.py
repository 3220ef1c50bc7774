"""Linux in the loop: the kernel's own virtio drivers drive the transport RTL.

:class:`CoSimulation` starts a User-Mode Linux guest (:mod:`sim.uml.kernel`,
:mod:`sim.uml.guest`) with two inherited ``SOCK_SEQPACKET`` sockets, and simulates the
transport (the same gateware as every other test) with device logic behind it in Amaranth's
simulator. The guest's bridge (``sim/uml/kernel/virtio_sim_kern.c``) turns every ``readl`` /
``writel`` of the device's window into a request (:mod:`sim.uml.protocol`); the simulation
performs it on the transport's host bus (Wishbone, :class:`sim.bus.SimMMIO`, which also records
the transcript by register name) and answers.

Lock-step, so deterministic
---------------------------
The simulated clock runs only while the guest waits for an answer: after each access it ticks
until the device logic is idle (at least :data:`SETTLE` cycles after a write), and only then
answers. An interrupt the device raised in that time goes out on the interrupt channel before
the answer, so the guest takes it as soon as the access returns, at the same point of every run.
The guest's clock is virtual (``time-travel=inf-cpu``): the same command gives the same
transcript, cycle for cycle. The IRQ event rule: one event when the interrupt line is high after
an access and was low before it, or is still high after a write to InterruptACK (a level the
driver has not cleared; the mainline driver acknowledges what it read, so this is rare).

Nothing hangs
-------------
Every wait has a bound and raises :class:`CoSimError` naming what it waited for: device logic
still busy :data:`WORK_LIMIT` cycles after an access (:class:`DeviceStuck`), a run not finished
within ``timeout`` seconds of wall time (:class:`GuestTimeout`), a malformed, truncated or
oversized message or a channel closed before the guest finished (:class:`BridgeError`; a
malformed request is answered ``REFUSED`` first). The interrupt channel does not block: events
the guest has not taken yet coalesce. An access outside the transport's window
gets the transport's own answer for an undefined offset: acknowledged, reads 0, writes dropped.

Device logic
------------
A device object (:class:`sim.rng.RngDevice`) has ``name``, ``transport(**personality)`` (the
transport, or ``(top, transport)`` for a device in gateware that must be simulated with it),
``bind(memory)`` (guest memory, a :class:`sim.memory.GuestMemory` over the guest's memory file,
given before the first access), ``idle`` (nothing left it could do now), ``run(ctx)`` (a
background testbench) and optionally ``background()`` (more background testbenches: models of
the memories a device in gateware masters, :class:`sim.blk.BlkDevice`).
"""

import mmap
import os
import platform
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from hw.regmap import WINDOW_SIZE, MsiCmdV2, MsiOpV1

from ..bus import CycleCounter, SimMMIO, Transcript
from ..memory import GuestMemory
from ..scenario import describer
from ..waves import simulate, transport_traces
from . import guest
from .kernel import VARIANTS, kernel
from .protocol import (ACCESS_SIZES, HELLO, IRQ, MSG_SIZE, MSI, OK, READ, REFUSED, VERSION,
                       WRITE, Message, ProtocolError)

__all__ = ["CoSimError", "BridgeError", "GuestTimeout", "DeviceStuck", "StrayMSI", "Result",
           "CoSimulation",
           "PERSONALITIES", "SETTLE", "WORK_LIMIT", "run_linux"]

#: Cycles the simulation runs after a write before it may answer (the transport's doorbell to
#: device-side notification path is shorter).
SETTLE = 4
#: Cycles device logic may stay busy after one access.
WORK_LIMIT = 200_000
#: Wall-clock bound of a whole run unless the caller gives another.
TIMEOUT = 300.0
#: Doorbells of the ``notify`` personality: notify_base and notify_multiplier.
NOTIFY_BASE, NOTIFY_MULTIPLIER = WINDOW_SIZE, 4
#: ``--msi`` choices: the transport's ``msi`` parameter.
PERSONALITIES = {"none": None, "v2": "v2", "v1": "v1"}
_POLL = 0.2

class CoSimError(Exception):
    """The co-simulation failed; the message says what it waited for or what was wrong."""
    console = ""

class BridgeError(CoSimError):
    """A malformed or truncated message, or a channel closed before the guest finished."""

class GuestTimeout(CoSimError):
    """The guest made no request and did not finish within the run's wall-clock bound."""

class DeviceStuck(CoSimError):
    """Device logic stayed busy for :data:`WORK_LIMIT` cycles after an access."""


class StrayMSI(CoSimError):
    """The device sent an MSI message (address, data) that the guest never configured."""

@dataclass
class Result:
    """What a run gave."""
    status: int                 # the command's exit status
    console: str                # the guest's console, without /init's exit line
    transcript: Transcript
    cycles: int                 # simulated clock cycles
    wall: float                 # seconds, from start to power-off
    boot: float                 # seconds from start to the bridge's hello
    irq_events: int
    outside: int                # accesses outside the transport's window
    msi: list = field(default_factory=list)         # (address, data) of every MSI delivered
    waves: tuple = None         # (vcd, gtkw) with waves=True
    errors: list = field(default_factory=list)      # device logic's ring errors (D11)

    @property
    def accesses(self):
        return len(self.transcript.accesses)

class CoSimulation:
    """One guest boot with ``device`` behind the transport.

    Parameters
    ----------
    device : device logic (see the module's documentation)
    command : str
        Shell command the guest runs as root; the run's status is its exit status.
    msi : None, "v2" or "v1"
        The transport's MSI personality (proposal v1 is Version 3, which only the patched
        driver, ``driver="proposal"``, probes).
    sharing : bool
        With ``msi="v2"``: the sharing mapping mode (MAP_CONFIG / MAP_QUEUE), else the fixed
        non-sharing map (decisions.md D4).
    vectors : int or None
        MsiVecNum (the transport's ``msi_vectors``; ``None``: its default).
    notify : bool
        Per-queue doorbells (notify_base :data:`NOTIFY_BASE`, multiplier
        :data:`NOTIFY_MULTIPLIER`).
    console : callable(str) or None
        Gets the guest's console line by line as it arrives.
    transcript : callable(str) or None
        Gets every register access by name as it happens.
    waves : bool
        Write ``linux-<device>.vcd`` and ``.gtkw`` (see :func:`sim.waves.simulate`).
    timeout : float
        Wall-clock bound of the run in seconds.
    work_limit : int
        Cycles device logic may stay busy after one access (:class:`DeviceStuck`).
    driver : "mainline" or "proposal"
        Which kernel (:data:`sim.uml.kernel.VARIANTS`): virtio drivers as Debian ships them, or
        with the project's patches for the proposal (``sim/uml/kernel/patches``), booted with
        ``virtio_mmio.proposal=1``.
    linux : path or None
        The kernel to boot; ``None`` builds (or finds) ``driver``'s with
        :func:`sim.uml.kernel.kernel`.
    """

    def __init__(self, device, command, *, msi=None, sharing=False, vectors=None, notify=False,
                 console=None, transcript=None, waves=False, timeout=TIMEOUT,
                 work_limit=WORK_LIMIT, driver="mainline", linux=None):
        if msi not in PERSONALITIES.values():
            raise ValueError(f"msi must be one of {list(PERSONALITIES.values())}, not {msi!r}")
        if driver not in VARIANTS:
            raise ValueError(f"driver must be one of {sorted(VARIANTS)}, not {driver!r}")
        self.driver = driver
        personality = {"msi": msi}
        if sharing:
            personality["msi_sharing"] = True
        if vectors is not None:
            personality["msi_vectors"] = vectors
        if notify:
            personality.update(notify_base=NOTIFY_BASE, notify_multiplier=NOTIFY_MULTIPLIER)
        built = device.transport(**personality)
        self.top, self.transport = built if isinstance(built, tuple) else (built, built)
        self.device = device
        self.command = command
        self.window = 1 << (len(self.transport.bus.adr) + 2)
        self.waves = waves
        self.timeout = timeout
        self.work_limit = work_limit
        self.linux = linux
        self.transcript = Transcript(echo=transcript)
        self._console_echo = console
        self._console = []
        self._describe = describer(self.transport)
        self._ack = self.transport.regs["InterruptACK"].offset
        self.irq_events = 0
        self.outside = 0
        self.msi_delivered = []
        self._msi_out = []              # messages the transport sent since the last access
        self._msi_staged = {}           # MsiAddrLow/High, MsiData as the guest last wrote them
        self._msi_configured = set()    # (address, data) the guest has CONFIGUREd
        if self.transport.personality == "v1":
            self._v1_op = self.transport.regs["MsiCmd"].field("cmd_op")
        self._memory = None
        self._mapped = None

    # --- the channels -----------------------------------------------------------------------

    def _wait_readable(self, sock, what):
        while True:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise GuestTimeout(f"the guest did not finish within {self.timeout:g} s "
                                   f"(waiting for its {what}; {len(self.transcript.accesses)} "
                                   f"accesses so far, the last: {self._last_access()})")
            readable, _, _ = select.select([sock], [], [], min(_POLL, remaining))
            if readable:
                return True
            if self._process.poll() is not None:
                return False

    def _last_access(self):
        accesses = self.transcript.accesses
        return str(accesses[-1]).strip() if accesses else "none"

    def _exited_before_hello(self, grace=0.0):
        try:
            status = self._process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            return
        raise BridgeError(f"Linux exited (status {status}) before the bridge said hello")

    def _hello(self):
        if not self._wait_readable(self._sock, "bridge's hello"):
            self._exited_before_hello()
        data, fds, _, _ = socket.recv_fds(self._sock, MSG_SIZE + 1, 1)
        try:
            if not data:
                self._exited_before_hello(2.0)
                raise BridgeError("the guest closed the access channel before its hello")
            msg = Message.unpack(data)
            if msg.op != HELLO or msg.size != VERSION or len(fds) != 1:
                self._refuse(msg)
                raise BridgeError(f"the guest's first message is {msg.name} (size {msg.size}, "
                                  f"{len(fds)} descriptors), not a version {VERSION} hello "
                                  f"with the memory file")
            try:
                self._mapped = mmap.mmap(fds[0], msg.value, offset=msg.offset)
            except (OSError, ValueError) as error:
                self._refuse(msg)
                raise BridgeError(f"cannot map the guest's memory file ({msg.value:#x} bytes "
                                  f"at offset {msg.offset:#x}): {error}") from None
        except ProtocolError as error:
            raise BridgeError(str(error)) from None
        finally:
            for fd in fds:
                os.close(fd)
        self._memory = GuestMemory(self._mapped)
        self.device.bind(self._memory)
        self.boot = time.monotonic() - self._start
        self._send(self._sock, Message(HELLO, OK, 0, self.window), "access")

    def _send(self, sock, msg, channel):
        try:
            sock.send(msg.pack())
        except OSError as error:
            raise BridgeError(f"the guest closed the {channel} channel ({error.strerror}) "
                              f"before the {msg.name} could be sent") from None

    def _receive(self):
        """The guest's next request, or ``None`` once it has powered off."""
        if not self._wait_readable(self._sock, "next request or power-off"):
            return None
        data = self._sock.recv(MSG_SIZE + 1)
        if not data:
            return None
        try:
            return Message.unpack(data)
        except ProtocolError as error:
            raise BridgeError(str(error)) from None

    def _refuse(self, msg):
        try:
            self._sock.send(Message(msg.op, REFUSED, msg.offset).pack())
        except OSError:
            pass

    def _check(self, msg):
        """Raise :class:`BridgeError` (after answering REFUSED) if ``msg`` is not a well-formed
        access."""
        problem = None
        if msg.op not in (READ, WRITE):
            problem = "a second hello" if msg.op == HELLO else "not a read or a write"
        elif msg.size not in ACCESS_SIZES:
            problem = f"size {msg.size} is not one of {ACCESS_SIZES}"
        elif msg.offset % msg.size:
            problem = f"offset {msg.offset:#x} is not aligned to its size {msg.size}"
        elif msg.op == WRITE and msg.value >> 8 * msg.size:
            problem = f"value {msg.value:#x} does not fit {msg.size} bytes"
        if problem:
            self._refuse(msg)
            raise BridgeError(f"malformed {msg.name} from the guest (size {msg.size}, offset "
                              f"{msg.offset:#x}, value {msg.value:#x}): {problem}")

    # --- the simulation ---------------------------------------------------------------------

    async def _access(self, io, msg):
        if msg.offset + msg.size > self.window:
            self.outside += 1
            io.note(f"{msg.name} of {msg.size} bytes at {msg.offset:#x} is outside the "
                    f"{self.window:#x}-byte window: acknowledged, reads 0, writes dropped")
            return 0
        # A 64-bit access is two 32-bit ones, low word first, as a 32-bit bus bridge does it.
        parts = [(msg.offset, 4), (msg.offset + 4, 4)] if msg.size == 8 else \
            [(msg.offset, msg.size)]
        value = 0
        for index, (offset, size) in enumerate(parts):
            if msg.op == READ:
                value |= await io.read(offset, size) << 32 * index
            else:
                await io.write(offset, msg.value >> 32 * index & ((1 << 8 * size) - 1), size)
        return value

    def _quiet(self, ctx):
        """Nothing on its way: device logic idle, no notification or MSI message offered."""
        msi = self.transport.msi if "msi" in self.transport.signature.members else None
        return (self.device.idle and not ctx.get(self.transport.device.notify.valid) and
                (msi is None or not ctx.get(msi.valid)))

    async def _settle(self, ctx, msg):
        """Tick until the work an access started is done: after a write, :data:`SETTLE`
        cycles in a row with nothing on its way (an event reaches ``irq`` or the MSI stream a
        cycle or two after device logic has finished); after a read, until then."""
        least = SETTLE if msg.op == WRITE else 0
        quiet = 0
        for _ in range(self.work_limit):
            quiet = quiet + 1 if self._quiet(ctx) else 0
            if quiet > least:
                return
            await ctx.tick()
        where = f"{msg.name} at {msg.offset:#x} ({self._describe(msg.offset)})"
        raise DeviceStuck(f"device {self.device.name} still busy {self.work_limit} cycles after "
                          f"the guest's {where}: it never completes")

    async def _take_msi(self, ctx):
        """Background: take every MSI message the transport offers."""
        stream = self.transport.msi
        ctx.set(stream.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(stream.valid, stream.payload):
            if valid:
                self._msi_out.append((payload.address, payload.data))

    def _snoop_msi_configuration(self, msg):
        """Which messages the guest configured (proposal v2: CONFIGURE latches the staged
        MsiAddrLow/High and MsiData into the selected vector; proposal v1: UPDATE does)."""
        if msg.op != WRITE:
            return
        name = self._describe(msg.offset)
        if self.transport.personality == "v1":
            configure = (name == "MsiCmd" and
                         self._v1_op.extract(msg.value) == MsiOpV1.UPDATE.value)
        else:
            configure = name == "MsiCmd" and msg.value == MsiCmdV2.CONFIGURE.value
        if name in ("MsiAddrLow", "MsiAddrHigh", "MsiData"):
            self._msi_staged[name] = msg.value
        elif configure:
            staged = self._msi_staged
            self._msi_configured.add((staged.get("MsiAddrHigh", 0) << 32 |
                                      staged.get("MsiAddrLow", 0), staged.get("MsiData", 0)))

    def _deliver_msi(self, io):
        """Pass each MSI message the transport sent on to the guest, before the answer."""
        for address, data in self._msi_out:
            if (address, data) not in self._msi_configured:
                raise StrayMSI(f"the device sent MSI data {data:#x} to {address:#x}, which the "
                               f"guest never configured (last access: {self._last_access()})")
            self._send_event(Message(MSI, 0, address, data))
            self.msi_delivered.append((address, data))
            io.note(f"msi: data {data:#x} to {address:#x}, delivered to the guest")
        self._msi_out.clear()

    def _send_event(self, msg):
        """An MSI message on the interrupt channel; waits (bounded) while the channel is full:
        unlike IRQ events, messages for different vectors cannot coalesce."""
        while True:
            try:
                self._irq_sock.send(msg.pack())
                return
            except BlockingIOError:
                if not self._wait_writable():
                    raise GuestTimeout(f"the guest did not take its interrupts within "
                                       f"{self.timeout:g} s (interrupt channel full)") from None
            except OSError as error:
                raise BridgeError(f"the guest closed the interrupt channel "
                                  f"({error.strerror})") from None

    def _wait_writable(self):
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            return False
        _, writable, _ = select.select([], [self._irq_sock], [], remaining)
        return bool(writable)

    def _interrupt(self, io):
        """One IRQ event to the guest. The channel does not block: when events are still queued
        (the guest has not taken them yet), this one coalesces with them, as the bridge takes
        all queued events in one interrupt and vm_interrupt reads InterruptStatus itself."""
        self.irq_events += 1
        try:
            self._irq_sock.send(Message(IRQ).pack())
        except BlockingIOError:
            io.note(f"irq high: interrupt event {self.irq_events} coalesces with queued ones")
            return
        except OSError as error:
            raise BridgeError(f"the guest closed the interrupt channel ({error.strerror})") \
                from None
        io.note(f"irq high: interrupt event {self.irq_events} to the guest")

    async def _serve(self, ctx):
        io = SimMMIO(ctx, self.transport.bus, describe=self._describe,
                     transcript=self.transcript, clock=self._clock)
        self._hello()
        io.note(f"bridge hello: {self._memory.size >> 20} MiB of guest memory shared, "
                f"{self.window:#x}-byte window")
        irq_before = False
        while (msg := self._receive()) is not None:
            self._check(msg)
            self._snoop_msi_configuration(msg)
            value = await self._access(io, msg)
            await self._settle(ctx, msg)
            self._deliver_msi(io)
            irq = bool(ctx.get(self.transport.irq))
            if irq and (not irq_before or (msg.op == WRITE and msg.offset == self._ack)):
                self._interrupt(io)
            irq_before = irq
            self._send(self._sock, Message(msg.op, OK, msg.offset, value), "access")

    # --- the guest --------------------------------------------------------------------------

    def _read_console(self, stream):
        for line in iter(stream.readline, b""):
            text = line.decode(errors="replace").rstrip("\r\n")
            self._console.append(text)
            if self._console_echo is not None and guest.EXIT_MARK not in text:
                self._console_echo(text)

    def _start_guest(self, run_dir):
        linux = self.linux or kernel(self.driver)
        root = guest.make_root(os.path.join(run_dir, "root"), self.command)
        self._sock, guest_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._irq_sock, guest_irq = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._irq_sock.setblocking(False)
        # Without address-space randomisation UML lays out its memory the same in every run
        # (its "exec-shield gap" otherwise changes the memory size, and so every ring address).
        args = ["setarch", platform.machine(), "--addr-no-randomize", str(linux),
                *guest.command_line(root, fd=guest_sock.fileno(), irq_fd=guest_irq.fileno(),
                                    run_dir=run_dir, proposal=self.driver == "proposal")]
        self._start = time.monotonic()
        self._deadline = self._start + self.timeout
        try:
            self._process = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(guest_sock.fileno(), guest_irq.fileno()), cwd=run_dir,
                env=dict(os.environ, TMPDIR=run_dir), start_new_session=True)
        except BaseException:
            self._sock.close()
            self._irq_sock.close()
            raise
        finally:
            guest_sock.close()
            guest_irq.close()
        self._reader = threading.Thread(target=self._read_console, args=(self._process.stdout,),
                                        daemon=True)
        self._reader.start()

    def _stop_guest(self):
        # Close the channels first: a guest still waiting for an answer (the simulation side
        # failed) then sees them closed at once and panics naming its access.
        for sock in (self._sock, self._irq_sock):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        process = self._process
        try:
            process.wait(timeout=max(1.0, min(10.0, self._deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)     # what is left: UML's helper processes
        except ProcessLookupError:
            pass
        process.wait()
        self._reader.join(timeout=5)
        process.stdin.close()
        process.stdout.close()
        for sock in (self._sock, self._irq_sock):
            sock.close()
        if self._memory is not None:
            self._memory.release()
            self._mapped.close()

    def run(self):
        """Boot, run the command, power off. Returns a :class:`Result`; raises
        :class:`CoSimError` (with the console so far in its ``console``)."""
        self._clock = CycleCounter()
        self.boot = None
        with tempfile.TemporaryDirectory(prefix="virtio-linux-") as run_dir:
            self._start_guest(run_dir)
            try:
                background = [self.device.run, self._clock.run]
                if hasattr(self.device, "background"):
                    background += self.device.background()
                if "msi" in self.transport.signature.members:
                    background.append(self._take_msi)
                paths = simulate(self.top, self._serve, background=background,
                                 name=f"linux-{self.device.name}", waves=self.waves,
                                 traces=transport_traces(self.transport), cycles=10**12)
            except CoSimError as error:
                self._stop_guest()
                error.console = "\n".join(self._console)
                raise
            except BaseException:
                self._stop_guest()
                raise
            self._stop_guest()
        wall = time.monotonic() - self._start
        console = "\n".join(self._console)
        status = guest.exit_status(console)
        if status is None:
            error = BridgeError(f"Linux stopped (exit status {self._process.returncode}) before "
                                f"the command finished; the console ends with:\n" +
                                "\n".join(self._console[-15:]))
            error.console = console
            raise error
        shown = "\n".join(line for line in self._console if guest.EXIT_MARK not in line)
        return Result(status=status, console=shown, transcript=self.transcript,
                      cycles=self._clock.now, wall=wall, boot=self.boot,
                      irq_events=self.irq_events, outside=self.outside,
                      msi=list(self.msi_delivered), waves=paths,
                      errors=list(getattr(self.device, "errors", [])))

def run_linux(device, command, **options):
    """``CoSimulation(device, command, **options).run()``."""
    return CoSimulation(device, command, **options).run()

