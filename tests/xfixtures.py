"""A real X server (Xvfb) with a system tray host (trayer), screenshots and pixel checks."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from conftest import end_process

from PIL import Image


class XServer:
    def __init__(self, tmp: Path, with_tray: bool = True):
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten",
                                      "tcp"], pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        number = b""
        while not number.endswith(b"\n"):
            chunk = os.read(read, 16)
            assert chunk, "Xvfb did not start"
            number += chunk
        os.close(read)
        self.display = f":{number.decode().strip()}"
        self.env = dict(os.environ, DISPLAY=self.display, PYSTRAY_BACKEND="xorg")
        self.env.pop("WAYLAND_DISPLAY", None)
        self.trayer = None
        if with_tray:
            self.trayer = subprocess.Popen(
                ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "32", "--height", "32",
                 "--transparent", "false", "--tint", "0xffffff", "--SetDockType", "true", "--expand", "false"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.wait_window("panel")
            self._wait_tray_selection()
        self.tmp = tmp

    def _wait_tray_selection(self, timeout: float = 20) -> None:
        """Wait until the tray host owns _NET_SYSTEM_TRAY_S0 (it creates its window first)."""
        from Xlib import display as xdisplay

        d = xdisplay.Display(self.display)
        try:
            atom = d.intern_atom("_NET_SYSTEM_TRAY_S0")
            deadline = time.monotonic() + timeout
            while d.get_selection_owner(atom) == 0:
                assert time.monotonic() < deadline, "the tray host never took the system tray selection"
                time.sleep(0.05)
        finally:
            d.close()

    def windows(self) -> str:
        return subprocess.run(["xwininfo", "-root", "-tree"], env=self.env, capture_output=True, text=True).stdout

    def wait_window(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.windows())
            if match:
                return match
            assert time.monotonic() < deadline, f"no window matching {pattern!r}:\n{self.windows()}"
            time.sleep(0.1)

    def tray_icon(self) -> tuple[str, int, int, int, int]:
        """(title, x, y, width, height) of the docked listend icon, in root coordinates."""
        m = self.wait_window(r'"([^"]*)": \("listendSystemTrayIcon" "listend"\)\s+(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(\d+)\+(\d+)')
        title, w, h, x, y = m.group(1), *map(int, m.groups()[1:])
        return title, x, y, w, h

    def wait_title(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.tray_icon()[0]:
            assert time.monotonic() < deadline, f"tray title never contained {text!r}: {self.tray_icon()[0]!r}"
            time.sleep(0.1)

    def screenshot(self, name: str, window: str = "root") -> Image.Image:
        path = self.tmp / f"{name}.png"
        subprocess.run(["import", "-display", self.display, "-window", window, str(path)], check=True,
                       env=self.env, timeout=30)
        return Image.open(path).convert("RGB")

    def icon_pixels(self, name: str) -> Image.Image:
        deadline = time.monotonic() + 10
        while self.tray_icon()[3] < 16:  # the tray host re-lays out its panel now and then
            assert time.monotonic() < deadline, self.windows()
            time.sleep(0.1)
        _title, x, y, w, h = self.tray_icon()
        return self.screenshot(name).crop((x, y, x + w, y + h))

    def click_icon(self) -> None:
        _title, x, y, w, h = self.tray_icon()
        subprocess.run(["xdotool", "mousemove", str(x + w // 2), str(y + h // 2), "click", "1"], env=self.env,
                       check=True, timeout=10)

    def clipboard(self) -> str:
        return subprocess.run(["xclip", "-o", "-selection", "clipboard"], env=self.env, capture_output=True,
                              text=True, timeout=10).stdout

    def close(self) -> None:
        for p in (self.trayer, self.xvfb):
            if p is not None:
                end_process(p)


def count_colour(img: Image.Image, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    import numpy as np

    pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
    return int(np.all(np.abs(pixels - np.array(rgb, dtype=np.int16)) <= tolerance, axis=-1).sum())


class HeadlessSway:
    """A headless wlroots compositor (sway) run as an unprivileged user: sway refuses root.

    The user (``listendtest``) is created if missing (the suite runs as root in CI). Clients
    reach the compositor through the absolute socket path in :attr:`wayland_display`.
    """

    USER = "listendtest"

    def __init__(self, tmp: Path):
        import pwd
        import shutil

        try:
            pwd.getpwnam(self.USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", self.USER],
                           check=True, capture_output=True, timeout=30)
        import tempfile

        tmp.mkdir(parents=True, exist_ok=True)
        # pytest's tmp dirs are 0700 root: the compositor's user could not reach them.
        self.runtime = Path(tempfile.mkdtemp(prefix="listend-wl-"))
        shutil.chown(self.runtime, self.USER)
        config = self.runtime / "sway.conf"
        config.write_text("")
        shutil.chown(config, self.USER)
        self._log = open(tmp / "sway.log", "w")
        env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(self.runtime), "WLR_BACKENDS": "headless",
               "WLR_RENDERER": "pixman", "WLR_LIBINPUT_NO_DEVICES": "1", "HOME": str(self.runtime)}
        self.proc = subprocess.Popen(["runuser", "-u", self.USER, "--", "env", *[f"{k}={v}" for k, v in env.items()],
                                      "sway", "-c", str(config)], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not (self.runtime / "wayland-1").exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, (tmp / "sway.log").read_text()
            time.sleep(0.05)
        self.wayland_display = str(self.runtime / "wayland-1")
        # The socket exists before sway has its output: a client that connects then can
        # fail (foot exits 230). Ready means the IPC lists the headless output.
        while not self._has_output():
            assert self.proc.poll() is None and time.monotonic() < deadline, (tmp / "sway.log").read_text()
            time.sleep(0.1)

    def _has_output(self) -> bool:
        sockets = list(self.runtime.glob("sway-ipc.*.sock"))
        if not sockets:
            return False
        result = subprocess.run([*self.user_env(), f"SWAYSOCK={sockets[0]}", "swaymsg", "-r", "-t", "get_outputs"],
                                capture_output=True, text=True, timeout=10)
        return result.returncode == 0 and '"name"' in result.stdout

    def user_env(self) -> list[str]:
        return ["runuser", "-u", self.USER, "--", "env", f"XDG_RUNTIME_DIR={self.runtime}",
                "WAYLAND_DISPLAY=wayland-1"]

    def clipboard(self) -> str:
        """The Wayland clipboard as a client of the session's user sees it."""
        return subprocess.run([*self.user_env(), "wl-paste", "--no-newline"], capture_output=True, text=True,
                              timeout=10).stdout

    def close(self) -> None:
        import shutil

        end_process(self.proc)
        self._log.close()
        shutil.rmtree(self.runtime, ignore_errors=True)
