"""virtio-console device logic in simulation (virtio 1.2 §5.3), port 0 only.

No feature is offered (no VIRTIO_CONSOLE_F_SIZE, no F_MULTIPORT), so the device has two queues:
receiveq (0), whose writable buffers the device fills with the console's input, and transmitq
(1), whose readable buffers carry the guest's output. The input is given at construction (and
with :meth:`ConsoleDevice.type`) and typed, as a user at a console would, in reply to the
guest's first output (a prompt): the hvc layer passes input on to a tty only while the tty is
open, so input that arrived at probe time would wait in the driver for more. The device holds
the receive buffers while it has nothing to deliver. A receive chain must be all writable and a
transmit chain all readable (D11 case 10). Everything else is
:class:`sim.ringdevice.RingDevice`'s.
"""

from .ringdevice import RingDevice
from .virtqueue import RingError


__all__ = ["ConsoleDevice", "CONSOLE_DEVICE_ID", "RECEIVEQ", "TRANSMITQ"]

#: virtio 1.2 §5: device ID 3, console.
CONSOLE_DEVICE_ID = 3
RECEIVEQ, TRANSMITQ = 0, 1


class ConsoleDevice(RingDevice):
    """A virtio console.

    Parameters
    ----------
    input : bytes
        What the console's user types, delivered into receive buffers as they come.
    queue_size_max : int
    bytes_per_cycle : int
    """

    name = "console"

    def __init__(self, *, input=b"", queue_size_max=64, bytes_per_cycle=4):
        super().__init__(device_id=CONSOLE_DEVICE_ID, num_queues=2,
                         queue_size_max=queue_size_max, bytes_per_cycle=bytes_per_cycle)
        self._input = bytearray(input)
        #: Everything the guest wrote to the console, in order.
        self.output = bytearray()

    def type(self, data):
        """More input."""
        self._input += data
        self.wake(RECEIVEQ)

    def can_serve(self, queue):
        return queue == TRANSMITQ or bool(self._input and self.output)

    def serve_chain(self, queue, chain):
        if queue == TRANSMITQ:
            if chain.writable:
                raise RingError(10, f"transmit chain from head {chain.head} has a writable "
                                    f"buffer")
            for buffer in chain.buffers:
                self.output += self.memory.read(buffer.address, buffer.length)
            self.wake(RECEIVEQ)
            return 0
        if chain.readable:
            raise RingError(10, f"receive chain from head {chain.head} has a readable buffer")
        written = 0
        for buffer in chain.buffers:
            data = bytes(self._input[:buffer.length])
            del self._input[:len(data)]
            self.memory.write(buffer.address, data)
            written += len(data)
        return written
