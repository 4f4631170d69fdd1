"""Global shortcuts through a portal on a real private bus, driving a real daemon."""

from __future__ import annotations

import asyncio

from tests.support.bus import BusClient, ctl, daemon_env
from tests.support.portal import PortalStub
from tests.support.processes import BIN
from tests.support.waiting import until, wait_until


def tray_env(private_bus, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state", {"XDG_CONFIG_HOME": str(tmp_path / "config")})
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    return env


def test_tray_registers_its_app_id_binds_shortcuts_and_they_drive_dictation(
    start_daemon, spawn, private_bus, tmp_path, speech_wav
):
    env = tray_env(private_bus, tmp_path)
    daemon = start_daemon("--lightweight", "--source", str(speech_wav), env=env)

    async def scenario():
        async with PortalStub(private_bus.address) as portal, BusClient(private_bus.address) as c:
            spawn([str(BIN / "listend-tray"), "-v"], env=env, log="tray")
            await until(lambda: portal.bound, 30, lambda: (tmp_path / "tray.log").read_text())
            assert portal.registered == ["io.github.listend"]  # before the session: the app id is known
            ids = {sid: props["description"] for sid, props in portal.bound}
            assert ids == {
                "toggle-dictation": "Toggle dictation",
                "push-to-talk": "Push to talk (dictate while held)",
            }

            portal.press("toggle-dictation")
            await c.wait_for(lambda: c.states()[-1:] == ["listening"], 30)
            portal.release("toggle-dictation")  # a toggle ignores the release
            portal.press("toggle-dictation")
            await c.wait_for(lambda: c.states()[-1:] == ["idle"], 60)

            portal.press("push-to-talk")
            await c.wait_for(lambda: c.states()[-1:] == ["listening"], 30)
            await asyncio.sleep(0.5)
            assert await c.prop("State") == "listening"  # still held
            portal.release("push-to-talk")
            await c.wait_for(lambda: c.states()[-1:] == ["idle"], 60)

            # Another peer cannot press the keys: only the portal's own connection speaks for it.
            await portal.press_as_stranger("toggle-dictation")
            await asyncio.sleep(1.0)
            assert c.states()[-1:] == ["idle"] and await c.prop("State") == "idle"

    asyncio.run(scenario())
    assert "state: idle" in ctl(env, "status").stdout
    assert daemon.terminate() == 0


def test_without_a_portal_the_tray_says_how_to_bind_a_key(spawn, private_bus, tmp_path):
    tray = spawn([str(BIN / "listend-tray"), "-v"], env=tray_env(private_bus, tmp_path), log="tray")
    wait_until(
        lambda: tray.poll() is None and "bind `listenctl toggle`" in (tmp_path / "tray.log").read_text(),
        30,
        lambda: (tmp_path / "tray.log").read_text(),
        poll=0.1,
    )
