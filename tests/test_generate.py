"""Files generated from the register map (issue 7): current, compilable, complete."""

import json
import re
import shutil
import subprocess

import pytest

from boards.generate import DOCS, generated_files, main
from hw.regmap import (CONFIG_OFFSET, MAGIC, NO_VECTOR, PERSONALITIES, VERSION, WINDOW_SIZE,
                       Feature, InterruptBit, MsiCmdV2, MsiOpV1, RegisterMap, Status)


MAPS = {msi: RegisterMap(msi, notify=msi is not None) for msi in PERSONALITIES}
STANDARD = {r.name for r in RegisterMap(None)}


def upper_snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def expected_macros():
    """What the header must define, by the naming rules of boards/generate.py, from the map."""
    want = {"VIRTIO_MMIO_MAGIC": MAGIC, "VIRTIO_MMIO_CONFIG": CONFIG_OFFSET,
            "VIRTIO_MMIO_WINDOW_SIZE": WINDOW_SIZE, "VIRTIO_MMIO_MSI_NO_VECTOR": NO_VECTOR}
    for msi, regs in MAPS.items():
        prefix = "VIRTIO_MMIO" if msi is None else f"VIRTIO_MMIO_{msi.upper()}"
        want[f"{prefix}_VERSION_VALUE"] = VERSION[msi]
        for reg in regs:
            reg_prefix = "VIRTIO_MMIO" if reg.name in STANDARD else prefix
            name = f"{reg_prefix}_{reg.linux or upper_snake(reg.name)}"
            assert want.setdefault(name, reg.offset) == reg.offset, name
            for f in reg.fields:
                want[f"{name}_{f.name.upper()}_SHIFT"] = f.lsb
                want[f"{name}_{f.name.upper()}_MASK"] = f.mask
    want.update({f"VIRTIO_MMIO_STATUS_{b.name}": b.value for b in Status})
    want.update({f"VIRTIO_MMIO_INT_{b.name}": b.value for b in InterruptBit})
    want.update({f"VIRTIO_MMIO_F_{f.name}": int(f) for f in Feature})
    want.update({f"VIRTIO_MMIO_V2_MSI_CMD_{c.name}": c.value for c in MsiCmdV2})
    want.update({f"VIRTIO_MMIO_V1_MSI_OP_{o.name}": o.value for o in MsiOpV1})
    return want


def test_generated_files_are_current():
    for name, text in generated_files().items():
        path = DOCS / name
        assert path.exists(), f"{path} missing: run ./run python -m boards.generate"
        assert path.read_text() == text, f"{path} stale: run ./run python -m boards.generate"


def test_check_reports_stale_files(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0
    header = tmp_path / "virtio_mmio_msi.h"
    header.write_text(header.read_text().replace("0x70u", "0x74u"))
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "stale: virtio_mmio_msi.h" in capsys.readouterr().out


def test_c_header_compiles_and_matches_the_map(tmp_path):
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, "a C compiler is installed by ./run test (Debian: g++ brings gcc)"
    header = DOCS / "virtio_mmio_msi.h"
    defined = re.findall(r"^#define (VIRTIO_MMIO_\w+)[ \t]+\S", header.read_text(), re.MULTILINE)
    want = expected_macros()
    assert sorted(defined) == sorted(want)
    program = tmp_path / "print.c"
    program.write_text(
        "#include <stdio.h>\n#include \"virtio_mmio_msi.h\"\n"
        "#include \"virtio_mmio_msi.h\"  /* include guard */\nint main(void) {\n" +
        "".join(f"  printf(\"%s %llu\\n\", \"{n}\", (unsigned long long)({n}));\n"
                for n in defined) + "  return 0;\n}\n")
    binary = tmp_path / "print"
    subprocess.run([compiler, "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
                    "-I", str(DOCS), "-o", str(binary), str(program)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    got = {name: int(value) for name, value in (line.split() for line in out.splitlines())}
    assert got == want
    # the v1/v2 conflict is resolved by prefixes
    assert got["VIRTIO_MMIO_V2_MSI_COMMAND"] == MAPS["v2"]["MsiCmd"].offset
    assert got["VIRTIO_MMIO_V1_MSI_COMMAND"] == MAPS["v1"]["MsiCmd"].offset


def _rows(markdown, heading):
    section = markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `0x")]


@pytest.mark.parametrize("msi, heading", [(None, "Standard"), ("v2", "Proposal v2"),
                                          ("v1", "Proposal v1")], ids=["standard", "v2", "v1"])
def test_markdown_lists_every_register(msi, heading):
    text = (DOCS / "registers.md").read_text()
    rows = _rows(text, heading)
    regs = list(MAPS[msi])
    assert len(rows) == len(regs)
    for reg, row in zip(regs, rows, strict=True):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        offset, name, width, access, reset, macro, meaning = cells[:7]
        assert (offset, name, width, access) == \
            (f"`0x{reg.offset:03x}`", reg.name, str(reg.width), reg.access.value)
        assert meaning == reg.description.replace("|", "\\|")
        if reg.name == "Version":
            assert reset == f"0x{VERSION[msi]:x}"
        elif reg.reset is not None:
            assert reset == f"0x{reg.reset:x}"
        else:
            assert reset in ("n/a (write-only)", "per configuration")
        for f in reg.fields:
            assert f"`{f.name}` [{f.lsb + f.width - 1}:{f.lsb}]" in cells[7]


def test_markdown_lists_bits_and_commands():
    text = (DOCS / "registers.md").read_text()
    for name in [b.name for b in Status] + [c.name for c in MsiCmdV2] + \
            [f.name for f in Feature] + [o.name for o in MsiOpV1]:
        assert f"| {name} |" in text, name
    assert f"`0x{NO_VECTOR:08x}`" in text


def test_json_describes_the_map():
    desc = json.loads((DOCS / "regmap.json").read_text())
    assert desc["magic"] == MAGIC
    for msi, regs in MAPS.items():
        entry = desc["personalities"]["standard" if msi is None else msi]
        assert entry["version"] == VERSION[msi]
        assert [(r["name"], r["offset"], r["width"], r["access"], r["reset"])
                for r in entry["registers"]] == \
            [(r.name, r.offset, r.width, r.access.value, r.reset) for r in regs]
    assert desc["msi_commands_v2"] == {c.name: c.value for c in MsiCmdV2}


@pytest.mark.parametrize("msi", PERSONALITIES, ids=["standard", "v2", "v1"])
def test_gtkwave_filter_names_every_register_by_word_address(msi):
    name = "regmap.gtkw-filter" if msi is None else f"regmap-{msi}.gtkw-filter"
    table = {}
    for line in (DOCS / name).read_text().splitlines():
        if not line.startswith("#"):
            value, text = line.split(" ", 1)
            table[value] = text
    for reg in MAPS[msi]:
        # GTKWave shows an 11-bit adr as three zero-padded hex digits
        assert reg.name in table[f"{reg.word:03X}"].split("/")
        assert table[f"{reg.word:X}"] == table[f"{reg.word:04X}"]


def test_gtkwave_filter_names_every_msi_command():
    table = {}
    for line in (DOCS / "msi-commands.gtkw-filter").read_text().splitlines():
        if not line.startswith("#"):
            value, text = line.split(" ", 1)
            table[value] = text
    for cmd in MsiCmdV2:
        # the MSI controller's 3-bit command shows one hex digit, a 32-bit MsiCmd write eight
        for pad in range(1, 9):
            assert table[f"{cmd.value:0{pad}X}"] == cmd.name
    assert len(table) == 8 * len(MsiCmdV2)
