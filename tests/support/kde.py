"""A real headless KWin 5.27 Wayland on the test's session bus, started as ../shared/kde/session.sh does.

``kwin_wayland --virtual`` renders with Mesa's llvmpipe (no GPU, no display, no input devices) and answers on
D-Bus (``org.kde.KWin``) well under a second after exec. With ``input_method`` it starts that program as its
input method (``--inputmethod``); without, it reads ``[Wayland] InputMethod`` from ``$XDG_CONFIG_HOME/kwinrc``
as on a desktop -- on a fresh one there is none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from .field_app import FieldApp
from .ibus import GtkField
from .processes import end_process
from .waiting import wait_until

SOCKET = "wayland-kde"
IBUS_WAYLAND = "/usr/libexec/ibus-wayland"  # Debian's ibus-wayland: IBus's frontend for KWin's input-method-v1
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
        argv += ["--socket", SOCKET, "--width", "1024", "--height", "768", *im]
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
