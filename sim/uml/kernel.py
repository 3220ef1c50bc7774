"""The User-Mode Linux kernel of the co-simulation: built from Debian's ``linux-source-6.1``,
with the bridge (``sim/uml/kernel/``, GPL-2.0) built in, and cached.

:func:`kernel` returns the path of a ``linux`` binary, building it first if no build for the
same inputs exists. There are two, from one build (:data:`VARIANTS`): ``mainline``, whose virtio
files are exactly as Debian ships them, and ``proposal``, the same tree with the project's
driver patches (``sim/uml/kernel/patches/*.patch``) applied and rebuilt incrementally. The build
folder, ``build/linux/<key>/``, is keyed by everything that goes into the binaries: the Debian
package's version, the config fragment, the bridge's sources, the patches, the Makefile lines
that build the bridge in, the recipe below and the host compiler, so that a later run with the
same inputs starts in seconds and a changed input builds anew.

The recipe: unpack the source, copy the bridge into ``arch/um/drivers/`` and add it to that
folder's Makefile, ``make ARCH=um tinyconfig``, merge ``uml.config`` (``merge_config.sh``),
``make olddefconfig``, check that every option the fragment sets came out as set (a dependency
missing from the fragment silently drops an option), ``make -j linux`` (``mainline``); then
apply the patches in name order and ``make -j linux`` again (``proposal``). The unpacked tree
(1.5 GB) is removed after a successful build; ``.config`` and the build log are kept.
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..waves import BUILD


__all__ = ["KernelBuildError", "SOURCE", "FRAGMENT", "BRIDGE", "kernel", "build_key",
           "fragment_options", "check_config"]

#: Debian's kernel source (package ``linux-source-6.1``).
SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")
PACKAGE = "linux-source-6.1"
#: The bridge and the config fragment.
KERNEL_DIR = Path(__file__).resolve().parent / "kernel"
FRAGMENT = KERNEL_DIR / "uml.config"
BRIDGE = ("virtio_sim.h", "virtio_sim_kern.c", "virtio_sim_user.c")
#: The driver patches of the ``proposal`` variant, applied in name order.
PATCHES = KERNEL_DIR / "patches"
#: Kernel variants and their binaries in the build folder.
VARIANTS = {"mainline": "linux", "proposal": "linux-proposal"}
#: Lines put into arch/um/drivers/Makefile before it includes Makefile.rules (which makes the
#: ``*_user.o`` objects it sees then into host-side objects).
MAKEFILE_LINES = ("# virtio-sim bridge (sim/uml/kernel, built in by sim/uml/kernel.py)\n"
                  "virtio_sim-objs := virtio_sim_kern.o virtio_sim_user.o\n"
                  "obj-y += virtio_sim.o\n\n")
_RULES = "include arch/um/scripts/Makefile.rules"
#: Bound of one build step (the compile takes 2 to 4 minutes on 2 cores), and of the wait for
#: another process's build of the same kernel.
STEP_TIMEOUT = 1800
LOCK_TIMEOUT = 2 * STEP_TIMEOUT
#: Builds kept in build/linux/ (each about 8 MB): the newest ones.
KEEP = 3
#: Bump when the steps of the recipe change.
RECIPE = 2
#: Host tools the build needs, and the Debian packages they come in.
TOOLS = {"make": "make", "gcc": "gcc", "flex": "flex", "bison": "bison", "bc": "bc",
         "xz": "xz-utils", "patch": "patch"}


class KernelBuildError(Exception):
    """The kernel could not be built: what is missing, or which step failed (and its log)."""


def _package_version():
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], check=True,
                             capture_output=True, text=True).stdout
        return out.strip()
    except (OSError, subprocess.CalledProcessError):
        stat = SOURCE.stat()
        return f"{stat.st_size}-{stat.st_mtime_ns}"


def _compiler():
    return subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout \
        .splitlines()[0]


def build_key():
    """Hex digest of every input of the build."""
    digest = hashlib.sha256()
    for part in (f"recipe {RECIPE}", _package_version(), _compiler(), MAKEFILE_LINES):
        digest.update(part.encode() + b"\0")
    for path in (FRAGMENT, *(KERNEL_DIR / name for name in BRIDGE), *patches()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def patches():
    """The patch files of the ``proposal`` variant, in the order they are applied."""
    return sorted(PATCHES.glob("*.patch"))


def fragment_options(fragment=FRAGMENT):
    """``{option: value}`` the fragment sets: ``"y"``, a value, or ``None`` for "is not set"."""
    options = {}
    for line in Path(fragment).read_text().splitlines():
        if match := re.fullmatch(r"(CONFIG_\w+)=(.*)", line.strip()):
            options[match[1]] = match[2]
        elif match := re.fullmatch(r"# (CONFIG_\w+) is not set", line.strip()):
            options[match[1]] = None
    return options


def check_config(config_text, fragment=FRAGMENT):
    """The options of ``fragment`` that ``config_text`` (a generated .config) does not have as
    the fragment sets them, as a list of strings (empty: all there)."""
    have = fragment_options_of_config(config_text)
    wrong = []
    for option, value in fragment_options(fragment).items():
        if have.get(option) != value:
            got = have.get(option)
            wrong.append(f"{option}: wanted {value or 'not set'}, got {got or 'not set'}")
    return wrong


def fragment_options_of_config(config_text):
    options = {}
    for line in config_text.splitlines():
        if match := re.fullmatch(r"(CONFIG_\w+)=(.*)", line):
            options[match[1]] = match[2]
    return options


def _missing_tools():
    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if not SOURCE.exists():
        missing.append(PACKAGE)
    return missing


def _step(log_file, what, args, cwd, env):
    log_file.write(f"\n$ {' '.join(map(str, args))}\n")
    log_file.flush()
    try:
        result = subprocess.run(args, cwd=cwd, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT, timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise KernelBuildError(f"{what} did not finish within {STEP_TIMEOUT} s; the log is "
                               f"{log_file.name}") from None
    if result.returncode:
        raise KernelBuildError(f"{what} failed (exit status {result.returncode}); the log is "
                               f"{log_file.name}")


def _build(folder, log):
    src = folder / "src"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "build.log"
    env = dict(os.environ, ARCH="um", LC_ALL="C")
    env.pop("MAKEFLAGS", None)
    jobs = str(os.cpu_count() or 1)
    start = time.monotonic()
    with open(log_path, "w") as log_file:
        log(f"[linux] building the UML kernel into {folder} (first run for these inputs; "
            f"about 2 to 3 minutes on 2 cores); the log is {log_path}")
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir()
        log("[linux]   unpacking " + str(SOURCE))
        _step(log_file, "unpacking the kernel source",
              ["tar", "xf", SOURCE, "--strip-components=1", "-C", src], folder, env)
        drivers = src / "arch/um/drivers"
        for name in BRIDGE:
            shutil.copy(KERNEL_DIR / name, drivers / name)
        makefile = drivers / "Makefile"
        text = makefile.read_text()
        if text.count(_RULES) != 1:
            raise KernelBuildError(f"{makefile} does not include {_RULES!r} once: the bridge "
                                   f"cannot be built in")
        makefile.write_text(text.replace(_RULES, MAKEFILE_LINES + _RULES))
        log("[linux]   configuring: tinyconfig + " + str(FRAGMENT.relative_to(KERNEL_DIR.parent)))
        _step(log_file, "make tinyconfig", ["make", "tinyconfig"], src, env)
        _step(log_file, "merging the config fragment",
              ["scripts/kconfig/merge_config.sh", "-m", ".config", FRAGMENT], src, env)
        _step(log_file, "make olddefconfig", ["make", "olddefconfig"], src, env)
        config = (src / ".config").read_text()
        wrong = check_config(config)
        if wrong:
            raise KernelBuildError("the generated .config lacks options of the fragment "
                                   "(a dependency is missing from it): " + "; ".join(wrong))
        (folder / "config").write_text(config)
        log(f"[linux]   compiling (make -j{jobs} linux)")
        _step(log_file, "compiling the kernel", ["make", f"-j{jobs}", "linux"], src, env)
        shutil.copy(src / "linux", folder / "linux.tmp")
        for patch in patches():
            log(f"[linux]   applying {patch.name}")
            _step(log_file, f"applying {patch.name}",
                  ["patch", "-p1", "--forward", "--batch", "-i", patch], src, env)
        log(f"[linux]   compiling the patched drivers (make -j{jobs} linux)")
        _step(log_file, "compiling the patched kernel", ["make", f"-j{jobs}", "linux"], src, env)
        shutil.copy(src / "linux", folder / "linux-proposal.tmp")
        os.replace(folder / "linux-proposal.tmp", folder / VARIANTS["proposal"])
        # The mainline binary last: its presence says the whole build is complete.
        os.replace(folder / "linux.tmp", folder / VARIANTS["mainline"])
    shutil.rmtree(src, ignore_errors=True)
    log(f"[linux] built {folder / 'linux'} in {time.monotonic() - start:.0f} s")


def _lock(lock):
    """Take the build lock, waiting at most :data:`LOCK_TIMEOUT` for another build."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise KernelBuildError(f"another process has been building the kernel for over "
                                       f"{LOCK_TIMEOUT} s ({lock.name} is locked)") from None
            time.sleep(1)


def _forget_old_builds(root, *, keep):
    """Remove all but the ``keep`` newest builds (other branches' builds stay usable)."""
    builds = sorted((path for path in root.iterdir() if path.is_dir()),
                    key=lambda path: path.stat().st_mtime, reverse=True)
    for old in builds[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def kernel(variant="mainline", *, log=lambda text: print(text, file=sys.stderr, flush=True)):
    """Path of the UML kernel ``variant`` (:data:`VARIANTS`) for the current inputs, built (once,
    under a lock shared by parallel callers) if it is not there yet. Raises
    :class:`KernelBuildError`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, not {variant!r}")
    missing = _missing_tools()
    if missing:
        raise KernelBuildError(f"building the UML kernel needs the Debian packages "
                               f"{', '.join(missing)}: ./run installs them (or apt-get install "
                               f"{' '.join(missing)})")
    root = BUILD / "linux"
    folder = root / build_key()
    complete = folder / VARIANTS["mainline"]
    binary = folder / VARIANTS[variant]
    if complete.exists():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        _lock(lock)
        if not complete.exists():
            _build(folder, log)
            _forget_old_builds(root, keep=KEEP)
    return binary
