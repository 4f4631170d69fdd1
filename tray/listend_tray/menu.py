"""The tray menu as plain data: what the user can do, built from the tray's state.

Both backends render the same entries: the StatusNotifierItem backend as a
``com.canonical.dbusmenu`` layout, the XEmbed fallback as a pystray menu. The
menu holds no logic of its own; each entry names an action of the tray app.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from listend.commands import command_label
from listend.units import MIB

if TYPE_CHECKING:
    from .busworker import TrayState


class MenuActions(Protocol):
    """What the menu's entries do (the tray app implements them)."""

    def toggle(self) -> object: ...

    def copy_last(self) -> object: ...

    def copy_session(self) -> object: ...

    def toggle_auto_copy(self) -> object: ...

    def set_delivery(self, method: str) -> object: ...

    def set_profile(self, profile: str) -> object: ...

    def pin_language(self, language: str) -> object: ...

    def open_window(self) -> object: ...

    def quit(self) -> object: ...


class MenuSettings(Protocol):
    """The tray's choices the menu shows."""

    auto_copy: bool


@dataclass
class MenuEntry:
    """One menu item. ``key`` is stable across rebuilds (hosts address items by it)."""

    key: str
    label: str = ""
    action: Callable[[], object] | None = None
    enabled: bool = True
    visible: bool = True
    toggle: str = ""  # "", "checkmark" or "radio"
    checked: bool = False
    separator: bool = False
    children: list[MenuEntry] = field(default_factory=list)


def shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def build_menu(state: TrayState, settings: MenuSettings, actions: MenuActions) -> list[MenuEntry]:
    """The menu for ``state`` and the tray's ``settings``; each entry calls one of ``actions``."""
    listening = state.state == "listening"
    if not state.running:
        toggle_label = "Start dictation (starts listend)"
    else:
        toggle_label = "Stop dictation" if listening else "Start dictation"
    live = shorten(state.live) if state.live else ("…" if listening else "(not listening)")
    memory = f"Memory: {state.rss_bytes / MIB:.0f} MiB" + (f" ({state.pressure})" if state.pressure != "normal" else "")
    status = state.shown_state if state.running else "not running"
    if state.running and state.state == "error" and state.last_error:
        status = f"error: {shorten(state.last_error, 50)}"
    return [
        MenuEntry("toggle", toggle_label, actions.toggle),
        MenuEntry("live", f"Live: {live}", enabled=False),
        MenuEntry("sep1", separator=True),
        MenuEntry("copy_last", "Copy last segment", actions.copy_last, enabled=bool(state.last_text())),
        MenuEntry("copy_session", "Copy this session's text", actions.copy_session, enabled=bool(state.session_text())),
        MenuEntry(
            "auto_copy",
            "Auto-copy refined text",
            actions.toggle_auto_copy,
            toggle="checkmark",
            checked=settings.auto_copy,
        ),
        MenuEntry(
            "delivery",
            "Deliver text",
            enabled=state.running,
            children=[
                MenuEntry(
                    f"delivery_{method}",
                    label,
                    functools.partial(actions.set_delivery, method),
                    toggle="radio",
                    checked=state.delivery == method,
                )
                for method, label in _delivery_labels(state)
            ],
        ),
        MenuEntry("ime", ime_line(state), enabled=False, visible=state.running),
        MenuEntry(
            "say",
            "What you can say",
            visible=state.running and bool(state.phrases),
            children=[
                MenuEntry(f"say_{action}", f"“{phrase}” → {command_label(action)}", enabled=False)
                for action, phrase in first_phrases(state.phrases)
            ],
        ),
        MenuEntry("sep2", separator=True),
        language_menu(state, actions),
        MenuEntry(
            "profile",
            "Profile",
            enabled=state.running,
            children=[
                MenuEntry(
                    "profile_full",
                    "Full (accurate)",
                    lambda: actions.set_profile("full"),
                    toggle="radio",
                    checked=state.profile == "full",
                ),
                MenuEntry(
                    "profile_lightweight",
                    "Lightweight (less memory)",
                    lambda: actions.set_profile("lightweight"),
                    toggle="radio",
                    checked=state.profile == "lightweight",
                ),
            ],
        ),
        MenuEntry("status", f"Status: {status}", enabled=False),
        MenuEntry("memory", memory, enabled=False, visible=state.running),
        MenuEntry("window", "Transcript window", actions.open_window),
        MenuEntry("sep3", separator=True),
        MenuEntry("quit", "Quit tray", actions.quit),
    ]


# More languages than this (``language = ""``: all of Whisper's) are not offered one by one.
MENU_LANGUAGES = 10


def language_menu(state: TrayState, actions: MenuActions) -> MenuEntry:
    """*Language: de*: detection within the set, or one of the set pinned for now."""
    pinned, offered = state.pinned_language, state.languages[:MENU_LANGUAGES]
    if len(state.languages) > MENU_LANGUAGES and pinned and pinned not in offered:
        offered.append(pinned)
    detect = (
        "Automatic (any language)"
        if len(state.languages) > MENU_LANGUAGES
        else "Automatic (" + ", ".join(offered) + ")"
    )
    return MenuEntry(
        "language",
        f"Language: {state.language}" + (" (pinned)" if pinned else ""),
        enabled=state.running and len(state.languages) > 1,
        visible=state.running and bool(state.language),
        children=[
            MenuEntry("language_auto", detect, lambda: actions.pin_language(""), toggle="radio", checked=not pinned),
            *(
                MenuEntry(
                    f"language_{code}",
                    code,
                    functools.partial(actions.pin_language, code),
                    toggle="radio",
                    checked=pinned == code,
                )
                for code in offered
            ),
        ],
    )


def first_phrases(phrases: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first phrase of each action, in table order (``listenctl commands`` lists them all)."""
    seen: dict[str, str] = {}
    for action, phrase in phrases:
        seen.setdefault(action, phrase)
    return list(seen.items())


def _delivery_labels(state: TrayState) -> list[tuple[str, str]]:
    ime = state.ime
    now = "input method" if ime.connected else "typing"
    return [
        ("auto", f"Automatic (now: {now})"),
        ("ime", "At the cursor, live (input method)" + ("" if ime.connected else " — not running")),
        ("type", "Type into focused window"),
        ("clipboard", "Clipboard only"),
    ]


def ime_line(state: TrayState) -> str:
    """The input method's part: whether it runs, and how its deliveries went."""
    ime = state.ime
    if not ime.present:
        return "Input method: not running"
    if not ime.connected:
        return "Input method: waiting for IBus"
    where = "active" if ime.active else "ready"
    return f"Input method: {where}, {ime.delivered} delivered, {ime.unconfirmed} unconfirmed, {ime.failed} failed"


def tooltip(state: TrayState) -> tuple[str, str]:
    """(title, description) for the tooltip: says why on error."""
    if not state.running:
        return "listend", "not running: click to start"
    description = f"{state.shown_state}, profile {state.profile}, {state.rss_bytes / MIB:.0f} MiB"
    if state.language:
        description += f", language {state.language}" + (" (pinned)" if state.pinned_language else "")
    if state.state == "error" and state.last_error:
        description = f"error: {state.last_error}"
    elif state.pressure != "normal":
        description += f", memory {state.pressure}"
    return "listend", description
