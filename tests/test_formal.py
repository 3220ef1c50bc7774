"""Formal properties with SymbiYosys (issue 6): bus handshake, MSI, notifications, reset.

Harnesses live in :mod:`sim.formal`. Every property run is a bounded model check (``mode bmc``,
smtbmc with yices) to the depth in ``DEPTHS`` (bus and reset 16 cycles, notifications 20, MSI 12;
the environment variable ``VIRTIO_FORMAL_DEPTH`` overrides them); every harness's covers must all
be reached (``mode cover``); and every property is shown to be able to fail: a mutant of each
harness must FAIL and leave a trace ``.vcd``. Work directories (logs, traces) are kept under
``build/formal/``, one per test (``prove_bus``, ``mutant_msi_drop_configure``...), so parallel
workers never share one.
"""

import os

import pytest

from sim.formal import BusHarness, MSIHarness, NotifyHarness, ResetHarness, run_sby
from sim.waves import BUILD


# A BMC run takes from seconds to minutes on a free core, and several times that on a loaded one:
# more than the suite's default per-test timeout.
pytestmark = [pytest.mark.formal, pytest.mark.timeout(3600)]


#: BMC depth per harness (cycles). The transport-level harnesses reach every register access
#: several times over in 16 cycles (an access takes 2); the MSI controller's state space makes
#: depth 12 cost about 45 s, so it stops there. VIRTIO_FORMAL_DEPTH overrides all of them.
DEPTHS = {"bus": 16, "reset": 16, "notify": 20, "msi": 12}
_OVERRIDE = os.environ.get("VIRTIO_FORMAL_DEPTH")


WORKDIR = BUILD / "formal"


def depth_of(name):
    return int(_OVERRIDE) if _OVERRIDE else DEPTHS[name.split("_")[0]]


def sby(harness, name, mode="bmc", depth=None):
    depth = depth_of(name.split("_", 1)[1]) if depth is None else depth
    return run_sby(harness, name, workdir=WORKDIR, mode=mode, depth=depth)


PROPERTIES = {
    # every request acked exactly once, 1 cycle after it is presented (2 for reads)
    "bus": lambda: BusHarness(),
    # ... also when the master withdraws requests; no ack without a request
    "bus_aborts": lambda: BusHarness(aborts=True),
    # masked/unconfigured/disabled vectors send nothing; no message without an event;
    # DISABLE folds every pending event; payload stable under stall
    "msi": lambda: MSIHarness(),
    # with a ready sink every deliverable pending vector (after UNMASK, CONFIGURE or ENABLE)
    # is delivered within MSIHarness.BOUND cycles
    "msi_fair": lambda: MSIHarness(fair=True),
    # a doorbell makes one notification or coalesces into a pending one; latest data wins
    "notify": lambda: NotifyHarness(),
    # with a ready device every pending notification is offered within NotifyHarness.BOUND
    "notify_fair": lambda: NotifyHarness(fair=True),
    # Status := 0 leaves no message, no notification, no interrupt and no ready queue
    "reset": lambda: ResetHarness(),
}


@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property_holds(name):
    result = sby(PROPERTIES[name](), f"prove_{name}")
    assert result.status == "PASS", result.log[-3000:]


COVERS = {
    "bus": lambda: BusHarness(),
    "msi": lambda: MSIHarness(),
    "notify": lambda: NotifyHarness(),
    "reset": lambda: ResetHarness(),
}


@pytest.mark.parametrize("name", list(COVERS))
def test_every_cover_is_reached(name):
    """The scenarios the properties are about happen within the depth: a config read acked, a
    pending masked vector delivered after UNMASK, a doorbell coalescing, a reset with a
    notification on the stream..."""
    result = sby(COVERS[name](), f"cover_{name}", mode="cover")
    assert result.status == "PASS", result.log[-3000:]
    assert result.traces


MUTANTS = {
    # the latency bound is tight: reads do take 2 cycles
    "bus_latency": lambda: BusHarness(mutant="latency"),
    # an ack held for two cycles is caught
    "bus_double_ack": lambda: BusHarness(mutant="double_ack"),
    # a block that ignores MASK sends messages for masked vectors
    "msi_ignore_mask": lambda: MSIHarness(fair=True, mutant="ignore_mask"),
    # events the shadow did not see produce messages "without an event"
    "msi_extra_event": lambda: MSIHarness(mutant="extra_event"),
    # a block that drops CONFIGURE never delivers the pending vector: the delivery bound fails.
    # (A dropped UNMASK fails the same bound, but its shortest trace is 15 cycles, four commands
    # two cycles apart before the bound of 6 runs out, so no depth below 15 catches it and its
    # BMC was the costliest run of the suite; this one fails at step 10. UNMASK delivery is
    # pinned by tests/test_msi.py's
    # test_masked_events_pend_and_are_delivered_once_on_unmask_for_every_vector and by the
    # msi harness's cover of it.)
    "msi_drop_configure": lambda: MSIHarness(fair=True, mutant="drop_configure"),
    # doorbells the shadow did not see produce notifications without a doorbell
    "notify_invent": lambda: NotifyHarness(mutant="invent"),
    # lost doorbells leave a pending entry that is never offered
    "notify_lose": lambda: NotifyHarness(fair=True, mutant="lose"),
    # a partial Status write is no reset: state survives it
    "reset_partial": lambda: ResetHarness(mutant="partial"),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_fails_with_a_trace(name):
    # every mutant's shortest failing trace is at most 12 cycles long
    result = sby(MUTANTS[name](), f"mutant_{name}", depth=min(depth_of(name), 12))
    assert result.status == "FAIL", result.log[-3000:]
    assert any(path.name == "trace.vcd" for path in result.traces), result.traces
