"""Verilog export (issue 7): the exported file passes a plain Verilog testbench in Icarus Verilog
and Verilator, and its ports are the documented ones."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from boards.export import DEFAULTS, build, export, main, ports
from hw.axi4lite import AXI4LiteTransport
from hw.axi4lite import Response
from hw.regmap import MAGIC, VERSION, Status


TB = Path(__file__).parent / "verilog" / "tb_probe.v"
TB_AXI = Path(__file__).parent / "verilog" / "tb_probe_axi.v"
TESTBENCH = {"wishbone": TB, "axi4lite": TB_AXI}

CONFIGS = [
    pytest.param({}, id="default"),
    pytest.param(dict(num_queues=4, config_size=64, notify_base=0x1000, notify_multiplier=4,
                      device_id=2, vendor_id=0x1234_5678), id="4q-notify"),
    pytest.param(dict(msi="v2", notify_base=0x1000, notify_multiplier=4), id="msi-v2"),
    pytest.param(dict(msi="v1"), id="msi-v1"),
]


def defines(component, module):
    """The testbench's defines, from the register map and the transport's parameters."""
    transport = getattr(component, "transport", component)
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
        RESP_OKAY=Response.OKAY.value, RESP_SLVERR=Response.SLVERR.value,
    )
    if regs.msi is not None:
        values["HAS_MSI"] = 1
    return [f"{name}={value}" for name, value in values.items()]


def exported(tmp_path, params, module="virtio_mmio_transport", bus="wishbone"):
    transport = build(bus=bus, **params)
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


def icarus(tmp_path, component, path, bus):
    assert shutil.which("iverilog"), "iverilog is installed by ./run test (Debian: iverilog)"
    sim = tmp_path / "tb.vvp"
    subprocess.run(["iverilog", "-g2012", "-o", str(sim)] +
                   [f"-D{d}" for d in defines(component, "virtio_mmio_transport")] +
                   [str(TESTBENCH[bus]), str(path)], check=True, capture_output=True, text=True)
    return subprocess.run(["vvp", "-n", str(sim)], capture_output=True, text=True,
                          timeout=120).stdout


@pytest.mark.verilog
@pytest.mark.parametrize("params", CONFIGS)
def test_exported_verilog_passes_the_probe_testbench_in_icarus(tmp_path, params):
    component, path = exported(tmp_path, params)
    out = icarus(tmp_path, component, path, "wishbone")
    assert "PASS" in out and "FAIL" not in out, out
    assert f"ok   MagicValue = {MAGIC:08x}" in out


@pytest.mark.verilog
@pytest.mark.parametrize("params", [CONFIGS[0], CONFIGS[2]])
def test_axi4lite_export_passes_the_probe_testbench_in_icarus(tmp_path, params):
    component, path = exported(tmp_path, params, bus="axi4lite")
    assert isinstance(component, AXI4LiteTransport)
    out = icarus(tmp_path, component, path, "axi4lite")
    assert "PASS" in out and "FAIL" not in out, out
    assert "ok   unaligned read: SLVERR" in out


@pytest.mark.verilog
@pytest.mark.slow
@pytest.mark.parametrize("bus", ["wishbone", "axi4lite"])
def test_exported_verilog_passes_the_probe_testbench_in_verilator(tmp_path, bus):
    # Installed here and by ./run test on fresh machines: its absence is a failure, not a skip.
    assert shutil.which("verilator"), "verilator is installed by ./run test (Debian: verilator)"
    component, path = exported(tmp_path, CONFIGS[1].values[0], module="vmmio", bus=bus)
    build_dir = tmp_path / "obj_dir"
    top = TESTBENCH[bus].stem
    subprocess.run(["verilator", "--binary", "--timing", "-Wno-fatal", "-Wno-lint",
                    "--top-module", top, "--Mdir", str(build_dir), "-o", "tb"] +
                   [f"+define+{d}" for d in defines(component, "vmmio")] +
                   [str(TESTBENCH[bus]), str(path)], check=True, capture_output=True, text=True,
                   timeout=600)
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
    for q in range(DEFAULTS["num_queues"]):
        assert found[f"device__queues__desc__{q}"] == ("output", 64)


def test_axi4lite_port_list_matches_the_exported_module(tmp_path):
    component, path = exported(tmp_path, {}, bus="axi4lite")
    found = declared_ports(path.read_text(), "virtio_mmio_transport")
    assert found == {name: (direction, width) for name, direction, width, _ in ports(component)}
    assert not any(name.startswith("bus__") for name in found)
    assert found["axi__araddr"] == ("input", len(component.transport.bus.adr) + 2)
    assert found["axi__rresp"] == ("output", 2)


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
    (["--bus", "apb"], "argument --bus: invalid choice: 'apb'"),
])
def test_command_rejects_bad_configurations(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["-o", str(tmp_path / "x.v")])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
