"""The D-Bus face of the engine: ``io.github.listend.Dictation1`` on the session bus.

This module only translates: method calls into calls on the daemon (what it
needs of the daemon is :class:`DaemonControl`), exceptions into typed D-Bus
errors, the engine's stats into ``a{sv}``. It holds no transcription logic
and no process start-up.

No ``from __future__ import annotations`` here: dbus-next reads the D-Bus
signatures from the annotations at run time (so mypy and ruff are told that
``"s"``, ``"t"``, ... are D-Bus signatures, not Python names).
"""

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from dbus_next import Message, MessageType, Variant
from dbus_next.constants import PropertyAccess
from dbus_next.errors import DBusError
from dbus_next.service import ServiceInterface, dbus_property, method
from dbus_next.service import signal as dbus_signal

from .bus import ERROR_PREFIX, INTERFACE, OBJECT_PATH
from .commands import Action
from .config import ConfigError
from .dbusio import MessageBus
from .engine import EngineError
from .history import MAX_LIMIT, Segment
from .models import ModelUnavailable
from .sources import SourceError

log = logging.getLogger("listend.service")

MAX_RECENT = 10_000
# Error texts echo what the caller sent (a profile name, a limit): keep them short.
_MAX_ERROR_TEXT = 300
# Large replies built and marshalled at once: each of 100 000 rows costs tens of MiB on the way out.
_LARGE_REPLIES_AT_ONCE = 2

Row = list[Any]  # (t id, d start, d end, s text)


class SegmentHistory(Protocol):
    """What the replies read of the history."""

    def since(self, since_id: int, limit: int = 0) -> list[Segment]: ...

    def recent(self, count: int) -> list[Segment]: ...


class DaemonControl(Protocol):
    """Exactly what the D-Bus interface reads of, and asks of, the daemon."""

    @property
    def state(self) -> str: ...

    @property
    def profile(self) -> str: ...

    @property
    def live_text(self) -> str: ...

    @property
    def last_error(self) -> str: ...

    @property
    def rss_bytes(self) -> int: ...

    @property
    def last_segment_id(self) -> int: ...

    @property
    def session_first_id(self) -> int: ...

    @property
    def queue_refine(self) -> int: ...

    @property
    def pending_segments(self) -> int: ...

    @property
    def delivery(self) -> str: ...

    def set_delivery(self, method: str) -> None: ...

    @property
    def history(self) -> SegmentHistory: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def toggle(self) -> bool: ...

    async def set_profile(self, profile: str) -> None: ...

    def memory_report(self) -> dict[str, object]: ...

    def command_phrases(self) -> list[tuple[str, str]]: ...

    @property
    def vocabulary(self) -> list[str]: ...

    def add_vocabulary(self, word: str) -> None: ...

    def remove_vocabulary(self, word: str) -> None: ...

    @property
    def language(self) -> str: ...

    @property
    def languages(self) -> list[str]: ...

    @property
    def pinned_language(self) -> str: ...

    def pin_language(self, language: str) -> None: ...


def _error(kind: str, message: str) -> DBusError:
    if len(message) > _MAX_ERROR_TEXT:
        message = message[:_MAX_ERROR_TEXT] + "…"
    return DBusError(ERROR_PREFIX + kind, message)


def translate_errors(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Turn every exception into a typed D-Bus error: never leak a traceback."""

    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any) -> Any:
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

    def __init__(self, daemon: DaemonControl):
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
        return await self._d.toggle()

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
    async def SetProfile(self, profile: "s") -> None:
        await self._d.set_profile(profile)  # build_settings rejects unknown profiles: InvalidArgs

    @method()
    @translate_errors
    async def PinLanguage(self, language: "s") -> None:
        self._d.pin_language(language)  # '' unpins; a language outside the set is ValueError: InvalidArgs

    @method()
    @translate_errors
    async def SetDelivery(self, delivery: "s") -> None:
        self._d.set_delivery(delivery)  # an unknown method is InvalidArgs

    @method()
    @translate_errors
    async def GetCommands(self, since_id: "t", limit: "u") -> "a(tst)":
        return command_rows(self._d.history, since_id, limit)

    @method()
    @translate_errors
    async def GetCommandPhrases(self) -> "a(ss)as":
        phrases = self._d.command_phrases()
        in_force = {action for action, _ in phrases}
        return [[list(p) for p in phrases], [a.value for a in Action if a.value not in in_force]]

    @method()
    @translate_errors
    async def AddVocabulary(self, word: "s") -> None:
        try:
            self._d.add_vocabulary(word)  # a bad word or a full vocabulary is ValueError: InvalidArgs
        except OSError as e:
            raise _error("Failed", str(e)) from None

    @method()
    @translate_errors
    async def RemoveVocabulary(self, word: "s") -> None:
        try:
            self._d.remove_vocabulary(word)
        except OSError as e:
            raise _error("Failed", str(e)) from None

    # -- properties -------------------------------------------------------------

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> "s":
        return self._d.state

    @dbus_property(access=PropertyAccess.READ)
    def Profile(self) -> "s":
        return self._d.profile

    @dbus_property(access=PropertyAccess.READ)
    def LiveText(self) -> "s":
        return self._d.live_text

    @dbus_property(access=PropertyAccess.READ)
    def LastError(self) -> "s":
        return self._d.last_error

    @dbus_property(access=PropertyAccess.READ)
    def RssBytes(self) -> "t":
        # Before the daemon's first once-a-second measurement (a client right after D-Bus activation) it is
        # measured now: `listenctl status` showed "memory: 0 MiB".
        return self._d.rss_bytes or _rss_now()

    @dbus_property(access=PropertyAccess.READ)
    def LastSegmentId(self) -> "t":
        return self._d.last_segment_id

    @dbus_property(access=PropertyAccess.READ)
    def SessionFirstId(self) -> "t":
        return self._d.session_first_id

    @dbus_property(access=PropertyAccess.READ)
    def QueueRefine(self) -> "u":
        return self._d.queue_refine

    @dbus_property(access=PropertyAccess.READ)
    def PendingSegments(self) -> "u":
        return self._d.pending_segments

    @dbus_property(access=PropertyAccess.READ)
    def Delivery(self) -> "s":
        return self._d.delivery

    @dbus_property(access=PropertyAccess.READ)
    def Vocabulary(self) -> "as":
        return self._d.vocabulary

    @dbus_property(access=PropertyAccess.READ)
    def Language(self) -> "s":
        return self._d.language

    @dbus_property(access=PropertyAccess.READ)
    def Languages(self) -> "as":
        return self._d.languages

    @dbus_property(access=PropertyAccess.READ)
    def PinnedLanguage(self) -> "s":
        return self._d.pinned_language

    # -- signals ----------------------------------------------------------------

    @dbus_signal()
    def PartialText(self, seg_id: int, text: str) -> "ts":
        return [seg_id, text]

    @dbus_signal()
    def SegmentCommand(self, seg_id: int, action: str, target: int, said: str) -> "tsts":
        return [seg_id, action, target, said]

    @dbus_signal()
    def SegmentRefined(self, seg_id: int, start: float, end: float, text: str) -> "tdds":
        return [seg_id, start, end, text]

    @dbus_signal()
    def SegmentRetracted(self, seg_id: int, kind: str) -> "ts":
        return [seg_id, kind]

    @dbus_signal()
    def StateChanged(self, state: str) -> "s":
        return state

    @dbus_signal()
    def MemoryPressure(self, level: str, rss_bytes: int) -> "st":
        return [level, rss_bytes]


def transcript_rows(history: SegmentHistory, since_id: int, limit: int) -> list[Row]:
    if limit > MAX_LIMIT:
        raise ValueError(f"limit {limit} is too large (at most {MAX_LIMIT}; 0 = default)")
    return [[s.id, s.start, s.end, s.text] for s in history.since(since_id, limit)]


def command_rows(history: SegmentHistory, since_id: int, limit: int) -> list[Row]:
    """``(id, action, target)`` of the command segments among the segments ``GetTranscript`` would return."""
    if limit > MAX_LIMIT:
        raise ValueError(f"limit {limit} is too large (at most {MAX_LIMIT}; 0 = default)")
    return [[s.id, s.command, s.target] for s in history.since(since_id, limit) if s.command]


def recent_rows(history: SegmentHistory, count: int) -> list[Row]:
    if count > MAX_RECENT:
        raise ValueError(f"count {count} is too large (at most {MAX_RECENT})")
    return [[s.id, s.start, s.end, s.text] for s in history.recent(count)]


class LargeReplies:
    """Answers the calls whose replies can be megabytes, marshalling them off the event loop.

    Installed as a message handler in front of the exported interface: it
    claims ``GetTranscript``/``GetRecent`` calls with the right signature and
    replies from a task; anything else goes on to dbus-next's dispatch. At
    most :data:`_LARGE_REPLIES_AT_ONCE` are built at a time; the others wait
    their turn (holding only their call), so twenty clients fetching the
    whole history cannot take the daemon over its memory limit.
    """

    _CALLS: dict[str, tuple[str, Callable[..., list[Row]]]] = {
        "GetTranscript": ("tu", transcript_rows),
        "GetRecent": ("u", recent_rows),
    }

    def __init__(self, bus: MessageBus, history: SegmentHistory):
        self._bus = bus
        self._history = history
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns: asyncio.Semaphore | None = None  # made on the loop, at the first call

    def __call__(self, msg: Message) -> bool:
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
        if self._turns is None:
            self._turns = asyncio.Semaphore(_LARGE_REPLIES_AT_ONCE)
        try:
            async with self._turns:
                rows = await asyncio.to_thread(rows_of, self._history, *msg.body)
                await self._bus.send_large_reply(Message.new_method_return(msg, "a(tdds)", [rows]))
                del rows
        except Exception as e:
            error = (
                _error("InvalidArgs", str(e))
                if isinstance(e, ValueError)
                else _error("Failed", f"internal error: {type(e).__name__}")
            )
            if not isinstance(e, ValueError):
                log.exception("answering %s failed", msg.member)
            if not msg.flags & 0x1:  # NO_REPLY_EXPECTED
                self._bus.send(error._as_message(msg))


def to_variants(report: dict[str, object]) -> dict[str, Variant]:
    """A flat report as ``a{sv}``: integers ``t`` (counters never go below 0), floats ``d``,
    strings ``s``, booleans ``b``."""
    out: dict[str, Variant] = {}
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


def _rss_now() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)
