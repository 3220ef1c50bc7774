"""Host side of the UART bridge: an MMIO accessor over a serial line, and a probe tool.

:class:`BridgeMMIO` has the accessor API of :class:`sim.bus.SimMMIO` (``async read(offset,
size=4)``, ``async write(offset, value, size=4)``), so the driver model
:class:`sim.driver.VirtioMMIODriver` runs unchanged against a board: only the bus access differs.
It speaks the protocol of :mod:`hw.soc.bridge` over a *line*: any object with

* ``write(data: bytes)``;
* ``read(n) -> bytes``: up to ``n`` bytes, fewer on timeout (may return an awaitable);
* ``settle()``: wait until the bridge has abandoned any partial frame, then drop pending input
  (may return an awaitable).

:class:`SerialLine` is such a line over pyserial; the tests use a simulated one
(:mod:`sim.serial`).

Command line (a board with the bitstream of :mod:`boards.build` on its USB serial port)::

    ./run python -m boards.host /dev/ttyUSB1 probe      # identity and features
    ./run python -m boards.host /dev/ttyUSB1 bringup    # Linux-style bring-up, doorbells, irq
    ./run python -m boards.host /dev/ttyUSB1 msi        # bring-up with MSI, messages read back
    ./run python -m boards.host /dev/ttyUSB1 recorder   # dump the MSI recorder

With the block-device SoC (``boards.build BOARD --soc blk``), ``blk`` performs virtio-blk
requests through a ring in the board's on-chip memory (:mod:`boards.host_blk`)::

    ./run python -m boards.host /dev/ttyUSB1 blk info              # capacity, serial
    ./run python -m boards.host /dev/ttyUSB1 blk read 0            # sector 0, as a hex dump
    ./run python -m boards.host /dev/ttyUSB1 blk read 2 --count 3 --output three.bin
    ./run python -m boards.host /dev/ttyUSB1 blk write 1 file.bin  # zero-padded to sectors
"""

import argparse
import asyncio
import inspect
import sys
import time

from hw._checks import check_int
from hw.regmap import Feature, InterruptBit
from hw.soc.bridge import (ADDR_WIDTH, CMD_READ, CMD_WRITE, RESP_ERROR, RESP_READ, RESP_WRITE,
                           Error)
from hw.soc.echo import ECHO_CONFIG
from hw.soc.recorder import ENTRY_BASE, ENTRY_WORDS, RECORDER_REGS
from hw.soc.soc import RECORDER_BASE
from sim.bus import lanes

from .top import DEFAULT_BAUD, FRAME_TIMEOUT


__all__ = ["BridgeError", "encode_read", "encode_write", "BridgeMMIO", "SerialLine",
           "read_recorder", "clear_recorder", "run_blk_command", "main"]


class BridgeError(Exception):
    """The bridge answered with an error, or not at all.

    ``code`` is the :class:`~hw.soc.bridge.Error`, or ``None`` for a missing or malformed
    response.

    Raises
    ------
    TypeError
        If ``code`` is neither an :class:`~hw.soc.bridge.Error` nor ``None``.
    """
    def __init__(self, message, code=None):
        if code is not None and not isinstance(code, Error):
            raise TypeError(f"code must be a bridge Error or None, not {code!r}")
        super().__init__(message)
        self.code = code


def encode_read(adr, sel=0b1111):
    """A read request for word address ``adr``."""
    _check_frame(adr, sel)
    return bytes([CMD_READ, adr >> 8, adr & 0xff, sel])


def encode_write(adr, data, sel=0b1111):
    """A write request of ``data`` under ``sel`` to word address ``adr``."""
    _check_frame(adr, sel)
    if not 0 <= data < 1 << 32:
        raise ValueError(f"data must be a 32-bit value, not {data!r}")
    return bytes([CMD_WRITE, adr >> 8, adr & 0xff, sel]) + data.to_bytes(4, "little")


def _check_frame(adr, sel):
    if not 0 <= adr < 1 << ADDR_WIDTH:
        raise ValueError(f"word address must be below {1 << ADDR_WIDTH:#x}, not {adr!r}")
    if not 0 <= sel <= 0b1111:
        raise ValueError(f"byte enables must be 4 bits, not {sel!r}")


async def _maybe(value):
    return await value if inspect.isawaitable(value) else value


class BridgeMMIO:
    """Byte-addressed MMIO accessor over the UART bridge.

    Parameters
    ----------
    line : a line (see the module docstring)
    retries : int
        Times a request is repeated after an error that guarantees no access happened
        (``BAD_COMMAND``, ``TIMEOUT``: line noise) or after a missing response to a read.

    Offsets are those of the bridge's bus: the transport at 0, the recorder at
    :data:`~hw.soc.soc.RECORDER_BASE`, and with the block-device SoC guest memory from
    :data:`~hw.soc.blksoc.GUEST_WINDOW`.

    Raises
    ------
    TypeError
        If ``line`` lacks ``write``, ``read`` or ``settle``, or ``retries`` is not an integer.
    ValueError
        If ``retries`` is negative.
    """

    def __init__(self, line, *, retries=2):
        missing = [name for name in ("write", "read", "settle")
                   if not callable(getattr(line, name, None))]
        if missing:
            raise TypeError(f"line must have write, read and settle methods, not {line!r} "
                            f"(missing {', '.join(missing)})")
        self.line = line
        self.retries = check_int("retries", retries, "a non-negative integer", lambda n: n >= 0)
        self.errors = []           # every BridgeError seen, including retried ones

    async def transact(self, frame):
        """Send one request; return the read data (an int) or ``None`` for a write.
        Raises :class:`BridgeError`."""
        await _maybe(self.line.write(frame))
        head = await _maybe(self.line.read(1))
        if not head:
            raise BridgeError(f"no response to {frame.hex(' ')}")
        if head[0] == RESP_ERROR:
            code = await _maybe(self.line.read(1))
            if not code:
                raise BridgeError("error response without a code")
            try:
                code = Error(code[0])
            except ValueError:
                raise BridgeError(f"unknown error code {code[0]:#04x}") from None
            raise BridgeError(f"bridge error {code.name} for request {frame.hex(' ')}", code)
        if frame[0] == CMD_READ and head[0] == RESP_READ:
            data = await _maybe(self.line.read(4))
            if len(data) != 4:
                raise BridgeError(f"read response truncated after {len(data)} data bytes")
            return int.from_bytes(data, "little")
        if frame[0] == CMD_WRITE and head[0] == RESP_WRITE:
            return None
        raise BridgeError(f"unexpected response byte {head[0]:#04x} to {frame.hex(' ')}")

    async def _request(self, frame, *, idempotent):
        for attempt in range(self.retries + 1):
            try:
                return await self.transact(frame)
            except BridgeError as error:
                self.errors.append(error)
                safe = error.code in (Error.BAD_COMMAND, Error.TIMEOUT) or \
                    (error.code is None and idempotent)
                if attempt == self.retries or not safe:
                    raise
                await _maybe(self.line.settle())

    async def read_word(self, adr, sel=0b1111):
        return await self._request(encode_read(adr, sel), idempotent=True)

    async def write_word(self, adr, data, sel=0b1111):
        await self._request(encode_write(adr, data, sel), idempotent=False)

    async def read(self, offset, size=4):
        adr, sel, shift = lanes(offset, size)
        return await self.read_word(adr, sel) >> shift & ((1 << 8 * size) - 1)

    async def write(self, offset, value, size=4):
        adr, sel, shift = lanes(offset, size)
        if not 0 <= value < 1 << 8 * size:
            raise ValueError(f"Value {value:#x} does not fit a {size}-byte access")
        await self.write_word(adr, value << shift, sel)


class SerialLine:
    """A line over a pyserial port.

    Parameters
    ----------
    port : str
        e.g. ``/dev/ttyUSB1`` (the FTDI's second channel on iCEBreaker and ULX3S).
    baud : int

    Raises
    ------
    TypeError
        If ``port`` is not a string or ``baud`` not an integer.
    ValueError
        If ``baud`` is below 1.
    serial.SerialException
        If the port cannot be opened.
    """

    #: Seconds to wait for a response byte: a response takes under 1 ms at 115200 baud.
    RESPONSE_TIMEOUT = 0.5
    #: Seconds :meth:`settle` waits: long enough for the bridge to abandon a partial frame.
    SETTLE = 3 * FRAME_TIMEOUT

    def __init__(self, port, *, baud=DEFAULT_BAUD):
        if not isinstance(port, str):
            raise TypeError(f"port must be a string such as '/dev/ttyUSB1', not {port!r}")
        check_int("baud", baud, "a positive integer", lambda b: b >= 1)
        import serial       # pyserial: only the command line needs it
        self.serial = serial.Serial(port, baud, timeout=self.RESPONSE_TIMEOUT)

    def write(self, data):
        self.serial.write(data)

    def read(self, n):
        return self.serial.read(n)

    def settle(self):
        time.sleep(self.SETTLE)
        self.serial.reset_input_buffer()

    def close(self):
        self.serial.close()


async def read_recorder(io):
    """The MSI messages the recorder holds, oldest first, as ``(address, data)``; and the total
    count received since the last clear."""
    def offset(word):
        return RECORDER_BASE + 4 * word
    count = await io.read(offset(RECORDER_REGS["Count"]))
    capacity = await io.read(offset(RECORDER_REGS["Capacity"]))
    messages = []
    for k in range(max(0, count - capacity), count):
        entry = ENTRY_BASE + ENTRY_WORDS * (k % capacity)
        low = await io.read(offset(entry))
        high = await io.read(offset(entry + 1))
        data = await io.read(offset(entry + 2))
        messages.append((high << 32 | low, data))
    return messages, count


async def clear_recorder(io):
    await io.write(RECORDER_BASE + 4 * RECORDER_REGS["Count"], 0)


#: MSI messages the ``msi`` command programs: vector ``v`` writes ``MSI_DATA + v`` to
#: ``MSI_ADDRESS + 4 * v`` (what an x86 or GIC ITS irq domain would hand out, roughly).
MSI_ADDRESS = 0xfee0_0000
MSI_DATA = 0x4000


def make_driver(io, device_features, *, want_msi):
    """A :class:`~sim.driver.VirtioMMIODriver` for what the device offers: with the per-queue
    notification patch, and with MSI (proposal v2) when asked and offered."""
    from sim.driver import VirtioMMIODriver
    if want_msi and device_features >> Feature.MMIO_MSI & 1:
        return VirtioMMIODriver(io, msi="v2", notification=True)
    return VirtioMMIODriver(io, notification=True)


async def _poll(predicate, *, tries=50):
    for _ in range(tries):
        value = await predicate()
        if value:
            return value
    return 0


async def run_command(io, command, *, echo=print, queues=(0, 1)):
    """What the command line does, over any accessor. Returns a dict of results."""
    from sim.driver import VirtioMMIODriver
    out = {}
    probe = VirtioMMIODriver(io)
    if command == "recorder":
        messages, count = await read_recorder(io)
        echo(f"MSI recorder: {count} message(s) received since the last clear")
        for address, data in messages:
            echo(f"  write {data:#010x} to {address:#018x}")
        return {"messages": messages, "count": count}

    device_id = await probe.probe()
    features = await probe.get_features()
    s = probe.state
    echo(f"virtio-mmio version {s.version}, device ID {device_id:#x}, vendor {s.vendor_id:#x}")
    names = [f.name for f in Feature if features >> f & 1]
    echo(f"device features {features:#018x}: {', '.join(names) or '-'}")
    out.update(device_id=device_id, version=s.version, vendor_id=s.vendor_id, features=features)
    if command == "probe":
        return out

    want_msi = command == "msi"
    drv = make_driver(io, features, want_msi=want_msi)
    messages = None
    if want_msi:
        if drv.msi != "v2":
            raise SystemExit("the device does not offer VIRTIO_F_MMIO_MSI (bit 40)")
        await clear_recorder(io)
        messages = [(MSI_ADDRESS + 4 * v, MSI_DATA + v) for v in range(len(queues) + 1)]
    kwargs = {"msi_messages": messages} if messages is not None else {}
    negotiated = await drv.bring_up(queues=list(queues), **kwargs)
    echo(f"bring-up done: negotiated features {negotiated:#018x}, Status "
         f"{await drv.get_status():#04x}")
    regs = drv.regs
    interrupts = []
    for q in queues:
        await drv.notify(q)
        if want_msi:
            continue
        status = await _poll(lambda: drv.read("InterruptStatus"))
        if status:
            await drv.interrupt()
        echo(f"queue {q}: doorbell at {drv.notify_offset(q):#x}; InterruptStatus {status:#x}")
        interrupts.append(status)
    # Config change: the echo device raises one when its scratch word is written.
    await drv.config_write(4 * ECHO_CONFIG["scratch"], 0x5a5a_0001, 4)
    if not want_msi:
        status = await _poll(lambda: drv.read("InterruptStatus"))
        await drv.interrupt()
        echo(f"config change: InterruptStatus {status:#x} "
             f"({'CONFIG_CHANGE' if status & InterruptBit.CONFIG_CHANGE.value else 'none'})")
        interrupts.append(status)
    count = await drv.config_read(4 * ECHO_CONFIG["notifications"], 4)
    echo(f"the device counted {count} notification(s)")
    out.update(negotiated=negotiated, interrupts=interrupts, device_notifications=count)
    if want_msi:
        got, total = await read_recorder(io)
        echo(f"MSI recorder: {total} message(s)")
        for address, data in got:
            echo(f"  write {data:#010x} to {address:#018x}")
        out.update(messages=got)
    if want_msi and "MsiState" in regs:
        await drv.free_msi_v2()
    await drv.remove()
    echo("removed: Status 0")
    return out


def _parser():
    parser = argparse.ArgumentParser(prog="python -m boards.host",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("port", help="serial port, e.g. /dev/ttyUSB1")
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    # --baud may also follow the command, as before the commands were subcommands.
    baud = argparse.ArgumentParser(add_help=False)
    baud.add_argument("--baud", type=int, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("probe", "bringup", "msi", "recorder"):
        commands.add_parser(name, parents=[baud])
    blk = commands.add_parser("blk", help="virtio-blk requests (the block-device SoC)")
    actions = blk.add_subparsers(dest="action", required=True)
    actions.add_parser("info", parents=[baud], help="capacity, seg_max and serial")
    read = actions.add_parser("read", parents=[baud], help="read sectors")
    read.add_argument("sector", type=lambda text: int(text, 0))
    read.add_argument("--count", type=int, default=1, help="sectors (default 1)")
    read.add_argument("--output", help="write the data to this file instead of a hex dump")
    write = actions.add_parser("write", parents=[baud],
                               help="write a file to sectors (zero-padded)")
    write.add_argument("sector", type=lambda text: int(text, 0))
    write.add_argument("file")
    return parser


async def run_blk_command(io, args, *, echo=print):
    """The ``blk`` command for parsed ``args``; returns the exit status."""
    from pathlib import Path
    from hw.blk import SECTOR
    from .host_blk import BlkError, hexdump, run_blk
    options = {}
    if args.action == "read":
        options = dict(sector=args.sector, count=args.count)
    elif args.action == "write":
        options = dict(sector=args.sector, data=Path(args.file).read_bytes())
    try:
        out = await run_blk(io, args.action, echo=echo, **options)
    except BlkError as error:
        echo(f"blk {args.action}: {error}")
        return 1
    if args.action == "read":
        if args.output:
            Path(args.output).write_bytes(out["data"])
            echo(f"{len(out['data'])} bytes to {args.output}")
        else:
            for text in hexdump(out["data"], start=SECTOR * args.sector):
                echo(text)
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    line = SerialLine(args.port, baud=args.baud)
    try:
        line.settle()
        io = BridgeMMIO(line)
        if args.command == "blk":
            return asyncio.run(run_blk_command(io, args))
        asyncio.run(run_command(io, args.command))
    finally:
        line.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
