"""One face for the two desktops the tests run clients on: Xvfb (X11) and headless sway (Wayland)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .sway import HeadlessSway
from .x11 import XServer


@dataclass
class Desktop:
    """A running desktop: ``env`` is what a client there needs (``DISPLAY`` or ``WAYLAND_DISPLAY``)."""

    kind: str  # "x11" or "wayland"
    server: XServer | HeadlessSway
    env: dict[str, str]

    @classmethod
    def start(cls, kind: str, tmp: Path) -> Desktop:
        if kind == "x11":
            x = XServer(tmp / "x", with_tray=False)
            return cls(kind, x, {"DISPLAY": x.display})
        sway = HeadlessSway(tmp / "wl")
        return cls(kind, sway, {"WAYLAND_DISPLAY": sway.wayland_display})

    def clipboard(self) -> str:
        return self.server.clipboard()

    def client_env(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with this desktop's display and no other."""
        out = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        out.update(self.env)
        return out

    def close(self) -> None:
        self.server.close()
