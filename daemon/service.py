"""The D-Bus face of the engine: ``io.github.listend.Dictation1`` on the session bus.

This module only translates: method calls into calls on the daemon (see
:mod:`server`), exceptions into typed D-Bus errors, the engine's stats into
``a{sv}``. It holds no transcription logic and no process start-up.

No ``from __future__ import annotations`` here: dbus-next reads the D-Bus
signatures from the annotations at run time.
"""

import asyncio
import functools
import logging

from dbus_next import Message, MessageType, Variant
from dbus_next.constants import PropertyAccess
from dbus_next.errors import DBusError
from dbus_next.service import ServiceInterface, dbus_property, method, signal as dbus_signal

from .bus import ERROR_PREFIX, INTERFACE, OBJECT_PATH
from .config import ConfigError
from .engine import EngineError
from .history import MAX_LIMIT
from .models import ModelUnavailable
from .sources import SourceError

log = logging.getLogger("listend.service")

MAX_RECENT = 10_000
# Error texts echo what the caller sent (a profile name, a limit): keep them short.
_MAX_ERROR_TEXT = 300


def _error(kind: str, message: str) -> DBusError:
    if len(message) > _MAX_ERROR_TEXT:
        message = message[:_MAX_ERROR_TEXT] + "…"
    return DBusError(ERROR_PREFIX + kind, message)


def translate_errors(fn):
    """Turn every exception into a typed D-Bus error: never leak a traceback."""

    @functools.wraps(fn)
    async def wrapper(self, *args):
        try:
            return await fn(self, *args)
        except DBusError:
            raise
        except (ValueError, ConfigError) as e:
            raise _error("InvalidArgs", str(e)) from None
        except SourceError as e:
            raise _error("NotAvailable", str(e)) from None
        except (EngineError, ModelUnavailable) as e:
            raise _error("Failed", str(e)) from None
        except Exception as e:
            log.exception("unexpected error in %s", fn.__name__)
            raise _error("Failed", f"internal error: {type(e).__name__}") from None

    return wrapper


class DictationInterface(ServiceInterface):
    """``io.github.listend.Dictation1`` -- see ``docs/dbus.md``."""

    def __init__(self, daemon):
        super().__init__(INTERFACE)
        self._d = daemon

    # -- methods ----------------------------------------------------------------

    @method()
    @translate_errors
    async def Start(self):
        await self._d.start()

    @method()
    @translate_errors
    async def Stop(self):
        await self._d.stop()

    @method()
    @translate_errors
    async def Toggle(self) -> "b":
        if self._d.engine.state == "listening":
            await self._d.stop()
            return False
        await self._d.start()
        return True

    # GetTranscript and GetRecent are answered by LargeReplies (marshalled off
    # the loop); these definitions serve introspection and are the fallback.
    @method()
    @translate_errors
    async def GetTranscript(self, since_id: "t", limit: "u") -> "a(tdds)":
        return transcript_rows(self._d.history, since_id, limit)

    @method()
    @translate_errors
    async def GetRecent(self, count: "u") -> "a(tdds)":
        return recent_rows(self._d.history, count)

    @method()
    @translate_errors
    async def GetMemory(self) -> "a{sv}":
        return to_variants(self._d.memory_report())

    @method()
    @translate_errors
    async def SetProfile(self, profile: "s"):
        await self._d.set_profile(profile)  # build_settings rejects unknown profiles: InvalidArgs

    # -- properties -------------------------------------------------------------

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> "s":
        return self._d.engine.state

    @dbus_property(access=PropertyAccess.READ)
    def Profile(self) -> "s":
        return self._d.engine.profile

    @dbus_property(access=PropertyAccess.READ)
    def LiveText(self) -> "s":
        return self._d.live_text

    @dbus_property(access=PropertyAccess.READ)
    def LastError(self) -> "s":
        return self._d.last_error

    @dbus_property(access=PropertyAccess.READ)
    def RssBytes(self) -> "t":
        return self._d.rss_bytes

    @dbus_property(access=PropertyAccess.READ)
    def LastSegmentId(self) -> "t":
        return self._d.history.last_id()

    @dbus_property(access=PropertyAccess.READ)
    def SessionFirstId(self) -> "t":
        return self._d.session_first_id

    @dbus_property(access=PropertyAccess.READ)
    def QueueRefine(self) -> "u":
        return self._d.engine.stats().queues.queue_refine

    # -- signals ----------------------------------------------------------------

    @dbus_signal()
    def PartialText(self, seg_id, text) -> "ts":
        return [seg_id, text]

    @dbus_signal()
    def SegmentRefined(self, seg_id, start, end, text) -> "tdds":
        return [seg_id, start, end, text]

    @dbus_signal()
    def StateChanged(self, state) -> "s":
        return state

    @dbus_signal()
    def MemoryPressure(self, level, rss_bytes) -> "st":
        return [level, rss_bytes]




def transcript_rows(history, since_id: int, limit: int) -> list:
    if limit > MAX_LIMIT:
        raise ValueError(f"limit {limit} is too large (at most {MAX_LIMIT}; 0 = default)")
    return [[s.id, s.start, s.end, s.text] for s in history.since(since_id, limit)]


def recent_rows(history, count: int) -> list:
    if count > MAX_RECENT:
        raise ValueError(f"count {count} is too large (at most {MAX_RECENT})")
    return [[s.id, s.start, s.end, s.text] for s in history.recent(count)]


class LargeReplies:
    """Answers the calls whose replies can be megabytes, marshalling them off the event loop.

    Installed as a message handler in front of the exported interface: it
    claims ``GetTranscript``/``GetRecent`` calls with the right signature and
    replies from a task; anything else goes on to dbus-next's dispatch.
    """

    _CALLS = {"GetTranscript": ("tu", transcript_rows), "GetRecent": ("u", recent_rows)}

    def __init__(self, bus, history):
        self._bus = bus
        self._history = history
        self._tasks: set[asyncio.Task] = set()

    def __call__(self, msg: Message):
        if msg.message_type != MessageType.METHOD_CALL or msg.path != OBJECT_PATH:
            return False
        if msg.interface not in (INTERFACE, None) or msg.member not in self._CALLS:
            return False
        signature, _ = self._CALLS[msg.member]
        if msg.signature != signature:
            return False  # dbus-next answers the signature error
        task = asyncio.get_running_loop().create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _answer(self, msg: Message) -> None:
        _, rows_of = self._CALLS[msg.member]
        try:
            rows = await asyncio.to_thread(rows_of, self._history, *msg.body)
            await self._bus.send_large_reply(Message.new_method_return(msg, "a(tdds)", [rows]))
        except Exception as e:
            error = _error("InvalidArgs", str(e)) if isinstance(e, ValueError) else _error(
                "Failed", f"internal error: {type(e).__name__}")
            if not isinstance(e, ValueError):
                log.exception("answering %s failed", msg.member)
            if not msg.flags & 0x1:  # NO_REPLY_EXPECTED
                self._bus.send(error._as_message(msg))


def to_variants(report: dict) -> dict:
    """A flat report as ``a{sv}``: integers ``t`` (counters never go below 0), floats ``d``,
    strings ``s``, booleans ``b``."""
    out: dict = {}
    for key, value in report.items():
        if isinstance(value, bool):
            out[key] = Variant("b", value)
        elif isinstance(value, int):
            out[key] = Variant("t", max(0, value))
        elif isinstance(value, float):
            out[key] = Variant("d", value)
        elif isinstance(value, str):
            out[key] = Variant("s", value)
    return out
