"""Verilog export: the transport as one standalone Verilog file, for projects not written in Amaranth.

``./run python -m boards.export [options] [-o build/virtio_mmio_transport.v]`` elaborates a
:class:`hw.VirtioMMIOTransport` for the chosen configuration, converts it with Amaranth's built-in
Yosys (``amaranth.back.verilog``) and prints the port list.

Port list
---------
The module (default name ``virtio_mmio_transport``) has ``clk`` and ``rst`` (synchronous, active
high) and one port per signal of the transport's interface, named by its path with ``__``:

* ``bus__cyc bus__stb bus__we bus__adr bus__sel bus__dat_w`` (inputs), ``bus__dat_r bus__ack``
  (outputs): the Wishbone B4 classic target, 32-bit data, byte enables, ``adr`` a *word* address
  of ``addr_width`` bits (10 without doorbells: a 4 KiB window).
* ``irq`` (output): the wired interrupt, level high.
* ``device__*``: the device side (:mod:`hw.device`); per-queue fields are packed vectors, queue
  ``q`` in bits ``[q*W +: W]`` (``device__queues__desc`` is ``64 * num_queues`` bits).
* ``msi__valid msi__payload`` (outputs), ``msi__ready`` (input): only with ``--msi``; the payload
  is ``{data[31:0], address[63:0]}`` (address in the low bits).

With ``--bus axi4lite`` the Wishbone ports are replaced by an AXI4-Lite target
(:class:`hw.axi4lite.AXI4LiteToWishbone` in front of the register block): ``axi__awaddr
axi__awprot axi__awvalid axi__wdata axi__wstrb axi__wvalid axi__bready axi__araddr axi__arprot
axi__arvalid axi__rready`` (inputs), ``axi__awready axi__wready axi__bresp axi__bvalid
axi__arready axi__rdata axi__rresp axi__rvalid`` (outputs), byte addresses of ``addr_width + 2``
bits. Unaligned addresses answer SLVERR without touching the registers.

The port names follow the interface definitions, so they stay stable as long as the signatures
do; ``docs/verilog.md`` (generated, checked by CI) lists them for the default configuration and a
test compares that list with the ports of the exported file.
"""

import argparse
import os
import re
import sys
from pathlib import Path

from amaranth.hdl import Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, flipped

from hw import VirtioMMIOTransport, axi4lite


__all__ = ["DEFAULTS", "BUSES", "AXI4LiteTransport", "build", "ports", "export", "verilog_doc",
           "main"]

#: Host bus choices of the export.
BUSES = ("wishbone", "axi4lite")

#: The configuration exported when no option is given (and documented in docs/verilog.md).
DEFAULTS = dict(device_id=1, vendor_id=0x1af4, num_queues=2, queue_size_max=256, config_size=16,
                notify_base=None, notify_multiplier=0, msi=None)

_DEFAULT_NAME = "virtio_mmio_transport"

_GROUPS = {
    "bus": "Wishbone B4 classic target (host bus), word address",
    "irq": "wired interrupt, level high",
    "device": "device side (hw/device.py)",
    "msi": "MSI write stream (address 64, data 32)",
    "axi": "AXI4-Lite target (host bus), byte address",
}


class AXI4LiteTransport(wiring.Component):
    """A transport whose host bus is an AXI4-Lite target: the board-level wiring of
    :class:`hw.axi4lite.AXI4LiteToWishbone` in front of :class:`hw.VirtioMMIOTransport`.

    Parameters
    ----------
    transport : VirtioMMIOTransport

    Members
    -------
    axi : In(axi4lite.Signature(addr_width=len(transport.bus.adr) + 2))
        Replaces ``bus``; see the bridge for responses and latency (2 cycles more than Wishbone).
    irq, device, msi
        The transport's own ports, unchanged.
    """
    def __init__(self, transport):
        if not isinstance(transport, VirtioMMIOTransport):
            raise TypeError(f"transport must be a VirtioMMIOTransport, not {transport!r}")
        self._transport = transport
        self._bridge = axi4lite.AXI4LiteToWishbone(addr_width=len(transport.bus.adr) + 2)
        members = {"axi": In(axi4lite.Signature(addr_width=self._bridge.addr_width))}
        members.update((name, member) for name, member in transport.signature.members.items()
                       if name != "bus")
        super().__init__(members)

    @property
    def transport(self):
        return self._transport

    def elaborate(self, platform):
        m = Module()
        m.submodules.transport = transport = self._transport
        m.submodules.bridge = bridge = self._bridge
        wiring.connect(m, flipped(self.axi), bridge.axi)
        wiring.connect(m, bridge.wb, transport.bus)
        m.d.comb += self.irq.eq(transport.irq)
        wiring.connect(m, flipped(self.device), transport.device)
        if "msi" in self.signature.members:
            wiring.connect(m, flipped(self.msi), transport.msi)
        return m


def build(*, bus="wishbone", **params):
    """A transport for an export; ``params`` override :data:`DEFAULTS`. With
    ``bus="axi4lite"``, an :class:`AXI4LiteTransport`."""
    if bus not in BUSES:
        raise ValueError(f"bus must be one of {BUSES!r}, not {bus!r}")
    config = dict(DEFAULTS)
    config.update(params)
    transport = VirtioMMIOTransport(**config)
    return transport if bus == "wishbone" else AXI4LiteTransport(transport)


def ports(component):
    """The module's ports, in order: a list of ``(name, direction, width, group)`` with
    ``direction`` ``"input"`` or ``"output"``. ``clk`` and ``rst`` come first."""
    result = [("clk", "input", 1, "clock"), ("rst", "input", 1, "synchronous reset, active high")]
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(part) for part in path)
        direction = "input" if member.flow == wiring.In else "output"
        result.append((name, direction, Value.cast(value).shape().width, _GROUPS.get(str(path[0]), "")))
    return result


def export(component, *, name=_DEFAULT_NAME):
    """Verilog text of ``component`` as module ``name`` (Amaranth's built-in Yosys)."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog
    return verilog.convert(component, name=name, emit_src=False)


def _port_table(component):
    lines = ["| Port | Direction | Width | Part of |", "|---|---|---|---|"]
    for name, direction, width, group in ports(component):
        lines.append(f"| `{name}` | {direction} | {width} | {group} |")
    return lines


def verilog_doc():
    """docs/verilog.md: how to export, and the port list of the default configuration."""
    doc = __doc__.split("Port list\n---------\n", 1)[1]
    transport = build()
    transport._MustUse__silence = True      # only its signature is read
    out = [
        "# Verilog export",
        "",
        "Generated by `./run python -m boards.generate` from `boards/export.py`; do not edit.",
        "",
        "```",
        "./run python -m boards.export                    # default configuration below",
        "./run python -m boards.export --queues 4 --config-size 64 --notify-base 0x1000 \\",
        "    --notify-multiplier 4 --device-id 2 --vendor-id 0x1af4 -o build/blk.v",
        "```",
        "",
        "The file is standalone (no Amaranth runtime, no vendor primitives); it simulates in "
        "Icarus Verilog and Verilator (`tests/test_export.py` runs `tests/verilog/tb_probe.v` "
        "against it) and synthesises with Yosys.",
        "",
        "## Port list",
        "",
        doc.strip().replace("``", "`"),
        "",
        "## Default configuration",
        "",
        "`" + ", ".join(f"{k}={v!r}" for k, v in DEFAULTS.items()) + "`",
        "",
    ] + _port_table(transport) + [
        "",
        "Timing: see `VirtioMMIOTransport` (`hw/transport.py`): every Wishbone access is "
        "acknowledged exactly once, one cycle after the request (two for a config-space read).",
        "",
    ]
    return "\n".join(out)


def _int(text):
    return int(text, 0)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m boards.export",
                                     description="Write the transport as a standalone Verilog file.")
    parser.add_argument("--queues", type=_int, default=DEFAULTS["num_queues"])
    parser.add_argument("--queue-size-max", type=_int, default=DEFAULTS["queue_size_max"])
    parser.add_argument("--config-size", type=_int, default=DEFAULTS["config_size"],
                        help="bytes of device-specific config space (multiple of 4)")
    parser.add_argument("--notify-base", type=_int, default=None,
                        help="byte offset of queue 0's doorbell (default: QueueNotify only)")
    parser.add_argument("--notify-multiplier", type=_int, default=0)
    parser.add_argument("--device-id", type=_int, default=DEFAULTS["device_id"])
    parser.add_argument("--vendor-id", type=_int, default=DEFAULTS["vendor_id"])
    parser.add_argument("--device-features", type=_int, default=0)
    parser.add_argument("--msi", choices=["none", "v2", "v1"], default="none",
                        help="personality (default: standard virtio-mmio)")
    parser.add_argument("--bus", choices=BUSES, default="wishbone", help="host bus (default: "
                        "Wishbone B4 classic)")
    parser.add_argument("--name", default=_DEFAULT_NAME, help="Verilog module name")
    parser.add_argument("-o", "--output", type=Path,
                        default=Path(__file__).resolve().parent.parent / "build" /
                        f"{_DEFAULT_NAME}.v")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.name):
        parser.error(f"--name must be a Verilog identifier, not {args.name!r}")
    try:
        transport = build(num_queues=args.queues, queue_size_max=args.queue_size_max,
                          config_size=args.config_size, notify_base=args.notify_base,
                          notify_multiplier=args.notify_multiplier, device_id=args.device_id,
                          vendor_id=args.vendor_id, device_features=args.device_features,
                          msi=None if args.msi == "none" else args.msi, bus=args.bus)
    except (TypeError, ValueError, NotImplementedError) as error:
        parser.error(str(error))
    print(f"[export] elaborating and converting module {args.name} with Yosys "
          f"(builtin)...", file=sys.stderr)
    text = export(transport, name=args.name)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(text.splitlines())} lines), module {args.name}:")
    for name, direction, width, group in ports(transport):
        size = f"[{width - 1}:0]" if width > 1 else ""
        print(f"  {direction:<6s} {size:>9s} {name:<32s} {group}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
