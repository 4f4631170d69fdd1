"""A dbus-next message bus whose writer survives a full socket.

dbus-next 0.2.3 (its open issue #153, PR #154) -- and its fork dbus-fast 5.2
the same way -- treats ``EAGAIN`` from ``send()`` as a lost connection: when
a client pipelines thousands of calls, the replies fill the socket buffer,
the writer "fails", the bus is finalized and a service silently leaves the
bus. A non-blocking socket that would block is not an error: the writer must
keep its place in the buffer and wait until the socket is writable again.

:class:`MessageBus` here is dbus-next's asyncio bus with that one part
replaced. Everything listend connects with (the daemon, ``listenctl``, the
tray) uses it. It also counts what waits to be written, so the daemon can
report a client that does not read its replies.

Why dbus-next and not dbus-fast: the API is the same, the fault is the
same, and the fix needs a writer we can subclass; dbus-fast compiles its
writer with Cython, where a subclass cannot replace ``write_callback``.
dbus-next is pure Python, small, and its wire code has not changed in years.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dbus_next import BusType, Message
from dbus_next.aio import message_bus as _aio
from dbus_next.errors import DBusError

log = logging.getLogger("listend.dbus")

# What of dbus-next's internals this module relies on (pinned in pyproject.toml; a test checks them).
PRIVATE_NAMES = {
    "dbus_next.aio.message_bus._MessageWriter": (
        "write_callback",
        "buf",
        "messages",
        "offset",
        "fut",
        "unix_fds",
        "negotiate_unix_fd",
        "sock",
        "fd",
        "loop",
        "bus",
    ),
    "dbus_next.aio.message_bus": ("_MessageWriter", "_future_set_result", "_future_set_exception", "socket", "array"),
    "dbus_next.aio.message_bus.MessageBus": ("_writer", "_finalize", "next_serial", "unique_name"),
    "dbus_next.message.Message": ("_marshall",),
    "dbus_next.errors.DBusError": ("_as_message",),
}


class QuietPeerErrors(logging.Filter):
    """dbus-next logs a traceback for every bad call it already answered with an error.

    Those are the caller's mistakes, answered properly; logging them (with the
    caller's arbitrarily long strings) would let any peer on the bus flood the
    journal. The daemon and the tray install this on their log handlers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], DBusError):
            return False
        if (
            isinstance(record.msg, str)
            and record.msg.startswith("got unexpected error processing a message")
            and "dbus_next.errors.DBusError" in record.msg
        ):
            return False
        if isinstance(record.msg, str) and len(record.msg) > 2000:
            record.msg = record.msg[:2000] + "…"
        return True


class _PatientWriter(_aio._MessageWriter):
    """dbus-next's writer, except that ``EAGAIN``/``EINTR`` mean "wait for writable"."""

    def __init__(self, bus: Any):
        super().__init__(bus)
        self.would_block = 0  # times the socket was full

    def write_callback(self) -> None:
        try:
            while True:
                if self.buf is None:
                    if self.messages.qsize() == 0:
                        self.loop.remove_writer(self.fd)  # nothing more to write
                        return
                    buf, unix_fds, fut = self.messages.get_nowait()
                    self.unix_fds = unix_fds
                    self.buf = memoryview(buf)
                    self.offset = 0
                    self.fut = fut
                if self.unix_fds and self.negotiate_unix_fd:
                    ancdata = [(_aio.socket.SOL_SOCKET, _aio.socket.SCM_RIGHTS, _aio.array.array("i", self.unix_fds))]
                    self.offset += self.sock.sendmsg([self.buf[self.offset :]], ancdata)
                    self.unix_fds = None
                else:
                    self.offset += self.sock.send(self.buf[self.offset :])
                if self.offset >= len(self.buf):
                    self.buf = None
                    _aio._future_set_result(self.fut, None)
                else:
                    return  # partly written: the loop calls us again when writable
        except (BlockingIOError, InterruptedError):
            # The socket buffer is full. The writer stays registered with the
            # loop, which calls it again once the peer has read some data.
            self.would_block += 1
        except Exception as e:
            log.error("D-Bus connection lost while writing: %s: %s", type(e).__name__, e)
            _aio._future_set_exception(self.fut, e)
            self.bus._finalize(e)

    def send_marshalled(self, data: bytes) -> None:
        """Queue a message that was already marshalled (off the loop, for a large reply)."""
        self.messages.put_nowait((data, [], None))
        if self.bus.unique_name:
            self.loop.add_writer(self.fd, self.write_callback)

    @property
    def queued_messages(self) -> int:
        return self.messages.qsize() + (self.buf is not None)


class MessageBus(_aio.MessageBus):
    """dbus-next's asyncio :class:`~dbus_next.aio.MessageBus` with a writer that waits on a full socket."""

    def __init__(self, bus_address: str | None = None, bus_type: BusType = BusType.SESSION, **kw: Any):
        super().__init__(bus_address=bus_address, bus_type=bus_type, **kw)  # type: ignore[arg-type]
        self._patient = _PatientWriter(self)
        self._writer = self._patient

    async def connect(self) -> MessageBus:
        await super().connect()
        return self

    async def send_large_reply(self, reply: Message) -> None:
        """Send ``reply`` marshalled on a worker thread.

        Marshalling 10 000 transcript rows in pure Python takes tens of
        milliseconds; done on the event loop, a few clients fetching big
        transcripts would hold every other call (and the watchdog tick) in
        line behind them.
        """
        if not reply.serial:
            reply.serial = self.next_serial()
        data = await asyncio.to_thread(reply._marshall, False)
        self._patient.send_marshalled(data)

    @property
    def writer_stats(self) -> dict[str, int]:
        w = self._patient
        return {"bus_send_queue": w.queued_messages, "bus_send_would_block": w.would_block}
