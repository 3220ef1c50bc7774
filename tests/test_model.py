"""The reference model (sim/model.py) on its own, and the bad-input table in the docs."""

import ast
import re
from pathlib import Path

import pytest

from hw.regmap import MAGIC, NO_VECTOR, Feature, MsiCmdV2, Status
from sim.model import TransportModel


ROOT = Path(__file__).resolve().parent.parent


def model(**overrides):
    params = dict(device_id=1, vendor_id=0x1af4, num_queues=2, queue_size_max=8, config_size=8,
                  config=bytes(range(8)))
    params.update(overrides)
    return TransportModel(**params)


def write(m, name, value, sel=0b1111):
    m.write(m.regs[name].offset, value, sel)


def read(m, name):
    return m.read(m.regs[name].offset)


def bring_up_v2(m):
    write(m, "DriverFeaturesSel", 1)
    write(m, "DriverFeatures", (1 << Feature.MMIO_MSI | 1 << Feature.VERSION_1) >> 32)
    for v in range(m.vectors):
        write(m, "MsiVecSel", v)
        write(m, "MsiAddrLow", 0x1000 + v)
        write(m, "MsiData", v)
        write(m, "MsiCmd", MsiCmdV2.CONFIGURE.value)
    write(m, "MsiCmd", MsiCmdV2.ENABLE.value)
    for q in range(m.num_queues):
        write(m, "QueueSel", q)
        write(m, "QueueReady", 1)


def test_identity_and_undefined_offsets():
    m = model()
    assert read(m, "MagicValue") == MAGIC
    assert m.read(0x0fc - 4) == 0          # undefined
    assert m.read(0x100) == 0x03020100      # config space
    assert m.read(0x108) == 0               # beyond config_size


def test_used_event_raises_irq_until_acked():
    m = model()
    write(m, "QueueReady", 1)
    m.used(0)
    assert m.irq and read(m, "InterruptStatus") == 1
    write(m, "InterruptACK", 1, sel=0b0011)  # partial: ignored
    assert m.irq
    write(m, "InterruptACK", 1)
    assert not m.irq


def test_features_ok_needs_offered_features_and_version_1():
    m = model()
    write(m, "Status", Status.FEATURES_OK.value)
    assert read(m, "Status") == 0
    write(m, "DriverFeaturesSel", 1)
    write(m, "DriverFeatures", 1 | 1 << 20)     # bit 52 not offered
    write(m, "Status", Status.FEATURES_OK.value)
    assert read(m, "Status") == 0
    write(m, "DriverFeatures", 1)
    write(m, "Status", Status.FEATURES_OK.value)
    assert read(m, "Status") == Status.FEATURES_OK.value


def test_fixed_map_and_hold_coalesces_per_vector():
    m = model(msi="v2", msi_vectors=3)
    bring_up_v2(m)
    m.used(1)
    assert m.take_messages() == [(0x1002, 2)]
    m.hold_msi()
    m.used(0)
    m.used(0)
    m.used(1)
    m.config_change()
    m.used(1)
    assert m.take_messages() == []
    m.release_msi()
    assert sorted(m.take_messages()) == [(0x1000, 0), (0x1001, 1), (0x1002, 2)]


def test_mask_pends_and_unmask_delivers_once():
    m = model(msi="v2", msi_vectors=3)
    bring_up_v2(m)
    write(m, "MsiVecSel", 1)
    write(m, "MsiCmd", MsiCmdV2.MASK.value)
    m.used(0)
    m.used(0)
    assert m.take_messages() == []
    write(m, "MsiCmd", MsiCmdV2.UNMASK.value)
    assert m.take_messages() == [(0x1001, 1)]


def test_disable_folds_and_enable_hands_over():
    m = model(msi="v2", msi_vectors=3)
    bring_up_v2(m)
    m.hold_msi()
    m.used(0)
    m.used(1)
    write(m, "MsiCmd", MsiCmdV2.DISABLE.value)
    assert read(m, "InterruptStatus") == 1 and m.irq
    m.release_msi()
    m.take_messages()           # the message already on the stream still goes out
    write(m, "MsiCmd", MsiCmdV2.ENABLE.value)
    assert not m.irq
    assert sorted(m.take_messages()) == [(0x1001, 1), (0x1002, 2)]


def test_sharing_no_vector_raises_nothing():
    m = model(msi="v2", msi_vectors=2, msi_sharing=True)
    bring_up_v2(m)
    write(m, "MsiVecSel", NO_VECTOR)
    write(m, "MsiCmd", MsiCmdV2.MAP_QUEUE.value)
    m.used(0)
    assert m.take_messages() == [] and not m.irq


def test_doorbells_coalesce_with_latest_data_while_held():
    m = model(device_features=1 << Feature.NOTIFICATION_DATA)
    write(m, "DriverFeaturesSel", 1)
    write(m, "DriverFeatures", (1 << Feature.NOTIFICATION_DATA | 1 << Feature.VERSION_1) >> 32)
    for q in range(2):
        write(m, "QueueSel", q)
        write(m, "QueueReady", 1)
    m.hold_notify()
    for data in (1, 2, 3):
        write(m, "QueueNotify", data << 16 | 1)
    write(m, "QueueNotify", 5 << 16 | 0)
    write(m, "QueueNotify", 9)                  # queue 9 does not exist
    m.release_notify()
    # queue 1's first doorbell went on the stream; the next two coalesced (latest data wins)
    assert m.take_notifications() == [(1, 1, 0), (0, 5, 0), (1, 3, 0)]


def test_reset_clears_everything_pending():
    m = model(msi="v2", msi_vectors=3)
    bring_up_v2(m)
    m.hold_msi()
    m.used(0)
    m.used(1)
    write(m, "Status", 0)
    m.release_msi()
    assert m.take_messages() == [] and not m.irq and m.device_resets == 1
    assert read(m, "QueueReady") == 0


# --- docs/bad-inputs.md --------------------------------------------------------------------------

def _table_tests():
    text = (ROOT / "docs" / "bad-inputs.md").read_text()
    return sorted(set(re.findall(r"(tests/test_\w+\.py)::(test_\w+)", text)))


def test_bad_input_table_names_only_existing_tests():
    refs = _table_tests()
    assert len(refs) >= 40
    missing, defined = [], {}
    for path, name in refs:
        if path not in defined:         # each file parsed once, not once per reference
            tree = ast.parse((ROOT / path).read_text())
            defined[path] = {node.name for node in ast.walk(tree)
                             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if name not in defined[path]:
            missing.append(f"{path}::{name}")
    assert not missing, missing


@pytest.mark.parametrize("topic", [
    "undefined offset", "partial byte enables", "write-only", "read-only", "QueueSel",
    "FeaturesSel", "SHMSel", "MsiVecSel", "QueueNum above", "QueueNum of 0",
    "while the queue is ready",
    "not offered", "VERSION_1", "middle of queue setup", "bit 40", "NO_VECTOR", "unknown MsiCmd",
    "v1 16-bit", "partial byte enables", "does not exist", "not ready", "doorbell with partial",
    "overlapping", "beyond config_size", "absent or stuck device", "aborted bus cycle",
    "bad constructor parameters"])
def test_bad_input_table_covers(topic):
    assert topic in (ROOT / "docs" / "bad-inputs.md").read_text()
