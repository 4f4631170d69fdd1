"""listend-tray in KDE Plasma 5.27's own system tray: a real plasmashell on a real headless KWin.

What Plasma does is observed where Plasma shows it: kded5's StatusNotifierWatcher (Plasma's) lists the tray's
item, the icon appears in the panel of KWin's screenshot, a right click there makes plasmashell call the item's
``com.canonical.dbusmenu`` (``AboutToShow``, ``GetLayout``, ``Event "opened"``, watched with dbus-monitor) and
draw the menu, and a click on its first entry makes plasmashell send ``Event(<Start dictation>, "clicked")``:
the daemon listens (its State, read by listenctl) and Plasma redraws the icon red.

One test, as plasmashell takes seconds to start on llvmpipe: measured on 2 cores with fresh caches, its tray had
registered 2.7-11 s after exec and the whole test took 8-24 s, from an idle machine to both cores kept busy.
KWin, plasmashell and the services the bus starts for it (kded5, kactivitymanagerd) end with the test.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from listend_tray.icons import COLOURS
from tests.support.bus import PrivateBus, ctl, daemon_env
from tests.support.kde import (
    FakeInput,
    KWin,
    Plasma,
    changed_box,
    changed_spots,
    gdbus,
    kde_env,
    plasma_available,
    screenshot,
)
from tests.support.processes import BIN, end_process
from tests.support.waiting import wait_until
from tests.support.x11 import count_colour

MENU = "com.canonical.dbusmenu"
PANEL = 36  # Plasma's default bottom panel, in pixels


@dataclass(frozen=True)
class Call:
    """A method call dbus-monitor saw: who called, whom, which member, and its first arguments as text."""

    sender: str
    destination: str
    member: str
    args: list[str]


def calls(log: Path) -> list[Call]:
    """The method calls in dbus-monitor's text output (a header line, then one indented line per argument)."""
    out: list[Call] = []
    for block in re.split(r"\n(?=\S)", log.read_text()):
        head, *rest = block.splitlines() or [""]
        found = re.match(r"method call .*sender=(\S+) -> destination=(\S+) .*member=(\w+)", head)
        if found:
            out.append(Call(*found.groups(), [line.strip() for line in rest]))
    return out


def settled(env: dict[str, str], what: str) -> Image.Image:
    """A screenshot once two in a row are the same (Plasma has finished drawing)."""
    shots = [screenshot(env)]

    def same() -> bool:
        shots.append(screenshot(env))
        return changed_box(shots[-2], shots[-1]) is None

    wait_until(same, 60, f"the screen to settle ({what})", poll=0.5)
    return shots[-1]


def above_panel(shot: Image.Image) -> Image.Image:
    return shot.crop((0, 0, shot.width, shot.height - PANEL))


def menu_id(env: dict[str, str], item: str, label: str) -> int | None:
    """The dbusmenu id of the entry ``label`` in the item's menu as the tray serves it now (None: no such entry)."""
    layout = gdbus(env, item, "/MenuBar", f"{MENU}.GetLayout", "0", "int32 -1", "@as []")
    assert layout.returncode == 0, layout.stderr
    found = re.search(r"<\((\d+), \{[^}]*'label': <'" + re.escape(label) + "'>", layout.stdout)
    return int(found.group(1)) if found else None


def test_plasma_shows_the_tray_opens_its_menu_and_start_dictation_listens(start_daemon, spawn, pulse, tmp_path):
    why = plasma_available()
    if why:
        pytest.fail(f"KDE Plasma test bed: {why}")
    (tmp_path / "session-bus").mkdir()
    # The standard service directories, as a desktop's session bus has: kded5 and kactivitymanagerd start there.
    bus = PrivateBus(tmp_path / "session-bus", standard_services=True)
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    session = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / "share")}
    base = daemon_env(bus, tmp_path / "state", {**session, "PULSE_SERVER": pulse.server})
    daemon_environment = kde_env(base, tmp_path / "runtime")  # with the shared model cache
    env = {**daemon_environment, "XDG_CACHE_HOME": str(home / ".cache")}  # Plasma's caches: its own
    kwin = plasma = fake = None
    monitor_log = tmp_path / "dbusmenu.monitor"
    with open(monitor_log, "w") as out:  # Plasma's calls of the tray's menu, as the bus carries them
        monitor = subprocess.Popen(["dbus-monitor", "--address", bus.address, f"interface='{MENU}'"], stdout=out)
    try:
        started = time.monotonic()
        kwin = KWin(tmp_path, env)
        daemon = start_daemon("--lightweight", env=daemon_environment, ready=False)  # loads while Plasma starts
        plasma = Plasma(tmp_path, env, bus.pid)
        daemon.wait_ready()
        before = settled(env, "Plasma's panel")
        print(
            f"KWin + plasmashell + listend ready after {time.monotonic() - started:.1f} s "
            f"(plasmashell's tray host after {plasma.start_s:.1f} s)"
        )

        tray = spawn([str(BIN / "listend-tray"), "-v"], env=env, log="tray")
        item = f"org.kde.StatusNotifierItem-{tray.pid}-1"
        wait_until(
            lambda: any(i.startswith(item + "/") for i in plasma.registered_items()),
            60,
            lambda: (
                f"{item} in kded5's RegisteredStatusNotifierItems {plasma.registered_items()}:\n"
                + (tmp_path / "tray.log").read_text()
            ),
        )
        wait_until(lambda: "state: idle" in ctl(env, "status").stdout, 60, "listend idle")
        plasma_bus = plasma.owner()
        # Plasma reads the new item's menu as it adds the icon; then the panel changes and settles.
        wait_until(
            lambda: [c for c in calls(monitor_log) if c.sender == plasma_bus and c.member == "GetLayout"],
            60,
            lambda: f"plasmashell to read the tray's menu: {calls(monitor_log)}",
        )
        wait_until(lambda: changed_spots(before, screenshot(env), PANEL), 60, "the tray's icon in Plasma's panel")
        idle = settled(env, "the tray's icon")
        before.save(tmp_path / "before.png")  # what the test saw, kept for a failure's diagnosis
        idle.save(tmp_path / "idle.png")
        start_id = wait_until(lambda: menu_id(env, item, "Start dictation"), 30, "'Start dictation' in the menu")

        fake = FakeInput(env)
        icon = None
        for x, y in changed_spots(before, idle, PANEL):  # the icon, and the clock if its minute changed
            fake.click(x, y, FakeInput.BTN_RIGHT)
            try:
                wait_until(
                    lambda: any(
                        c.sender == plasma_bus and c.member == "Event" and '"opened"' in " ".join(c.args)
                        for c in calls(monitor_log)
                    ),
                    20,
                    "",
                )
            except AssertionError:
                fake.key(FakeInput.KEY_ESC)  # a menu that is not the tray's (the clock's)
                continue
            icon = (x, y)
            break
        assert icon, f"no spot in Plasma's panel opened the tray's menu: {changed_spots(before, idle, PANEL)}"
        asked = {c.member for c in calls(monitor_log) if c.sender == plasma_bus}
        assert {"AboutToShow", "GetLayout"} <= asked, calls(monitor_log)

        def menu_drawn() -> tuple[int, int] | None:
            """The top left corner of the menu, once the screen above the panel changed by a menu's size.

            Taken from the top rows of what changed: the menu is the tallest thing drawn (a tooltip beside it
            would widen the whole box, not raise it)."""
            shot = above_panel(screenshot(env))
            box = changed_box(above_panel(idle), shot)
            if not box or box[2] - box[0] < 100 or box[3] - box[1] < 150:
                return None
            rows = (0, box[1], idle.width, box[1] + 20)
            top_rows = changed_box(idle.crop(rows), shot.crop(rows))
            return (top_rows[0], box[1]) if top_rows else None

        left, top = wait_until(menu_drawn, 30, "Plasma to draw the tray's menu")
        screenshot(env).save(tmp_path / "menu.png")
        assert "state: idle" in ctl(env, "status").stdout  # opening the menu changed nothing

        fake.click(left + 80, top + 15)  # the first entry
        wait_until(
            lambda: [
                c
                for c in calls(monitor_log)
                if c.sender == plasma_bus
                and c.member == "Event"
                and c.args[:2] == [f"int32 {start_id}", 'string "clicked"']
            ],
            30,
            lambda: f"plasmashell to click 'Start dictation' ({start_id}): {calls(monitor_log)}",
        )
        wait_until(
            lambda: "state: listening" in ctl(env, "status").stdout,
            30,
            lambda: f"listend listening: {ctl(env, 'status').stdout}",
        )

        def icon_area() -> Image.Image:
            return screenshot(env).crop((icon[0] - 16, icon[1] - 16, icon[0] + 16, icon[1] + 16))

        red = COLOURS["listening"]
        assert count_colour(idle.crop((icon[0] - 16, icon[1] - 16, icon[0] + 16, icon[1] + 16)), red) == 0
        wait_until(lambda: count_colour(icon_area(), red) >= 40, 30, "Plasma to draw the listening icon")
        screenshot(env).save(tmp_path / "listening.png")
        assert tray.poll() is None
    finally:
        for part in (fake, plasma, kwin):
            if part is not None:
                part.close()
        end_process(monitor)
        bus.close()
