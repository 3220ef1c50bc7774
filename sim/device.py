"""A model of device logic on the transport's device side (:mod:`hw.device`).

:class:`DeviceModel` answers config-space accesses from a byte array, takes notifications (with
optional backpressure), and raises used-buffer and config-change events. Add :meth:`DeviceModel.run`
as a background process; the testbench asks for events with :meth:`raise_used` and
:meth:`change_config`, which the model performs on its next cycle.

:func:`device_view` reads what the device side is shown (status, accepted features, every queue's
registers) under the names :meth:`sim.model.TransportModel.device_view` uses, so a test compares
the gateware's view with the model's, or with itself before and after.
"""

import random
from dataclasses import dataclass


__all__ = ["DeviceModel", "Received", "QUEUE_MEMBERS", "device_view"]


#: The per-queue outputs of the device side (``queues.<member>[q]``).
QUEUE_MEMBERS = ("ready", "size", "desc", "driver", "device")


def device_view(ctx, port):
    """The transport's device-side outputs ``port`` now, as a dict: ``"status"``,
    ``"features"`` and ``"queue<q>.<member>"`` for every queue and :data:`QUEUE_MEMBERS`."""
    view = {"status": ctx.get(port.status.as_value()), "features": ctx.get(port.features)}
    for q in range(len(port.queues)):
        for member in QUEUE_MEMBERS:
            view[f"queue{q}.{member}"] = ctx.get(getattr(port.queues[q], member))
    return view


@dataclass(frozen=True)
class Received:
    """A notification the device accepted."""
    cycle: int
    queue: int
    next_off: int
    next_wrap: int


class DeviceModel:
    """Device logic in simulation.

    Parameters
    ----------
    port : the transport's ``device`` interface
    config : bytes
        Initial config-space contents (its length is the transport's ``config_size``).
    echo_used : int or None
        When set, answer every notification with a used-buffer event on its queue this many
        cycles later (a device that completes every request at once).
    stall : float
        Probability that ``notify.ready`` is low in a given cycle (backpressure).
    seed : int
    """

    def __init__(self, port, *, config=b"", echo_used=None, stall=0.0, seed=0):
        self.port = port
        self.config = bytearray(config)
        self.echo_used = echo_used
        self.stall = stall
        self._random = random.Random(seed)
        self.notifications = []
        self.config_writes = []
        self.resets = 0
        self.now = 0
        self._events = {}            # cycle -> list of ("used", q) / ("config", None)

    # --- requests from the testbench ------------------------------------------------------------

    def _schedule(self, delay, event):
        self._events.setdefault(self.now + max(1, delay), []).append(event)

    def raise_used(self, queue, delay=1):
        """Pulse ``queues[queue].used`` for one cycle, ``delay`` cycles from now."""
        self._schedule(delay, ("used", queue))

    def change_config(self, offset=None, data=b"", delay=1):
        """Change config bytes (if given) and pulse ``config_change``."""
        if offset is not None:
            self.config[offset:offset + len(data)] = data
        self._schedule(delay, ("config", None))

    def raise_needs_reset(self, delay=1):
        self._schedule(delay, ("needs_reset", None))

    # --- the process ------------------------------------------------------------------------------

    def _config_word(self, addr):
        chunk = bytes(self.config[4 * addr:4 * addr + 4]).ljust(4, b"\0")
        return int.from_bytes(chunk, "little")

    async def run(self, ctx):
        port = self.port
        cfg = port.config
        notify = port.notify
        queues = port.queues
        ctx.set(notify.ready, 1)
        sampled = (cfg.r_stb, cfg.w_stb, cfg.addr, cfg.sel, cfg.w_data,
                   notify.valid, notify.ready, notify.p, port.reset)
        async for _, _, r_stb, w_stb, addr, sel, w_data, n_valid, n_ready, n_p, reset \
                in ctx.tick().sample(*sampled):
            self.now += 1
            if reset:
                self.resets += 1
            if w_stb:
                for lane in range(4):
                    if sel >> lane & 1 and 4 * addr + lane < len(self.config):
                        self.config[4 * addr + lane] = w_data >> (8 * lane) & 0xff
                self.config_writes.append((addr, sel, w_data))
            if r_stb:
                ctx.set(cfg.r_data, self._config_word(addr))
            if n_valid and n_ready:
                got = Received(self.now, n_p.queue, n_p.next_off, n_p.next_wrap)
                self.notifications.append(got)
                if self.echo_used is not None:
                    self.raise_used(got.queue, self.echo_used)
            ctx.set(notify.ready, self._random.random() >= self.stall)

            events = self._events.pop(self.now, [])
            ctx.set(queues.used, sum(1 << q for kind, q in events if kind == "used"))
            ctx.set(port.config_change, ("config", None) in events)
            ctx.set(port.needs_reset, ("needs_reset", None) in events)
