"""listend-ime's native Wayland input method (input-method-unstable-v2) on a real headless sway.

Real parts: sway 1.7 (wlroots), GTK 3 and GTK 4 apps on Wayland speaking text-input-v3 (a text view and a
password entry), foot running ``cat`` into a file, and the user's keys through a virtual keyboard (wtype);
the last test runs the whole app: the daemon on the PulseAudio microphone hearing espeak-ng speech and
listend-ime as a session starts it, with no IBus. Nothing is timed: each step waits for what the field reports.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from listend.bus import BUS_NAME, IME_BUS_NAME, IME_INTERFACE, IME_OBJECT_PATH, INTERFACE, OBJECT_PATH
from listend_ime.spacing import join
from listend_ime.wayland import Purpose, Unavailable, WaylandInputMethod, offered
from tests.support.audio import SENTENCES, key_words, speak, words
from tests.support.bus import ctl, daemon_env
from tests.support.processes import BIN
from tests.support.waiting import until, wait_until
from tests.support.wayland_im import FootCat, RecordingHost, WaylandField, client_env, hold_keyboard, type_text

pytestmark = pytest.mark.parametrize("desktop", ["wayland"], indirect=True)


async def open_im(host: RecordingHost, env: dict[str, str]) -> WaylandInputMethod:
    im = await WaylandInputMethod.open(host, env)
    # Each change waits for the field's answer to the one before: here only the answer lets it go, so a
    # field that did not answer fails the test instead of racing it on a busy machine.
    im.answer_wait_s = 15
    return im


def transcript(env: dict[str, str]) -> list[str]:
    result = ctl(env, "transcript")
    assert result.returncode == 0, result.stderr
    return [line.split("\t", 2)[-1].strip() for line in result.stdout.splitlines() if line.strip()]


def counter(env: dict[str, str], name: str, path: str, interface: str, prop: str) -> int:
    """An unsigned D-Bus property read over the session bus (busctl prints "t 1")."""
    command = ["busctl", f"--address={env['DBUS_SESSION_BUS_ADDRESS']}", "get-property", name, path, interface, prop]
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[1])


def ime_status(env: dict[str, str], prop: str) -> int:
    """A counter of listend-ime's status (``io.github.listend.InputMethod1``)."""
    return counter(env, IME_BUS_NAME, IME_OBJECT_PATH, IME_INTERFACE, prop)


def pending(env: dict[str, str]) -> int:
    """The daemon's segments without final text yet."""
    return counter(env, BUS_NAME, OBJECT_PATH, INTERFACE, "PendingSegments")


async def active_field(im: WaylandInputMethod, what: str = "a focused field to activate the input method"):
    return await until(lambda: im.field, 30, what)


@pytest.mark.parametrize("gtk", [3, 4])
def test_a_gtk_field_shows_the_preedit_takes_the_commit_and_keeps_the_users_keys(desktop, spawn, tmp_path, gtk):
    env = client_env(desktop.server, tmp_path)
    assert offered(env)
    hold_keyboard(spawn, env)
    field = WaylandField(tmp_path, env, gtk)

    async def scenario() -> None:
        host = RecordingHost()
        im = await open_im(host, env)
        try:
            got = await active_field(im)
            assert got.purpose == Purpose.NORMAL and not got.private
            assert got.surrounding is not None and got.before_cursor == ""  # GTK reports the text around the cursor
            await until(lambda: host.told, 10, "the host to hear of the focused field")
            assert host.told[0] == "activated"

            # Partial text: the preedit at the cursor, not in the buffer.
            assert im.show_preedit("hello wor")
            await until(lambda: field.preedit() == "hello wor", 20, lambda: f"the preedit, events {field.events()}")
            assert field.text() == ""
            # Refined text replaces it: committed once, and the preedit is gone.
            assert im.commit("Hello world.")
            await until(lambda: field.text() == "Hello world.", 20, lambda: f"the commit, now {field.text()!r}")
            await until(lambda: field.preedit() == "", 20, "the preedit to be cleared")
            assert field.preedits() == ["hello wor"]
            # The field reports what it now holds: the confirmation the app counts as delivered.
            await until(
                lambda: im.field and im.field.before_cursor == "Hello world.", 20, "the surrounding text to confirm"
            )

            # Keys the user types reach the field while listend is the input method (no grab).
            await asyncio.to_thread(type_text, env, " ok")
            await until(lambda: field.text() == "Hello world. ok", 20, lambda: f"the typed keys, now {field.text()!r}")

            # "Scratch that": only text that is just before the cursor, as the field says.
            await until(
                lambda: im.field and (im.field.before_cursor or "").endswith(" ok"), 20, "the field to report the keys"
            )
            assert not im.delete_before("Hello world.")  # not at the cursor: the user's " ok" follows it
            assert im.commit(" Naïve café")
            await until(lambda: field.text() == "Hello world. ok Naïve café", 20, lambda: f"now {field.text()!r}")
            await until(
                lambda: im.field and (im.field.before_cursor or "").endswith("café"), 20, "the field to report it"
            )
            # The protocol counts bytes, GTK 4.8 characters: non-ASCII text is not deleted, and it says why.
            assert "non-ASCII" in (im.deletion_refused(" Naïve café") or "")
            assert not im.delete_before(" Naïve café")
            assert im.commit(" scratch this")
            await until(
                lambda: im.field and (im.field.before_cursor or "").endswith("this"), 20, "the field to report it"
            )
            assert im.delete_before(" scratch this")
            await until(
                lambda: field.text() == "Hello world. ok Naïve café", 20, lambda: f"the deletion, now {field.text()!r}"
            )
        finally:
            im.close()
        assert host.reasons == []

    try:
        asyncio.run(scenario())
    finally:
        field.close()


@pytest.mark.parametrize("gtk", [3, 4])
def test_a_password_entry_is_reported_as_such_and_receives_nothing(desktop, spawn, tmp_path, gtk):
    env = client_env(desktop.server, tmp_path)
    hold_keyboard(spawn, env)
    field = WaylandField(tmp_path, env, gtk)

    async def scenario() -> None:
        im = await open_im(RecordingHost(), env)
        try:
            await active_field(im)
            await asyncio.to_thread(field.focus, "p")
            secret = await until(
                lambda: im.field if im.field and im.field.purpose == Purpose.PASSWORD else None,
                20,
                "the password entry's purpose",
            )
            assert secret.private
            assert not im.show_preedit("my secret")
            assert not im.commit("my secret")
            assert not im.delete_before("x")
            # The entry has the keyboard: the user's keys arrive, and nothing of ours came before them.
            await asyncio.to_thread(type_text, env, "pw")
            await until(lambda: field.text("p") == "pw", 20, lambda: f"the typed password, now {field.text('p')!r}")
            assert field.preedits("p") == []

            # Focus leaves the password entry: dictation goes on in the text view.
            await asyncio.to_thread(field.focus, "a")
            await until(
                lambda: im.field and im.field.purpose == Purpose.NORMAL, 20, "the text view to activate the method"
            )
            assert im.commit("resumed")
            await until(lambda: field.text("a") == "resumed", 20, lambda: f"the commit, now {field.text('a')!r}")
            assert field.text("p") == "pw"
        finally:
            im.close()

    try:
        asyncio.run(scenario())
    finally:
        field.close()


def test_one_input_method_per_seat_and_nothing_left_after_close(desktop, spawn, tmp_path):
    env = client_env(desktop.server, tmp_path)
    hold_keyboard(spawn, env)
    field = WaylandField(tmp_path, env)

    async def scenario() -> None:
        host = RecordingHost()
        im = await open_im(host, env)
        await active_field(im)
        assert im.show_preedit("half a sent")
        await until(lambda: field.preedit() == "half a sent", 20, "the preedit")

        # Another input method holds the seat: said in the exception, and ours goes on working.
        with pytest.raises(Unavailable, match="another input method"):
            await WaylandInputMethod.open(RecordingHost(), env)
        assert im.available and im.show_preedit("half a sentence")
        await until(lambda: field.preedit() == "half a sentence", 20, "the preedit after the refusal")

        # Dictation stops: the preedit is cleared and the seat is free again.
        im.close()
        await until(lambda: field.preedit() == "", 20, "the preedit to be cleared on close")
        assert not im.commit("too late") and field.text() == ""
        again = await open_im(RecordingHost(), env)
        again.close()
        assert host.reasons == []  # closing is no loss to report

        # The compositor goes away while we are its input method: said once.
        third_host = RecordingHost()
        third = await open_im(third_host, env)
        await asyncio.to_thread(desktop.server.proc.terminate)
        await until(lambda: third_host.reasons, 30, "the input method to report the compositor's end")
        assert len(third_host.reasons) == 1 and not third.available
        assert not third.commit("nowhere")
        third.close()

    try:
        asyncio.run(scenario())
    finally:
        field.close()


def test_foot_receives_the_commit_and_the_users_keys(desktop, spawn, tmp_path):
    env = client_env(desktop.server, tmp_path)
    hold_keyboard(spawn, env)
    foot = FootCat(desktop.server, spawn, tmp_path)

    async def scenario() -> None:
        im = await open_im(RecordingHost(), env)
        try:
            got = await active_field(im, "foot's terminal to activate the input method")
            assert got.purpose == Purpose.TERMINAL and not got.private
            assert got.surrounding is None  # a terminal reports no surrounding text: delivery stays unconfirmed
            assert im.show_preedit("déjà v")  # foot draws it itself; the file shows only what was committed
            assert im.commit("Déjà vu, café.")
            await until(lambda: foot.text() == "Déjà vu, café.", 20, lambda: f"foot's input, now {foot.text()!r}")
            await asyncio.to_thread(type_text, env, " ok")
            await until(lambda: foot.text() == "Déjà vu, café. ok", 20, lambda: f"the typed keys, {foot.text()!r}")
        finally:
            im.close()

    asyncio.run(scenario())


def test_listend_ime_dictates_into_a_gtk_field_and_foot_without_ibus_and_lets_go_at_stop(
    desktop, start_daemon, spawn, private_bus, pulse, tmp_path
):
    """The app as a user runs it on sway with no IBus at all: speech -> preedit -> commits, nothing into a password
    entry, released at Stop."""
    env = daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": pulse.server})
    env.pop("DISPLAY", None)
    wayland = client_env(desktop.server, tmp_path)
    env.update({name: wayland[name] for name in ("WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "NO_AT_BRIDGE")})
    hold_keyboard(spawn, env)
    field = WaylandField(tmp_path, env)  # GTK's own text-input-v3 module: no IBus module, no ibus-daemon
    first = speak(tmp_path / "first.wav", SENTENCES[0])
    secret = speak(tmp_path / "secret.wav", SENTENCES[2])
    second = speak(tmp_path / "second.wav", SENTENCES[3])
    try:
        start_daemon(env=env)
        spawn([str(BIN / "listend-ime"), "--verbose"], env=env, log="ime")
        ime_log = tmp_path / "ime.log"
        wait_until(lambda: "offers input-method-v2" in ime_log.read_text(), 30, lambda: ime_log.read_text())

        assert ctl(env, "start").returncode == 0
        wait_until(lambda: "has focus (NORMAL)" in ime_log.read_text(), 30, lambda: ime_log.read_text())
        pulse.speak(first)
        time.sleep(1.5)  # the utterance closes on silence
        wait_until(lambda: transcript(env) and pending(env) == 0, 60, "the first utterance to be refined")
        in_field = transcript(env)
        expected = ""
        for text in in_field:
            expected += join(expected, text)
        wait_until(lambda: field.text() == expected, 30, lambda: f"the field to read {expected!r}: {field.text()!r}")
        events = field.events()
        first_commit = next(e["t"] for e in events if e["kind"] == "text" and e["text"])
        shown = [e for e in events if e["kind"] == "preedit" and e["text"]]
        assert shown and shown[0]["t"] < first_commit, "live text is shown before the first commit"
        wait_until(lambda: ime_status(env, "Delivered") == len(in_field), 30, "the field to confirm the commits")

        # The window's password entry (text-input-v3 purpose PASSWORD): what is said there goes nowhere.
        field.focus("p")
        wait_until(lambda: "has focus (PASSWORD)" in ime_log.read_text(), 30, "the password entry's activation")
        pulse.speak(secret)
        time.sleep(1.5)
        wait_until(lambda: ime_status(env, "Withheld") >= 1, 60, lambda: f"withheld:\n{ime_log.read_text()}")
        in_field_and_secret = transcript(env)
        secret_words = set().union(*(key_words(text) for text in in_field_and_secret[len(in_field) :]))
        assert secret_words and field.text("p") == "" and field.preedits("p") == []
        assert ime_log.read_text().count("dictation paused in this field") == 1

        # foot opens and takes focus (a terminal reports no surrounding text: its commits stay unconfirmed).
        foot = FootCat(desktop.server, spawn, tmp_path)
        wait_until(lambda: "has focus (TERMINAL)" in ime_log.read_text(), 30, "foot to activate the input method")
        pulse.speak(second)
        time.sleep(1.5)
        assert ctl(env, "stop").returncode == 0
        wait_until(lambda: "no longer the Wayland input method" in ime_log.read_text(), 40, "the input method's end")

        in_foot = transcript(env)[len(in_field_and_secret) :]
        assert in_foot, "the second utterance was refined"
        wait_until(lambda: words(foot.text()) == words(" ".join(in_foot)), 20, lambda: f"foot's input {foot.text()!r}")
        assert field.text() == expected, "nothing more went to the GTK field"
        assert ime_status(env, "Failed") == 0 and ime_status(env, "Unconfirmed") == len(in_foot)
        assert not secret_words & set(words(desktop.clipboard())) and not secret_words & set(words(foot.text()))

        # Nothing of listend's is left in the user's input path: another input method can have the seat.
        async def another() -> None:
            (await WaylandInputMethod.open(RecordingHost(), env)).close()

        asyncio.run(another())
    finally:
        field.close()
