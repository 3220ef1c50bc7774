"""Files generated from the one register map (:mod:`hw.regmap`), and the command that writes them.

``./run python -m boards.generate`` writes, into ``docs/``:

``registers.md``
    The register reference: every register of every personality with offset, width, access,
    reset value, meaning and fields; status, interrupt and feature bits; MSI commands.
``virtio_mmio_msi.h``
    A C header of offsets, field masks, bits and command codes (naming rules below).
``regmap.json``
    The same, machine readable.
``regmap.gtkw-filter``, ``regmap-v2.gtkw-filter``, ``regmap-v1.gtkw-filter``
    GTKWave translate filter files naming the registers on a Wishbone word address (``adr``).
``msi-commands.gtkw-filter``
    GTKWave translate filter naming the MSI commands (``MsiCmdV2``) on any signal up to 32 bits:
    the MSI controller's ``command``, or the data of a write to the v2 MsiCmd register.

    Waveforms written by :mod:`sim.waves` carry their own filters, made for the transport they
    show (with its config space and doorbells); these are for other dumps, e.g. of the exported
    Verilog.
``verilog.md``
    The port list of the exported Verilog module (:mod:`boards.export`).

``--check`` writes nothing and exits with status 1 if a file is missing or stale (CI runs it).
``--screenshot`` also runs the demo scenario and captures it in the real GTKWave (under Xvfb) to
``docs/waveform.png``, the picture the README shows; it is not checked, as pixels vary with fonts.

C header naming
---------------
* Offsets: ``VIRTIO_MMIO_<name>``, with ``<name>`` the Linux macro suffix (``Register.linux``), or
  the register name in UPPER_SNAKE_CASE when Linux has none. Registers of the MSI personalities
  carry the personality: ``VIRTIO_MMIO_V2_MSI_COMMAND`` (0x0c8), ``VIRTIO_MMIO_V1_MSI_COMMAND``
  (0x0c2), since the two proposals put different registers at the same offsets.
* Fields: ``<register macro>_<FIELD>_SHIFT`` and ``_MASK`` (mask in place).
* Values: ``VIRTIO_MMIO_MAGIC``, ``VIRTIO_MMIO[_V2|_V1]_VERSION_VALUE``, ``VIRTIO_MMIO_CONFIG``
  (start of config space), ``VIRTIO_MMIO_WINDOW_SIZE``, ``VIRTIO_MMIO_MSI_NO_VECTOR``.
* Bits: ``VIRTIO_MMIO_STATUS_<bit>``, ``VIRTIO_MMIO_INT_<bit>`` (masks),
  ``VIRTIO_MMIO_F_<feature>`` (bit numbers), ``VIRTIO_MMIO_V2_MSI_CMD_<command>``,
  ``VIRTIO_MMIO_V1_MSI_OP_<op>``.
"""

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

from hw.regmap import (CONFIG_OFFSET, MAGIC, NO_VECTOR, PERSONALITIES, VERSION, WINDOW_SIZE,
                       Feature, InterruptBit, MsiCmdV2, MsiOpV1, MsiStateBit, RegisterMap, Status)
from sim.waves import address_filter, command_filter


__all__ = ["DOCS", "macro_name", "header_macros", "c_header", "markdown", "json_description",
           "gtkw_filter", "generated_files", "main"]

#: Where the generated files go.
DOCS = Path(__file__).resolve().parent.parent / "docs"

#: Personality as spelled in file names, headers and JSON keys.
_LABEL = {None: "standard", "v2": "v2", "v1": "v1"}

#: Widest Wishbone word address the filter files cover (doorbells up to 0x3fffc).
_FILTER_ADDR_WIDTH = 16


def _upper_snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def _maps():
    """The map of each personality; QueueNotify with its read structure where it has one."""
    return {msi: RegisterMap(msi, notify=msi is not None) for msi in PERSONALITIES}


def _standard_names():
    return {r.name for r in RegisterMap(None)}


def _prefix(msi):
    return "VIRTIO_MMIO" if msi is None else f"VIRTIO_MMIO_{msi.upper()}"


def macro_name(reg, msi=None):
    """The C macro for the offset of ``reg`` of personality ``msi`` (see the module docstring)."""
    suffix = reg.linux or _upper_snake(reg.name)
    return f"{_prefix(None if reg.name in _standard_names() else msi)}_{suffix}"


def header_macros():
    """Every macro of the header, in order: a list of ``(name, value, comment)``."""
    macros = [
        ("VIRTIO_MMIO_MAGIC", MAGIC, "MagicValue: \"virt\""),
        ("VIRTIO_MMIO_CONFIG", CONFIG_OFFSET, "start of device-specific configuration space"),
        ("VIRTIO_MMIO_WINDOW_SIZE", WINDOW_SIZE, "register window without doorbells"),
        ("VIRTIO_MMIO_MSI_NO_VECTOR", NO_VECTOR, "MsiVecSel: no vector"),
    ]
    seen = set()
    for msi, regs in _maps().items():
        macros.append((f"{_prefix(msi)}_VERSION_VALUE", VERSION[msi],
                       f"Version register value, {_LABEL[msi]} personality"))
        for reg in regs:
            name = macro_name(reg, msi)
            entries = [(name, reg.offset, f"{reg.name}: {reg.access.value}, {reg.width}-bit")]
            for f in reg.fields:
                entries.append((f"{name}_{f.name.upper()}_SHIFT", f.lsb, f.description))
                entries.append((f"{name}_{f.name.upper()}_MASK", f.mask, None))
            for entry in entries:       # standard registers appear in every personality
                if entry[0] not in seen:
                    seen.add(entry[0])
                    macros.append(entry)
    for bit in Status:
        macros.append((f"VIRTIO_MMIO_STATUS_{bit.name}", bit.value, "Status bit"))
    for bit in InterruptBit:
        macros.append((f"VIRTIO_MMIO_INT_{bit.name}", bit.value, "InterruptStatus/ACK bit"))
    for feature in Feature:
        macros.append((f"VIRTIO_MMIO_F_{feature.name}", int(feature), "feature bit number"))
    for cmd in MsiCmdV2:
        macros.append((f"VIRTIO_MMIO_V2_MSI_CMD_{cmd.name}", cmd.value, "MsiCmd (proposal v2)"))
    for op in MsiOpV1:
        macros.append((f"VIRTIO_MMIO_V1_MSI_OP_{op.name}", op.value,
                       "MsiCmd cmd_op (proposal v1)"))
    names = [name for name, _, _ in macros]
    assert len(names) == len(set(names)), "duplicate macro"
    return macros


def c_header():
    lines = [
        "/* virtio-mmio transport with MSI and notification addresses: register map.",
        " * Generated by `./run python -m boards.generate` from hw/regmap.py. Do not edit.",
        " * Offsets are bytes from the device's base address. Registers of the MSI",
        " * personalities carry V2_ (proposal v2, Version 2 + VIRTIO_F_MMIO_MSI) or V1_",
        " * (proposal v1, Version 3).",
        " */",
        "#ifndef VIRTIO_MMIO_MSI_H",
        "#define VIRTIO_MMIO_MSI_H",
        "",
    ]
    for name, value, comment in header_macros():
        text = f"#define {name:<48s} 0x{value:x}u"
        if comment:
            text = f"{text:<72s} /* {comment} */"
        lines.append(text)
    lines += ["", "#endif /* VIRTIO_MMIO_MSI_H */", ""]
    return "\n".join(lines)


def _reset(reg, msi):
    if reg.name == "Version":
        return f"0x{VERSION[msi]:x}"
    if reg.reset is not None:
        return f"0x{reg.reset:x}"
    return "n/a (write-only)" if not reg.access.readable else "per configuration"


def _fields(reg):
    return "; ".join(f"`{f.name}` [{f.lsb + f.width - 1}:{f.lsb}] {f.description}"
                     for f in reg.fields)


def _escape(text):
    return text.replace("|", "\\|")


def markdown():
    out = [
        "# Register reference",
        "",
        "Generated by `./run python -m boards.generate` from `hw/regmap.py`; do not edit. The C "
        "header `virtio_mmio_msi.h` and `regmap.json` next to this file carry the same values.",
        "",
        f"Offsets are bytes from the device's base address. Device-specific configuration space "
        f"starts at `0x{CONFIG_OFFSET:03x}`; the register window is `0x{WINDOW_SIZE:x}` bytes "
        "plus the doorbells when notification addresses are configured. Reads of undefined "
        "offsets and write-only registers return 0; writes to read-only registers are ignored.",
        "",
        "Personalities (the transport's `msi` parameter): standard virtio-mmio (`msi=None`), "
        "proposal v2 (`msi=\"v2\"`) and proposal v1 (`msi=\"v1\"`).",
        "",
    ]
    for msi, regs in _maps().items():
        title = {None: "Standard virtio-mmio (`msi=None`)",
                 "v2": "Proposal v2 (`msi=\"v2\"`)",
                 "v1": "Proposal v1 (`msi=\"v1\"`)"}[msi]
        out += [f"## {title}", "",
                f"Version reads {VERSION[msi]}. "
                + {None: "QueueNotify is write-only unless notification addresses are "
                         "configured (see [Notification structure](#notification-structure)).",
                   "v2": "Shown with notification addresses configured: QueueNotify reads the "
                         "notification structure.",
                   "v1": "QueueNotify always reads the notification structure."}[msi],
                "",
                "| Offset | Name | Width | Access | Reset | C macro | Meaning | Fields |",
                "|---|---|---|---|---|---|---|---|"]
        for reg in regs:
            out.append(f"| `0x{reg.offset:03x}` | {reg.name} | {reg.width} | {reg.access.value} "
                       f"| {_reset(reg, msi)} | `{macro_name(reg, msi)}` | "
                       f"{_escape(reg.description)} | {_escape(_fields(reg))} |")
        out.append("")
    notify = RegisterMap(None, notify=True)["QueueNotify"]
    out += ["## Notification structure", "",
            f"With notification addresses (`notify_base` set; always in proposal v1), "
            f"QueueNotify (`0x{notify.offset:03x}`) is {notify.access.value}: writes are "
            "notifications as usual, a read returns where each queue's doorbell is: "
            "`notify_base + queue * notify_multiplier`. In the standard and v2 personalities the "
            "read returns 0 until the driver accepted VIRTIO_F_MMIO_NOTIFICATION.", "",
            "| Bits | Field | Meaning |", "|---|---|---|"]
    for f in notify.fields:
        out.append(f"| [{f.lsb + f.width - 1}:{f.lsb}] | `{f.name}` | {f.description} |")
    out += ["", "## Status bits", "", "| Value | Bit | C macro |", "|---|---|---|"]
    for bit in Status:
        out.append(f"| `0x{bit.value:02x}` | {bit.name} | `VIRTIO_MMIO_STATUS_{bit.name}` |")
    out += ["", "## Interrupt bits (InterruptStatus, InterruptACK)", "",
            "| Value | Bit | C macro |", "|---|---|---|"]
    for bit in InterruptBit:
        out.append(f"| `0x{bit.value:x}` | {bit.name} | `VIRTIO_MMIO_INT_{bit.name}` |")
    out += ["", "## Feature bits the transport knows", "",
            "| Bit | Feature | C macro |", "|---|---|---|"]
    for feature in Feature:
        out.append(f"| {int(feature)} | {feature.name} | `VIRTIO_MMIO_F_{feature.name}` |")
    out += ["", "## MsiCmd commands (proposal v2)", "",
            f"Written to MsiCmd; they act on the vector selected by MsiVecSel. MsiVecSel "
            f"`0x{NO_VECTOR:08x}` (`VIRTIO_MMIO_MSI_NO_VECTOR`) means no vector.", "",
            "| Value | Command | C macro |", "|---|---|---|"]
    for cmd in MsiCmdV2:
        out.append(f"| {cmd.value} | {cmd.name} | `VIRTIO_MMIO_V2_MSI_CMD_{cmd.name}` |")
    out += ["", "## MsiCmd operations (proposal v1, field `cmd_op`)", "",
            "| Value | Operation | C macro |", "|---|---|---|"]
    for op in MsiOpV1:
        out.append(f"| {op.value} | {op.name} | `VIRTIO_MMIO_V1_MSI_OP_{op.name}` |")
    out += ["", "## MsiState bits (proposal v2)", "", "| Bit | Name |", "|---|---|"]
    for bit in MsiStateBit:
        out.append(f"| {int(bit)} | {bit.name} |")
    out.append("")
    return "\n".join(out)


def json_description():
    def reg_dict(reg, msi):
        return {
            "name": reg.name, "offset": reg.offset, "width": reg.width,
            "access": reg.access.value, "reset": reg.reset, "description": reg.description,
            "linux": reg.linux, "c_macro": macro_name(reg, msi),
            "fields": [{"name": f.name, "lsb": f.lsb, "width": f.width, "mask": f.mask,
                        "description": f.description} for f in reg.fields],
        }
    maps = _maps()
    desc = {
        "generator": "boards/generate.py from hw/regmap.py",
        "magic": MAGIC, "config_offset": CONFIG_OFFSET, "window_size": WINDOW_SIZE,
        "no_vector": NO_VECTOR,
        "personalities": {
            _LABEL[msi]: {"msi": msi, "version": VERSION[msi],
                          "registers": [reg_dict(r, msi) for r in regs]}
            for msi, regs in maps.items()
        },
        "notify_structure": [{"name": f.name, "lsb": f.lsb, "width": f.width,
                              "description": f.description}
                             for f in RegisterMap(None).notify_structure],
        "status": {b.name: b.value for b in Status},
        "interrupt": {b.name: b.value for b in InterruptBit},
        "features": {f.name: int(f) for f in Feature},
        "msi_commands_v2": {c.name: c.value for c in MsiCmdV2},
        "msi_ops_v1": {o.name: o.value for o in MsiOpV1},
        "msi_state_bits": {b.name: int(b) for b in MsiStateBit},
    }
    return json.dumps(desc, indent=2) + "\n"


def gtkw_filter(msi):
    return address_filter(RegisterMap(msi, notify=msi is not None), _FILTER_ADDR_WIDTH, shift=2)


def generated_files():
    """``{file name: text}`` of everything the command writes into :data:`DOCS`."""
    from .export import verilog_doc     # elaborates a transport: only when generating

    files = {
        "registers.md": markdown(),
        "virtio_mmio_msi.h": c_header(),
        "regmap.json": json_description(),
        "verilog.md": verilog_doc(),
    }
    for msi in PERSONALITIES:
        suffix = "" if msi is None else f"-{msi}"
        files[f"regmap{suffix}.gtkw-filter"] = gtkw_filter(msi)
    files["msi-commands.gtkw-filter"] = command_filter()
    return files


def _screenshot(path, *, window_ns=200):
    """The demo scenario's first ``window_ns`` in GTKWave: probe, reset, feature negotiation."""
    from sim.scenario import run_scenario
    from sim.waves import screenshot, zoom_level

    print("[generate] running the demo scenario with waveforms", file=sys.stderr)
    _, _, _, (vcd, gtkw) = run_scenario(echo=None, name="waveform_png")
    # The whole run is too dense to read names; show the start, where every access is named.
    # Amaranth's VCD counts femtoseconds.
    text = re.sub(r"^\*-?[\d.]+ ", f"*{zoom_level(window_ns * 1e6):.6f} ", gtkw.read_text(),
                  count=1, flags=re.MULTILINE)
    gtkw.write_text(text)
    print(f"[generate] capturing GTKWave under Xvfb into {path}", file=sys.stderr)
    screenshot(vcd, gtkw, path)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m boards.generate",
                                     description="Write the files generated from hw/regmap.py.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a generated file is missing or stale")
    parser.add_argument("--screenshot", action="store_true",
                        help="also capture docs/waveform.png in GTKWave (needs gtkwave, xvfb-run, "
                             "ImageMagick)")
    parser.add_argument("--out", type=Path, default=DOCS, help="output folder (default: docs/)")
    args = parser.parse_args(argv)
    print("[generate] building the register reference, C header, JSON, GTKWave filters and "
          "Verilog port list", file=sys.stderr)
    files = generated_files()
    stale = []
    for name, text in files.items():
        path = args.out / name
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(name)
            diff = difflib.unified_diff((current or "").splitlines(), text.splitlines(),
                                        f"{path} (in the tree)", f"{path} (generated)",
                                        lineterm="", n=1)
            print("\n".join(list(diff)[:20]))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if args.check:
        if stale:
            print(f"stale: {', '.join(stale)}; run ./run python -m boards.generate")
            return 1
        print(f"{len(files)} generated files are current")
    if args.screenshot:
        _screenshot(args.out / "waveform.png")
        print(f"wrote {args.out / 'waveform.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
