"""The tray as a StatusNotifierItem under a real watcher/host, on X11 (Xvfb) and Wayland (headless sway).

Like a user: a desktop session with a StatusNotifierWatcher and no XEmbed tray,
the daemon on a PulseAudio virtual microphone, the tray started from its entry
point. The host reads the item, opens its menu through dbusmenu, clicks
"Start dictation", someone speaks, the host clicks "Copy last segment", and
the desktop's clipboard holds the refined text.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
from busfixtures import BusClient, DaemonProcess, PrivateBus, daemon_env
from conftest import BIN, SENTENCES, end_process, speak, words
from pulse import PulseServer
from snihost import SniHost
from xfixtures import HeadlessSway, XServer


@pytest.fixture
def desktop(request, tmp_path):
    if request.param == "x11":
        server = XServer(tmp_path / "x", with_tray=False)
        env = {"DISPLAY": server.display}
    else:
        server = HeadlessSway(tmp_path / "wl")
        env = {"WAYLAND_DISPLAY": server.wayland_display}
    yield request.param, server, env
    server.close()


async def until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("desktop", ["x11", "wayland"], indirect=True)
def test_sni_item_menu_starts_dictation_and_copies_refined_speech(desktop, tmp_path, audio_dir):
    kind, server, display_env = desktop
    pulse = PulseServer(tmp_path / "pulse")
    speech = speak(audio_dir / "sni-speech.wav", SENTENCES[0])
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state", {"PULSE_SERVER": pulse.server,
                                               "XDG_CONFIG_HOME": str(tmp_path / "config")})
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    env.update(display_env)
    daemon = DaemonProcess([], env, tmp_path / "d.log")
    tray = None
    try:
        daemon.wait_ready(env)

        async def scenario():
            async with SniHost(bus.address) as host, BusClient(bus.address) as c:
                nonlocal tray
                tray = subprocess.Popen([str(BIN / "listend-tray"), "-v"], env=env, stdout=subprocess.DEVNULL,
                                        stderr=open(tmp_path / "tray.log", "w"))
                service = await host.wait_item()
                props = await host.item_properties(service)
                assert props["Id"] == "listend" and props["Menu"] == "/MenuBar" and not props["ItemIsMenu"]
                sizes = {w for w, h, data in props["IconPixmap"]}
                assert {22, 64} <= sizes  # several sizes: HiDPI panels pick a sharp one
                assert all(len(data) == w * h * 4 for w, h, data in props["IconPixmap"])

                async def tooltip_says(text):
                    return text in (await host.item_properties(service))["ToolTip"][3]

                await until(lambda: tooltip_says("idle"), 30, "tooltip never said idle")
                idle_icon = (await host.item_properties(service))["IconPixmap"]
                menu = await host.menu(service, "/MenuBar")
                for label in ("Start dictation", "Copy last segment", "Copy this session's text",
                              "Auto-copy refined text", "Profile", "Transcript window", "Quit tray"):
                    assert label in menu, (label, list(menu))
                live = next(label for label in menu if label.startswith("Live:"))
                assert not menu[live]["enabled"]
                assert menu["Auto-copy refined text"]["toggle-state"] == 0
                radios = {label: menu[label]["toggle-state"] for label in menu if "(" in label and
                          menu[label]["id"] in menu["Profile"]["children"]}
                assert sorted(radios.values()) == [0, 1], radios

                await host.click(service, "/MenuBar", menu["Start dictation"]["id"])
                await c.wait_for(lambda: "listening" in [m.body[0] for m in c.named("StateChanged")], timeout=30)
                assert await c.prop("State") == "listening"
                await until(lambda: tooltip_says("listening"), 30, "tooltip never said listening")
                assert host.named("NewIcon")
                assert (await host.item_properties(service))["IconPixmap"] != idle_icon  # the icon changed
                await until(lambda: _has_label(host, service, "Stop dictation"), 30, "label did not follow")

                await asyncio.sleep(2.0)  # PulseAudio's first block
                await asyncio.to_thread(pulse.speak, speech)
                await c.wait_for(lambda: c.named("SegmentRefined"), timeout=120)
                refined = c.named("SegmentRefined")[0].body[3]
                menu = await until(lambda: _menu_when(host, service, "Copy last segment"), 30, "copy not enabled")
                await host.click(service, "/MenuBar", menu["Copy last segment"]["id"])
                deadline = time.monotonic() + 20
                while server.clipboard() != refined:
                    assert time.monotonic() < deadline, (server.clipboard(), refined)
                    await asyncio.sleep(0.2)
                return refined

        refined = asyncio.run(scenario())
        assert {"quarterly", "report"} <= set(words(refined)), refined
        assert daemon.terminate() == 0
    finally:
        if tray is not None:
            end_process(tray)
        daemon.kill()
        bus.close()
        pulse.close()


async def _has_label(host, service, label) -> bool:
    return label in await host.menu(service, "/MenuBar")


async def _menu_when(host, service, label):
    menu = await host.menu(service, "/MenuBar")
    return menu if menu.get(label, {}).get("enabled") else None


def test_tray_registers_when_the_panel_starts_after_it(tmp_path):
    """Autostart order: the tray first, the panel (watcher) later."""
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state", {"XDG_CONFIG_HOME": str(tmp_path / "config")})
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    tray = subprocess.Popen([str(BIN / "listend-tray"), "-v"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "tray.log", "w"))
    try:
        time.sleep(2.0)
        assert tray.poll() is None, (tmp_path / "tray.log").read_text()

        async def scenario():
            async with SniHost(bus.address) as host:
                service = await host.wait_item(30)
                props = await host.item_properties(service)
                assert "not running" in props["ToolTip"][3]
                menu = await host.menu(service, "/MenuBar")
                assert "Start dictation (starts listend)" in menu
                await host.click(service, "/MenuBar", menu["Quit tray"]["id"])

        asyncio.run(scenario())
        assert tray.wait(20) == 0
    finally:
        if tray.poll() is None:
            tray.kill()
        bus.close()
