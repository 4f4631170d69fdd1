"""Password and PIN fields under IBus: a real GTK3 app on Xvfb with ibus-daemon, listend-ime and real speech.

Real parts: Xvfb, ibus-daemon, a GTK3 window with IBus's IM module (a text view, a visible entry whose input
purpose is PASSWORD), the daemon listening to espeak-ng speech played into the PulseAudio microphone,
listend-ime started as a user's session starts it. What is asserted is what the application reported (its
entries, its preedit), the clipboard, and listend-ime's own status.

What GTK 3.24 sends IBus (measured here): for an entry whose input purpose is PASSWORD, focus and then
``ContentType`` (8, 0); for an entry made with ``set_visibility(False)`` alone (view ``p`` of
:mod:`gtk_private_field`), nothing at all -- GTK keeps such an entry away from the input method, so IBus
sees focus leave every field (its placeholder context), as for a click on a button. listend cannot tell
that entry from no field; what is said there goes where text said with no field focused goes (the
clipboard, with a notice). An app's PIN or password field that sets the purpose is what this tests.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from listend.bus import IME_BUS_NAME, IME_INTERFACE, IME_OBJECT_PATH
from tests.support.audio import SENTENCES, key_words, speak, words
from tests.support.bus import ctl, daemon_env
from tests.support.field_app import FieldApp
from tests.support.ibus import KEYBOARD_ENGINE, IBusDaemon
from tests.support.processes import BIN
from tests.support.waiting import wait_until

PRIVATE_FIELD = Path(__file__).parent / "support" / "gtk_private_field.py"
PAUSED = "listend: dictation paused in this field"


def ime_property(env: dict[str, str], name: str) -> int:
    """A counter of listend-ime's status (``io.github.listend.InputMethod1``), read over the session bus."""
    result = subprocess.run(
        ["busctl", f"--address={env['DBUS_SESSION_BUS_ADDRESS']}", "get-property", IME_BUS_NAME, IME_OBJECT_PATH]
        + [IME_INTERFACE, name],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[1])  # "t 1"


def refined(env: dict[str, str]) -> list[str]:
    result = ctl(env, "transcript")
    assert result.returncode == 0, result.stderr
    return [line.split("\t", 2)[-1].strip() for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_speech_in_a_password_entry_goes_nowhere_is_said_once_and_dictation_resumes_when_focus_leaves(
    desktop, start_daemon, spawn, private_bus, pulse, tmp_path
):
    entry = "q"  # the visible entry whose input purpose is PASSWORD
    env = desktop.client_env(daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": pulse.server}))
    ibus = IBusDaemon(tmp_path, env)
    field_env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    field = FieldApp(tmp_path, "private", PRIVATE_FIELD, {**field_env, "GTK_IM_MODULE": "ibus"}, "the GTK window")
    secret = speak(tmp_path / "secret.wav", SENTENCES[2])  # "Remember to buy milk, bread and eggs ..."
    spoken = speak(tmp_path / "spoken.wav", SENTENCES[1])  # "The weather today is sunny ..."
    try:
        start_daemon(env=env)
        spawn([str(BIN / "listend-ime"), "--verbose"], env=env, log="ime")
        ime_log = tmp_path / "ime.log"
        wait_until(lambda: "registered engine" in ime_log.read_text(), 30, lambda: ime_log.read_text())

        assert ctl(env, "start").returncode == 0
        wait_until(lambda: ibus.engine() == "listend", 30, "the listend engine to be active")
        field.focus(entry)
        pulse.speak(secret)
        wait_until(lambda: len(refined(env)) >= 1, 60, "the daemon to refine what was said in the entry")
        wait_until(lambda: ime_property(env, "Withheld") >= 1, 30, lambda: f"withheld:\n{ime_log.read_text()}")
        assert field.text(entry) == "", "nothing reached the password entry"
        assert [e for e in field.events() if e["kind"] == "preedit" and e["view"] == entry and e["text"]] == []
        assert ime_property(env, "Failed") == 0 and ime_property(env, "Delivered") == 0
        withheld_count = ime_property(env, "Withheld")
        assert f"withheld from password fields {withheld_count}" in ctl(env, "status").stdout

        withheld = refined(env)
        secret_words = set().union(*(key_words(text) for text in withheld))
        assert secret_words, withheld

        field.focus("a")
        heard_before = len(withheld)
        pulse.speak(spoken)
        time.sleep(1.5)  # the last utterance closes on silence
        assert ctl(env, "stop").returncode == 0
        wait_until(lambda: ibus.engine() == KEYBOARD_ENGINE, 40, "the user's engine to be active again")

        after = refined(env)[heard_before:]
        assert after, "the second utterance was refined"
        field.wait(lambda e: e["kind"] == "text" and e["view"] == "a" and e["text"], 20, "the text view's text")
        assert words(field.text("a")) == words(" ".join(after)), (field.text("a"), after)
        assert not secret_words & set(words(field.text("a"))) and field.text(entry) == ""
        log = ime_log.read_text()
        assert log.count(PAUSED) == 1, log  # said once, in the log and as a notification
        clipboard = desktop.clipboard()
        assert not secret_words & set(words(clipboard)), clipboard
        assert ime_property(env, "Failed") == 0
    finally:
        field.close()
        ibus.close()
