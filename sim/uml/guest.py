"""The guest side of the co-simulation: its root file system and its command line.

The root is a per-run folder on the host, mounted by the guest over hostfs: busybox (Debian's
``busybox-static``), an ``/init`` script and the command to run. ``/init`` mounts ``/proc``,
``/sys``, ``/dev`` (devtmpfs) and ``/tmp``, runs ``/command.sh`` with busybox ``sh`` as root,
prints the command's exit status on a line of its own (:data:`EXIT_MARK`) and powers off.
"""

import re
import shutil
import stat
from pathlib import Path


__all__ = ["BUSYBOX", "EXIT_MARK", "exit_status", "make_root", "command_line", "MEMORY",
           "PROPOSAL"]

#: Debian's busybox-static.
BUSYBOX = Path("/bin/busybox")
#: What /init prints after the command: ``@@virtio-sim-exit <status>@@``.
EXIT_MARK = "@@virtio-sim-exit"
_EXIT = re.compile(re.escape(EXIT_MARK) + r" (\d+)@@")
#: Guest memory.
MEMORY = "64M"

_INIT = f"""#!/bin/busybox sh
# The co-simulation's init (sim/uml/guest.py).
/bin/busybox --install -s /bin
export PATH=/bin HOME=/
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
cd /
sh /command.sh
echo "{EXIT_MARK} $?@@"
poweroff -f
"""


def exit_status(console):
    """The command's exit status from the console text, or ``None`` if /init did not print it."""
    match = _EXIT.search(console)
    return int(match[1]) if match else None


def make_root(folder, command):
    """Write the root file system for ``command`` (a shell command line) into ``folder``."""
    if not BUSYBOX.exists() or b"/ld-linux" in BUSYBOX.read_bytes()[:4096]:
        raise FileNotFoundError(f"{BUSYBOX} is missing or dynamically linked (the guest's root "
                                f"has no C library): install the Debian package "
                                f"busybox-static (./run installs it)")
    folder = Path(folder)
    for name in ("bin", "proc", "sys", "dev", "tmp"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, folder / "bin" / "busybox")
    init = folder / "init"
    init.write_text(_INIT)
    init.chmod(init.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (folder / "command.sh").write_text(command + "\n")
    return folder


#: The patched virtio_mmio drives the proposal only when asked (sim/uml/kernel/patches).
PROPOSAL = "virtio_mmio.proposal=1"


def command_line(root, *, fd, irq_fd, run_dir, proposal=False):
    """The kernel command line: hostfs root, console on stdin/stdout, virtual time, the bridge's
    two channels, and with ``proposal`` :data:`PROPOSAL`."""
    return [f"mem={MEMORY}", "rootfstype=hostfs", f"rootflags={root}", "rw", "init=/init",
            "con0=fd:0,fd:1", "con=null", "time-travel=inf-cpu", f"uml_dir={run_dir}",
            f"virtio_sim.fd={fd}", f"virtio_sim.irq_fd={irq_fd}",
            *([PROPOSAL] if proposal else [])]
