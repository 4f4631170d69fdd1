"""The tray on a real X server with a real tray host, a real daemon and the real clipboard."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from listend_tray.icons import COLOURS, draw_icon
from tests.support.audio import SENTENCES, concat, silence, speak
from tests.support.bus import ctl, daemon_env
from tests.support.processes import BIN, end_process
from tests.support.waiting import wait_until
from tests.support.x11 import XServer, count_colour


@pytest.fixture(scope="module")
def x(tmp_path_factory):
    # One X server for the module: Tk keeps its display connection for the
    # life of the process, and Xlib exits the process if that server goes away.
    server = XServer(tmp_path_factory.mktemp("x"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def long_speech(audio_dir):
    """Speech, then a long silence: the daemon stays 'listening' for about a minute."""
    words = speak(audio_dir / "tray-speech.wav", SENTENCES[0])
    return concat(
        audio_dir / "tray-long.wav",
        silence(audio_dir / "tray-lead.wav", 0.5),
        words,
        silence(audio_dir / "tray-tail.wav", 60),
    )


def _expected(state: str, size: tuple[int, int]) -> int:
    """How many pixels of the state's colour the drawn icon has at the docked size."""
    side = min(size)
    return count_colour(draw_icon(state, size=side).convert("RGB"), COLOURS[state])


def test_icon_docks_shows_state_click_toggles_and_follows_restarts(start_daemon, private_bus, tmp_path, x, long_speech):
    env = daemon_env(
        private_bus,
        tmp_path / "state",
        {"DISPLAY": x.display, "PYSTRAY_BACKEND": "xorg", "XDG_CONFIG_HOME": str(tmp_path / "config")},
    )
    daemon = start_daemon("--lightweight", "--source", str(long_speech), env=env, ready=False)
    tray = subprocess.Popen(
        [str(BIN / "listend-tray"), "-v"], env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "tray.log", "w")
    )
    try:
        daemon.wait_ready()
        x.wait_title("listend: idle")
        idle = x.icon_pixels("idle")
        size = idle.size
        assert count_colour(idle, COLOURS["idle"]) >= 0.5 * _expected("idle", size)
        assert count_colour(idle, COLOURS["listening"]) == 0

        assert ctl(env, "start").returncode == 0
        x.wait_title("listend: listening")
        listening = x.icon_pixels("listening")
        assert count_colour(listening, COLOURS["listening"]) >= 0.5 * _expected("listening", size)
        assert count_colour(listening, COLOURS["idle"], tolerance=10) < 0.2 * _expected("idle", size)

        x.click_icon()  # xorg backend: a click toggles dictation
        wait_until(
            lambda: "state: idle" in ctl(env, "status").stdout,
            30,
            '"state: idle" in ctl(env, "status").stdout',
            poll=0.2,
        )
        x.wait_title("listend: idle")
        x.click_icon()
        x.wait_title("listend: listening")

        assert daemon.terminate() == 0
        x.wait_title("listend: not running")
        absent = x.icon_pixels("absent")
        assert absent.size == size, x.windows()
        assert count_colour(absent, COLOURS["absent"], tolerance=12) >= 0.5 * _expected("absent", size)

        daemon = start_daemon("--lightweight", "--source", str(long_speech), env=env, ready=False)
        daemon.wait_ready()
        x.wait_title("listend: idle")  # recovered without restarting the tray
        assert tray.poll() is None
    finally:
        end_process(tray)


def entry(app, key):
    """The menu entry ``key`` as the app builds it now (the same entries every backend renders)."""

    def find(entries):
        for e in entries:
            if e.key == key:
                return e
            found = find(e.children)
            if found:
                return found

    return find(app.menu())


def test_menu_actions_and_auto_copy_to_the_clipboard(start_daemon, private_bus, tmp_path, x, long_speech, monkeypatch):
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon("--source", str(long_speech), env=env, ready=False)
    for key, value in (
        ("DISPLAY", x.display),
        ("DBUS_SESSION_BUS_ADDRESS", private_bus.address),
        ("XDG_CONFIG_HOME", str(tmp_path / "config")),
    ):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    daemon.wait_ready()
    from listend_tray.app import TrayApp

    app = TrayApp()
    app.worker.start()
    assert app.worker.connected.wait(30)
    wait_until(lambda: app.worker.state.state == "idle", 30, 'app.worker.state.state == "idle"', poll=0.05)

    entry(app, "auto_copy").action()
    assert app.settings.auto_copy and entry(app, "auto_copy").checked
    assert app.settings.path.exists()  # persisted
    assert entry(app, "toggle").label == "Start dictation"
    entry(app, "toggle").action().result(30)
    assert "state: listening" in ctl(env, "status").stdout
    # The label follows the state.
    wait_until(lambda: entry(app, "toggle").label == "Stop dictation", 10, lambda: entry(app, "toggle").label)

    wait_until(lambda: "quarterly" in x.clipboard().lower(), 120, lambda: x.clipboard(), poll=0.2)
    refined = app.worker.state.last_text()
    assert x.clipboard() == refined

    subprocess.run(
        ["xclip", "-selection", "clipboard", "-in"], input="something else", text=True, env=x.env, check=True
    )
    entry(app, "copy_last").action()
    wait_until(lambda: x.clipboard() == refined, 10, "x.clipboard() == refined", poll=0.1)
    assert entry(app, "copy_session").enabled

    entry(app, "profile_lightweight").action().result(60)
    assert ctl(env, "profile").stdout.strip() == "lightweight"
    wait_until(
        lambda: entry(app, "profile_lightweight").checked, 10, 'entry(app, "profile_lightweight").checked', poll=0.05
    )
    assert entry(app, "memory").label.startswith("Memory: ") and "MiB" in entry(app, "memory").label
    entry(app, "toggle").action().result(30)
    assert "state: idle" in ctl(env, "status").stdout
    assert daemon.terminate() == 0


def test_transcript_window_shows_live_and_refined_text(
    start_daemon, private_bus, tmp_path, x, long_speech, monkeypatch
):
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon("--lightweight", "--source", str(long_speech), "--start", env=env, ready=False)
    monkeypatch.setenv("DISPLAY", x.display)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", private_bus.address)
    daemon.wait_ready()
    from listend_tray.busworker import BusWorker
    from listend_tray.window import TranscriptWindow

    window = TranscriptWindow()
    lives = []
    worker = BusWorker(lambda s: window.post_live(s.live), lambda i, t: window.post_segment(i, t))
    worker.start()
    deadline = time.monotonic() + 120

    def poll():
        lives.append(window.live_var.get())
        if "quarterly" in window.contents().lower() or time.monotonic() > deadline:
            window.root.quit()
        else:
            window.root.after(50, poll)

    window.root.after(50, poll)
    window.root.mainloop()
    assert "quarterly" in window.contents().lower()
    assert any(live.strip() for live in lives), "no partial text was shown"
    shot = x.screenshot("window")
    assert len(shot.getcolors(maxcolors=1 << 20) or []) > 10  # something was drawn
    worker.stop()  # its thread must not be the one to drop the last reference to Tk objects
    worker._thread.join(10)
    window.root.destroy()
    assert daemon.terminate() == 0


def test_transcript_window_stays_responsive_under_10000_segments(x, monkeypatch):
    monkeypatch.setenv("DISPLAY", x.display)
    from listend_tray.window import MAX_LINES, TranscriptWindow

    window = TranscriptWindow()
    ticks_while_streaming = []
    done = threading.Event()

    def stream():
        for i in range(1, 10_001):
            window.post_segment(i, f"segment number {i} with some words in it")
            if i % 500 == 0:
                window.post_live(f"partial after {i}")
                ticks_while_streaming.append(window.ticks)
                time.sleep(0.01)
        done.set()

    def finish():
        if done.is_set() and "segment number 10000 " in window.contents():
            window.root.quit()
        else:
            window.root.after(50, finish)

    threading.Thread(target=stream, daemon=True).start()
    window.root.after(50, finish)
    window.root.mainloop()
    lines = window.contents().splitlines()
    assert len(lines) <= MAX_LINES
    assert lines[-1] == "segment number 10000 with some words in it"
    # The Tk loop kept ticking while segments streamed in: it was never blocked.
    assert len(set(ticks_while_streaming)) > 1
    window.root.destroy()


def test_listenctl_copy_and_the_fallback_when_wl_copy_hangs(start_daemon, private_bus, tmp_path, x, two_utterances_wav):
    """`listenctl copy` reaches the same clipboard; a helper that hangs (GNOME Wayland) is not waited on."""
    import socket

    env = daemon_env(private_bus, tmp_path / "state", {"DISPLAY": x.display})
    env.pop("WAYLAND_DISPLAY", None)
    daemon = start_daemon("--lightweight", "--source", str(two_utterances_wav), "--start", env=env, ready=False)
    silent = socket.socket(socket.AF_UNIX)
    try:
        daemon.wait_ready()
        wait_until(lambda: len(ctl(env, "transcript").stdout.splitlines()) >= 2, 120, "two segments", poll=0.5)
        segments = [line.split("\t")[2] for line in ctl(env, "transcript").stdout.splitlines()]

        assert ctl(env, "copy").returncode == 0
        assert x.clipboard() == segments[-1]

        # A Wayland display that accepts and never answers: wl-copy blocks in its first roundtrip.
        silent.bind(str(tmp_path / "wayland-silent"))
        silent.listen(4)
        hanging = dict(env, WAYLAND_DISPLAY=str(tmp_path / "wayland-silent"))
        started = time.monotonic()
        result = ctl(hanging, "copy", "--session")
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 20
        assert x.clipboard() == " ".join(segments)  # served by the Tk clipboard owner over X11
        assert daemon.terminate() == 0
    finally:
        silent.close()


def test_listenctl_copy_with_nothing_to_copy_says_so(start_daemon, private_bus, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon("--lightweight", env=env)
    result = ctl(env, "copy")
    assert result.returncode == 1 and result.stderr.strip() == "listenctl: nothing to copy yet"
    assert daemon.terminate() == 0


def test_window_with_an_unreachable_display_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
    env["DISPLAY"] = ":987"
    r = subprocess.run([str(BIN / "listend-tray"), "--window"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        'listend-tray: cannot open the transcript window: couldn\'t connect to display ":987"'
    ]


def test_window_status_says_why_on_error():
    from listend_tray.busworker import TrayState
    from listend_tray.window import status_line

    state = TrayState(running=True, state="error", profile="full", last_error="no input device found: ...")
    assert status_line(state) == "error: no input device found: ..."
    assert status_line(TrayState(running=True, state="idle", profile="full")) == "idle · full"
    assert status_line(TrayState()) == "listend is not running"


def test_the_tray_follows_the_input_method_s_status_from_its_owner_only(private_bus, monkeypatch):
    """Presence from the bus daemon, counts from listend-ime's own connection; a stranger's numbers are dropped."""
    import asyncio

    from dbus_next import Message, MessageType, Variant

    from listend.bus import IME_BUS_NAME, IME_INTERFACE, IME_OBJECT_PATH
    from listend.dbusio import MessageBus
    from listend_ime.engine import Status
    from listend_tray.busworker import BusWorker
    from tests.support.waiting import until

    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", private_bus.address)
    # This process stands in for listend-ime: its command line (pytest's) passes the owner check here
    # (tests/test_ime_faults.py has a squatter that does not).
    monkeypatch.setattr("listend.bus.runs_program", lambda cmdline, program: True)
    worker = BusWorker(lambda s: None)
    worker.start()
    assert worker.connected.wait(30)

    def ime():  # the worker replaces the status object when listend-ime goes
        return worker.state.ime

    def counts_changed(delivered: int) -> Message:
        return Message.new_signal(
            IME_OBJECT_PATH,
            "org.freedesktop.DBus.Properties",
            "PropertiesChanged",
            "sa{sv}as",
            [IME_INTERFACE, {"Delivered": Variant("t", delivered)}, []],
        )

    async def scenario() -> None:
        stranger = await MessageBus(bus_address=private_bus.address).connect()
        owner = await MessageBus(bus_address=private_bus.address).connect()
        status = Status()
        status.connected, status.delivered = True, 2
        owner.export(IME_OBJECT_PATH, status)
        reply = await owner.request_name(IME_BUS_NAME)
        assert reply.value == 1, reply  # primary owner
        await until(lambda: ime().present and ime().delivered == 2, 30, "the tray to find listend-ime")
        assert ime().connected and not ime().active

        await stranger.send(counts_changed(999))
        status.delivered = 3
        status.emit_properties_changed({"Delivered": 3})
        await until(lambda: ime().delivered == 3, 30, "the owner's new count")
        await stranger.send(counts_changed(999))
        await asyncio.sleep(1)
        assert ime().delivered == 3, "a stranger's count was taken"

        owner.disconnect()
        await until(lambda: not ime().present, 30, "the tray to see listend-ime leave")
        ping = await stranger.call(
            Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", member="GetId")
        )
        assert ping.message_type == MessageType.METHOD_RETURN
        stranger.disconnect()

    try:
        asyncio.run(scenario())
    finally:
        worker.stop()
        worker._thread.join(10)
