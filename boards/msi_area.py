"""What the MSI vector table costs: ``lib.memory.Memory`` against a flip-flop table.

Synthesizes :class:`hw.msi.MSIController` alone (non-sharing, ``vectors - 1`` queues) twice per
family and vector count: as written (the table in a memory), and with the memory swapped for a
register file with the same ports (:class:`RegisterTable`), and prints the cell counts. The
figures quoted in the :class:`~hw.msi.MSIController` docstring come from this command::

    ./run python -m boards.msi_area                 # 3 and 16 vectors, iCE40 and ECP5
"""

import argparse
import contextlib
from types import SimpleNamespace

from amaranth.back import rtlil
from amaranth.hdl import Array, Elaboratable, Module, Signal
from amaranth.utils import ceil_log2

import hw.msi
from hw._checks import check_int
from hw.msi import MSIController

from .bench import BENCH_ROOT, count_cells, synthesize
from .build import use_yowasp


__all__ = ["RegisterTable", "measure", "main"]


class RegisterTable(Elaboratable):
    """A flip-flop stand-in for the ``Memory`` of :class:`~hw.msi.MSIController`: the same
    ``write_port()`` / ``read_port()`` interface (one synchronous write port, one synchronous
    read port with enable), rows in flip-flops, reads through an N:1 multiplexer.

    Parameters
    ----------
    shape : shape-like
        Shape of a row.
    depth : int
        Number of rows.
    init
        Accepted for ``Memory``'s signature and ignored: the controller passes ``[]`` and its
        rows start at zero either way.

    Raises
    ------
    TypeError
        If ``depth`` is not an integer (and as :class:`~amaranth.hdl.Signal` for ``shape``).
    ValueError
        If ``depth`` is below 1.
    """
    def __init__(self, *, shape, depth, init):
        check_int("depth", depth, "a positive integer", lambda d: d >= 1)
        self._rows = [Signal(shape, name=f"row{i}") for i in range(depth)]
        self._abits = max(1, ceil_log2(depth))
        self._shape = shape
        self._write = self._read = None

    def _port(self):
        return SimpleNamespace(addr=Signal(self._abits), data=Signal(self._shape), en=Signal())

    def write_port(self):
        self._write = self._port()
        return self._write

    def read_port(self):
        self._read = self._port()
        return self._read

    def elaborate(self, platform):
        m = Module()
        rows = Array(self._rows)
        with m.If(self._write.en):
            m.d.sync += rows[self._write.addr].eq(self._write.data)
        with m.If(self._read.en):
            m.d.sync += self._read.data.eq(rows[self._read.addr])
        return m


@contextlib.contextmanager
def _table(kind):
    """Build the controller with its table as written (``"memory"``) or in flip-flops."""
    saved = hw.msi.Memory
    if kind == "flip-flops":
        hw.msi.Memory = RegisterTable
    try:
        yield
    finally:
        hw.msi.Memory = saved


def measure(vectors, family, kind):
    """Cell counts of the controller with ``vectors`` vectors on ``family``."""
    with _table(kind):
        controller = MSIController(num_queues=vectors - 1, vectors=vectors, sharing=False)
        text = rtlil.convert(controller, name="top")
    workdir = BENCH_ROOT / "msi_area" / f"{family}_{vectors}_{kind}"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.il").write_text(text)
    return count_cells(synthesize(workdir / "top.il", family, workdir), family)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m boards.msi_area",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, nargs="+", default=[3, 16])
    args = parser.parse_args(argv)
    use_yowasp()
    print("| vectors | table | family | LUT4 | FF | block RAM | LUT RAM |")
    print("|---|---|---|---|---|---|---|")
    for vectors in args.vectors:
        for family in ("ice40", "ecp5"):
            for kind in ("memory", "flip-flops"):
                c = measure(vectors, family, kind)
                print(f"| {vectors} | {kind} | {family} | {c['lut4']} | {c['ff']} | "
                      f"{c['bram']} | {c['lutram']} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
