"""The tray's link to the daemon: an asyncio D-Bus client on its own thread.

Reacts to signals and PropertiesChanged only (no polling), follows the daemon
across restarts with NameOwnerChanged, and reports every change to the GUI
through ``on_change`` (called on this worker thread: GUIs marshal it).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import shutil
import subprocess
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from dbus_next import Message, MessageType

from listend.bus import (
    BUS_NAME,
    IME_BUS_NAME,
    IME_INTERFACE,
    IME_OBJECT_PATH,
    TYPIST_BUS_NAME,
    call_bus_daemon,
    holder_of,
    notification,
)
from listend.client import (
    CallFailed,
    ClientEvent,
    CommandEvent,
    DictationClient,
    NameOwner,
    NotRunning,
    PartialEvent,
    PeerErrors,
    PresenceEvent,
    PressureEvent,
    PropertiesEvent,
    SegmentEvent,
    StateEvent,
)
from listend.commands import as_meant, command_label
from listend.dbusio import MessageBus
from listend.ids import SeenIds

log = logging.getLogger("listend.tray")
_IME_PROPERTIES = {
    "Connected": "connected",
    "Active": "active",
    "Delivered": "delivered",
    "Unconfirmed": "unconfirmed",
    "Failed": "failed",
}
RECENT = 10
SESSION_MAX = 5000


@dataclass
class ImeStatus:
    """``listend-ime`` as the tray last saw it (``io.github.listend.InputMethod1``)."""

    present: bool = False
    connected: bool = False  # registered with IBus
    active: bool = False  # listend's engine is the active one
    delivered: int = 0
    unconfirmed: int = 0
    failed: int = 0


@dataclass
class TrayState:
    """What the tray shows; replaced piecewise by the worker thread."""

    running: bool = False
    state: str = "absent"
    profile: str = ""
    rss_bytes: int = 0
    live: str = ""
    pressure: str = "normal"
    last_error: str = ""
    last_partial_id: int = 0
    last_final_id: int = 0
    delivery: str = "auto"  # the daemon's Delivery: where refined text goes
    language: str = ""  # the daemon's Language: the language in force
    languages: list[str] = field(default_factory=list)  # the user's set ([decode] languages)
    pinned_language: str = ""  # pinned for now ('' while detection may choose)
    ime: ImeStatus = field(default_factory=ImeStatus)
    typist: bool = False  # `listenctl transcript --follow --type` types (checked): the tray does not
    # Appended by the bus thread, read by the GUI thread: only through the methods below.
    recent: collections.deque[tuple[int, str]] = field(default_factory=lambda: collections.deque(maxlen=RECENT))
    # (id, text, command, target): the session's segments, read as meant (commands.as_meant)
    session: collections.deque[tuple[int, str, str, int]] = field(
        default_factory=lambda: collections.deque(maxlen=SESSION_MAX)
    )
    phrases: list[tuple[str, str]] = field(default_factory=list)  # (action, phrase) in force: what can be said
    _last_plain: str = ""
    _last_command: tuple[int, str] = (0, "")  # (id, action) of the newest voice command
    _texts_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def shown_state(self) -> str:
        """The icon's state: absent / error / processing / listening / idle / loading."""
        if not self.running:
            return "absent"
        if self.state in ("error", "loading"):
            return self.state
        if self.last_partial_id > self.last_final_id:
            return "processing" if self.state != "listening" else "listening"
        return self.state

    def session_text(self) -> str:
        """The session's text as meant: scratched segments out, spoken marks applied, line breaks."""
        with self._texts_lock:
            return as_meant(self.session)

    def recent_segments(self) -> list[tuple[int, str]]:
        with self._texts_lock:
            return list(self.recent)

    def last_text(self) -> str:
        """The newest segment of text (a voice command is not text)."""
        with self._texts_lock:
            return self._last_plain

    def command_of(self, seg_id: int) -> str:
        """The voice command segment ``seg_id`` is ('' when it is text): delivery executes it, never types it."""
        with self._texts_lock:
            return self._last_command[1] if self._last_command[0] == seg_id else ""

    def add_final(self, seg_id: int, text: str, in_session: bool = True, command: str = "", target: int = 0) -> None:
        with self._texts_lock:
            self.recent.append((seg_id, command_label(command) if command else text))
            if not command:
                self._last_plain = text
            else:
                self._last_command = (seg_id, command)
            if in_session:
                self.session.append((seg_id, text, command, target))

    def clear_session(self) -> None:
        with self._texts_lock:
            self.session.clear()


class BusWorker:
    """The daemon client of the tray and the transcript window, on its own asyncio loop.

    ``on_change(state)`` after every change, ``on_refined(id, text)`` once
    for each new final segment (whatever order they arrive in), both on the
    worker's thread.
    """

    def __init__(self, on_change: Callable[[TrayState], None], on_refined: Callable[[int, str], None] | None = None):
        self.state = TrayState()
        self._seen = SeenIds()
        self._command: CommandEvent | None = None  # a SegmentCommand waiting for its SegmentEvent
        self._on_change = on_change
        self._on_refined = on_refined or (lambda i, t: None)
        self.loop = asyncio.new_event_loop()
        self.client: DictationClient | None = None
        self.connected = threading.Event()
        #: ``await on_connected(bus)`` after each (re)connection: the SNI backend exports its item there.
        self.on_connected: Callable[[MessageBus], Awaitable[None]] | None = None
        self._ime_trusted = ""  # the unique name of the listend-ime whose status is believed
        self._peer_errors = PeerErrors("listend-tray")
        self._background: list[Coroutine[Any, Any, Any]] = []
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="listend-tray-bus", daemon=True)

    def start(self) -> None:
        """Run the worker's loop on its own thread (a GUI toolkit owns the main thread)."""
        self._thread.start()

    def run_in_foreground(self) -> None:
        """Run the worker's loop on this thread until :meth:`stop` (no GUI toolkit)."""
        self._run()

    def stop(self) -> None:
        def set_stopping() -> None:
            if self._stopping is not None:
                self._stopping.set()

        self.loop.call_soon_threadsafe(set_stopping)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._stopping = asyncio.Event()
        for coro in self._background:
            self.loop.create_task(coro)
        main = self.loop.create_task(self._main())
        stopper = self.loop.create_task(self._stopping.wait())
        self.loop.run_until_complete(asyncio.wait([main, stopper], return_when=asyncio.FIRST_COMPLETED))
        main.cancel()
        if self.client is not None:
            self.client.close()

    async def _main(self) -> None:
        while True:
            try:
                self.client = await DictationClient.connect()
            except Exception as e:  # no bus yet (session starting): retry
                log.warning("%s; retrying", e)
                await asyncio.sleep(2)
                continue
            await self.client.subscribe(self._on_signal)
            await self._watch_input_method(self.client.bus)
            if self.on_connected is not None:
                await self.on_connected(self.client.bus)
            self.connected.set()
            await self.refresh()
            try:
                await self.client.bus.wait_for_disconnect()  # serve signals until the bus goes
            except Exception as e:  # dbus-next reports a lost connection as an error (EOFError)
                log.debug("bus connection ended: %r", e)
            # The bus itself went away (a private bus ended with its daemon): start over.
            log.warning("lost the session bus; reconnecting")
            self.state.running, self.state.state, self.state.live = False, "absent", ""
            self._changed()
            await asyncio.sleep(1)

    async def _watch_input_method(self, bus: MessageBus) -> None:
        """Follow ``listend-ime``: its presence and its status properties (only from the name's owner, once it
        is checked to be listend-ime: a squatter on the name must not make ``auto`` delivery wait for it)."""
        ime = NameOwner(IME_BUS_NAME)  # a fresh one per connection: unique names do not outlive it
        typist = NameOwner(TYPIST_BUS_NAME)
        for rule in (
            ime.match_rule,
            typist.match_rule,
            f"type='signal',sender='{IME_BUS_NAME}',interface='org.freedesktop.DBus.Properties',"
            f"path='{IME_OBJECT_PATH}'",
        ):
            await call_bus_daemon(bus, "AddMatch", "s", [rule])
        await ime.look_up(bus)

        def on_message(msg: Message) -> None:
            if msg.message_type != MessageType.SIGNAL:
                return
            if ime.follow(msg):
                self._ime_trusted = ""
                self.loop.create_task(self.refresh_input_method(ime.owner))
            elif typist.follow(msg):
                self.loop.create_task(self.refresh_typist(bus))
            elif msg.member == "PropertiesChanged" and msg.path == IME_OBJECT_PATH and ime.sent(msg):
                if msg.signature != "sa{sv}as":
                    self._peer_errors.note(msg, f"PropertiesChanged with signature '{msg.signature}'")
                elif msg.body[0] == IME_INTERFACE and msg.sender == self._ime_trusted:
                    self._apply_ime({k: v.value for k, v in msg.body[1].items()})

        bus.add_message_handler(on_message)
        await self.refresh_input_method(ime.owner)
        await self.refresh_typist(bus)

    async def refresh_typist(self, bus: MessageBus) -> None:
        """Whether `listenctl transcript --follow --type` types now (its name's owner, checked)."""
        holder = await holder_of(bus, TYPIST_BUS_NAME)
        typist = holder is not None and holder.trusted
        if holder is not None and not holder.trusted:
            log.warning("%s", holder.refusal())
        if typist != self.state.typist:
            self.state.typist = typist
            log.info("listenctl --type %s", "types: the tray leaves typing to it" if typist else "stopped typing")
            self._changed()

    async def refresh_input_method(self, owner: str = "") -> None:
        """Read listend-ime's status; ``owner``: the unique name that holds its name now (checked again here)."""
        status = await self.client.input_method() if self.client is not None else None
        if status is None:
            self._ime_trusted = ""
            self.state.ime = ImeStatus()
            self._changed()
        else:
            self._ime_trusted = owner
            self._apply_ime(status, present=True)

    def _apply_ime(self, changed: dict[str, Any], present: bool = True) -> None:
        ime = self.state.ime
        ime.present = present
        for prop, attribute in _IME_PROPERTIES.items():
            if prop in changed:
                setattr(ime, attribute, changed[prop])
        self._changed()

    async def refresh(self) -> None:
        s = self.state
        assert self.client is not None
        try:
            props = await self.client.get_all()
        except (NotRunning, CallFailed) as e:
            log.info("daemon not available: %s", e)
            s.running, s.state, s.live = False, "absent", ""
        else:
            if await self.client.name_holder() == "stranger":  # refused (said once): as if listend were absent
                s.running, s.state, s.live = False, "absent", ""
                self._changed()
                return
            s.running = True
            s.state, s.profile = props["State"], props["Profile"]
            s.rss_bytes, s.live, s.last_error = props["RssBytes"], props["LiveText"], props["LastError"]
            s.delivery = props.get("Delivery", s.delivery)
            s.language = props.get("Language", s.language)
            s.languages = list(props.get("Languages", s.languages))
            s.pinned_language = props.get("PinnedLanguage", s.pinned_language)
            try:
                s.phrases = (await self.client.command_phrases())[0]
            except CallFailed:  # a daemon without voice commands
                s.phrases = []
            if not s.last_text():
                for entry in await self.client.recent(RECENT):
                    if self._seen.first_time(entry.id):
                        s.add_final(entry.id, entry.text, in_session=False)
                    s.last_final_id = max(s.last_final_id, entry.id)
                s.last_partial_id = max(s.last_partial_id, s.last_final_id)
        self._changed()

    async def _refresh_pressure(self) -> None:
        assert self.client is not None
        try:
            level = (await self.client.memory()).get("level", "normal")
        except (NotRunning, CallFailed):
            return
        if level != self.state.pressure:
            self.state.pressure = level
            self._changed()

    def changed(self) -> None:
        """Tell the GUI the state changed (from any thread): it redraws on the worker's thread."""
        self.loop.call_soon_threadsafe(self._changed)

    def notify(self, summary: str, body: str) -> None:
        """A desktop notification (``org.freedesktop.Notifications``), if a server is there; always logged."""
        log.warning("%s: %s", summary, body)

        async def go() -> None:
            if self.client is not None:
                await self.client.bus.call(notification(summary, body))

        self.submit(go())

    def _changed(self) -> None:
        try:
            self._on_change(self.state)
        except Exception:
            log.exception("tray update failed")

    def _on_signal(self, event: ClientEvent) -> None:
        s = self.state
        match event:
            case PresenceEvent(running=True):
                log.info("listend appeared on the bus")
                self.loop.create_task(self.refresh())
                return
            case PresenceEvent(running=False):
                log.info("listend left the bus")
                s.running, s.state, s.live = False, "absent", ""
            case PartialEvent(id=seg_id, text=text):
                s.last_partial_id = max(s.last_partial_id, seg_id)
                s.live = text
            case CommandEvent():  # just before the SegmentEvent of the same id
                self._command = event
                return
            case SegmentEvent(entry=entry):
                if not self._seen.first_time(entry.id):
                    return
                s.last_final_id = max(s.last_final_id, entry.id)
                command, self._command = self._command, None
                if command is not None and command.id == entry.id:
                    s.add_final(entry.id, entry.text, command=command.action, target=command.target)
                else:
                    s.add_final(entry.id, entry.text)
                self._on_refined(entry.id, entry.text)
            case StateEvent(state=state):
                if state == "listening" and s.state != "listening":
                    s.clear_session()
                s.state = state
                s.running = True
            case PressureEvent(level=level):
                s.pressure = level
            case PropertiesEvent(changed=changed):
                s.live = changed.get("LiveText", s.live)
                s.profile = changed.get("Profile", s.profile)
                s.rss_bytes = changed.get("RssBytes", s.rss_bytes)
                s.last_error = changed.get("LastError", s.last_error)
                s.delivery = changed.get("Delivery", s.delivery)
                s.language = changed.get("Language", s.language)
                s.pinned_language = changed.get("PinnedLanguage", s.pinned_language)
                s.languages = list(changed.get("Languages", s.languages))  # a profile switch may change the set
                if "State" in changed:
                    s.state = changed["State"]
                if "RssBytes" in changed and s.pressure != "normal":
                    # MemoryPressure announces only warn/cleanup/limit: ask when the episode may be over.
                    self.loop.create_task(self._refresh_pressure())
            case _:
                return
        self._changed()

    # -- actions, callable from any thread ------------------------------------------

    def submit_when_running(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` on the worker's loop once the worker has started."""
        self._background.append(coro)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _call(self, member: str, signature: str = "", body: list[Any] | None = None) -> Future[Any]:
        async def go() -> Any:
            if self.client is None:  # clicked before the bus connection is up
                self.state.last_error = "not connected to the session bus yet"
                self._changed()
                return None
            try:
                return await self.client.call(member, signature, body)
            except (NotRunning, CallFailed) as e:
                log.warning("%s failed: %s", member, e)
                self.state.last_error = str(e)
                self._changed()
                return None

        return self.submit(go())

    def toggle(self) -> Future[Any]:
        return self._call("Toggle")

    def start_listening(self) -> Future[Any]:
        return self._call("Start")

    def stop_listening(self) -> Future[Any]:
        return self._call("Stop")

    def set_profile(self, profile: str) -> Future[Any]:
        return self._call("SetProfile", "s", [profile])

    def set_delivery(self, method: str) -> Future[Any]:
        return self._call("SetDelivery", "s", [method])

    def pin_language(self, language: str) -> Future[Any]:
        """Pin ``language`` for now; ``''`` detects within the set again."""
        return self._call("PinLanguage", "s", [language])

    def start_daemon(self) -> Future[Any]:
        """D-Bus activation where an activation file exists, else ``systemctl --user start``."""

        async def go() -> bool:
            if self.client is None:
                return False
            reply = await call_bus_daemon(self.client.bus, "StartServiceByName", "su", [BUS_NAME, 0])
            if reply.message_type.name == "METHOD_RETURN":
                return True
            if shutil.which("systemctl"):
                result = await asyncio.to_thread(
                    subprocess.run, ["systemctl", "--user", "start", "listend.service"], capture_output=True, timeout=60
                )
                return result.returncode == 0
            return False

        return self.submit(go())
