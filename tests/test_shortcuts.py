"""Global shortcuts through a portal on a real private bus, driving a real daemon."""

from __future__ import annotations

import asyncio
import subprocess
import time

from busfixtures import BusClient, DaemonProcess, PrivateBus, ctl, daemon_env
from conftest import BIN, end_process
from portalstub import PortalStub


def test_tray_registers_its_app_id_binds_shortcuts_and_they_drive_dictation(tmp_path, speech_wav):
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state", {"XDG_CONFIG_HOME": str(tmp_path / "config")})
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    daemon = DaemonProcess(["--lightweight", "--source", str(speech_wav)], env, tmp_path / "d.log")
    tray = None
    try:
        daemon.wait_ready(env)

        async def scenario():
            nonlocal tray
            async with PortalStub(bus.address) as portal, BusClient(bus.address) as c:
                tray = subprocess.Popen([str(BIN / "listend-tray"), "-v"], env=env, stdout=subprocess.DEVNULL,
                                        stderr=open(tmp_path / "tray.log", "w"))
                deadline = time.monotonic() + 30
                while not portal.bound:
                    assert time.monotonic() < deadline, (tmp_path / "tray.log").read_text()
                    await asyncio.sleep(0.05)
                assert portal.registered == ["io.github.listend"]  # before the session: the app id is known
                ids = {sid: props["description"] for sid, props in portal.bound}
                assert ids == {"toggle-dictation": "Toggle dictation",
                               "push-to-talk": "Push to talk (dictate while held)"}

                portal.press("toggle-dictation")
                await c.wait_for(lambda: [m.body[0] for m in c.named("StateChanged")][-1:] == ["listening"], 30)
                portal.release("toggle-dictation")  # a toggle ignores the release
                portal.press("toggle-dictation")
                await c.wait_for(lambda: [m.body[0] for m in c.named("StateChanged")][-1:] == ["idle"], 60)

                portal.press("push-to-talk")
                await c.wait_for(lambda: [m.body[0] for m in c.named("StateChanged")][-1:] == ["listening"], 30)
                await asyncio.sleep(0.5)
                assert await c.prop("State") == "listening"  # still held
                portal.release("push-to-talk")
                await c.wait_for(lambda: [m.body[0] for m in c.named("StateChanged")][-1:] == ["idle"], 60)

        asyncio.run(scenario())
        assert "state: idle" in ctl(env, "status").stdout
        assert daemon.terminate() == 0
    finally:
        if tray is not None:
            end_process(tray)
        daemon.kill()
        bus.close()


def test_without_a_portal_the_tray_says_how_to_bind_a_key(tmp_path):
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state", {"XDG_CONFIG_HOME": str(tmp_path / "config")})
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    tray = subprocess.Popen([str(BIN / "listend-tray"), "-v"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "tray.log", "w"))
    try:
        deadline = time.monotonic() + 30
        while "bind `listenctl toggle`" not in (tmp_path / "tray.log").read_text():
            assert tray.poll() is None and time.monotonic() < deadline, (tmp_path / "tray.log").read_text()
            time.sleep(0.1)
    finally:
        end_process(tray)
        bus.close()
