"""The Wishbone bus signature (issue 2)."""

import pytest
from amaranth.lib.wiring import Flow

from hw import wishbone


def test_members_follow_amaranth_soc_names_and_directions():
    sig = wishbone.Signature(addr_width=10)
    members = sig.members
    assert {name: (members[name].flow, members[name].shape) for name in members} == {
        "cyc": (Flow.Out, 1), "stb": (Flow.Out, 1), "we": (Flow.Out, 1),
        "adr": (Flow.Out, 10), "sel": (Flow.Out, 4), "dat_w": (Flow.Out, 32),
        "dat_r": (Flow.In, 32), "ack": (Flow.In, 1),
    }


def test_equality_and_repr():
    assert wishbone.Signature(addr_width=10) == wishbone.Signature(addr_width=10)
    assert wishbone.Signature(addr_width=10) != wishbone.Signature(addr_width=11)
    assert repr(wishbone.Signature(addr_width=12)) == "wishbone.Signature(addr_width=12)"


@pytest.mark.parametrize("width, error", [(0, ValueError), (-1, ValueError),
                                          ("8", TypeError), (1.5, TypeError)])
def test_bad_address_width_is_refused(width, error):
    with pytest.raises(error, match="addr_width must be a positive integer"):
        wishbone.Signature(addr_width=width)


def test_pipelined_signature_has_stall_and_err():
    sig = wishbone.Signature(addr_width=10, features=("err", "stall"))
    assert set(sig.members) == {"cyc", "stb", "we", "adr", "sel", "dat_w", "dat_r", "ack",
                                "err", "stall"}
    assert sig.members["stall"].flow == Flow.In and sig.members["err"].flow == Flow.In
    assert sig.features == frozenset({"err", "stall"})
    assert "stall" not in wishbone.Signature(addr_width=10).members


def test_features_take_part_in_equality_and_repr():
    plain = wishbone.Signature(addr_width=10)
    pipelined = wishbone.Signature(addr_width=10, features=["stall", "err"])
    assert plain != pipelined
    assert pipelined == wishbone.Signature(addr_width=10, features=("err", "stall"))
    assert repr(pipelined) == "wishbone.Signature(addr_width=10, features=('err', 'stall',))"
    assert repr(plain) == "wishbone.Signature(addr_width=10)"


def test_unknown_feature_is_refused():
    with pytest.raises(ValueError, match=r"^features must be a set of err, stall, not "
                                         r"\['lock'\]$"):
        wishbone.Signature(addr_width=10, features=("lock",))
