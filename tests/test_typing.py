"""Refined text typed where the cursor is: a focused Tk entry on X11, a focused foot terminal on headless sway."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.support.audio import SENTENCES, speak, words
from tests.support.bus import daemon_env
from tests.support.desktop import Desktop
from tests.support.processes import BIN
from tests.support.waiting import wait_until

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

    def __init__(self, desktop: Desktop, spawn, tmp_path):
        self.path = tmp_path / "typed.txt"
        if desktop.kind == "x11":
            spawn([sys.executable, "-c", ENTRY, str(self.path)], env={**os.environ, **desktop.env}, log="field")
        else:
            sway = desktop.server
            self.path = sway.runtime / "typed.txt"
            # foot starts its shell in the current directory: a fresh clone under a 0700
            # mktemp dir is closed to the compositor's user, so start it in that user's own.
            spawn(
                [
                    *sway.user_env(),
                    "foot",
                    f"--working-directory={sway.runtime}",
                    "sh",
                    "-c",
                    f"stty -icanon -echo; cat > {self.path}",
                ],
                log="field",
            )
        wait_until(self.path.exists, 20, lambda: f"the text field:\n{(tmp_path / 'field.log').read_text()}")
        time.sleep(0.5)  # mapped and focused

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def wait_for(self, predicate, timeout: float) -> str:
        wait_until(lambda: predicate(self.text()), timeout, lambda: f"the typed text, now {self.text()!r}", poll=0.2)
        return self.text()


@pytest.mark.parametrize("desktop", ["x11", "wayland"], indirect=True)
def test_real_speech_is_typed_into_the_focused_field(
    start_daemon, spawn, private_bus, pulse, desktop, tmp_path, audio_dir, monkeypatch
):
    field = FocusedField(desktop, spawn, tmp_path)
    env = desktop.client_env(daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": pulse.server}))
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    daemon = start_daemon("--lightweight", "--start", env=env, ready=False)
    # Accents and a non-ASCII letter arrive intact (the helpers remap a keycode per character).
    for key, value in desktop.env.items():
        monkeypatch.setenv(key, value)
    from listend_desktop.typist import Typist

    typist = Typist()
    assert typist.type_segment("Déjà vu:") and typist.type_segment("café, naïve Straße")
    field.wait_for(lambda text: text == ACCENTS, 20)  # the second segment continued with one space

    daemon.wait_ready()
    spawn([str(BIN / "listenctl"), "transcript", "--follow", "--type"], env=env, log="follow")
    time.sleep(2.5)  # subscribed, and PulseAudio delivers its first blocks
    pulse.speak(speak(audio_dir / "typed.wav", SENTENCES[0]))
    typed = field.wait_for(lambda text: "friday" in text.lower(), 120)
    assert typed.startswith(ACCENTS)
    assert {"quarterly", "report", "friday"} <= set(words(typed)), typed
    assert daemon.terminate() == 0


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_refused_typing_says_so_and_puts_the_text_on_the_clipboard(desktop, tmp_path, monkeypatch):
    # A Wayland session whose compositor cannot be reached by wtype: typing is refused.
    monkeypatch.setenv("WAYLAND_DISPLAY", str(tmp_path / "no-compositor"))
    monkeypatch.setenv("DISPLAY", desktop.env["DISPLAY"])
    from listend_desktop.typist import Typist

    reasons = []
    typist = Typist(on_refused=reasons.append)
    refused = typist.type_segment("first words")
    assert not refused and "wtype failed" in refused.detail
    assert not typist.type_segment("second words")
    # Said once, not per segment, with both refusals: no virtual keyboard, no remote desktop portal.
    assert len(reasons) == 1 and "wtype failed" in reasons[0] and "remote desktop portal" in reasons[0]
    assert desktop.clipboard() == "second words"


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_where_typing_is_refused_the_remote_desktop_portal_pastes(desktop, private_bus, tmp_path, monkeypatch):
    """GNOME/KDE Wayland: wtype is refused; the text goes on the clipboard and the portal presses Ctrl+V."""
    import asyncio

    from tests.support.portal import PortalStub

    x = desktop.server
    monkeypatch.setenv("WAYLAND_DISPLAY", str(tmp_path / "no-virtual-keyboard"))  # wtype fails here
    monkeypatch.setenv("DISPLAY", x.display)  # XWayland: where the clipboard owner serves
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", private_bus.address)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    from listend_desktop.typist import Typist

    async def scenario():
        async with PortalStub(private_bus.address) as portal:
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


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_a_restore_token_that_is_no_token_counts_as_none_and_a_lost_portal_is_reconnected(
    desktop, private_bus, tmp_path, monkeypatch
):
    """A token with a NUL made the bus drop the client; a link was followed on read and write."""
    import asyncio

    from tests.support.portal import PortalStub

    monkeypatch.setenv("WAYLAND_DISPLAY", str(tmp_path / "no-virtual-keyboard"))
    monkeypatch.setenv("DISPLAY", desktop.env["DISPLAY"])
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", private_bus.address)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    token = tmp_path / "state" / "listend" / "remote-desktop-token"
    token.parent.mkdir(parents=True)
    victim = tmp_path / "precious"
    victim.write_text("the user's file")
    from listend_desktop.typist import Typist

    async def scenario():
        for planted in ("nul", "link"):
            if planted == "nul":
                token.write_bytes(b"restore\x00evil\n")
            else:
                token.unlink()
                token.symlink_to(victim)
            async with PortalStub(private_bus.address) as portal:
                typist = Typist(on_refused=lambda reason: pytest.fail(reason))
                assert await asyncio.to_thread(typist.type_segment, f"with a {planted} token")
                assert "restore_token" not in portal.device_requests[0]  # it counted as none
                typist.close()
            assert not token.is_symlink() and token.read_text().strip() == "restore-1"
            assert token.stat().st_mode & 0o777 == 0o600 and victim.read_text() == "the user's file"
        # The portal goes away and comes back (a desktop restart): the next paste starts a new session.
        typist = Typist(on_refused=lambda reason: pytest.fail(reason))
        async with PortalStub(private_bus.address):
            assert await asyncio.to_thread(typist.type_segment, "before the restart")
        async with PortalStub(private_bus.address) as again:
            assert await asyncio.to_thread(typist.type_segment, "after it")
            assert again.keys  # the paste went through the new portal
            # The client's own connection is dropped (as the bus did on a NUL): the next paste reconnects.
            keyboard = typist._keyboard
            assert keyboard is not None and keyboard._portal is not None
            keyboard._loop.call_soon_threadsafe(keyboard._portal.bus.disconnect)
            await asyncio.sleep(0.3)
            assert await asyncio.to_thread(typist.type_segment, "after a lost connection")
            assert len(again.keys) == 8
        typist.close()

    asyncio.run(scenario())
