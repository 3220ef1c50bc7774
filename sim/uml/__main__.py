"""``./run linux``: boot Linux against the transport RTL and run a command in the guest.

Prints the guest's console (and with ``--transcript`` every register access by name), then a
summary on standard error, and exits with the command's exit status, or 125 when the
co-simulation itself fails (the error on standard error says why).
"""

import argparse
import codecs
import sys
import threading

from ..blk import BlkDevice
from ..console import ConsoleDevice
from ..rng import RngDevice
from .cosim import PERSONALITIES, TIMEOUT, CoSimError, run_linux
from .kernel import VARIANTS, KernelBuildError, kernel


__all__ = ["DEVICES", "DEFAULT_COMMANDS", "main"]

#: The default bound of a blk run: its gateware device moves a few hundred KiB through the
#: simulated engine (about 165 000 cycles), so it takes minutes where rng takes seconds.
BLK_TIMEOUT = 900.0

#: ``--device`` choices.
DEVICES = {"rng": RngDevice, "console": ConsoleDevice, "blk": BlkDevice}

#: What the guest runs without ``--run``, per device. rng: probe and identity, entropy, unbind
#: and rebind the driver (teardown, reset, re-probe), entropy again. console: a line out, a line
#: in (``--input``). blk: the kernel's virtio_blk driver on the engine and device in RTL: make an
#: ext2 file system, write a file, unmount, drop the caches, mount again and compare.
DEFAULT_COMMANDS = {"rng": r"""set -e
dev=/sys/bus/virtio/devices/virtio0
echo "virtio0: device $(cat $dev/device) vendor $(cat $dev/vendor)"
echo "virtio0: driver $(basename $(readlink $dev/driver))"
echo "virtio0: features $(cat $dev/features)"
echo "rng_current: $(cat /sys/class/misc/hw_random/rng_current)"
echo "read $(head -c 512 /dev/hwrng | wc -c) bytes from /dev/hwrng"
echo virtio-mmio.0 > /sys/bus/platform/drivers/virtio-mmio/unbind
echo "unbound: rng_current $(cat /sys/class/misc/hw_random/rng_current)"
echo virtio-mmio.0 > /sys/bus/platform/drivers/virtio-mmio/bind
echo "rebound: rng_current $(cat /sys/class/misc/hw_random/rng_current)"
echo "read $(head -c 512 /dev/hwrng | wc -c) bytes from /dev/hwrng"
""", "console": r"""set -e
exec 3<>/dev/hvc0
echo "hello from the guest" >&3
read -r line <&3
echo "the host typed: $line"
""", "blk": r"""set -e
dev=/sys/bus/virtio/devices/virtio0
echo "virtio0: device $(cat $dev/device) driver $(basename $(readlink $dev/driver))"
echo "vda: $(cat /sys/block/vda/size) sectors, serial $(cat /sys/block/vda/serial)"
mke2fs /dev/vda
mkdir -p /mnt
mount -t ext2 /dev/vda /mnt
seq 1 20000 > /tmp/numbers
cp /tmp/numbers /mnt/numbers
echo "written: $(md5sum < /mnt/numbers)"
umount /mnt
blockdev --flushbufs /dev/vda
echo 3 > /proc/sys/vm/drop_caches
mount -t ext2 /dev/vda /mnt
cmp /tmp/numbers /mnt/numbers
echo "read back: $(md5sum < /mnt/numbers)"
umount /mnt
echo "compare: identical"
"""}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="./run linux", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=sorted(DEVICES), default="rng")
    parser.add_argument("--msi", choices=sorted(PERSONALITIES), default="none",
                        help="the transport's MSI personality (mainline Linux uses none of it)")
    parser.add_argument("--sharing", action="store_true",
                        help="with --msi v2: the sharing mapping mode (MAP_CONFIG/MAP_QUEUE)")
    parser.add_argument("--notify", action="store_true",
                        help="per-queue doorbells (VIRTIO_F_MMIO_NOTIFICATION offered)")
    parser.add_argument("--driver", choices=sorted(VARIANTS), default=None,
                        help="the kernel's virtio drivers as Debian ships them (mainline), or "
                             "with the project's patches for the proposal "
                             "(sim/uml/kernel/patches); default: proposal with --msi v2/v1 "
                             "or --notify, else mainline")
    parser.add_argument("--run", metavar="'SHELL COMMAND'", default=None,
                        help="run this in the guest as root (default: probe, read entropy, "
                             "unbind and rebind the driver)")
    parser.add_argument("--transcript", action="store_true",
                        help="print every register access by name")
    parser.add_argument("--waves", action="store_true",
                        help="write build/linux-<device>.vcd and .gtkw")
    parser.add_argument("--seed", type=int, default=None,
                        help="rng: seed of the device's data (default 0)")
    parser.add_argument("--input", default=None,
                        help="console: what the host types, backslash escapes such as \\n "
                             "understood; the guest's line ends at a newline (default: "
                             "'hello from the host\\n')")
    parser.add_argument("--timeout", type=float, default=None,
                        help=f"wall-clock bound of the run in seconds (default {TIMEOUT:g}; "
                             f"{BLK_TIMEOUT:g} for blk, whose file system work takes about a "
                             f"minute of simulation on an idle machine)")
    parser.add_argument("--build", action="store_true",
                        help="only build the kernel (if it is not built yet) and exit")
    args = parser.parse_args(argv)
    if args.sharing and args.msi != "v2":
        parser.error("--sharing needs --msi v2 (proposal v1 has the fixed mapping only)")
    if args.seed is not None and args.device != "rng":
        parser.error("--seed is for --device rng")
    if args.input is not None and args.device != "console":
        parser.error("--input is for --device console")
    if args.timeout is None:
        args.timeout = BLK_TIMEOUT if args.device == "blk" else TIMEOUT
    if args.driver is None:
        args.driver = "proposal" if args.msi != "none" or args.notify else "mainline"
    try:
        if args.build:
            print(kernel(args.driver))
            return 0
        if args.device == "rng":
            device = RngDevice(seed=args.seed or 0)
        elif args.device == "blk":
            device = BlkDevice()
        else:
            typed = "hello from the host\n" if args.input is None else args.input
            device = ConsoleDevice(input=codecs.decode(typed, "unicode_escape").encode())
        lock = threading.Lock()

        def emit(line):     # the console and the transcript come from two threads
            with lock:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

        result = run_linux(device, DEFAULT_COMMANDS[args.device] if args.run is None else args.run,
                           msi=PERSONALITIES[args.msi], sharing=args.sharing,
                           notify=args.notify, driver=args.driver,
                           console=emit,
                           transcript=emit if args.transcript else None,
                           waves=args.waves, timeout=args.timeout)
    except (CoSimError, KernelBuildError, FileNotFoundError, ValueError) as error:
        print(f"[linux] error: {error}", file=sys.stderr)
        return 125
    summary = (f"[linux] {args.driver} driver; exit status {result.status}; "
               f"bridge hello after {result.boot:.2f} s; "
               f"{result.accesses} register accesses, {result.irq_events} wired interrupt "
               f"events, {len(result.msi)} MSI messages, "
               f"{result.cycles} simulated cycles; {result.wall:.2f} s wall")
    if result.waves:
        summary += f"; waves: {result.waves[0]} {result.waves[1]}"
    print(summary, file=sys.stderr)
    if args.device == "console":
        print(f"[linux] console output: {bytes(device.output)!r}", file=sys.stderr)
    for error in result.errors:
        print(f"[linux] device {args.device}: {error}", file=sys.stderr)
    return result.status


if __name__ == "__main__":
    sys.exit(main())
