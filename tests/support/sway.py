"""A headless wlroots compositor (sway) with its clipboard, run as an unprivileged user."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from .processes import end_process
from .waiting import wait_until


class HeadlessSway:
    """A headless wlroots compositor (sway) run as an unprivileged user: sway refuses root.

    The user (``listendtest``) is created if missing (the suite runs as root in CI). Clients
    reach the compositor through the absolute socket path in :attr:`wayland_display`.
    """

    USER = "listendtest"

    @classmethod
    def ensure_user(cls) -> str:
        """The unprivileged user the compositor (and other-user tests) run as, created if missing."""
        import pwd

        try:
            pwd.getpwnam(cls.USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", cls.USER],
                check=True,
                capture_output=True,
                timeout=30,
            )
        return cls.USER

    def __init__(self, tmp: Path):
        import shutil

        self.ensure_user()
        import tempfile

        tmp.mkdir(parents=True, exist_ok=True)
        # pytest's tmp dirs are 0700 root: the compositor's user could not reach them.
        self.runtime = Path(tempfile.mkdtemp(prefix="listend-wl-"))
        shutil.chown(self.runtime, self.USER)
        config = self.runtime / "sway.conf"
        config.write_text("")
        shutil.chown(config, self.USER)
        self._log = open(tmp / "sway.log", "w")
        env = {
            "PATH": os.environ["PATH"],
            "XDG_RUNTIME_DIR": str(self.runtime),
            "WLR_BACKENDS": "headless",
            "WLR_RENDERER": "pixman",
            "WLR_LIBINPUT_NO_DEVICES": "1",
            "HOME": str(self.runtime),
        }
        self.proc = subprocess.Popen(
            ["runuser", "-u", self.USER, "--", "env", *[f"{k}={v}" for k, v in env.items()], "sway", "-c", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        def up(check: Callable[[], bool]) -> Callable[[], bool]:
            def ready() -> bool:
                assert self.proc.poll() is None, (tmp / "sway.log").read_text()
                return check()

            return ready

        wait_until(up((self.runtime / "wayland-1").exists), 30, "sway's Wayland socket")
        self.wayland_display = str(self.runtime / "wayland-1")
        # The socket exists before sway has its output: a client that connects then can
        # fail (foot exits 230). Ready means the IPC lists the headless output.
        wait_until(up(self._has_output), 30, "sway's headless output", poll=0.1)

    def _has_output(self) -> bool:
        sockets = list(self.runtime.glob("sway-ipc.*.sock"))
        if not sockets:
            return False
        result = subprocess.run(
            [*self.user_env(), f"SWAYSOCK={sockets[0]}", "swaymsg", "-r", "-t", "get_outputs"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return result.returncode == 0 and '"name"' in result.stdout

    def user_env(self) -> list[str]:
        return ["runuser", "-u", self.USER, "--", "env", f"XDG_RUNTIME_DIR={self.runtime}", "WAYLAND_DISPLAY=wayland-1"]

    def clipboard(self) -> str:
        """The Wayland clipboard as a client of the session's user sees it."""
        return subprocess.run(
            [*self.user_env(), "wl-paste", "--no-newline"], capture_output=True, text=True, timeout=10
        ).stdout

    def close(self) -> None:
        import shutil

        end_process(self.proc)
        self._log.close()
        shutil.rmtree(self.runtime, ignore_errors=True)
