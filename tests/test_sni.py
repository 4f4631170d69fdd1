"""The tray as a StatusNotifierItem under a real watcher/host, on X11 (Xvfb) and Wayland (headless sway).

Like a user: a desktop session with a StatusNotifierWatcher and no XEmbed tray,
the daemon on a PulseAudio virtual microphone, the tray started from its entry
point. The host reads the item, opens its menu through dbusmenu, clicks
"Start dictation", someone speaks, the host clicks "Copy last segment", and
the desktop's clipboard holds the refined text.
"""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest
from dbus_next import Message, Variant

from tests.support.audio import SENTENCES, speak, words
from tests.support.bus import BusClient, daemon_env
from tests.support.processes import BIN
from tests.support.sni import SniHost
from tests.support.waiting import until
from tests.support.x11 import XServer


def tray_env(private_bus, tmp_path, extra=None):
    env = daemon_env(private_bus, tmp_path / "state", {"XDG_CONFIG_HOME": str(tmp_path / "config"), **(extra or {})})
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize("desktop", ["x11", "wayland"], indirect=True)
def test_sni_item_menu_starts_dictation_and_copies_refined_speech(
    start_daemon, spawn, private_bus, pulse, desktop, tmp_path, audio_dir
):
    speech = speak(audio_dir / "sni-speech.wav", SENTENCES[0])
    env = desktop.client_env(tray_env(private_bus, tmp_path, {"PULSE_SERVER": pulse.server}))
    daemon = start_daemon(env=env)

    async def scenario():
        async with SniHost(private_bus.address) as host, BusClient(private_bus.address) as c:
            spawn([str(BIN / "listend-tray"), "-v"], env=env, log="tray")
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
            for label in (
                "Start dictation",
                "Copy last segment",
                "Copy this session's text",
                "Auto-copy refined text",
                "Profile",
                "Transcript window",
                "Quit tray",
            ):
                assert label in menu, (label, list(menu))
            live = next(label for label in menu if label.startswith("Live:"))
            assert not menu[live]["enabled"]
            assert menu["Auto-copy refined text"]["toggle-state"] == 0
            radios = {
                label: menu[label]["toggle-state"]
                for label in menu
                if "(" in label and menu[label]["id"] in menu["Profile"]["children"]
            }
            assert sorted(radios.values()) == [0, 1], radios

            await host.click(service, "/MenuBar", menu["Start dictation"]["id"])
            await c.wait_for(lambda: "listening" in c.states(), timeout=30)
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
            await until(lambda: desktop.clipboard() == refined, 20, lambda: f"{desktop.clipboard()!r} = {refined!r}")
            return refined

    refined = asyncio.run(scenario())
    assert {"quarterly", "report"} <= set(words(refined)), refined
    assert daemon.terminate() == 0


async def _has_label(host, service, label) -> bool:
    return label in await host.menu(service, "/MenuBar")


async def _menu_when(host, service, label):
    menu = await host.menu(service, "/MenuBar")
    return menu if menu.get(label, {}).get("enabled") else None


def test_tray_registers_when_the_panel_starts_after_it(spawn, private_bus, tmp_path):
    """Autostart order: the tray first, the panel (watcher) later."""
    tray = spawn([str(BIN / "listend-tray"), "-v"], env=tray_env(private_bus, tmp_path), log="tray")
    time.sleep(2.0)
    assert tray.poll() is None, (tmp_path / "tray.log").read_text()

    async def scenario():
        async with SniHost(private_bus.address) as host:
            service = await host.wait_item(30)
            props = await host.item_properties(service)
            assert "not running" in props["ToolTip"][3]
            menu = await host.menu(service, "/MenuBar")
            assert "Start dictation (starts listend)" in menu
            await host.click(service, "/MenuBar", menu["Quit tray"]["id"])

    asyncio.run(scenario())
    assert tray.wait(20) == 0
    log = (tmp_path / "tray.log").read_text()
    assert log.count("no tray host is running") == 1, log  # said once, in one line, with what to start


def test_a_tray_started_before_the_panel_moves_from_xembed_to_the_status_notifier(spawn, private_bus, tmp_path):
    """X11 login order: the tray before xfce4-panel. Only an XEmbed tray (or none) is there at first; once a
    StatusNotifierWatcher appears the tray moves to it, with its menu (an XEmbed icon in xfce4-panel was a
    black square with none)."""
    x = XServer(tmp_path / "x")  # trayer: an XEmbed tray, no watcher on the bus
    try:
        env = dict(tray_env(private_bus, tmp_path), DISPLAY=x.display, PYSTRAY_BACKEND="xorg")
        tray = spawn([str(BIN / "listend-tray"), "-v"], env=env, log="tray")
        x.wait_title("listend: not running")  # docked as an XEmbed icon

        async def scenario():
            async with SniHost(private_bus.address) as host:  # the panel starts
                service = await host.wait_item(30)
                menu = await host.menu(service, "/MenuBar")
                assert "Start dictation (starts listend)" in menu
                await until(lambda: "listendSystemTrayIcon" not in x.windows(), 30, "the XEmbed icon to go")
                await host.click(service, "/MenuBar", menu["Quit tray"]["id"])

        asyncio.run(scenario())
        assert tray.wait(20) == 0
        log = (tmp_path / "tray.log").read_text()
        assert "moving from the XEmbed icon to a StatusNotifierItem" in log and "Traceback" not in log, log
    finally:
        x.close()


def test_on_gnome_without_a_tray_host_the_tray_says_what_to_install():
    from listend_tray.sni import no_host_hint

    assert "gnome-shell-extension-appindicator" in no_host_hint("GNOME")
    assert "gnome-shell-extension-appindicator" in no_host_hint("ubuntu:GNOME")
    assert "waybar" in no_host_hint("sway") and "\n" not in no_host_hint("")


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_a_peer_hammering_the_tray_gets_one_window_one_copy_at_a_time_and_no_log_flood(
    start_daemon, spawn, private_bus, desktop, tmp_path, speech_wav
):
    """30 clicks on "Transcript window" in one EventGroup, 300 middle clicks, and bad property calls."""
    env = desktop.client_env(tray_env(private_bus, tmp_path))
    start_daemon("--lightweight", "--source", str(speech_wav), "--start", env=env)
    tray = spawn([str(BIN / "listend-tray"), "-v"], env=env, log="tray")

    async def scenario():
        async with SniHost(private_bus.address) as host, BusClient(private_bus.address) as c:
            service = await host.wait_item()
            await c.wait_for(lambda: c.named("SegmentRefined"), timeout=120)  # something to copy
            menu = await until(lambda: _menu_when(host, service, "Copy last segment"), 30, "no text yet")
            window = menu["Transcript window"]["id"]
            await host.call(
                service,
                "/MenuBar",
                "com.canonical.dbusmenu",
                "EventGroup",
                "a(isvu)",
                [[[window, "clicked", Variant("s", ""), 0] for _ in range(30)]],
            )
            for _ in range(300):
                host.bus.send(
                    Message(
                        destination=service,
                        path="/StatusNotifierItem",
                        interface="org.kde.StatusNotifierItem",
                        member="SecondaryActivate",
                        signature="ii",
                        body=[0, 0],
                    )
                )
            for _ in range(50):  # a peer's bad calls: answered with errors, not logged with a traceback each
                await host.bus.call(
                    Message(
                        destination=service,
                        path="/StatusNotifierItem",
                        interface="org.freedesktop.DBus.Properties",
                        member="Get",
                        signature="ss",
                        body=["org.kde.StatusNotifierItem", "NoSuch"],
                    )
                )
                await host.bus.call(
                    Message(
                        destination=service,
                        path="/StatusNotifierItem",
                        interface="org.freedesktop.DBus.Properties",
                        member="Set",
                        signature="ssv",
                        body=["org.kde.StatusNotifierItem", "Id", Variant("s", "x")],
                    )
                )
            await asyncio.sleep(0.5)

    peaks = {"windows": 0, "helpers": 0}

    def running(p: psutil.Process) -> tuple[str, str] | None:
        """(name, command line) of a child still running; None for one that exited while we looked."""
        try:
            return p.name(), " ".join(p.cmdline())
        except psutil.Error:  # gone or a zombie the tray has not reaped yet: it no longer runs
            return None

    def count() -> bool:
        children = [c for c in map(running, psutil.Process(tray.pid).children(recursive=True)) if c]
        peaks["windows"] = max(peaks["windows"], sum("--window" in cmd for _, cmd in children))
        peaks["helpers"] = max(peaks["helpers"], sum(name in ("xclip", "xsel", "wl-copy") for name, _ in children))
        return False

    async def watched():
        task = asyncio.create_task(scenario())
        while not task.done():
            await asyncio.to_thread(count)
            await asyncio.sleep(0.05)
        await task

    asyncio.run(watched())
    assert tray.poll() is None
    assert peaks["windows"] <= 1, peaks
    assert peaks["helpers"] <= 2, peaks
    log = (tmp_path / "tray.log").read_text()
    assert log.count("Traceback") == 0, log[-3000:]
