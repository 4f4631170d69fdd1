"""A real headless KWin 5.27 Wayland on the test's session bus, started as ../shared/kde/session.sh does.

``kwin_wayland --virtual`` renders with Mesa's llvmpipe (no GPU, no display, no input devices) and answers on
D-Bus (``org.kde.KWin``) well under a second after exec. With ``input_method`` it starts that program as its
input method (``--inputmethod``); without, it reads ``[Wayland] InputMethod`` from ``$XDG_CONFIG_HOME/kwinrc``
as on a desktop -- on a fresh one there is none.

:class:`Plasma` adds plasmashell (its panel, system tray and clock) on that KWin; :func:`screenshot`,
:func:`changed_spots`/:func:`changed_box` and :class:`FakeInput` see and click what it shows, as
../shared/kde/plasma_tray.sh did.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from dbus_next import Message, MessageType
from PIL import Image

from listend.dbusio import MessageBus
from listend_ime import wayland_wire as wire

from .field_app import FieldApp
from .ibus import GtkField
from .processes import end_process
from .waiting import wait_until

SOCKET = "wayland-kde"
IBUS_WAYLAND = "/usr/libexec/ibus-wayland"  # Debian's ibus-wayland: IBus's frontend for KWin's input-method-v1
PLASMASHELL = "/usr/bin/plasmashell"
KDED = "/usr/bin/kded5"  # Plasma 5's StatusNotifierWatcher is one of kded5's modules
WATCHER = "org.kde.StatusNotifierWatcher"
WIDTH, HEIGHT = 1024, 768
QT_FIELD = Path(__file__).with_name("qt_field.py")
GTK_WAYLAND_FIELD = Path(__file__).with_name("gtk_wayland_field.py")


def kwin_binary(tmp: Path) -> str:
    """``/usr/bin/kwin_wayland``, or a copy of it where its file capability makes exec fail.

    Debian's postinst gives it ``cap_sys_resource=ep``; a sandbox whose bounding set lacks that capability
    (these machines, many containers) gets EPERM at exec. A copy has no file capabilities and runs the same.
    """
    try:
        if subprocess.run(["/usr/bin/kwin_wayland", "--version"], capture_output=True, timeout=30).returncode == 0:
            return "/usr/bin/kwin_wayland"
    except PermissionError:
        pass
    copy = tmp / "kwin_wayland"
    shutil.copy("/usr/bin/kwin_wayland", copy)
    return str(copy)


def kde_env(env: dict[str, str], runtime: Path) -> dict[str, str]:
    """``env`` as a Plasma Wayland session's clients see it (the socket named before IBus starts: libibus names
    its address file after ``WAYLAND_DISPLAY``)."""
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    out = {k: v for k, v in env.items() if k not in ("DISPLAY", "IBUS_ADDRESS", "IBUS_ADDRESS_FILE")}
    out.update(
        WAYLAND_DISPLAY=SOCKET,
        XDG_RUNTIME_DIR=str(runtime),
        XDG_CURRENT_DESKTOP="KDE",
        XDG_SESSION_TYPE="wayland",
        KDE_FULL_SESSION="true",
        KDE_SESSION_VERSION="5",
        QT_QPA_PLATFORM="wayland",
    )
    return out


class KWin:
    """``kwin_wayland --virtual`` on ``env``'s session bus and runtime directory (see :func:`kde_env`)."""

    def __init__(self, tmp: Path, env: dict[str, str], input_method: str | None = None, name: str = "kwin"):
        self.env = env
        self.log_path = tmp / f"{name}.log"
        self._log = open(self.log_path, "w")
        im = ["--inputmethod", input_method] if input_method else []
        kwin_env = {
            **env,
            # Any client may bind KWin's restricted globals and take screenshots (the test bed's setting).
            "KWIN_WAYLAND_NO_PERMISSION_CHECKS": "1",
            "KWIN_SCREENSHOT_NO_PERMISSION_CHECKS": "1",
        }
        argv = [kwin_binary(tmp), "--virtual", "--no-lockscreen", "--no-global-shortcuts", "--no-kactivities"]
        argv += ["--socket", SOCKET, "--width", str(WIDTH), "--height", str(HEIGHT), *im]
        self.proc = subprocess.Popen(argv, env=kwin_env, stdout=self._log, stderr=subprocess.STDOUT)

        def up() -> bool:
            assert self.proc.poll() is None, f"kwin_wayland exited:\n{self.log_path.read_text()}"
            return self._get_all().returncode == 0

        # Ready when /VirtualKeyboard answers: KWin takes its bus name a moment before it registers that object.
        wait_until(up, 60, lambda: f"KWin's /VirtualKeyboard on the bus:\n{self.log_path.read_text()}", poll=0.05)

    def _get_all(self) -> subprocess.CompletedProcess[str]:
        interface = "org.kde.kwin.VirtualKeyboard"
        return gdbus(self.env, "org.kde.KWin", "/VirtualKeyboard", "org.freedesktop.DBus.Properties.GetAll", interface)

    def virtual_keyboard(self) -> dict[str, bool]:
        """KWin's ``org.kde.kwin.VirtualKeyboard`` properties as ``gdbus`` reads them (not listend's reader)."""
        result = self._get_all()
        assert result.returncode == 0, result.stderr
        # ({'active': <false>, 'available': <true>, ...},) -> JSON
        text = result.stdout.strip()[1:-2].replace("'", '"').replace("<", "").replace(">", "")
        values: dict[str, bool] = json.loads(text)
        return values

    def input_method_children(self, program: str = IBUS_WAYLAND) -> list[int]:
        """The pids of ``program`` that KWin runs as its input method (its children)."""
        result = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid), "-f", program], capture_output=True, text=True, timeout=10
        )
        return [int(pid) for pid in result.stdout.split()]

    def close(self) -> None:
        end_process(self.proc)
        self._log.close()


def gdbus(env: dict[str, str], dest: str, path: str, method: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["gdbus", "call", "--session", "--dest", dest, "--object-path", path, "--method", method, *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20)


def kde_available() -> str | None:
    """Why the KDE test bed cannot run here (None when it can)."""
    for path in ("/usr/bin/kwin_wayland", IBUS_WAYLAND):
        if not os.path.exists(path):
            return f"{path} is missing (scripts/install-deps --test installs kwin-wayland and ibus-wayland)"
    return None


def plasma_available() -> str | None:
    """Why plasmashell cannot run here (None when it can)."""
    for path in (PLASMASHELL, KDED):
        if not os.path.exists(path):
            return f"{path} is missing (scripts/install-deps --test installs plasma-workspace and plasma-desktop)"
    return kde_available()


# What services the bus starts on demand (kded5, kactivitymanagerd) must see of the session. Without it they try
# X11 and die, and plasmashell aborts ("kactivitymanagerd is not running"); startplasma does the same.
ACTIVATION_ENVIRONMENT = (
    "WAYLAND_DISPLAY",
    "QT_QPA_PLATFORM",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "HOME",
    "XDG_CURRENT_DESKTOP",
    "XDG_SESSION_TYPE",
    "KDE_FULL_SESSION",
    "KDE_SESSION_VERSION",
)


class Plasma:
    """plasmashell on a :class:`KWin`, on a bus that activates the standard session services (kded5 and
    kactivitymanagerd come from there, as on a desktop); ready when kded5's StatusNotifierWatcher has
    plasmashell's system tray registered as its host.

    ``bus_pid``: the dbus-daemon whose activated services (children) are ended with plasmashell.
    """

    def __init__(self, tmp: Path, env: dict[str, str], bus_pid: int, timeout: float = 180):
        self.env = env
        self.bus_pid = bus_pid
        self.log_path = tmp / "plasmashell.log"
        names = [name for name in ACTIVATION_ENVIRONMENT if name in env]
        subprocess.run(["dbus-update-activation-environment", *names], env=env, check=True, timeout=30)
        self._log = open(self.log_path, "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([PLASMASHELL], env=env, stdout=self._log, stderr=subprocess.STDOUT)

        def host_registered() -> bool:
            assert self.proc.poll() is None, f"plasmashell exited:\n{self.log_path.read_text()[-3000:]}"
            reply = gdbus(
                env,
                WATCHER,
                "/StatusNotifierWatcher",
                "org.freedesktop.DBus.Properties.Get",
                WATCHER,
                "IsStatusNotifierHostRegistered",
            )
            return "true" in reply.stdout

        wait_until(
            host_registered, timeout, lambda: f"Plasma's system tray:\n{self.log_path.read_text()[-3000:]}", poll=0.2
        )
        self.start_s = time.monotonic() - self.started  # measured, never asserted

    def owner(self) -> str:
        """plasmashell's unique name on the bus (the connection that calls the items' menus)."""
        reply = gdbus(
            self.env,
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.GetNameOwner",
            "org.kde.plasmashell",
        )
        assert reply.returncode == 0, reply.stderr
        return reply.stdout.strip()[2:-3]  # ('(:1.12',) -> :1.12

    def registered_items(self) -> list[str]:
        """kded5's ``RegisteredStatusNotifierItems`` ("service/path" each)."""
        reply = gdbus(
            self.env,
            WATCHER,
            "/StatusNotifierWatcher",
            "org.freedesktop.DBus.Properties.Get",
            WATCHER,
            "RegisteredStatusNotifierItems",
        )
        return re.findall(r"'([^']+)'", reply.stdout)

    def close(self) -> None:
        end_process(self.proc)
        self._log.close()
        # kded5, kactivitymanagerd, plasma_waitforname, ...: started by this test's bus for this session (each
        # below a babysitter process of the bus), ended with it.
        try:
            started = psutil.Process(self.bus_pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for process in started:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(started, timeout=10)
        for process in alive:
            process.kill()


def screenshot(env: dict[str, str]) -> Image.Image:
    """KWin's whole workspace (``org.kde.KWin.ScreenShot2.CaptureWorkspace``), as RGB.

    KWin writes the raw image into a pipe we pass; it is read while KWin writes (3 MiB do not fit a pipe).
    Needs ``KWIN_SCREENSHOT_NO_PERMISSION_CHECKS=1`` in KWin's environment (:class:`KWin` sets it).
    """
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read_end, 1 << 20):
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()

    async def capture() -> Message:
        bus = await MessageBus(bus_address=env["DBUS_SESSION_BUS_ADDRESS"], negotiate_unix_fd=True).connect()
        try:
            message = Message(
                destination="org.kde.KWin",
                path="/org/kde/KWin/ScreenShot2",
                interface="org.kde.KWin.ScreenShot2",
                member="CaptureWorkspace",
                signature="a{sv}h",
                body=[{}, 0],
                unix_fds=[write_end],
            )  # "h" is an index into unix_fds
            return await asyncio.wait_for(bus.call(message), 30)
        finally:
            bus.disconnect()

    try:
        reply = asyncio.run(capture())
    finally:
        os.close(write_end)
    reader.join(30)
    os.close(read_end)
    assert reply.message_type == MessageType.METHOD_RETURN, (reply.error_name, reply.body)
    meta = {k: v.value for k, v in reply.body[0].items()}
    # QImage's RGB32/ARGB32 formats: little-endian BGRA in memory.
    raw = Image.frombuffer("RGBA", (meta["width"], meta["height"]), b"".join(chunks), "raw", "BGRA", meta["stride"], 1)
    return raw.convert("RGB")


def _changed(before: Image.Image, after: Image.Image) -> np.ndarray:
    a = np.asarray(before, dtype=np.int16)
    b = np.asarray(after, dtype=np.int16)
    return np.abs(a - b).max(axis=-1) > 40


def changed_spots(before: Image.Image, after: Image.Image, band: int = 36) -> list[tuple[int, int]]:
    """Centres of the clusters of pixels that changed in the bottom ``band`` rows (Plasma's panel), left to right:
    a new tray icon is one (the clock's minute may be another)."""
    changed = _changed(before, after)[-band:]
    columns = np.flatnonzero(changed.any(axis=0))
    runs: list[list[int]] = []
    for x in columns.tolist():
        if runs and x - runs[-1][1] <= 6:  # one icon's pixels can have gaps
            runs[-1][1] = x
        else:
            runs.append([x, x])
    spots = []
    top = before.height - band
    for x0, x1 in runs:
        rows = np.flatnonzero(changed[:, x0 : x1 + 1].any(axis=1))
        spots.append(((x0 + x1) // 2, top + (int(rows.min()) + int(rows.max())) // 2))
    return spots


def changed_box(before: Image.Image, after: Image.Image) -> tuple[int, int, int, int] | None:
    """``(left, top, right, bottom)`` of every pixel that changed (an opened menu), None if none did."""
    changed = _changed(before, after)
    if not changed.any():
        return None
    ys, xs = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


class FakeInput:
    """Pointer and keys for a KWin without input devices: KWin's ``org_kde_kwin_fake_input`` (version 4; KWin
    offers it to any client with ``KWIN_WAYLAND_NO_PERMISSION_CHECKS=1``, which :class:`KWin` sets), spoken over
    listend-ime's own Wayland wire client (:mod:`listend_ime.wayland_wire`).
    """

    BTN_LEFT, BTN_RIGHT = 0x110, 0x111
    KEY_ESC = 1
    # org_kde_kwin_fake_input's requests
    AUTHENTICATE, BUTTON, POINTER_MOTION_ABSOLUTE, KEYBOARD_KEY = 0, 2, 9, 10

    def __init__(self, env: dict[str, str]):
        self.conn = wire.Connection.open(env)
        self.conn.get_registry()
        self.conn.roundtrip(30)
        assert "org_kde_kwin_fake_input" in self.conn.globals, f"KWin offers no fake input: {sorted(self.conn.globals)}"
        self.fake = self.conn.bind("org_kde_kwin_fake_input", 4)
        self._request(self.AUTHENTICATE, wire.string("listend tests"), wire.string("headless Plasma"))

    def click(self, x: float, y: float, button: int = BTN_LEFT) -> None:
        self._request(self.POINTER_MOTION_ABSOLUTE, _fixed(x), _fixed(y))
        time.sleep(0.15)  # a press right on the motion can reach the surface under the old position
        for state in (1, 0):
            self._request(self.BUTTON, wire.uint(button), wire.uint(state))
            time.sleep(0.08)

    def key(self, code: int) -> None:
        """Press and release the evdev key ``code``."""
        for state in (1, 0):
            self._request(self.KEYBOARD_KEY, wire.uint(code), wire.uint(state))
            time.sleep(0.05)

    def close(self) -> None:
        self.conn.close()

    def _request(self, opcode: int, *args: bytes) -> None:
        """Send, then wait until KWin has seen it (a protocol error fails the test)."""
        self.conn.send(wire.message(self.fake, opcode, *args))
        self.conn.roundtrip(30)


def _fixed(value: float) -> bytes:
    """A Wayland ``fixed``: 24.8 bits."""
    return wire.int32(round(value * 256))


class KdeField(GtkField):
    """A text field on KWin that speaks text-input to KWin (no IBus module), read as :class:`GtkField` reads.

    ``toolkit`` "qt": the Qt5 window of :mod:`qt_field` (text-input-unstable-v2); "gtk": the GTK3 window of
    :mod:`gtk_wayland_field` with GTK's own Wayland module (text-input-v3).
    """

    def __init__(self, tmp: Path, env: dict[str, str], toolkit: str):
        drop = ("PYTHONPATH", "VIRTUAL_ENV", "QT_IM_MODULE", "GTK_IM_MODULE")
        field_env = {k: v for k, v in env.items() if k not in drop}
        if toolkit == "qt":
            script, field_env["QT_QPA_PLATFORM"] = QT_FIELD, "wayland"
        else:
            script = GTK_WAYLAND_FIELD
            field_env.update(GDK_BACKEND="wayland", GTK_IM_MODULE="wayland")
        # KWin activates a new window and its seat has a keyboard with no device behind it: focus comes by itself.
        FieldApp.__init__(self, tmp, f"{toolkit}-field", script, field_env, f"the {toolkit} window")
