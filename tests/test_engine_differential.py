"""Differential test of the virtqueue engine (issue 14) against the reference model of a split
ring, ``sim/virtqueue.py`` (plain Python written from virtio 1.2 §2.7 and decisions.md D11, not
from the gateware).

Hypothesis draws whole rings, well-formed and not: descriptor tables with random addresses,
lengths, flags and ``next`` fields, avail rings with random heads and a random avail.idx, and
random buffer contents. The gateware engine (with an echo device: the readable bytes reversed,
as many as fit) and the model with the same device serve the same memory; they must agree on
the used ring (every element and used.idx), on every byte of guest memory outside the rings'
suppression words, and on the D11 row of the first malformed chain (or on there being none).

The engine's bus spans exactly the guest memory (``addr_width`` 14: 64 KiB), so "outside guest
memory" is the same test for both (D11a). Run long: ``VIRTIO_EXAMPLES=2000 ./run test
tests/test_engine_differential.py``.
"""

import os
import random

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from sim.engine import EngineBench
from sim.memory import GuestMemory
from sim.virtqueue import DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, RingError, SplitRing


EXAMPLES = int(os.environ.get("VIRTIO_EXAMPLES", "60"))
MEMORY = 1 << 16
RING = 0x1000
BUFFERS = (0x4000, 0xc000)


def echo(data, room):
    return bytes(reversed(data))[:room]


@st.composite
def rings(draw):
    size = draw(st.sampled_from([2, 4, 8, 8, 8, 4, 8, 6]))
    max_chain = draw(st.sampled_from([4, 16]))
    descriptors = []
    for _ in range(size):
        if draw(st.integers(0, 19)) == 0:
            address = draw(st.sampled_from([MEMORY - 2, MEMORY + 0x100, (1 << 64) - 4]))
        else:
            address = draw(st.integers(*BUFFERS))
        length = draw(st.sampled_from([0, 1, 2, 3, 5, 8, 13, 40])) if draw(
            st.integers(0, 9)) == 0 else draw(st.integers(1, 40))
        flags = 0
        if draw(st.booleans()):
            flags |= DESC_F_NEXT
        if draw(st.booleans()):
            flags |= DESC_F_WRITE
        if draw(st.integers(0, 29)) == 0:
            flags |= DESC_F_INDIRECT
        following = draw(st.integers(0, size if draw(st.integers(0, 9)) == 0 else size - 1))
        descriptors.append((address, length, flags, following))
    if draw(st.integers(0, 9)) == 0:
        count = draw(st.integers(size + 1, 0xffff))     # case 1
    else:
        count = draw(st.integers(0, size))
    heads = [draw(st.integers(0, size if draw(st.integers(0, 7)) == 0 else size - 1))
             for _ in range(min(count, size))]
    seed = draw(st.integers(0, 2 ** 16))
    return size, max_chain, descriptors, count, heads, seed


def lay_out(memory, size, descriptors, count, heads, seed):
    rng = random.Random(seed)
    memory.write(BUFFERS[0], bytes(rng.randrange(256) for _ in range(BUFFERS[1] + 64 -
                                                                       BUFFERS[0])))
    desc, driver = RING, RING + 16 * size
    device = (driver + 6 + 2 * size + 4095) & ~4095
    for index, (address, length, flags, following) in enumerate(descriptors):
        entry = desc + 16 * index
        memory.write_int(entry, address, 8)
        memory.write_int(entry + 8, length, 4)
        memory.write_int(entry + 12, flags, 2)
        memory.write_int(entry + 14, following, 2)
    for slot, head in enumerate(heads):
        memory.write_int(driver + 4 + 2 * slot, head, 2)
    memory.write_int(driver + 2, count, 2)
    return desc, driver, device


def model(image, size, max_chain, desc, driver, device):
    """The reference model with the echo device; returns (memory bytes, error case)."""
    memory = GuestMemory(bytearray(image))
    try:
        ring = SplitRing(memory, size=size, desc=desc, driver=driver, device=device,
                         max_chain=max_chain)
        while (chain := ring.pop()) is not None:
            data = b"".join(memory.read(b.address, b.length) for b in chain.readable)
            out = echo(data, sum(b.length for b in chain.writable))
            position = 0
            for buffer in chain.writable:
                piece = out[position:position + buffer.length]
                memory.write(buffer.address, piece)
                position += len(piece)
            ring.push(chain, len(out))
    except RingError as error:
        return bytes(memory.read(0, MEMORY)), error.case
    return bytes(memory.read(0, MEMORY)), 0


def engine(image, size, max_chain, desc, driver, device):
    bench = EngineBench(respond=lambda request: echo(request.data, request.writable),
                        memory_size=MEMORY, addr_width=14, max_chain=max_chain)
    bench.guest.write(0, image)
    seen = {}

    async def testbench(ctx):
        queues = bench.engine.queues
        ctx.set(queues.size[0], size)
        ctx.set(queues.desc[0], desc)
        ctx.set(queues.driver[0], driver)
        ctx.set(queues.device[0], device)
        ctx.set(queues.ready, 1)
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx, bound=20_000)
        seen["case"] = ctx.get(bench.engine.error_case)
    bench.run(testbench)
    assert len(bench.events.needs_reset) == (1 if seen["case"] else 0)
    return bytes(bench.guest.read(0, MEMORY)), seen["case"]


@pytest.mark.slow
@settings(deadline=None, max_examples=EXAMPLES, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rings())
def test_engine_matches_the_reference_model(ring):
    size, max_chain, descriptors, count, heads, seed = ring
    memory = GuestMemory(bytearray(MEMORY))
    desc, driver, device = lay_out(memory, size, descriptors, count, heads, seed)
    image = bytes(memory.read(0, MEMORY))
    want, want_case = model(image, size, max_chain, desc, driver, device)
    got, got_case = engine(image, size, max_chain, desc, driver, device)
    event(f"D11 case {want_case}" if want_case else "well-formed")
    assert got_case == want_case
    # The model writes no avail_event (the engine does, with EVENT_IDX only, which is off).
    differ = [a for a in range(MEMORY) if got[a] != want[a]]
    assert differ == [], f"first differing bytes at {[hex(a) for a in differ[:8]]}"
