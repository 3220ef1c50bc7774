"""A stand-in for the UML kernel in the fault tests of tests/test_linux.py: started by
:class:`sim.uml.cosim.CoSimulation` exactly as the kernel is (same command line, same inherited
sockets), it speaks the bridge protocol badly on purpose. The behaviour is the "command" the
test gives, read from ``command.sh`` in the root folder named by ``rootflags=``. It prints what
it got back, and /init's exit line when the behaviour finishes well.
"""

import mmap
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hw.regmap import RegisterMap                                     # noqa: E402
from sim.uml.guest import EXIT_MARK                                   # noqa: E402
from sim.uml.protocol import HELLO, IRQ, READ, REFUSED, VERSION, WRITE, Message  # noqa: E402
from sim.virtqueue import DriverRing                                  # noqa: E402
from sim.memory import GuestMemory                                    # noqa: E402

REGS = RegisterMap()
MEMORY = 1 << 20


def main():
    args = dict(arg.split("=", 1) for arg in sys.argv[1:] if "=" in arg)
    sock = socket.socket(fileno=int(args["virtio_sim.fd"]))
    behaviour = (Path(args["rootflags"]) / "command.sh").read_text().strip()
    if behaviour == "exit-before-hello":
        return 0
    if behaviour == "read-first":
        sock.send(Message(READ, 4, 0).pack())
        print("reply", Message.unpack(sock.recv(64)))
        return 0
    memory = os.memfd_create("guest")
    os.ftruncate(memory, MEMORY)
    socket.send_fds(sock, [Message(HELLO, VERSION, 0, MEMORY).pack()], [memory])
    window = Message.unpack(sock.recv(64)).value
    print(f"window {window:#x}", flush=True)

    def access(op, size, offset, value=0):
        sock.send(Message(op, size, offset, value).pack())
        data = sock.recv(64)
        reply = Message.unpack(data) if data else None
        print("reply", "closed" if reply is None else
              ("REFUSED" if reply.size == REFUSED else f"{reply.value:#x}"), flush=True)
        return reply

    if behaviour == "truncated":
        sock.send(b"\x02\x00\x00\x00\x04\x00")
    elif behaviour == "oversized":
        sock.send(Message(READ, 4, 0).pack() + b"\x00" * 6)
    elif behaviour == "unknown-op":
        access(9, 4, 0)
    elif behaviour == "bad-size":
        access(READ, 3, 0)
    elif behaviour == "misaligned":
        access(READ, 4, 2)
    elif behaviour == "too-wide":
        access(WRITE, 1, REGS["Status"].offset, 0x100)
    elif behaviour == "second-hello":
        access(HELLO, VERSION, 0)
    elif behaviour == "outside":
        assert access(READ, 4, 0)                      # MagicValue
        assert access(READ, 4, window).value == 0
        assert access(WRITE, 4, window + REGS["Status"].offset, 0xffff_ffff).size == 0
        print(f"{EXIT_MARK} 0@@", flush=True)
    elif behaviour == "quit-early":
        access(READ, 4, 0)
    elif behaviour == "silent":
        time.sleep(60)
    elif behaviour == "kick":
        access(WRITE, 4, REGS["QueueNotify"].offset, 0)
        print(f"{EXIT_MARK} 0@@", flush=True)
    elif behaviour == "irq-rules":
        irq_rules(sock, socket.socket(fileno=int(args["virtio_sim.irq_fd"])), memory, access)
    elif behaviour == "read-magic-64":
        print(f"magic64 {access(READ, 8, 0).value:#x}", flush=True)
        print(f"{EXIT_MARK} 0@@", flush=True)
    else:
        print(f"unknown behaviour {behaviour!r}")
        return 2
    sock.close()
    return 0


def irq_rules(sock, irq, memory, access):
    """One buffer completed by the rng device, then how many IRQ events are already waiting when
    each of these accesses is answered (decisions.md D16a)."""
    view = mmap.mmap(memory, MEMORY)
    ring = DriverRing(GuestMemory(view), size=8, base=0x1000)
    ring.add([(0x8000, 16, True)])

    def write(name, value):
        access(WRITE, 4, REGS[name].offset, value)

    def events():
        count = 0
        while True:
            try:
                msg = Message.unpack(irq.recv(64, socket.MSG_DONTWAIT), channel="interrupt")
            except BlockingIOError:
                return count
            assert msg.op == IRQ, msg
            count += 1

    write("QueueSel", 0)
    write("QueueNum", ring.size)
    for name, address in (("QueueDesc", ring.desc), ("QueueDriver", ring.driver),
                          ("QueueDevice", ring.device)):
        write(f"{name}Low", address)
        write(f"{name}High", 0)
    write("QueueReady", 1)
    print("before kick:", events(), flush=True)
    write("QueueNotify", 0)
    print("kick:", events(), flush=True)
    access(READ, 4, REGS["InterruptStatus"].offset)
    print("status read:", events(), flush=True)
    write("InterruptACK", 0)
    print("ack nothing:", events(), flush=True)
    write("InterruptACK", 1)
    print("ack used:", events(), flush=True)
    print("used:", ring.used(), flush=True)
    print(f"{EXIT_MARK} 0@@", flush=True)


if __name__ == "__main__":
    sys.exit(main())
