"""virtio-rng device logic in simulation (virtio 1.2 §5.4), on the transport's device side.

One queue (requestq): the device fills every writable buffer of each chain with bytes from a
generator seeded at construction (so a run is repeatable). A virtio-rng chain must be all
writable: a readable buffer is the wrong direction for the device (D11 case 10). Everything
else (notifications, rings, timing, D11, reset) is :class:`sim.ringdevice.RingDevice`'s.
"""

import random

from .ringdevice import RingDevice
from .virtqueue import RingError


__all__ = ["RngDevice", "RNG_DEVICE_ID"]

#: virtio 1.2 §5: device ID 4, entropy source.
RNG_DEVICE_ID = 4


class RngDevice(RingDevice):
    """A virtio entropy device.

    Parameters
    ----------
    seed : int
        Seed of the byte generator.
    queue_size_max : int
        QueueNumMax of the request queue.
    bytes_per_cycle : int
        Fill rate: the device spends ``ceil(length / bytes_per_cycle)`` cycles on a chain.
    """

    name = "rng"

    def __init__(self, *, seed=0, queue_size_max=64, bytes_per_cycle=4):
        super().__init__(device_id=RNG_DEVICE_ID, num_queues=1, queue_size_max=queue_size_max,
                         bytes_per_cycle=bytes_per_cycle)
        self._random = random.Random(seed)
        #: Every byte the device has written into the driver's buffers, in order.
        self.produced = bytearray()

    def serve_chain(self, queue, chain):
        if chain.readable:
            raise RingError(10, f"chain from head {chain.head} has a readable buffer; "
                                f"virtio-rng takes writable buffers only")
        written = 0
        for buffer in chain.buffers:
            data = self._random.randbytes(buffer.length)
            self.memory.write(buffer.address, data)
            self.produced += data
            written += buffer.length
        return written
