"""Formal properties of the virtqueue engine with SymbiYosys (issue 14): the bus master's
handshake, no used-ring write before the chain's data writes are acknowledged, teardown, reset
and where the engine writes.

The harness is :class:`sim.engine_formal.EngineHarness` (one queue, ``addr_width=8``,
``max_chain=2``, queue sizes up to 4, descriptor lengths up to 63, 15 for the ordering). Every
run is a bounded model check (``mode bmc``, smtbmc with yices on a netlist Yosys has
synthesised) from the engine's initial state to the depth in ``DEPTHS``
(``VIRTIO_FORMAL_DEPTH`` overrides it). What a depth holds, from the covers (the step a cover
is reached in, from 0; a depth of N checks steps 0 to N-1): a data write in step 17, used.idx
written in 19 (the shortest chain), used.idx after a chain that wrote bytes in 21,
:data:`hw.virtqueue.OUTSTANDING` requests in flight in 13. So the handshake, teardown and reset
(24) see whole chains with waits and faults; the ordering and the buffers (22, about 3 minutes
each on a free core: each step more costs about four times the last) see the first chain up to
used.idx, and a chain that wrote bytes up to its used element, with hardly a wait; nothing sees
a second chain (the used ring's later slots are pinned in simulation). The covers must all be
reached (``mode cover``), and each property is shown to be able to fail: a mutant of the
engine's environment must make it FAIL with a trace ``.vcd``. Work directories are kept under
``build/formal/``, one per test (``engine_prove_ordering``...).
"""

import os

import pytest

from sim.engine_formal import EngineHarness, run_engine_sby
from sim.waves import BUILD


# A BMC run takes minutes: more than the suite's default per-test timeout.
pytestmark = [pytest.mark.formal, pytest.mark.timeout(3600)]


#: BMC depth per property group (cycles); VIRTIO_FORMAL_DEPTH overrides all of them.
DEPTHS = {"handshake": 24, "ordering": 22, "teardown": 24, "reset": 24, "buffers": 22}
_OVERRIDE = os.environ.get("VIRTIO_FORMAL_DEPTH")

WORKDIR = BUILD / "formal"


def sby(harness, name, mode="bmc", depth=None):
    if depth is None:
        depth = int(_OVERRIDE) if _OVERRIDE else DEPTHS[harness.check]
    return run_engine_sby(harness, f"engine_{name}", workdir=WORKDIR, mode=mode, depth=depth)


PROPERTIES = {
    # stb implies cyc; cyc held while requests are in flight and released after; at most
    # OUTSTANDING in flight; a stalled request unchanged until taken or the chain is abandoned
    "handshake": lambda: EngineHarness(check="handshake"),
    # a used-ring write only with every data write answered; used.idx only once both words of
    # the element at used.idx % size are acknowledged (id = the chain's head, len = bytes
    # written), advanced by one
    "ordering": lambda: EngineHarness(check="ordering"),
    # no write after a reset or QueueReady = 0 until the queue is notified again; nothing at all
    # after a bus error until a reset
    "teardown": lambda: EngineHarness(check="teardown"),
    # a ring fault is not reported (needs_reset) to the driver that reset the device after it
    "reset": lambda: EngineHarness(check="reset"),
    # every byte written lies in a writable buffer of the chain (or is the used ring's), also
    # with ring areas running past the top of the bus
    "buffers": lambda: EngineHarness(check="buffers"),
}


@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property_holds(name):
    result = sby(PROPERTIES[name](), f"prove_{name}")
    assert result.status == "PASS", result.log[-3000:]


def test_every_cover_is_reached():
    """Within the depth: used.idx written (after a chain that wrote bytes), a data write,
    needs_reset pulsed, a stalled request withdrawn, OUTSTANDING requests in flight, a reset
    while a fault's bus cycles drain."""
    result = sby(EngineHarness(check="handshake"), "cover", mode="cover", depth=24)
    assert result.status == "PASS", result.log[-3000:]
    assert result.traces


MUTANTS = {
    # the engine counts answers the target did not give to data writes: it writes the used
    # ring with a data write still in flight
    "ordering_phantom_data_ack": lambda: EngineHarness(check="ordering",
                                                       mutant="phantom_data_ack"),
    # ... to the used element's words: it writes used.idx before the element is acknowledged
    "ordering_phantom_element_ack": lambda: EngineHarness(check="ordering",
                                                          mutant="phantom_element_ack"),
    # the engine sees device logic's last beat too early: it returns the chain before device
    # logic has finished with it
    "ordering_early_last": lambda: EngineHarness(check="ordering", mutant="early_last"),
    # the engine counts answers the target did not give: it drops cyc with requests in flight
    "handshake_phantom_ack": lambda: EngineHarness(check="handshake", mutant="phantom_ack"),
    # the engine misses a stall: it counts a request the target never took, and keeps cyc up
    # for its answer
    "handshake_missed_stall": lambda: EngineHarness(check="handshake", mutant="missed_stall"),
    # the engine sees QueueReady drop a cycle late: it writes a torn-down queue
    "teardown_stale_ready": lambda: EngineHarness(check="teardown", mutant="stale_ready"),
    # the engine takes a bus error for an acknowledgement: it goes on after the error
    "teardown_missed_err": lambda: EngineHarness(check="teardown", mutant="missed_err"),
    # the engine reads a buffer's address wrong: it writes outside the buffer
    "buffers_moved_buffer": lambda: EngineHarness(check="buffers", mutant="moved_buffer"),
    # the engine reads a buffer's address as the used ring's: it writes data into the used ring
    "buffers_used_buffer": lambda: EngineHarness(check="buffers", mutant="used_buffer"),
    # the engine misses a reset (in the traces: one in the cycle a first-use check finds a
    # fault): it reports the fault to the driver that reset the device
    "reset_lost_reset": lambda: EngineHarness(check="reset", mutant="lost_reset"),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_fails_with_a_trace(name):
    result = sby(MUTANTS[name](), f"mutant_{name}")
    assert result.status == "FAIL", result.log[-3000:]
    assert any(path.name == "trace.vcd" for path in result.traces), result.traces
