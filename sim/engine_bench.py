"""Benchmark of the virtqueue engine in simulation: cycles per buffer and doorbell latency.

    ./run python -m sim.engine_bench [--buffers 32] [--seeds 5]

A zero-wait memory (every request taken, answered on the next cycle) and a device that never
waits. For one-descriptor buffers of 64 bytes and 4 KiB, read by the device (a transmit queue)
and written by it (a receive queue), it prints the cycles per buffer in the steady state
(between used.idx writes, the median over the run) against the bus limit of a split ring on a
32-bit bus: 11 control beats (avail idx, ring entry, 4 descriptor words, 2 used element words,
used idx, the interrupt-suppression word, avail_event) plus ceil(length / 4) data beats; and the
cycles from a notification to the first descriptor read.

The engine's own timing does not depend on a seed with a zero-wait memory; ``--seeds`` repeats
each figure with the device's payload varied and reports the median, so that a number printed
is one that repeats.
"""

import argparse
import itertools
import statistics

from .engine import EngineBench


__all__ = ["measure", "main"]

RING, DATA = 0x1000, 0x10000
CONTROL_BEATS = 11


def measure(length, *, direction, buffers=32, seed=0, event_idx=True):
    """Cycles per buffer (median over the run) and notification-to-first-descriptor cycles."""
    respond = (lambda request: b"") if direction == "read" else \
        (lambda request: bytes((seed + i) & 0xff for i in range(request.writable)))
    bench = EngineBench(respond=respond, event_idx=event_idx, memory_size=1 << 20,
                        addr_width=20)
    ring = bench.ring(0, size=64, base=RING)
    marks = {}

    async def testbench(ctx):
        bench.set_queue(ctx, 0)
        for i in range(buffers):
            ring.add([(DATA + i * ((length + 15) & ~15), length, direction == "write")])
        await ctx.tick().repeat(4)
        marks["notify"] = bench.memory.cycle + 1
        await bench.notify(ctx, 0)
        await bench.until_idle(ctx, bound=50 * buffers * (length // 4 + 40))
    bench.run(testbench)
    assert len(ring.used()) == buffers
    desc_reads = [a.taken for a in bench.memory.log
                  if not a.write and ring.desc <= a.address < ring.driver]
    used_idx = [a.taken for a in bench.memory.writes() if a.address == ring.device]
    per_buffer = statistics.median(b - a for a, b in itertools.pairwise(used_idx))
    return per_buffer, desc_reads[0] - marks["notify"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sim.engine_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--buffers", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{'buffer':>8} {'device':>6} {'cycles/buffer':>14} {'bus limit':>10} "
          f"{'ratio':>6} {'bytes/cycle':>12} {'doorbell->desc':>15}")
    for length in (64, 4096):
        for direction in ("read", "write"):
            runs = [measure(length, direction=direction, buffers=args.buffers, seed=seed)
                    for seed in range(args.seeds)]
            cycles = statistics.median(run[0] for run in runs)
            latency = statistics.median(run[1] for run in runs)
            limit = CONTROL_BEATS + -(-length // 4)
            print(f"{length:>8} {direction + 's':>6} {cycles:>14.1f} {limit:>10} "
                  f"{cycles / limit:>6.2f} {length / cycles:>12.2f} {latency:>15.0f}")


if __name__ == "__main__":
    main()
