"""listend-ime: real speech, through a real microphone, shown live at the cursor of a real GTK application.

A real ibus-daemon, a real GTK3 text view with IBus's IM module on Xvfb and on headless sway, the daemon
listening to human speech played into the PulseAudio microphone. What is asserted is what the
application itself reported: its preedit, its buffer, which engine IBus has active.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from listend_ime.spacing import join
from tests.support.audio import words
from tests.support.bus import ctl, daemon_env
from tests.support.desktop import Desktop
from tests.support.ibus import KEYBOARD_ENGINE, GtkField, IBusDaemon
from tests.support.processes import BIN
from tests.support.waiting import wait_until


@dataclass
class Session:
    env: dict[str, str]
    ibus: IBusDaemon
    field: GtkField
    daemon: object
    ime: subprocess.Popen
    ime_log: Path
    desktop: Desktop

    def ime_said(self, text: str) -> bool:
        return text in self.ime_log.read_text()

    def transcript(self) -> list[str]:
        result = ctl(self.env, "transcript")
        assert result.returncode == 0, result.stderr
        return [line.split("\t", 2)[-1].strip() for line in result.stdout.splitlines() if line.strip()]


def field_env(desktop: Desktop, env: dict[str, str]) -> dict[str, str]:
    """A GTK3 client with IBus's own IM module (how GTK talks to IBus outside GNOME)."""
    out = {**env, "GTK_IM_MODULE": "ibus", "GDK_BACKEND": "x11" if desktop.kind == "x11" else "wayland"}
    out.pop("PYTHONPATH", None)
    out.pop("VIRTUAL_ENV", None)
    return out


@pytest.fixture
def session(request, desktop, start_daemon, spawn, private_bus, pulse, tmp_path):
    env = desktop.client_env(daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": pulse.server}))
    if desktop.kind == "wayland":
        # The compositor's socket is an absolute path: name IBus's address file outright (libibus reads it too).
        env["IBUS_ADDRESS_FILE"] = str(tmp_path / "ibus-address")
        env["XDG_RUNTIME_DIR"] = str(tmp_path / "runtime")
        (tmp_path / "runtime").mkdir(mode=0o700)
    ibus = IBusDaemon(tmp_path, env)
    if desktop.kind == "wayland":
        # A seat without a keyboard gives no window keyboard focus: hold a virtual keyboard (wtype
        # presses Shift, then sleeps) for the whole test, as a laptop's keyboard would be.
        spawn(["wtype", "-k", "Shift_L", "-s", "900000"], env=env, log="keyboard")
    field = GtkField(tmp_path, field_env(desktop, env))
    daemon = start_daemon(env=env)
    ime = spawn([str(BIN / "listend-ime"), "--verbose"], env=env, log="ime")
    ime_log = tmp_path / "ime.log"
    wait_until(lambda: "registered engine" in ime_log.read_text(), 30, lambda: ime_log.read_text())
    yield Session(env, ibus, field, daemon, ime, ime_log, desktop)
    field.close()
    ibus.close()


def speak_and_stop(session: Session, pulse, wav: Path) -> None:
    assert ctl(session.env, "start").returncode == 0
    wait_until(lambda: session.ibus.engine() == "listend", 30, "the listend engine to be active")
    pulse.speak(wav)
    time.sleep(1.5)  # the last utterance closes on silence
    assert ctl(session.env, "stop").returncode == 0


@pytest.mark.parametrize("desktop", ["x11", "wayland"], indirect=True)
def test_real_speech_shows_live_at_the_cursor_and_ends_as_the_refined_text(session, pulse, real_speech):
    field = session.field
    speak_and_stop(session, pulse, real_speech)
    # The keyboard engine is back once every segment heard is final.
    wait_until(lambda: session.ibus.engine() == KEYBOARD_ENGINE, 40, "the user's engine to be active again")

    refined = session.transcript()
    assert len(refined) >= 2, refined  # Beckett's "Ever tried. Ever failed." is several utterances
    expected = ""
    for text in refined:
        expected += join(expected, text)
    field.wait(lambda e: e["kind"] == "text" and e["text"] == expected, 20, f"the field to read {expected!r}")
    assert field.text() == expected

    events = field.events()
    first_commit = next(e["t"] for e in events if e["kind"] == "text" and e["text"])
    preedits = field.preedits()
    assert preedits and preedits[0]["t"] < first_commit, "live text is shown before the first commit"
    assert len({p["text"] for p in preedits}) >= 3, "the preedit follows the voice"
    # Nothing was committed twice: the buffer only ever grew by whole segments.
    texts = [e["text"] for e in events if e["kind"] == "text"]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:], strict=False)), texts
    assert "ever" in words(expected) and "fail" in " ".join(words(expected))

    status = ctl(session.env, "status")
    assert f"delivered {len(refined)}" in status.stdout, status.stdout
    assert "failed 0" in status.stdout, status.stdout


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_the_keyboard_engine_comes_back_when_the_input_method_is_killed(session, pulse, real_speech):
    assert ctl(session.env, "start").returncode == 0
    wait_until(lambda: session.ibus.engine() == "listend", 30, "the listend engine to be active")
    session.ime.send_signal(signal.SIGKILL)
    session.ime.wait(10)
    # IBus does not fall back to it by itself: listend-ime's guard process selects it again.
    wait_until(
        lambda: session.ibus.engine() == KEYBOARD_ENGINE,
        20,
        lambda: f"IBus to restore the keyboard: {session.ibus.engine()!r}",
    )
    subprocess.run(["xdotool", "type", "--delay", "30", "typed"], env=session.env, check=True, timeout=30)
    session.field.wait(lambda e: e["kind"] == "text" and e["text"].endswith("typed"), 20, "keys to reach the field")


def test_help_and_version_say_what_it_is():
    result = subprocess.run([str(BIN / "listend-ime"), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "IBus" in result.stdout and "preedit" in result.stdout
    result = subprocess.run([str(BIN / "listend-ime"), "--bogus"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert os.path.exists(BIN / "listend-ime")


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_keys_typed_while_dictating_and_a_focus_change_lose_nothing(session, pulse, real_speech):
    """Typed keys reach the field; an utterance whose field lost focus goes to the clipboard, the rest follows focus."""
    field, env = session.field, session.env
    assert ctl(env, "start").returncode == 0
    wait_until(lambda: session.ibus.engine() == "listend", 30, "the listend engine to be active")
    subprocess.run(["xdotool", "type", "--delay", "30", "Note:"], env=env, check=True, timeout=30)
    field.wait(lambda e: e["kind"] == "text" and e["text"] == "Note:", 20, "typed keys in the field")
    player = pulse.speak_async(real_speech)
    field.wait(lambda e: e["kind"] == "preedit" and e["view"] == "a" and e["text"].strip(), 30, "live text in view a")
    field.focus("b")  # mid-utterance: the user clicks into the other field
    player.wait(60)
    time.sleep(1.5)
    assert ctl(env, "stop").returncode == 0
    wait_until(lambda: session.ibus.engine() == KEYBOARD_ENGINE, 40, "the user's engine to be active again")

    refined = session.transcript()
    in_a = field.text("a").removeprefix("Note:")
    in_b = field.text("b")
    clipboard = session.desktop.clipboard()
    status = ctl(env, "status").stdout
    failed = int(status.split("failed ")[1].split(",")[0])
    assert failed >= 1, status  # the utterance spoken into view a could not be committed there
    assert clipboard.strip(), "what could not be committed is on the clipboard"
    # Every refined word is in exactly one place, in order: view a, then the clipboard, then view b.
    assert words(in_a + " " + clipboard + " " + in_b) == words(" ".join(refined)), (in_a, clipboard, in_b, refined)
    assert session.ime_said("text is on the clipboard"), "the user is told, once"


def test_on_gnome_shell_live_text_reaches_a_gtk_app_through_the_shell(
    start_daemon, spawn, pulse, real_speech, tmp_path
):
    """GNOME's own path: GTK3 on Wayland without an IM module -> text-input-v3 -> gnome-shell -> its ibus-daemon."""
    from tests.support.bus import PrivateBus
    from tests.support.gnome import HeadlessGnome
    from tests.support.ibus import current_engine

    (tmp_path / "gnome-session").mkdir()
    bus = PrivateBus(tmp_path / "gnome-session", standard_services=True)
    env = daemon_env(bus, tmp_path / "state", {"PULSE_SERVER": pulse.server})
    gnome = HeadlessGnome(tmp_path / "gnome", bus, env)
    try:
        gnome.keyboard()
        field = GtkField(tmp_path, {**gnome.env, "GDK_BACKEND": "wayland"})
        start_daemon(env=gnome.env)
        spawn([str(BIN / "listend-ime"), "--verbose"], env=gnome.env, log="ime")
        ime_log = tmp_path / "ime.log"
        wait_until(lambda: "registered engine" in ime_log.read_text(), 30, lambda: ime_log.read_text())
        keyboard_engine = current_engine(gnome.env)
        assert keyboard_engine.startswith("xkb:"), keyboard_engine  # what GNOME selected for its input source

        assert ctl(gnome.env, "start").returncode == 0
        wait_until(lambda: current_engine(gnome.env) == "listend", 30, "the listend engine to be active")
        gnome.type("ok")
        field.wait(lambda e: e["kind"] == "text" and e["text"] == "ok", 20, "keys typed while dictating")
        popup = (
            "(() => { const p = imports.misc.ibusManager.getIBusManager()._candidatePopup; return p._auxText.text; })()"
        )
        pulse.speak(real_speech)
        # The state is in the engine's property, not in a popup by the cursor over the line being written.
        assert "listening" not in gnome.eval(popup)
        time.sleep(1.5)
        assert ctl(gnome.env, "stop").returncode == 0
        wait_until(lambda: current_engine(gnome.env) == keyboard_engine, 40, "GNOME's engine to be active again")

        result = ctl(gnome.env, "transcript")
        refined = [line.split("\t", 2)[-1].strip() for line in result.stdout.splitlines() if line.strip()]
        expected = "ok"
        for text in refined:
            expected += join(expected, text)
        field.wait(lambda e: e["kind"] == "text" and e["text"] == expected, 20, f"the field to read {expected!r}")
        first_commit = next(e["t"] for e in field.events() if e["kind"] == "text" and len(e["text"]) > 2)
        assert field.preedits() and field.preedits()[0]["t"] < first_commit
        assert "delivered" in ctl(gnome.env, "status").stdout
        field.close()
    finally:
        gnome.close()
        bus.close()
