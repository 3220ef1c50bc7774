"""A model of an interrupt controller that receives MSI writes (a GIC ITS doorbell, an IMSIC...).

Add :meth:`InterruptControllerModel.run` as a background process on the transport's ``msi``
stream. It records every message with the cycle it was accepted in and applies backpressure: in
each cycle ``ready`` is low with probability ``stall``, or while :attr:`hold` is set.
"""

import random
from dataclasses import dataclass


__all__ = ["Message", "InterruptControllerModel"]


@dataclass(frozen=True)
class Message:
    cycle: int
    address: int
    data: int


class InterruptControllerModel:
    def __init__(self, stream, *, stall=0.0, seed=0):
        self.stream = stream
        self.stall = stall
        self.hold = False
        self.messages = []
        self.now = 0
        self._random = random.Random(seed)

    def take(self):
        """The messages received so far, as ``(address, data)``, and forget them."""
        got = [(m.address, m.data) for m in self.messages]
        self.messages.clear()
        return got

    async def run(self, ctx):
        s = self.stream
        ctx.set(s.ready, 1)
        async for _, _, valid, ready, payload in ctx.tick().sample(s.valid, s.ready, s.p):
            self.now += 1
            if valid and ready:
                self.messages.append(Message(self.now, payload.address, payload.data))
            stalled = self.hold or self._random.random() < self.stall
            ctx.set(s.ready, not stalled)
