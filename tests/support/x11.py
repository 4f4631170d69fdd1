"""A real X server (Xvfb) with a system tray host (trayer), screenshots, pixel checks and the clipboard."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from PIL import Image

from .processes import end_process
from .waiting import wait_until


class XServer:
    def __init__(self, tmp: Path, with_tray: bool = True):
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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
                [
                    "trayer",
                    "--edge",
                    "top",
                    "--align",
                    "right",
                    "--widthtype",
                    "pixel",
                    "--width",
                    "32",
                    "--height",
                    "32",
                    "--transparent",
                    "false",
                    "--tint",
                    "0xffffff",
                    "--SetDockType",
                    "true",
                    "--expand",
                    "false",
                ],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.wait_window("panel")
            self._wait_tray_selection()
        self.tmp = tmp

    def _wait_tray_selection(self, timeout: float = 20) -> None:
        """Wait until the tray host owns _NET_SYSTEM_TRAY_S0 (it creates its window first)."""
        from Xlib import display as xdisplay

        d = xdisplay.Display(self.display)
        try:
            atom = d.intern_atom("_NET_SYSTEM_TRAY_S0")
            wait_until(lambda: d.get_selection_owner(atom) != 0, timeout, "the tray host to take the tray selection")
        finally:
            d.close()

    def windows(self) -> str:
        return subprocess.run(["xwininfo", "-root", "-tree"], env=self.env, capture_output=True, text=True).stdout

    def wait_window(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        return wait_until(
            lambda: re.search(pattern, self.windows()),
            timeout,
            lambda: f"a window matching {pattern!r}:\n{self.windows()}",
            poll=0.1,
        )

    def tray_icon(self) -> tuple[str, int, int, int, int]:
        """(title, x, y, width, height) of the docked listend icon, in root coordinates."""
        m = self.wait_window(
            r'"([^"]*)": \("listendSystemTrayIcon" "listend"\)\s+(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(\d+)\+(\d+)'
        )
        title, w, h, x, y = m.group(1), *map(int, m.groups()[1:])
        return title, x, y, w, h

    def wait_title(self, text: str, timeout: float = 60) -> None:
        wait_until(
            lambda: text in self.tray_icon()[0],
            timeout,
            lambda: f"the tray title to contain {text!r}: {self.tray_icon()[0]!r}",
            poll=0.1,
        )

    def screenshot(self, name: str, window: str = "root") -> Image.Image:
        path = self.tmp / f"{name}.png"
        subprocess.run(
            ["import", "-display", self.display, "-window", window, str(path)], check=True, env=self.env, timeout=30
        )
        return Image.open(path).convert("RGB")

    def icon_pixels(self, name: str) -> Image.Image:
        # The tray host re-lays out its panel now and then.
        wait_until(lambda: self.tray_icon()[3] >= 16, 10, lambda: f"a docked icon:\n{self.windows()}", poll=0.1)
        _title, x, y, w, h = self.tray_icon()
        return self.screenshot(name).crop((x, y, x + w, y + h))

    def click_icon(self) -> None:
        _title, x, y, w, h = self.tray_icon()
        subprocess.run(
            ["xdotool", "mousemove", str(x + w // 2), str(y + h // 2), "click", "1"],
            env=self.env,
            check=True,
            timeout=10,
        )

    def clipboard(self) -> str:
        return subprocess.run(
            ["xclip", "-o", "-selection", "clipboard"], env=self.env, capture_output=True, text=True, timeout=10
        ).stdout

    def close(self) -> None:
        for p in (self.trayer, self.xvfb):
            if p is not None:
                end_process(p)


def count_colour(img: Image.Image, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    import numpy as np

    pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
    return int(np.all(np.abs(pixels - np.array(rgb, dtype=np.int16)) <= tolerance, axis=-1).sum())
