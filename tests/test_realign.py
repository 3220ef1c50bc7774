"""The byte realigners on their own: random runs at every lane offset and beat size, with random
waits on both sides, against the bytes they must carry."""

import random

import pytest
from amaranth.sim import Simulator

from hw.realign import Packer, Unpacker


def _run(dut, testbench, *others):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for other in others:
        sim.add_testbench(other, background=True)
    sim.add_testbench(testbench)
    sim.run()


def _buffers(rng, count):
    """``count`` buffers as (first lane, length)."""
    return [(rng.randrange(4), rng.choice([1, 2, 3, 4, 5, 7, 8, 13, rng.randrange(1, 40)]))
            for _ in range(count)]


@pytest.mark.parametrize("seed", range(12))
def test_packer_makes_dense_beats_from_words_at_any_lane(seed):
    rng = random.Random(seed)
    dut = Packer()
    runs = [[]] + [_buffers(rng, rng.randrange(1, 5)) for _ in range(4)]
    got = []

    async def sink(ctx):
        async for _, _, valid, beat in ctx.tick().sample(dut.o.valid, dut.o.p):
            if valid and ctx.get(dut.o.ready):
                got.append((beat.data, beat.count, beat.last))
            ctx.set(dut.o.ready, rng.random() < 0.7)

    async def testbench(ctx):
        for run in runs:
            payload = bytes(rng.randrange(256) for _ in range(sum(n for _, n in run)))
            words, at = [], 0
            for lo, length in run:
                left = length
                while left:
                    n = min(4 - lo, left)
                    word = bytes(rng.randrange(256) for _ in range(lo)) + payload[at:at + n]
                    word += bytes(rng.randrange(256) for _ in range(4 - len(word)))
                    words.append((int.from_bytes(word, "little"), lo, n))
                    at, left, lo = at + n, left - n, 0
            got.clear()
            ctx.set(dut.load, 1)
            ctx.set(dut.empty, not run)
            await ctx.tick()
            ctx.set(dut.load, 0)
            for index, (data, lo, n) in enumerate(words):
                while rng.random() < 0.3:
                    await ctx.tick()
                ctx.set(dut.i.p, {"data": data, "lo": lo, "n": n,
                                  "last": index == len(words) - 1})
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
                ctx.set(dut.i.valid, 0)
            await ctx.tick().until(dut.done)
            assert len(got) == (len(payload) + 3) // 4
            stream = b"".join(data.to_bytes(4, "little") for data, _, _ in got)
            assert stream[:len(payload)] == payload
            assert [last for _, _, last in got] == [False] * (len(got) - 1) + [True] * bool(got)
            # Every beat but the last carries 4 bytes, the last what is left (1 to 4).
            tail = len(payload) - 4 * (len(got) - 1)
            assert [count for _, count, _ in got] == [4] * (len(got) - 1) + [tail] * bool(got)

    _run(dut, testbench, sink)


@pytest.mark.parametrize("seed", range(12))
def test_unpacker_places_beats_of_any_size_at_the_destination_lanes(seed):
    rng = random.Random(seed)
    wide = random.Random(seed + 1000)   # its own stream: the runs stay those of rng alone
    dut = Unpacker()
    buffers = _buffers(rng, rng.randrange(1, 5))
    room = sum(n for _, n in buffers)
    payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, room + 8)))
    written = {}                        # (buffer, offset of the byte in it) -> byte

    async def source(ctx):
        at = 0
        while True:
            count = min(rng.choice([0, 1, 2, 3, 4, 4, 4]), len(payload) - at)
            last = at + count == len(payload)
            if count == 0 and not last:
                continue
            while rng.random() < 0.3:
                await ctx.tick()
            chunk = payload[at:at + count] + bytes(rng.randrange(256) for _ in range(4 - count))
            # WriteBeat: a count above 4 is taken as 4 (the field has room up to 7)
            encoded = wide.choice([4, 4, 5, 6, 7]) if count == 4 else count
            ctx.set(dut.i.p, {"data": int.from_bytes(chunk, "little"), "count": encoded,
                              "last": last})
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            at += count
            if last:
                return

    async def testbench(ctx):
        for index, (first, length) in enumerate(buffers):
            address, end = first, first + length
            while address < end and not ctx.get(dut.done):
                lane = address % 4
                ctx.set(dut.lane, lane)
                ctx.set(dut.stop, min(3, end - 1 - (address - lane)))
                ctx.set(dut.o.ready, rng.random() < 0.7)
                valid, word, ready = (ctx.get(dut.o.valid), ctx.get(dut.o.p),
                                      ctx.get(dut.o.ready))
                await ctx.tick()
                if valid and ready:
                    assert word.sel == ((1 << word.n) - 1) << lane
                    data = word.data.to_bytes(4, "little")
                    for j in range(word.n):
                        written[index, address - first + j] = data[lane + j]
                    address += word.n
        # No room left: the bytes beyond are taken and dropped, as the engine does.
        ctx.set(dut.lane, 0)
        ctx.set(dut.stop, 3)
        ctx.set(dut.o.ready, 1)
        await ctx.tick().until(dut.done)

    async def ends(ctx):
        """``ending`` only in the cycle before ``done`` first holds."""
        ending = 0
        async for _, _, now_ending, done in ctx.tick().sample(dut.ending, dut.done):
            assert not ending or done
            assert not (now_ending and done)
            ending = now_ending

    _run(dut, testbench, source, ends)
    expected, at = {}, 0
    for index, (_, length) in enumerate(buffers):
        for offset in range(length):
            if at < len(payload):
                expected[index, offset] = payload[at]
                at += 1
    assert written == expected


@pytest.mark.parametrize("held", [0, 2])
def test_unpacker_ends_in_the_cycle_it_takes_an_empty_last_beat_only_with_nothing_held(held):
    dut = Unpacker()

    async def testbench(ctx):
        ctx.set(dut.lane, 0)
        ctx.set(dut.stop, 3)
        if held:        # bytes that wait for the consumer, who does not take them yet
            ctx.set(dut.i.p, {"data": 0xbeef, "count": held, "last": 0})
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
        ctx.set(dut.i.p, {"data": 0, "count": 0, "last": 1})
        ctx.set(dut.i.valid, 1)
        assert ctx.get(dut.i.ready)
        assert (ctx.get(dut.ending), ctx.get(dut.done)) == (not held, 0)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        assert (ctx.get(dut.ending), ctx.get(dut.done)) == (0, not held)
        if held:
            assert ctx.get(dut.o.valid) and ctx.get(dut.o.p.n) == held
            ctx.set(dut.o.ready, 1)
            await ctx.tick()
            assert (ctx.get(dut.ending), ctx.get(dut.done)) == (0, 1)

    _run(dut, testbench)


def test_unpacker_takes_no_beat_while_a_full_word_waits():
    # Up to 7 bytes are held: with a word's 4 bytes waiting for the consumer (not ready), a
    # beat of 4 more is refused until the word is taken, and then every byte comes out in order.
    dut = Unpacker()

    async def testbench(ctx):
        ctx.set(dut.lane, 0)
        ctx.set(dut.stop, 3)
        ctx.set(dut.i.p, {"data": 0x04030201, "count": 4, "last": 0})
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.p, {"data": 0x08070605, "count": 4, "last": 1})
        for _ in range(3):
            assert not ctx.get(dut.i.ready)
            await ctx.tick()
        ctx.set(dut.o.ready, 1)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.p.data) == 0x04030201
        assert ctx.get(dut.i.ready)             # the word taken makes room in the same cycle
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.p.data) == 0x08070605
        await ctx.tick()
        assert ctx.get(dut.done)

    _run(dut, testbench)
