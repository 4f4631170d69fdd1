"""Refined text typed where the cursor is: a focused Tk entry on X11, a focused foot terminal on headless sway."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from busfixtures import DaemonProcess, PrivateBus, daemon_env
from conftest import BIN, SENTENCES, end_process, speak, words
from pulse import PulseServer
from xfixtures import HeadlessSway, XServer

ACCENTS = "Déjà vu: café, naïve Straße"

ENTRY = """
import sys, tkinter as tk
root = tk.Tk(); root.geometry("900x60+0+0")
entry = tk.Entry(root, width=120); entry.pack(); root.update(); entry.focus_force()
def dump():
    open(sys.argv[1], "w", encoding="utf-8").write(entry.get()); root.after(100, dump)
root.after(100, dump); root.mainloop()
"""


class FocusedField:
    """A focused text field whose contents can be read back: Tk entry (X11) or foot running cat (Wayland)."""

    def __init__(self, kind: str, server, tmp_path):
        self.path = tmp_path / "typed.txt"
        if kind == "x11":
            self.env = {"DISPLAY": server.display}
            self.proc = subprocess.Popen([sys.executable, "-c", ENTRY, str(self.path)], env={**os.environ, **self.env})
        else:
            self.path = server.runtime / "typed.txt"
            self.env = {"WAYLAND_DISPLAY": server.wayland_display}
            # foot starts its shell in the current directory: a fresh clone under a 0700
            # mktemp dir is closed to the compositor's user, so start it in that user's own.
            self.proc = subprocess.Popen([*server.user_env(), "foot", f"--working-directory={server.runtime}",
                                          "sh", "-c", f"stty -icanon -echo; cat > {self.path}"],
                                         stdout=subprocess.DEVNULL, stderr=open(tmp_path / "field.log", "w"))
        deadline = time.monotonic() + 20
        while not self.path.exists():
            log = tmp_path / "field.log"
            assert self.proc.poll() is None and time.monotonic() < deadline, \
                f"the text field did not come up (exit {self.proc.poll()}): {log.read_text() if log.exists() else ''}"
            time.sleep(0.1)
        time.sleep(0.5)  # mapped and focused

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def wait_for(self, predicate, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not predicate(self.text()):
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.2)
        return self.text()

    def close(self) -> None:
        end_process(self.proc)


@pytest.fixture
def desktop(request, tmp_path):
    server = XServer(tmp_path / "x", with_tray=False) if request.param == "x11" else HeadlessSway(tmp_path / "wl")
    yield request.param, server
    server.close()


@pytest.mark.parametrize("desktop", ["x11", "wayland"], indirect=True)
def test_real_speech_is_typed_into_the_focused_field(desktop, tmp_path, audio_dir, monkeypatch):
    kind, server = desktop
    field = FocusedField(kind, server, tmp_path)
    pulse = PulseServer(tmp_path / "pulse")
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state", {"PULSE_SERVER": pulse.server})
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
        monkeypatch.delenv(name, raising=False)
    env.update(field.env)
    daemon = DaemonProcess(["--lightweight", "--start"], env, tmp_path / "d.log")
    follower = None
    try:
        # Accents and a non-ASCII letter arrive intact (the helpers remap a keycode per character).
        for key, value in field.env.items():
            monkeypatch.setenv(key, value)
        from listend_ctl.typist import Typist

        typist = Typist()
        assert typist.type_segment("Déjà vu:") and typist.type_segment("café, naïve Straße")
        field.wait_for(lambda text: text == ACCENTS, 20)  # the second segment continued with one space

        daemon.wait_ready(env)
        follower = subprocess.Popen([str(BIN / "listenctl"), "transcript", "--follow", "--type"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=open(tmp_path / "follow.err", "w"))
        time.sleep(2.5)  # subscribed, and PulseAudio delivers its first blocks
        pulse.speak(speak(audio_dir / "typed.wav", SENTENCES[0]))
        typed = field.wait_for(lambda text: "friday" in text.lower(), 120)
        assert typed.startswith(ACCENTS)
        assert {"quarterly", "report", "friday"} <= set(words(typed)), typed
        assert daemon.terminate() == 0
    finally:
        if follower is not None:
            follower.terminate()
        daemon.kill()
        bus.close()
        pulse.close()
        field.close()


def test_refused_typing_says_so_and_puts_the_text_on_the_clipboard(tmp_path, monkeypatch):
    x = XServer(tmp_path / "x", with_tray=False)
    try:
        # A Wayland session whose compositor cannot be reached by wtype: typing is refused.
        monkeypatch.setenv("WAYLAND_DISPLAY", str(tmp_path / "no-compositor"))
        monkeypatch.setenv("DISPLAY", x.display)
        from listend_ctl.typist import Typist

        reasons = []
        typist = Typist(on_refused=reasons.append)
        assert not typist.type_segment("first words")
        assert not typist.type_segment("second words")
        # Said once, not per segment, with both refusals: no virtual keyboard, no remote desktop portal.
        assert len(reasons) == 1 and "wtype failed" in reasons[0] and "remote desktop portal" in reasons[0]
        assert x.clipboard() == "second words"
    finally:
        x.close()


def test_where_typing_is_refused_the_remote_desktop_portal_pastes(tmp_path, monkeypatch):
    """GNOME/KDE Wayland: wtype is refused; the text goes on the clipboard and the portal presses Ctrl+V."""
    import asyncio

    from portalstub import PortalStub

    x = XServer(tmp_path / "x", with_tray=False)
    bus = PrivateBus(tmp_path)
    try:
        monkeypatch.setenv("WAYLAND_DISPLAY", str(tmp_path / "no-virtual-keyboard"))  # wtype fails here
        monkeypatch.setenv("DISPLAY", x.display)  # XWayland: where the clipboard owner serves
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        from listend_ctl.typist import Typist

        async def scenario():
            async with PortalStub(bus.address) as portal:
                typist = Typist(on_refused=lambda reason: pytest.fail(reason))
                assert await asyncio.to_thread(typist.type_segment, "Grüße aus Köln")
                assert x.clipboard() == "Grüße aus Köln"
                ctrl_v = [(0xFFE3, 1), (0x76, 1), (0x76, 0), (0xFFE3, 0)]
                assert portal.keys == ctrl_v
                assert portal.device_requests[0]["types"] == 1 and portal.device_requests[0]["persist_mode"] == 2
                assert "restore_token" not in portal.device_requests[0]
                assert await asyncio.to_thread(typist.type_segment, "zweiter Satz")  # same session, no new question
                assert len(portal.device_requests) == 1 and portal.keys == ctrl_v * 2
                assert x.clipboard() == " zweiter Satz"
                # The next client restores the permission with the saved token instead of asking again.
                later = Typist()
                assert await asyncio.to_thread(later.type_segment, "dritter")
                assert portal.device_requests[1]["restore_token"] == "restore-1"
                assert set(portal.registered) == {"io.github.listend"}  # each client says who it is
                typist.close()
                later.close()

        asyncio.run(scenario())
        token = tmp_path / "state" / "listend" / "remote-desktop-token"
        assert token.read_text().strip() == "restore-1" and token.stat().st_mode & 0o777 == 0o600
    finally:
        bus.close()
        x.close()
