"""The tray on a real X server with a real tray host, a real daemon and the real clipboard."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
from busfixtures import DaemonProcess, PrivateBus, ctl, daemon_env
from conftest import BIN, SENTENCES, concat, silence, speak
from xfixtures import XServer, count_colour

from tray.icons import COLOURS, draw_icon


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
    return concat(audio_dir / "tray-long.wav", silence(audio_dir / "tray-lead.wav", 0.5), words,
                  silence(audio_dir / "tray-tail.wav", 60))


def _expected(state: str, size: tuple[int, int]) -> int:
    """How many pixels of the state's colour the drawn icon has at the docked size."""
    side = min(size)
    return count_colour(draw_icon(state, size=side).convert("RGB"), COLOURS[state])


def test_icon_docks_shows_state_click_toggles_and_follows_restarts(tmp_path, x, long_speech):
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state", {"DISPLAY": x.display, "PYSTRAY_BACKEND": "xorg",
                                               "XDG_CONFIG_HOME": str(tmp_path / "config")})
    daemon = DaemonProcess(["--lightweight", "--source", str(long_speech)], env, tmp_path / "d.log")
    tray = subprocess.Popen([str(BIN / "listend-tray"), "-v"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "tray.log", "w"))
    try:
        daemon.wait_ready(env)
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
        deadline = time.monotonic() + 30
        while "state: idle" not in ctl(env, "status").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        x.wait_title("listend: idle")
        x.click_icon()
        x.wait_title("listend: listening")

        assert daemon.terminate() == 0
        x.wait_title("listend: not running")
        absent = x.icon_pixels("absent")
        assert absent.size == size, x.windows()
        assert count_colour(absent, COLOURS["absent"], tolerance=12) >= 0.5 * _expected("absent", size)

        daemon = DaemonProcess(["--lightweight", "--source", str(long_speech)], env, tmp_path / "d2.log")
        daemon.wait_ready(env)
        x.wait_title("listend: idle")  # recovered without restarting the tray
        assert tray.poll() is None
    finally:
        tray.terminate()
        tray.wait(10)
        daemon.kill()
        bus.close()


def test_menu_actions_and_auto_copy_to_the_clipboard(tmp_path, x, long_speech, monkeypatch):
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state")
    daemon = DaemonProcess(["--source", str(long_speech)], env, tmp_path / "d.log")
    for key, value in (("DISPLAY", x.display), ("PYSTRAY_BACKEND", "xorg"),
                       ("DBUS_SESSION_BUS_ADDRESS", bus.address)):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    try:
        daemon.wait_ready(env)
        from tray.app import TrayApp

        app = TrayApp()
        app.worker.start()
        assert app.worker.connected.wait(30)
        deadline = time.monotonic() + 30
        while app.worker.state.state != "idle":
            assert time.monotonic() < deadline
            time.sleep(0.05)

        app.item("Auto-copy refined text")(app.icon)
        assert app.settings.auto_copy
        assert app.settings.path.exists()  # persisted
        app.item("Start dictation")(app.icon).result(30)
        assert "state: listening" in ctl(env, "status").stdout
        assert app.item("Stop dictation")  # the menu text follows the state

        deadline = time.monotonic() + 120
        while "quarterly" not in x.clipboard().lower():
            assert time.monotonic() < deadline, x.clipboard()
            time.sleep(0.2)
        refined = app.worker.state.recent[-1][1]
        assert x.clipboard() == refined

        subprocess.run(["xclip", "-selection", "clipboard", "-in"], input="something else", text=True,
                       env=x.env, check=True)
        app.item("Copy last refined")(app.icon)
        deadline = time.monotonic() + 10
        while x.clipboard() != refined:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        app.item("Copy session transcript")(app.icon)

        profile = app.item("Profile").submenu
        next(i for i in profile.items if i.text == "Lightweight")(app.icon).result(60)
        assert ctl(env, "profile").stdout.strip() == "lightweight"
        assert next(i for i in profile.items if i.text == "Lightweight").checked
        assert app.item(f"Memory: {app.worker.state.rss_bytes / 2**20:.0f} MB")
        app.item("Stop dictation")(app.icon).result(30)
        assert "state: idle" in ctl(env, "status").stdout
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
        bus.close()


def test_transcript_window_shows_live_and_refined_text(tmp_path, x, long_speech, monkeypatch):
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state")
    daemon = DaemonProcess(["--lightweight", "--source", str(long_speech), "--start"], env, tmp_path / "d.log")
    monkeypatch.setenv("DISPLAY", x.display)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
    try:
        daemon.wait_ready(env)
        from tray.busworker import BusWorker
        from tray.window import TranscriptWindow

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
        window.root.destroy()
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
        bus.close()


def test_transcript_window_stays_responsive_under_10000_segments(x, monkeypatch):
    monkeypatch.setenv("DISPLAY", x.display)
    from tray.window import MAX_LINES, TranscriptWindow

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
