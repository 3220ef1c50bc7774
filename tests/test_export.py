"""Verilog export (issue 7): the exported file passes a plain Verilog testbench in Icarus Verilog
and Verilator, and its ports are the documented ones."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from boards.export import DEFAULTS, build, export, main, ports
from hw.regmap import MAGIC, VERSION, Status


TB = Path(__file__).parent / "verilog" / "tb_probe.v"

CONFIGS = [
    pytest.param({}, id="default"),
    pytest.param(dict(num_queues=4, config_size=64, notify_base=0x1000, notify_multiplier=4,
                      device_id=2, vendor_id=0x1234_5678), id="4q-notify"),
    pytest.param(dict(msi="v2", notify_base=0x1000, notify_multiplier=4), id="msi-v2"),
    pytest.param(dict(msi="v1"), id="msi-v1"),
]


def defines(transport, module):
    """The testbench's defines, from the register map and the transport's parameters."""
    regs = transport.regs
    status = (Status.ACKNOWLEDGE | Status.DRIVER).value
    values = dict(
        MODULE=module, ADDR_WIDTH=len(transport.bus.adr), NUM_QUEUES=transport.num_queues,
        ADR_MAGIC=regs["MagicValue"].word, ADR_VERSION=regs["Version"].word,
        ADR_DEVICE_ID=regs["DeviceID"].word, ADR_VENDOR_ID=regs["VendorID"].word,
        ADR_STATUS=regs["Status"].word,
        MAGIC=f"32'h{MAGIC:08x}", VERSION=VERSION[regs.msi],
        DEVICE_ID=f"32'h{transport.device_id:08x}", VENDOR_ID=f"32'h{transport.vendor_id:08x}",
        STATUS_VALUE=status,
    )
    if regs.msi is not None:
        values["HAS_MSI"] = 1
    return [f"{name}={value}" for name, value in values.items()]


def exported(tmp_path, params, module="virtio_mmio_transport"):
    transport = build(**params)
    path = tmp_path / f"{module}.v"
    path.write_text(export(transport, name=module))
    return transport, path


def declared_ports(verilog, module):
    """``{name: (direction, width)}`` of ``module``'s port declarations."""
    body = verilog[verilog.index(f"module {module}("):]
    body = body[:body.index("endmodule")]
    found = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);",
                                           body, re.MULTILINE):
        found[name] = (direction, int(msb) + 1 if msb else 1)
    return found


@pytest.mark.parametrize("params", CONFIGS)
def test_exported_verilog_passes_the_probe_testbench_in_icarus(tmp_path, params):
    assert shutil.which("iverilog"), "iverilog is installed by ./run test (Debian: iverilog)"
    transport, path = exported(tmp_path, params)
    sim = tmp_path / "tb.vvp"
    subprocess.run(["iverilog", "-g2012", "-o", str(sim)] +
                   [f"-D{d}" for d in defines(transport, "virtio_mmio_transport")] +
                   [str(TB), str(path)], check=True, capture_output=True, text=True)
    result = subprocess.run(["vvp", "-n", str(sim)], capture_output=True, text=True, timeout=120)
    assert "PASS" in result.stdout, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "ok   MagicValue = 74726976" in result.stdout


def test_exported_verilog_passes_the_probe_testbench_in_verilator(tmp_path):
    # Installed here and by ./run test on fresh machines: its absence is a failure, not a skip.
    assert shutil.which("verilator"), "verilator is installed by ./run test (Debian: verilator)"
    transport, path = exported(tmp_path, CONFIGS[1].values[0], module="vmmio")
    build_dir = tmp_path / "obj_dir"
    subprocess.run(["verilator", "--binary", "--timing", "-Wno-fatal", "-Wno-lint",
                    "--top-module", "tb_probe", "--Mdir", str(build_dir), "-o", "tb"] +
                   [f"+define+{d}" for d in defines(transport, "vmmio")] +
                   [str(TB), str(path)], check=True, capture_output=True, text=True, timeout=600)
    result = subprocess.run([str(build_dir / "tb")], capture_output=True, text=True, timeout=120)
    assert "PASS" in result.stdout, result.stdout + result.stderr


def test_port_list_matches_the_exported_module(tmp_path):
    transport, path = exported(tmp_path, {})
    found = declared_ports(path.read_text(), "virtio_mmio_transport")
    documented = {name: (direction, width) for name, direction, width, _ in ports(transport)}
    assert found == documented
    # the documented, stable names
    for name in ("clk", "rst", "bus__cyc", "bus__adr", "bus__dat_r", "bus__ack", "irq",
                 "device__queues__ready", "device__notify__valid", "device__config__r_data"):
        assert name in found
    assert found["bus__adr"] == ("input", len(transport.bus.adr))
    assert found["device__queues__desc"] == ("output", 64 * DEFAULTS["num_queues"])


def test_command_writes_the_file_and_prints_the_ports(tmp_path, capsys):
    out = tmp_path / "x.v"
    assert main(["--queues", "3", "--config-size", "8", "--device-id", "5", "-o", str(out)]) == 0
    text = out.read_text()
    assert "module virtio_mmio_transport(" in text
    printed = capsys.readouterr().out
    assert re.search(r"input\s+\[2:0\] device__queues__used", printed)
    assert "bus__ack" in printed


@pytest.mark.parametrize("argv, message", [
    (["--queues", "0"], "num_queues must be an integer from 1 to 1024, not 0"),
    (["--config-size", "6"], "config_size must be a multiple of 4"),
    (["--name", "9bad"], "--name must be a Verilog identifier, not '9bad'"),
])
def test_command_rejects_bad_configurations(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["-o", str(tmp_path / "x.v")])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
