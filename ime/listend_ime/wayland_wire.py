"""The Wayland wire protocol, by hand: messages, arguments, and a client connection to the compositor.

Enough of the protocol for an input method and for asking which globals a
compositor offers: 32-bit words in the machine's byte order, strings with
their length and a NUL, padded to four bytes. No file descriptors are sent
or expected (an input method that does not grab the keyboard receives none).

The connection runs in one of two ways: blocking with a deadline
(:meth:`Connection.roundtrip`, for the one-shot question "does this
compositor offer X"), or on an asyncio loop (:meth:`Connection.attach`,
:meth:`Connection.roundtrip_async`), which the input method uses so that it
shares listend-ime's single loop. It never blocks that loop: what the
compositor cannot take yet waits in a buffer until the socket is writable.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DISPLAY_ID = 1  # wl_display is object 1 on every connection
# wl_display requests and events; wl_registry's; wl_callback's.
DISPLAY_SYNC, DISPLAY_GET_REGISTRY = 0, 1
DISPLAY_ERROR, DISPLAY_DELETE_ID = 0, 1
REGISTRY_BIND = 0
REGISTRY_GLOBAL, REGISTRY_GLOBAL_REMOVE = 0, 1
CALLBACK_DONE = 0

HEADER = struct.Struct("=II")  # object id; size << 16 | opcode (the machine's byte order, as libwayland)
MAX_MESSAGE = 4096  # libwayland's limit for one message, header included
_WORD = struct.Struct("=I")
_INT = struct.Struct("=i")


class WireError(Exception):
    """The compositor sent something this client cannot read, or said the client erred."""


class Disconnected(WireError):
    """The compositor closed the connection (or it could not be made)."""


# -- encoding ---------------------------------------------------------------------------------------


def uint(value: int) -> bytes:
    return _WORD.pack(value)


def int32(value: int) -> bytes:
    return _INT.pack(value)


def string(text: str | bytes) -> bytes:
    """A Wayland string: its length counting the NUL, the UTF-8 bytes, the NUL, zeros to a 4-byte boundary."""
    data = (text.encode() if isinstance(text, str) else text) + b"\0"
    return uint(len(data)) + data + b"\0" * (-len(data) % 4)


def message(obj: int, opcode: int, *args: bytes) -> bytes:
    """One request: header, then the arguments already encoded."""
    body = b"".join(args)
    size = HEADER.size + len(body)
    if size > MAX_MESSAGE:
        raise ValueError(f"a Wayland message of {size} bytes is over the {MAX_MESSAGE}-byte limit")
    return HEADER.pack(obj, size << 16 | opcode) + body


# -- decoding ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One event as it came: the object it is for, its opcode, its arguments not yet read."""

    obj: int
    opcode: int
    body: bytes

    def args(self) -> Args:
        return Args(self.body)


class Args:
    """Reads an event's arguments in order; a body too short for them is a :class:`WireError`."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._at = 0

    def uint(self) -> int:
        return int(self._take(_WORD))

    def int32(self) -> int:
        return int(self._take(_INT))

    def string(self) -> bytes:
        """The string's bytes without the NUL (a null string reads as empty)."""
        length = self.uint()
        if length == 0:
            return b""
        end = self._at + length
        if end > len(self._body) or self._body[end - 1] != 0:
            raise WireError("a string runs past its message or has no NUL")
        data = self._body[self._at : end - 1]
        self._at = end + (-length % 4)
        return data

    def _take(self, fmt: struct.Struct) -> int:
        if self._at + fmt.size > len(self._body):
            raise WireError("a message is shorter than its arguments")
        (value,) = fmt.unpack_from(self._body, self._at)
        self._at += fmt.size
        return int(value)


class Reader:
    """Cuts the byte stream from the compositor into messages (a message may arrive in pieces)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Message]:
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            obj, size_opcode = HEADER.unpack_from(self._buffer)
            size, opcode = size_opcode >> 16, size_opcode & 0xFFFF
            if size < HEADER.size:
                raise WireError(f"a message of {size} bytes is shorter than its header")
            if len(self._buffer) < size:
                return
            body = bytes(self._buffer[HEADER.size : size])
            del self._buffer[:size]
            yield Message(obj, opcode, body)


# -- the connection ---------------------------------------------------------------------------------


def socket_path(environ: dict[str, str] | None = None) -> Path | None:
    """The compositor's socket as libwayland finds it: ``WAYLAND_DISPLAY``, absolute or in ``XDG_RUNTIME_DIR``."""
    env = os.environ if environ is None else environ
    name = env.get("WAYLAND_DISPLAY", "")
    if not name:
        return None
    if name.startswith("/"):
        return Path(name)
    runtime = env.get("XDG_RUNTIME_DIR", "")
    return Path(runtime) / name if runtime else None


Handler = Callable[[Message], None]


@dataclass
class Global:
    name: int
    interface: str
    version: int


class Connection:
    """A client's connection to the compositor: object ids, the registry, and dispatch of events to handlers."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = Reader()
        self._next_id = DISPLAY_ID + 1
        self._handlers: dict[int, Handler] = {}
        self._out = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = False
        self._callbacks: dict[int, asyncio.Future[None] | list[bool]] = {}
        self.globals: dict[str, Global] = {}  # interface -> the global offering it (the first, if several)
        self.closed: str | None = None  # why, once the connection is gone
        self.on_closed: Callable[[str], None] | None = None
        self._registry = 0

    @classmethod
    def open(cls, environ: dict[str, str] | None = None) -> Connection:
        """Connect to the session's compositor; :class:`Disconnected` with the reason if there is none."""
        path = socket_path(environ)
        if path is None:
            raise Disconnected("no Wayland session (WAYLAND_DISPLAY is not set)")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(path))
        except OSError as e:
            sock.close()
            raise Disconnected(f"cannot reach the Wayland compositor at {path}: {e.strerror or e}") from e
        sock.setblocking(False)
        return cls(sock)

    def new_id(self, handler: Handler | None = None) -> int:
        oid = self._next_id
        self._next_id += 1
        if handler is not None:
            self._handlers[oid] = handler
        return oid

    def forget(self, oid: int) -> None:
        """The object is destroyed: its events (any still on the way) are dropped."""
        self._handlers.pop(oid, None)

    # -- requests ---------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.closed is not None:
            return  # requests to a compositor that is gone go nowhere; the owner was told once
        self._out += data
        self._flush()

    def get_registry(self) -> None:
        """Ask for the globals; they arrive before the next roundtrip ends."""
        self._registry = self.new_id(self._on_registry)
        self.send(message(DISPLAY_ID, DISPLAY_GET_REGISTRY, uint(self._registry)))

    def bind(self, interface: str, version: int, handler: Handler | None = None) -> int:
        """Bind the global offering ``interface`` at ``version`` or the compositor's, if lower."""
        offered = self.globals[interface]
        oid = self.new_id(handler)
        version = min(version, offered.version)
        self.send(
            message(self._registry, REGISTRY_BIND, uint(offered.name), string(interface), uint(version), uint(oid))
        )
        return oid

    # -- waiting for the compositor ---------------------------------------------------------------

    def roundtrip(self, timeout: float) -> None:
        """Blocking: every event the compositor sent before it saw our requests is dispatched."""
        answered: list[bool] = []
        callback = self.new_id()
        self._callbacks[callback] = answered
        self.send(message(DISPLAY_ID, DISPLAY_SYNC, uint(callback)))
        deadline = time.monotonic() + timeout
        while not answered:
            if self.closed is not None:
                raise Disconnected(self.closed)
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireError(f"the compositor did not answer within {timeout:g} s")
            want_write = [self._sock] if self._out else []
            readable, writable, _ = select.select([self._sock], want_write, [], left)
            if writable:
                self._flush()
            if readable:
                self._read()

    async def roundtrip_async(self) -> None:
        """:meth:`roundtrip` on the attached loop (the caller bounds it with ``asyncio.wait_for``)."""
        assert self._loop is not None, "attach() first"
        if self.closed is not None:
            raise Disconnected(self.closed)
        waiter: asyncio.Future[None] = self._loop.create_future()
        callback = self.new_id()
        self._callbacks[callback] = waiter
        self.send(message(DISPLAY_ID, DISPLAY_SYNC, uint(callback)))
        await waiter

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on events are read and dispatched on ``loop`` as they arrive."""
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._read)
        self._flush()

    def close(self, why: str = "closed by listend") -> None:
        """Flush what can be sent without waiting, then close the socket (the compositor frees our objects)."""
        if self._sock.fileno() < 0:
            return
        if self.closed is None:
            try:
                self._flush()
            except OSError:
                pass
        self._detach()
        self._sock.close()
        if self.closed is None:
            self.closed = why
        for waiter in self._callbacks.values():
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_exception(Disconnected(why))
        self._callbacks.clear()

    # -- internals --------------------------------------------------------------------------------

    def _detach(self) -> None:
        if self._loop is not None and not self._loop.is_closed() and self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            if self._writing:
                self._loop.remove_writer(self._sock.fileno())
        self._writing = False

    def _flush(self) -> None:
        while self._out:
            try:
                sent = self._sock.send(self._out)
            except BlockingIOError:
                break
            except OSError as e:
                self._lost(f"the compositor's connection failed: {e.strerror or e}")
                return
            del self._out[:sent]
        if self._loop is None or self._sock.fileno() < 0:
            return
        if self._out and not self._writing:
            self._loop.add_writer(self._sock.fileno(), self._flush)
            self._writing = True
        elif not self._out and self._writing:
            self._loop.remove_writer(self._sock.fileno())
            self._writing = False

    def _read(self) -> None:
        try:
            data = self._sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self._lost(f"the compositor's connection failed: {e.strerror or e}")
            return
        if not data:
            self._lost("the compositor closed the connection")
            return
        try:
            for msg in self._reader.feed(data):
                self._dispatch(msg)
                if self.closed is not None:
                    return
        except WireError as e:
            self._lost(f"unreadable message from the compositor: {e}")

    def _dispatch(self, msg: Message) -> None:
        if msg.obj == DISPLAY_ID:
            args = msg.args()
            if msg.opcode == DISPLAY_ERROR:
                oid, code, text = args.uint(), args.uint(), args.string()
                self._lost(f"the compositor reported error {code} on object {oid}: {text.decode(errors='replace')}")
            return  # delete_id: ids are not reused here, nothing to free
        if msg.obj in self._callbacks and msg.opcode == CALLBACK_DONE:
            waiter = self._callbacks.pop(msg.obj)
            if isinstance(waiter, list):
                waiter.append(True)
            elif not waiter.done():
                waiter.set_result(None)
            return
        handler = self._handlers.get(msg.obj)
        if handler is not None:
            handler(msg)

    def _on_registry(self, msg: Message) -> None:
        args = msg.args()
        if msg.opcode == REGISTRY_GLOBAL:
            name, interface, version = args.uint(), args.string().decode(errors="replace"), args.uint()
            self.globals.setdefault(interface, Global(name, interface, version))
        elif msg.opcode == REGISTRY_GLOBAL_REMOVE:
            name = args.uint()
            for interface, offered in list(self.globals.items()):
                if offered.name == name:
                    del self.globals[interface]

    def _lost(self, why: str) -> None:
        if self.closed is not None:
            return
        self.closed = why
        self._detach()
        for waiter in self._callbacks.values():
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_exception(Disconnected(why))
        self._callbacks.clear()
        if self.on_closed is not None:
            self.on_closed(why)


def offered_globals(environ: dict[str, str] | None = None, timeout: float = 2.0) -> dict[str, int]:
    """Interface -> version of every global the session's compositor offers; empty where there is none."""
    try:
        conn = Connection.open(environ)
    except Disconnected:
        return {}
    try:
        conn.get_registry()
        conn.roundtrip(timeout)
        return {g.interface: g.version for g in conn.globals.values()}
    except WireError:
        return {}
    finally:
        conn.close()


if __name__ == "__main__":  # a developer's look at a compositor: ``python -m listend_ime.wayland_wire``
    for interface, version in sorted(offered_globals().items()):
        print(interface, version)
    sys.exit(0)
