"""Voice commands executed by listend-ime: real speech through the PulseAudio microphone, a real ibus-daemon and a
GTK3 text view with IBus's IM module on Xvfb (and headless sway; a GtkEntry; a Qt5 text edit; and on headless
GNOME Shell, GNOME's own path without an IM module). What is asserted is what the application itself shows.

The speech is espeak-ng's default English voice ("en") at 145 words a minute, one utterance per phrase with
1.5 s pauses so that the segmenter cuts each; with the current models (checked with ``listend transcribe``)
it hears these phrases right. "Scratch that" itself is heard as "Crash mat" in that voice (the initial s is
lost), so the tests say the same command's other phrase, "delete that".
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.audio import concat, silence, speak
from tests.support.bus import ctl, daemon_env
from tests.support.desktop import Desktop
from tests.support.field_app import FieldApp
from tests.support.ibus import KEYBOARD_ENGINE, GtkField, IBusDaemon
from tests.support.processes import BIN
from tests.support.waiting import wait_until

VOICE, SPEED, PAUSE_S = "en", 145, 1.5
ENTRY_FIELD = Path(__file__).parent / "support" / "gtk_entry_field.py"
QT_FIELD = Path(__file__).parent / "support" / "qt_field.py"
BROWSER_FIELD = Path(__file__).parent / "support" / "webkit_field.py"
COMMAND_WORDS = ("new line", "new paragraph", "delete that", "scratch that", "question mark")


def utterances(path: Path, *phrases: str) -> Path:
    """``phrases`` spoken one after another, each followed by a pause the segmenter cuts at."""
    gap = silence(path.with_name("pause.wav"), PAUSE_S)
    parts: list[Path] = [silence(path.with_name("lead.wav"), 1.0)]  # playback starts before the voice
    for i, phrase in enumerate(phrases):
        parts += [speak(path.with_name(f"{path.stem}-{i}.wav"), phrase, speed=SPEED, voice=VOICE), gap]
    return concat(path, *parts)


def said_after_a_pause(path: Path, phrase: str, speed: int = SPEED) -> Path:
    """``phrase`` alone, with a pause before and after it.

    With digital-zero silence each rendering is heard the same on every run; "Delete that." after the one-second
    lead of :func:`utterances` is heard through the microphone as "Delete mat." or "Believe me.", after a pause
    as said.
    """
    pause = silence(path.with_name("pause.wav"), PAUSE_S)
    return concat(path, pause, speak(path.with_name(f"{path.stem}-0.wav"), phrase, speed=speed, voice=VOICE), pause)


class Dictation:
    def __init__(
        self, env: dict[str, str], field_env: dict[str, str], ibus: IBusDaemon, field: GtkField, ime_log: Path
    ) -> None:
        self.env, self.field_env, self.ibus, self.field, self.ime_log = env, field_env, ibus, field, ime_log
        self.desktop: Desktop | None = None

    def start(self) -> None:
        assert ctl(self.env, "start").returncode == 0
        wait_until(lambda: self.ibus.engine() == "listend", 30, "the listend engine to be active")

    def stop(self) -> None:
        time.sleep(PAUSE_S)  # the last utterance closes on silence
        assert ctl(self.env, "stop").returncode == 0
        wait_until(lambda: self.ibus.engine() == KEYBOARD_ENGINE, 60, "the user's engine to be active again")

    def status(self) -> str:
        return ctl(self.env, "status").stdout

    def transcript(self) -> list[str]:
        """The daemon's segments as ``listenctl transcript`` shows them (a command as ``[what it does]``)."""
        result = ctl(self.env, "transcript")
        assert result.returncode == 0, result.stderr
        return [line.split("\t", 2)[-1].strip() for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def dictation(desktop, start_daemon, spawn, private_bus, pulse, tmp_path):
    env = desktop.client_env(daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": pulse.server}))
    if desktop.kind == "wayland":  # as in test_input_method: IBus's address file named outright, a keyboard held
        env["IBUS_ADDRESS_FILE"] = str(tmp_path / "ibus-address")
        env["XDG_RUNTIME_DIR"] = str(tmp_path / "runtime")
        (tmp_path / "runtime").mkdir(mode=0o700)
    ibus = IBusDaemon(tmp_path, env)
    if desktop.kind == "wayland":
        spawn(["wtype", "-k", "Shift_L", "-s", "900000"], env=env, log="keyboard")
    field_env = {**env, "GTK_IM_MODULE": "ibus", "GDK_BACKEND": "x11" if desktop.kind == "x11" else "wayland"}
    field_env.pop("PYTHONPATH", None)
    field_env.pop("VIRTUAL_ENV", None)
    field = GtkField(tmp_path, field_env)
    start_daemon(env=env)
    spawn([str(BIN / "listend-ime"), "--verbose"], env=env, log="ime")
    ime_log = tmp_path / "ime.log"
    wait_until(lambda: "registered engine" in ime_log.read_text(), 30, lambda: ime_log.read_text())
    running = Dictation(env, field_env, ibus, field, ime_log)
    running.desktop = desktop
    yield running
    field.close()
    ibus.close()


@pytest.mark.parametrize("desktop", ["x11", "wayland"], indirect=True)
def test_a_short_letter_with_line_breaks_and_a_take_back_ends_as_the_intended_lines(dictation, pulse, tmp_path):
    wav = utterances(
        tmp_path / "letter.wav",
        "Good morning.",
        "New line.",
        "Thanks for the notes.",
        "Delete that.",
        "Thanks for the report.",
        "New paragraph.",
        "Best wishes.",
    )
    dictation.start()
    pulse.speak(wav)
    dictation.stop()
    segments = dictation.transcript()
    assert len(segments) == 7, segments
    first, _, _, _, report, _, last = segments
    expected = f"{first}\n{report}\n\n{last}"
    dictation.field.wait(
        lambda e: e["kind"] == "text" and e["text"] == expected, 30, lambda: f"{dictation.field.text()!r}"
    )
    text = dictation.field.text().lower()
    assert "notes" not in text, "the sentence taken back is gone"
    assert not any(word in text for word in COMMAND_WORDS), text
    assert "commands refused 0" in dictation.status()


def test_on_gnome_shell_a_short_letter_ends_as_the_intended_lines(start_daemon, spawn, pulse, tmp_path):
    """GNOME's own input path: GTK3 on Wayland without an IM module -> text-input-v3 -> headless gnome-shell ->
    the ibus-daemon it started -> listend-ime. The take-back is verified against the surrounding text the field
    reports through the shell."""
    from listend_ime.spacing import join
    from tests.support.bus import PrivateBus
    from tests.support.gnome import HeadlessGnome
    from tests.support.ibus import current_engine

    wav = utterances(
        tmp_path / "letter.wav",
        "Good morning.",
        "New line.",
        "Thanks for the notes.",
        "Delete that.",
        "Thanks for the report.",
        "New paragraph.",
        "Best wishes.",
    )
    (tmp_path / "gnome-session").mkdir()
    bus = PrivateBus(tmp_path / "gnome-session", standard_services=True)
    gnome = HeadlessGnome(tmp_path / "gnome", bus, daemon_env(bus, tmp_path / "state", {"PULSE_SERVER": pulse.server}))
    try:
        gnome.keyboard()
        field = GtkField(tmp_path, {**gnome.env, "GDK_BACKEND": "wayland"})
        start_daemon(env=gnome.env)
        spawn([str(BIN / "listend-ime"), "--verbose"], env=gnome.env, log="ime")
        ime_log = tmp_path / "ime.log"
        wait_until(lambda: "registered engine" in ime_log.read_text(), 30, lambda: ime_log.read_text())
        keyboard_engine = current_engine(gnome.env)
        assert ctl(gnome.env, "start").returncode == 0
        wait_until(lambda: current_engine(gnome.env) == "listend", 30, "the listend engine to be active")
        gnome.type("ok")  # the field has the keyboard's focus (and the user's word stays untouched)
        field.wait(lambda e: e["kind"] == "text" and e["text"] == "ok", 60, "keys typed while dictating")

        pulse.speak(wav)
        time.sleep(PAUSE_S)  # the last utterance closes on silence
        assert ctl(gnome.env, "stop").returncode == 0
        wait_until(lambda: current_engine(gnome.env) == keyboard_engine, 60, "GNOME's engine to be active again")
        result = ctl(gnome.env, "transcript")
        assert result.returncode == 0, result.stderr
        segments = [line.split("\t", 2)[-1].strip() for line in result.stdout.splitlines() if line.strip()]
        assert len(segments) == 7, segments
        first, _, _, _, report, _, last = segments
        expected = f"ok{join('ok', first)}\n{report}\n\n{last}"
        field.wait(lambda e: e["kind"] == "text" and e["text"] == expected, 30, lambda: f"{field.text()!r}")
        text = field.text().lower()
        assert "notes" not in text, "the sentence taken back is gone"
        assert not any(word in text for word in COMMAND_WORDS), text
        assert "commands refused 0" in ctl(gnome.env, "status").stdout
        field.close()
    finally:
        gnome.close()
        bus.close()


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_scratch_that_after_the_user_typed_leaves_both_texts_and_is_counted(dictation, pulse, tmp_path):
    sentence = utterances(tmp_path / "sentence.wav", "Thanks for the notes.")
    # A take-back that Whisper hears as text ("Delete mat.") is typed after the user's word: the same situation
    # again, so the user tries once more, a little faster, as people do (each rendering is heard the same on every
    # run: the test is about the refusal, not about one rendering's luck).
    take_backs = [
        said_after_a_pause(tmp_path / f"take-back-{speed}.wav", "Delete that.", speed) for speed in (SPEED, 165, 125)
    ]
    field = dictation.field
    dictation.start()
    pulse.speak(sentence)
    field.wait(lambda e: e["kind"] == "text" and e["text"].strip().endswith("."), 60, "the sentence committed")
    committed = field.text()
    for take_back in take_backs:
        subprocess.run(["xdotool", "type", "--delay", "30", " ok"], env=dictation.env, check=True, timeout=30)
        field.wait(lambda e, c=committed: e["kind"] == "text" and e["text"] == c + " ok", 20, "the user's word")
        heard = len(dictation.transcript())
        pulse.speak(take_back)
        wait_until(
            lambda h=heard: "commands refused 1" in dictation.status() or len(dictation.transcript()) > h,
            60,
            lambda: f"{dictation.status()} {dictation.transcript()} {field.text()!r}",
        )
        if dictation.transcript()[-1].startswith("[scratch that]"):
            break
        # Whisper heard no command ("Delete mat."): listend typed it after the user's word. Said again.
        typed = dictation.transcript()[-1]
        field.wait(lambda e, t=typed: e["kind"] == "text" and e["text"].endswith(t), 30, "the text listend typed")
        committed = field.text()
    wait_until(
        lambda: "commands refused 1" in dictation.status(),
        60,
        lambda: f"{dictation.status()} {dictation.transcript()} {field.text()!r}",
    )
    dictation.stop()
    assert field.text() == committed + " ok", "neither listend's sentence nor the user's word was touched"
    assert dictation.transcript()[-1].startswith("[scratch that]"), dictation.transcript()
    assert "left your text as it is" in dictation.ime_log.read_text(), "the user is told"


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_a_spoken_mark_amends_the_previous_sentence_and_command_words_inside_a_sentence_stay_text(
    dictation, pulse, tmp_path
):
    wav = utterances(
        tmp_path / "marks.wav",
        "Put each name on a new line.",
        "We launch a new line of products.",
        "You are coming home.",
        "Question mark.",
    )
    dictation.start()
    pulse.speak(wav)
    dictation.stop()
    segments = dictation.transcript()
    assert len(segments) == 4, segments
    sentences = segments[:3]
    assert sum("new line" in s.lower() for s in sentences) >= 1, f"the test needs the words heard: {sentences}"
    assert sentences[2].endswith("."), sentences
    expected = " ".join(sentences)[:-1] + "?"
    dictation.field.wait(
        lambda e: e["kind"] == "text" and e["text"] == expected, 30, lambda: f"{dictation.field.text()!r}"
    )
    assert "\n" not in dictation.field.text() and "mark" not in dictation.field.text().lower()
    assert "commands refused 0" in dictation.status()


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_scratch_that_after_a_click_elsewhere_in_the_field_deletes_nothing(dictation, pulse, tmp_path):
    sentence = utterances(tmp_path / "sentence.wav", "Thanks for the notes.")
    take_back = said_after_a_pause(tmp_path / "take-back.wav", "Delete that.")
    field, env = dictation.field, dictation.env
    dictation.start()
    pulse.speak(sentence)
    field.wait(lambda e: e["kind"] == "text" and e["text"].strip().endswith("."), 60, "the sentence committed")
    committed = field.text()
    # The user clicks at the start of the text: the cursor is no longer after listend's sentence.
    window = subprocess.run(
        ["xdotool", "search", "--name", "^listend-test-field$"], env=env, capture_output=True, text=True, timeout=30
    ).stdout.split()[0]
    subprocess.run(["xdotool", "mousemove", "--window", window, "3", "3", "click", "1"], env=env, check=True)
    pulse.speak(take_back)
    wait_until(
        lambda: "commands refused 1" in dictation.status(),
        60,
        lambda: f"{dictation.status()} {dictation.transcript()} {field.text()!r}",
    )
    dictation.stop()
    assert field.text() == committed, "nothing before the new cursor position was deleted"


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_new_line_in_a_single_line_entry_does_not_submit_it(dictation, pulse, tmp_path):
    """GTK3 tells IBus nothing that tells a GtkEntry from a text view (neither GTK3's nor IBus 1.5.27's input
    hints have a multi-line one), so the line break is committed; a GtkEntry inserts committed text as it is
    and is submitted only by the Return key, never by a commit."""
    entry = FieldApp(tmp_path, "entry", ENTRY_FIELD, dictation.field_env, "the GTK entry")
    wav = utterances(tmp_path / "entry.wav", "Good morning.", "New line.", "Best wishes.")
    dictation.start()
    pulse.speak(wav)
    dictation.stop()
    segments = dictation.transcript()
    assert len(segments) == 3, segments
    expected = f"{segments[0]}\n{segments[2]}"
    entry.wait(lambda e: e["kind"] == "text" and e["text"] == expected, 30, f"the entry to read {expected!r}")
    assert not [e for e in entry.events() if e["kind"] == "activate"], "the entry was not submitted"
    entry.close()


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_the_typing_path_presses_return_for_line_breaks_and_refuses_what_it_cannot_verify(
    desktop, tmp_path, monkeypatch
):
    """The tray's and ``listenctl transcript --follow --type``'s typist: xdotool into a GTK3 text view on Xvfb."""
    env = {**os.environ, **desktop.env, "GTK_IM_MODULE": "gtk-im-context-simple", "GDK_BACKEND": "x11"}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", desktop.env["DISPLAY"])
    field = GtkField(tmp_path, env)
    from listend_desktop.typist import Typist

    told: list[str] = []
    typist = Typist(on_command_refused=told.append)
    assert typist.type_segment("Good morning.")
    assert typist.execute("new_line")
    assert typist.type_segment("Best wishes.")
    assert typist.execute("new_paragraph")
    assert typist.type_segment("Ana.")
    assert typist.execute("stop_listening"), "nothing to type, and nothing refused"
    scratched, marked = typist.execute("scratch_that"), typist.execute("question_mark")
    assert not scratched and not marked and "cannot" in scratched.detail
    expected = "Good morning.\nBest wishes.\n\nAna."
    field.wait(lambda e: e["kind"] == "text" and e["text"] == expected, 30, f"the field to read {expected!r}")
    time.sleep(0.5)  # anything a refused command typed would be in the field by now
    assert field.text() == expected
    assert len(told) == 1, "the refusal is said once"
    field.close()


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_with_no_field_focused_line_breaks_go_to_the_clipboard_and_a_take_back_is_refused(dictation, pulse, tmp_path):
    wav = utterances(tmp_path / "blurred.wav", "Good morning.", "New line.", "Thanks for the notes.", "Delete that.")
    dictation.start()
    dictation.field.blur()  # focus moves to a window with no text field: everything goes to the clipboard
    pulse.speak(wav)
    dictation.stop()
    segments = dictation.transcript()
    assert len(segments) == 4, segments
    expected = f"{segments[0]}\n{segments[2]}"
    assert dictation.desktop is not None
    wait_until(lambda: dictation.desktop.clipboard() == expected, 20, lambda: repr(dictation.desktop.clipboard()))
    assert dictation.field.text("a") == "" and dictation.field.text("b") == ""
    assert "commands refused 1" in dictation.status(), "the text it would take back is on the clipboard"


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_in_a_qt_text_edit_a_take_back_and_a_line_break_work_too(dictation, pulse, tmp_path):
    """Qt5's IBus plugin on Xvfb: its own report of the text before the cursor, its own handling of deletions."""
    qt_env = {**dictation.field_env, "QT_QPA_PLATFORM": "xcb", "QT_IM_MODULE": "ibus"}
    qt = FieldApp(tmp_path, "qt", QT_FIELD, qt_env, "the Qt window")
    wav = utterances(
        tmp_path / "qt.wav", "Good morning.", "New line.", "Thanks for the notes.", "Delete that.", "Best wishes."
    )
    dictation.start()
    pulse.speak(wav)
    dictation.stop()
    segments = dictation.transcript()
    assert len(segments) == 5, segments
    expected = f"{segments[0]}\n{segments[4]}"
    qt.wait(lambda e: e["kind"] == "text" and e["text"] == expected, 30, f"the Qt field to read {expected!r}")
    assert "commands refused 0" in dictation.status()
    qt.close()


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_new_line_in_a_browser_s_single_line_input_does_not_submit_its_form(dictation, pulse, tmp_path):
    """WebKitGTK's <input type=text> in a form: a spoken "new line" must not submit the form.

    WebKitGTK takes a commit of a lone "\\n" for the Enter key (measured: the form was submitted), and nothing
    IBus 1.5.27 hears tells this input from a multi-line field (content type purpose 0, hints 0x1, as for a
    textarea). So listend-ime commits a line break at the start of the next text, never alone."""
    browser = FieldApp(tmp_path, "browser", BROWSER_FIELD, dictation.field_env, "the WebKitGTK page")
    wav = utterances(tmp_path / "browser.wav", "Good morning.", "New line.", "Best wishes.")
    dictation.start()
    pulse.speak(wav)
    dictation.stop()
    segments = dictation.transcript()
    assert len(segments) == 3, segments
    browser.wait(
        lambda e: e["kind"] == "text" and "wishes" in e["text"].lower(), 30, "the second sentence in the input"
    )
    assert not [e for e in browser.events() if e["kind"] == "submit"], "the form was not submitted"
    assert browser.text().startswith(segments[0]) and "\n" not in browser.text(), browser.text()
    browser.close()
