"""KDE Plasma: a real KWin 5.27 Wayland (headless) with IBus's ``ibus-wayland`` as its input method, or none.

What KWin says about its input method (``org.kde.kwin.VirtualKeyboard``) as listend-ime reads it, and
``listenctl install``'s KDE step: the desktop entry and ``kwinrc`` it writes make KWin -- one already running
and a freshly started one -- run ibus-wayland, and ``uninstall`` puts everything back. Strangers on KWin's bus
name are played by real connections on a real dbus-daemon.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
from dbus_next import Message, Variant
from dbus_next.constants import NameFlag

from listend.dbusio import MessageBus
from listend_ime import kwin
from listend_ime.spacing import join
from tests.support.audio import words
from tests.support.bus import PrivateBus, ctl, daemon_env
from tests.support.ibus import KEYBOARD_ENGINE, IBusDaemon
from tests.support.kde import IBUS_WAYLAND, KdeField, KWin, kde_available, kde_env
from tests.support.processes import BIN
from tests.support.waiting import wait_until

needs_kde = pytest.mark.skipif(kde_available() is not None, reason=str(kde_available()))


def read(address: str, environ: dict[str, str], timeout: float = kwin.CALL_TIMEOUT_S) -> kwin.KWinInputMethod:
    """listend-ime's reader, on its own connection to ``address``."""

    async def go() -> kwin.KWinInputMethod:
        bus = await MessageBus(bus_address=address).connect()
        try:
            return await kwin.read_state(bus, environ, timeout)
        finally:
            bus.disconnect()

    return asyncio.run(go())


@pytest.fixture
def session_env(private_bus: PrivateBus, tmp_path: Path) -> dict[str, str]:
    """A Plasma Wayland session's environment on the test's bus, with a fresh home (no kwinrc)."""
    home = tmp_path / "home"
    env = daemon_env(private_bus, tmp_path / "state")  # also a listend's and its listenctl's
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local" / "share"))
    (home / ".config").mkdir(parents=True)
    return kde_env(env, tmp_path / "runtime")


@pytest.fixture
def ibus(session_env: dict[str, str], tmp_path: Path):
    """ibus-daemon for the session: ibus-wayland exits at once without one ("Cannot connect to ibus-daemon")."""
    daemon = IBusDaemon(tmp_path, session_env)
    yield daemon
    daemon.close()


@needs_kde
def test_kwin_says_whether_it_has_an_input_method_and_listend_ime_reads_it(session_env, ibus, private_bus, tmp_path):
    bare = KWin(tmp_path, session_env, name="kwin-bare")
    try:
        state = read(private_bus.address, session_env)
        assert bare.virtual_keyboard()["available"] is False  # gdbus's reading, beside listend-ime's
        assert state.kwin_wayland and state.available is False and state.missing, state
        assert state.enabled is True and state.reason == "KWin has no input method"
        assert not bare.input_method_children()
    finally:
        bare.close()

    with_ibus = KWin(tmp_path, session_env, input_method=IBUS_WAYLAND, name="kwin-ibus")
    try:
        wait_until(with_ibus.input_method_children, 20, "KWin to start ibus-wayland")
        wait_until(lambda: with_ibus.virtual_keyboard()["available"], 20, "KWin to report its input method")
        state = read(private_bus.address, session_env)
        assert state.kwin_wayland and state.available is True and not state.missing, state
    finally:
        with_ibus.close()


def test_the_reader_answers_elsewhere_and_survives_strangers_on_kwins_name(private_bus):
    address = private_bus.address
    no_wayland = read(address, {})
    assert not no_wayland.kwin_wayland and not no_wayland.missing and "WAYLAND_DISPLAY" in no_wayland.reason
    nobody = read(address, {"WAYLAND_DISPLAY": "wayland-0"})
    assert not nobody.missing and nobody.reason == "org.kde.KWin is not on the session bus"

    async def with_stranger(behaviour: str) -> kwin.KWinInputMethod:
        stranger = await MessageBus(bus_address=address).connect()
        await stranger.request_name(kwin.KWIN_NAME, NameFlag.DO_NOT_QUEUE)

        def answer(msg: Message) -> Message | bool | None:
            if msg.member != "GetAll":
                return None
            if behaviour == "silent":
                return True  # handled, never answered
            if behaviour == "strings":
                props = {"available": Variant("s", "false"), "enabled": Variant("b", True)}
                return Message.new_method_return(msg, "a{sv}", [props])
            return Message.new_method_return(msg, "s", ["no"])

        if behaviour != "no object":
            stranger.add_message_handler(answer)
        reader = await MessageBus(bus_address=address).connect()
        try:
            return await kwin.read_state(reader, {"WAYLAND_DISPLAY": "wayland-0"}, timeout=0.5)
        finally:
            reader.disconnect()
            stranger.disconnect()

    silent = asyncio.run(with_stranger("silent"))
    assert not silent.missing and silent.reason == "org.kde.KWin did not answer within 0.5 s"
    strings = asyncio.run(with_stranger("strings"))
    assert strings.kwin_wayland and strings.available is None and strings.enabled is True and not strings.missing
    assert "does not say whether" in strings.reason
    wrong = asyncio.run(with_stranger("wrong signature"))
    assert not wrong.missing and "answered GetAll with 's'" in wrong.reason
    absent = asyncio.run(with_stranger("no object"))
    assert not absent.missing and "has no org.kde.kwin.VirtualKeyboard" in absent.reason


@needs_kde
def test_install_makes_ibus_kwins_input_method_at_once_and_uninstall_puts_it_back(
    session_env, ibus, private_bus, tmp_path
):
    env = session_env
    kwinrc = Path(env["XDG_CONFIG_HOME"]) / "kwinrc"
    users = "[Effect-overview]\nBorderActivate=9\n\n[Wayland]\nVirtualKeyboardEnabled=true\n"
    kwinrc.write_text(users)
    running = KWin(tmp_path, env, name="kwin-running")
    try:
        assert running.virtual_keyboard()["available"] is False

        asked = ctl(env, "install")  # no terminal, no flag: nothing changes, the one command is named
        assert asked.returncode == 0, asked.stderr
        before = kwinrc.read_text()  # the user's lines, and those KWin wrote itself at its start ([Desktops])
        assert users in before and "`listenctl install --kwin-input-method`" in asked.stdout

        done = ctl(env, "install", "--kwin-input-method")
        assert done.returncode == 0, done.stderr
        entry = Path(env["XDG_DATA_HOME"]) / "applications" / "listend-ibus-wayland.desktop"
        text = entry.read_text()
        assert f"Exec={IBUS_WAYLAND}\n" in text and "X-KDE-Wayland-VirtualKeyboard=true\n" in text
        assert kwinrc.read_text() == before.replace("[Wayland]\n", f"[Wayland]\nInputMethod[$e]={entry}\n")
        assert "told KWin" in done.stdout, done.stdout
        # The running KWin took it without a restart: it runs ibus-wayland and says so.
        wait_until(running.input_method_children, 20, lambda: f"KWin to start ibus-wayland:\n{done.stdout}")
        wait_until(lambda: running.virtual_keyboard()["available"], 20, "KWin to report its input method")
        again = ctl(env, "install", "--kwin-input-method")
        assert f"unchanged {entry}" in again.stdout and f"unchanged {kwinrc}" in again.stdout
    finally:
        running.close()

    fresh = KWin(tmp_path, env, name="kwin-fresh")  # a new login: KWin reads kwinrc, no --inputmethod
    try:
        wait_until(fresh.input_method_children, 20, "a fresh KWin to start ibus-wayland from kwinrc")
        wait_until(lambda: fresh.virtual_keyboard()["available"], 20, "the fresh KWin to report its input method")
        assert not read(private_bus.address, env).missing

        gone = ctl(env, "uninstall")
        assert gone.returncode == 0, gone.stderr
        assert kwinrc.read_text() == before and not entry.exists()
        wait_until(lambda: not fresh.input_method_children(), 20, "KWin to stop ibus-wayland")
        wait_until(lambda: not fresh.virtual_keyboard()["available"], 20, "KWin to report no input method")
        assert read(private_bus.address, env).missing
    finally:
        fresh.close()


@needs_kde
def test_without_kwins_input_method_listend_ime_leaves_the_keyboard_and_delivers_by_the_clipboard(
    session_env, ibus, private_bus, start_daemon, spawn, pulse, speech_wav, tmp_path
):
    """The default of a fresh Plasma: IBus would accept every commit and nothing would arrive (measured)."""
    env = {**session_env, "PULSE_SERVER": pulse.server}
    kwin_session = KWin(tmp_path, env)
    try:
        start_daemon(env=env)
        spawn([str(BIN / "listend-ime"), "--verbose"], env=env, log="ime")
        ime_log = tmp_path / "ime.log"
        wait_until(lambda: "registered engine" in ime_log.read_text(), 30, ime_log.read_text)

        assert ctl(env, "start").returncode == 0
        wait_until(lambda: "KWin has no input method" in ime_log.read_text(), 30, ime_log.read_text)
        pulse.speak(speech_wav)
        time.sleep(1.5)  # the last utterance closes on silence
        assert ibus.engine() == KEYBOARD_ENGINE  # the user's keyboard was never taken
        assert ctl(env, "stop").returncode == 0
        refined = [line.split("\t", 2)[-1].strip() for line in ctl(env, "transcript").stdout.splitlines()]
        assert refined, ime_log.read_text()

        def clipboard() -> str:
            paste = ["wl-paste", "--no-newline"]
            return subprocess.run(paste, env=env, capture_output=True, text=True, timeout=10).stdout

        expected = words(" ".join(refined))
        wait_until(lambda: words(clipboard()) == expected, 30, lambda: f"{expected} on the clipboard: {clipboard()!r}")
        log = ime_log.read_text()
        assert "text is on the clipboard" in log and "dictating through IBus (previous engine" not in log, log
        status = ctl(env, "status").stdout
        assert f"failed {len(refined)}" in status and "delivered 0" in status, status

        # A second dictation: the user was told once; then they run the one command, and the next dictation
        # goes through IBus again, with no restart of listend-ime.
        assert ctl(env, "start").returncode == 0 and ctl(env, "stop").returncode == 0
        assert ime_log.read_text().count(kwin.FIX_COMMAND) == 1
        assert ctl(env, "install", "--kwin-input-method").returncode == 0
        wait_until(lambda: kwin_session.virtual_keyboard()["available"], 20, "KWin to run ibus-wayland")
        assert ctl(env, "start").returncode == 0
        wait_until(lambda: ibus.engine() == "listend", 30, lambda: f"the listend engine:\n{ime_log.read_text()}")
        assert ctl(env, "stop").returncode == 0
        wait_until(lambda: ibus.engine() == KEYBOARD_ENGINE, 40, "the user's engine back")
    finally:
        kwin_session.close()


@needs_kde
@pytest.mark.parametrize("toolkit", ["qt", "gtk"])
def test_with_ibus_as_kwins_input_method_speech_shows_live_in_the_field_and_ends_as_the_refined_text(
    toolkit, session_env, ibus, private_bus, start_daemon, spawn, pulse, real_speech, tmp_path
):
    """Qt5 (text-input-v2) and GTK3 (text-input-v3) on Wayland without IBus's modules: the field speaks to KWin,
    KWin to its input method ibus-wayland, IBus to listend-ime."""
    env = {**session_env, "PULSE_SERVER": pulse.server}
    kwin_session = KWin(tmp_path, env, input_method=IBUS_WAYLAND)
    field = None
    try:
        wait_until(kwin_session.input_method_children, 20, "KWin to start ibus-wayland")
        field = KdeField(tmp_path, env, toolkit)
        start_daemon(env=env)
        spawn([str(BIN / "listend-ime"), "--verbose"], env=env, log="ime")
        ime_log = tmp_path / "ime.log"
        wait_until(lambda: "registered engine" in ime_log.read_text(), 30, ime_log.read_text)

        assert ctl(env, "start").returncode == 0
        wait_until(lambda: ibus.engine() == "listend", 30, lambda: f"the listend engine:\n{ime_log.read_text()}")
        pulse.speak(real_speech)
        time.sleep(1.5)  # the last utterance closes on silence
        assert ctl(env, "stop").returncode == 0
        wait_until(lambda: ibus.engine() == KEYBOARD_ENGINE, 40, "the user's engine to be active again")

        refined = [line.split("\t", 2)[-1].strip() for line in ctl(env, "transcript").stdout.splitlines()]
        assert len(refined) >= 2, refined
        expected = ""
        for text in refined:
            expected += join(expected, text)
        field.wait(lambda e: e["kind"] == "text" and e["text"] == expected, 30, f"the field to read {expected!r}")
        first_commit = next(e["t"] for e in field.events() if e["kind"] == "text" and e["text"])
        preedits = field.preedits()
        assert preedits and preedits[0]["t"] < first_commit, "live text is shown before the first commit"
        status = ctl(env, "status").stdout
        assert f"delivered {len(refined)}" in status and "failed 0" in status, status
    finally:
        if field is not None:
            field.close()
        kwin_session.close()
