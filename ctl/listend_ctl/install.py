"""``listenctl install`` / ``uninstall``: the systemd user unit, D-Bus activation, tray and input method autostart.

The input method (``listend-ime``) is autostarted only where IBus is
installed; ``uninstall`` removes its entry wherever it is.

The file texts live here, rendered with the absolute path of the entry
points actually installed (a venv or pipx). The copies in the repository's
``systemd/`` folder are these same texts rendered for pipx's ``~/.local/bin``
(a test keeps them identical).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from listend.bus import BUS_NAME
from listend.files import write_private
from listend.paths import config_home, data_home

UNIT_NAME = "listend.service"
ACTIVATION_NAME = f"{BUS_NAME}.service"
AUTOSTART_NAME = "listend-tray.desktop"
IME_AUTOSTART_NAME = "listend-ime.desktop"
TRAY_UNIT_NAME = "listend-tray.service"
# The repository copies in systemd/ are what a distribution package installs, so they name /usr/bin.
# (They used %h/.local/bin, a systemd specifier that desktop entries and D-Bus activation files do not
# expand.) `listenctl install` writes the paths of the interpreter it runs from instead.
REPO_BIN = "/usr/bin"

UNIT = """\
[Unit]
Description=listend: local offline live dictation
Documentation=https://github.com/listend/listend#readme
# Capture goes through the user's audio server; start after it where present.
After=pipewire.service pipewire-pulse.service pulseaudio.service
Wants=pipewire-pulse.service pulseaudio.service
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=dbus
BusName={bus_name}
ExecStart={listend} run
Restart=on-failure
RestartSec=3
# The daemon pings from its engine loop at half this interval; a wedged
# pipeline stops the pings and systemd restarts the service.
WatchdogSec=30
NotifyAccess=main
TimeoutStartSec=180
# Above the daemon's whole 15 s stop budget (refine, live fallbacks, keeping the rest as audio).
TimeoutStopSec=25
# Backstops for the in-process watchdog (full profile: warn 700, cleanup 850,
# limit 1100 MiB). Change with: systemctl --user edit listend
# The first start converts Moonshine once in a child that peaks at ~750 MiB RSS
# for a few seconds (docs/benchmarks.md): a MemoryMax= below ~1G kills it.
MemoryHigh=1200M
MemoryMax=1600M
# Hardening that works in user units without breaking audio, models or XDG
# dirs (no ProtectHome=, no MemoryDenyWriteExecute=: cffi callbacks need it).
NoNewPrivileges=yes
LockPersonality=yes
RestrictSUIDSGID=yes
SystemCallArchitectures=native
UMask=0077

[Install]
WantedBy=default.target
"""

ACTIVATION = """\
[D-BUS Service]
Name={bus_name}
Exec={listend} run
SystemdService={unit}
"""

AUTOSTART = """\
[Desktop Entry]
Type=Application
Name=listend tray
Comment=Live dictation status, transcript and clipboard
Exec={tray}
Icon=audio-input-microphone
Terminal=false
Categories=Utility;Accessibility;
X-GNOME-Autostart-enabled=true
"""


IME_AUTOSTART = """\
[Desktop Entry]
Type=Application
Name=listend input method
Comment=Live dictation at the cursor of any application (an IBus engine)
Exec={ime}
Icon=audio-input-microphone
Terminal=false
NoDisplay=true
Categories=Utility;Accessibility;
X-GNOME-Autostart-enabled=true
"""


@dataclass(frozen=True)
class InstallTarget:
    path: Path
    text: str


def entry_point(name: str) -> str:
    """Absolute path of an installed console script next to this interpreter."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    return os.path.abspath(found) if found else f"{sys.executable} -m listend.cli" if name == "listend" else name


def render(bin_dir: str | None = None) -> dict[str, str]:
    """The file texts (by file name) for entry points in ``bin_dir`` (default: the installed ones)."""
    listend = f"{bin_dir}/listend" if bin_dir else entry_point("listend")
    tray = f"{bin_dir}/listend-tray" if bin_dir else entry_point("listend-tray")
    ime = f"{bin_dir}/listend-ime" if bin_dir else entry_point("listend-ime")
    return {
        UNIT_NAME: UNIT.format(bus_name=BUS_NAME, listend=listend),
        ACTIVATION_NAME: ACTIVATION.format(bus_name=BUS_NAME, listend=listend, unit=UNIT_NAME),
        AUTOSTART_NAME: AUTOSTART.format(tray=tray),
        IME_AUTOSTART_NAME: IME_AUTOSTART.format(ime=ime),
    }


def ibus_installed() -> bool:
    return shutil.which("ibus-daemon") is not None


def targets(bin_dir: str | None = None, with_ime: bool = True) -> list[InstallTarget]:
    config, data = config_home(), data_home()
    texts = render(bin_dir)
    out = [
        InstallTarget(config / "systemd" / "user" / UNIT_NAME, texts[UNIT_NAME]),
        InstallTarget(data / "dbus-1" / "services" / ACTIVATION_NAME, texts[ACTIVATION_NAME]),
        InstallTarget(config / "autostart" / AUTOSTART_NAME, texts[AUTOSTART_NAME]),
    ]
    if with_ime:
        out.append(InstallTarget(config / "autostart" / IME_AUTOSTART_NAME, texts[IME_AUTOSTART_NAME]))
    return out


def _systemctl(*args: str) -> subprocess.CompletedProcess[str] | None:
    exe = shutil.which("systemctl")
    if exe is None:
        return None
    try:
        return subprocess.run([exe, "--user", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


def user_systemd_available() -> bool:
    result = _systemctl("show-environment")
    return result is not None and result.returncode == 0


def install(now: bool = False, kwin_input_method: bool | None = None) -> int:
    with_ime = ibus_installed()
    if not with_ime:
        print("IBus is not installed: skipped the input method's autostart (listend-ime needs ibus-daemon)")
    for t in targets(with_ime=with_ime):
        try:
            same = t.path.read_text() == t.text
        except OSError:
            same = False
        if same:
            print(f"unchanged {t.path}")
            continue
        write_private(t.path, t.text.encode(), mode=0o644)  # units and desktop entries others may read
        print(f"wrote {t.path}")
    if with_ime:  # on KDE Plasma: IBus as KWin's input method, asked first (listend_ctl.kde)
        from . import kde

        for line in kde.install_step(kwin_input_method, ask=kde.ask_on_terminal).lines:
            print(line)
    if not user_systemd_available():
        print(
            "no systemd user manager reachable: skipped daemon-reload"
            + (" and enable --now" if now else "")
            + "; D-Bus activation still starts listend on first use"
        )
        return 1 if now else 0
    _systemctl("daemon-reload")
    print("ran systemctl --user daemon-reload")
    if now:
        result = _systemctl("enable", "--now", UNIT_NAME)
        if result is None or result.returncode != 0:
            print(
                f"systemctl --user enable --now {UNIT_NAME} failed: {result.stderr.strip() if result else ''}",
                file=sys.stderr,
            )
            return 1
        print(f"ran systemctl --user enable --now {UNIT_NAME}")
    return 0


def uninstall() -> int:
    have_systemd = user_systemd_available()
    if have_systemd:
        _systemctl("disable", "--now", UNIT_NAME)
        print(f"ran systemctl --user disable --now {UNIT_NAME}")
    for t in targets():
        try:
            t.path.unlink()
            print(f"removed {t.path}")
        except FileNotFoundError:
            print(f"absent {t.path}")
    from . import kde  # KWin's input method, if install set it and it is still listend's entry

    for line in kde.uninstall_step().lines:
        print(line)
    if have_systemd:
        _systemctl("daemon-reload")
        print("ran systemctl --user daemon-reload")
    else:
        print("no systemd user manager reachable: skipped disable and daemon-reload")
    print(what_stays())
    return 0


def what_stays() -> str:
    """What ``uninstall`` leaves (the user's data and the program itself), and the command that removes each."""
    from listend.paths import cache_dir, config_dir, state_dir

    kept = [
        ("history, kept audio and state", state_dir()),
        ("settings", config_dir()),
        ("joined and converted models", cache_dir()),
    ]
    if sys.prefix != sys.base_prefix:  # a venv (or pipx's): the program itself
        kept.append(("the program (its venv)", Path(sys.prefix)))
    onnx_telemetry = Path.home() / ".cache" / "Microsoft" / "DeveloperTools" / ".onnxruntime"
    lines = ["kept (remove by hand for a complete uninstall; stop listend-tray and listend-ime first):"]
    lines += [f"  {what}: rm -rf {shlex.quote(str(path))}" for what, path in kept if path.exists()]
    if onnx_telemetry.exists():  # written by onnxruntime before listend turned its telemetry off
        lines.append(f"  onnxruntime's telemetry files (from before): rm -rf {shlex.quote(str(onnx_telemetry))}")
    if len(lines) == 1:
        return "nothing else of listend's is left"
    return "\n".join(lines)


def run_install(args: argparse.Namespace) -> int:
    try:
        if args.command == "install":
            return install(args.now, getattr(args, "kwin_input_method", None))
        return uninstall()
    except OSError as e:
        print(f"listenctl: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 1
