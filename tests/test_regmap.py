"""The register map is consistent in every personality (issue 2)."""

import pytest

from hw.regmap import CONFIG_OFFSET, PERSONALITIES, Access, RegisterMap, register_map


@pytest.mark.parametrize("msi", PERSONALITIES, ids=str)
@pytest.mark.parametrize("notify", [False, True], ids=["plain", "notify"])
def test_registers_are_aligned_and_disjoint(msi, notify):
    regs = register_map(msi, notify=notify)
    taken = {}
    for r in regs:
        assert r.width in (16, 32)
        assert r.offset % (r.width // 8) == 0, r.name
        assert 0 <= r.offset < CONFIG_OFFSET, r.name
        assert r.description, r.name
        for byte in range(r.offset, r.offset + r.width // 8):
            assert byte not in taken, (r.name, taken.get(byte))
            taken[byte] = r.name
        for f in r.fields:
            assert f.lsb + f.width <= r.width, (r.name, f.name)
    assert [r.offset for r in regs] == sorted(r.offset for r in regs)


def test_personalities_differ_where_the_proposals_do():
    standard, v2, v1 = (RegisterMap(msi) for msi in PERSONALITIES)
    assert "MsiVecNum" not in standard and "MsiStatus" not in standard
    assert v2["MsiVecNum"].offset == v1["MsiStatus"].offset      # both took 0x0c0
    assert v1["MsiCmd"].width == 16 and v2["MsiCmd"].width == 32
    assert v1["MsiStatus"].word == v1["MsiCmd"].word             # the 16-bit pair shares a word
    assert standard["QueueNotify"].access is Access.W
    assert v1["QueueNotify"].access is Access.RW                 # v1 always has the structure
    assert RegisterMap(None, notify=True)["QueueNotify"].access is Access.RW


def test_describe_names_registers_config_and_holes():
    regs = RegisterMap()
    assert regs.describe(regs["Status"].offset) == "Status"
    assert regs.describe(CONFIG_OFFSET + 6, config_size=8) == "Config+0x06"
    assert regs.describe(CONFIG_OFFSET + 8, config_size=8).startswith("undefined")


def test_unknown_names_and_personalities_are_refused():
    with pytest.raises(KeyError, match="No register 'QueueReset' in the None register map"):
        RegisterMap()["QueueReset"]
    with pytest.raises(ValueError, match=r"msi must be one of \(None, 'v2', 'v1'\), not 3"):
        RegisterMap(3)


def test_field_place_refuses_values_that_do_not_fit():
    field = RegisterMap("v1")["MsiCmd"].field("cmd_op")
    assert field.place(2) == 2 << 12
    with pytest.raises(ValueError, match="does not fit field cmd_op of width 4"):
        field.place(16)
