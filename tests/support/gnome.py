"""A real GNOME Shell 43, headless, on the test's session bus: its own ibus-daemon, portal and keyboard.

GNOME Shell needs logind: a private system bus carries :mod:`login1_stub`. The shell starts its own
ibus-daemon (``--panel disable``: the shell is the panel) and speaks to GTK through text-input-v3.
Without an input device no window has keyboard focus, so :class:`VirtualKeyboard` holds one through
mutter's RemoteDesktop API, as a laptop's keyboard would be there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .bus import PrivateBus
from .processes import end_process
from .waiting import wait_until

LOGIN1 = Path(__file__).with_name("login1_stub.py")

KEYBOARD = r"""
import asyncio, sys
from dbus_next import Message
from dbus_next.aio import MessageBus
RD = "org.gnome.Mutter.RemoteDesktop"
async def call(bus, path, iface, member, sig="", body=()):
    reply = await bus.call(Message(destination=RD, path=path, interface=iface, member=member, signature=sig,
                                   body=list(body)))
    if reply.message_type.name == "ERROR":
        print("error", member, reply.body, flush=True)
    return reply.body
async def main():
    bus = await MessageBus().connect()
    (session,) = await call(bus, "/org/gnome/Mutter/RemoteDesktop", RD, "CreateSession")
    await call(bus, session, RD + ".Session", "Start")
    async def key(sym):
        for down in (True, False):
            await call(bus, session, RD + ".Session", "NotifyKeyboardKeysym", "ub", (sym, down))
    await key(0xffe1)  # Shift: the seat has a keyboard from now on
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        for ch in line.rstrip("\n"):
            await key(ord(ch))
            await asyncio.sleep(0.03)
        print("typed", flush=True)
asyncio.run(main())
"""


def gnome_available() -> bool:
    return all(shutil.which(tool) for tool in ("gnome-shell", "gdbus", "ibus-daemon"))


class HeadlessGnome:
    """``gnome-shell --headless --wayland`` on ``session``; :attr:`env` is what a client in it needs."""

    def __init__(self, tmp: Path, session: PrivateBus, env: dict[str, str]):
        tmp.mkdir(parents=True, exist_ok=True)
        self.system = PrivateBus(tmp, kind="system")
        runtime = tmp / "runtime"
        runtime.mkdir(mode=0o700)
        self.env = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "GTK_IM_MODULE")}
        self.env.update(
            DBUS_SESSION_BUS_ADDRESS=session.address,
            DBUS_SYSTEM_BUS_ADDRESS=self.system.address,
            XDG_RUNTIME_DIR=str(runtime),
            XDG_SESSION_TYPE="wayland",
            XDG_CURRENT_DESKTOP="GNOME",
        )
        self._logs = [open(tmp / "login1.log", "w"), open(tmp / "gnome-shell.log", "w")]
        self.log_path = tmp / "gnome-shell.log"
        self.login1 = subprocess.Popen(
            [sys.executable, str(LOGIN1)], env=self.env, stdout=self._logs[0], stderr=subprocess.STDOUT
        )
        wait_until(lambda: self._owned("org.freedesktop.login1", "--system"), 20, "the login1 stub")
        self.shell = subprocess.Popen(
            ["gnome-shell", "--headless", "--unsafe-mode", "--wayland", "--no-x11", "--virtual-monitor", "1024x600"],
            env=self.env,
            stdout=self._logs[1],
            stderr=subprocess.STDOUT,
        )

        def started() -> bool:
            assert self.shell.poll() is None, f"gnome-shell exited:\n{self.log_path.read_text()[-3000:]}"
            return (
                (runtime / "wayland-0").exists()
                and self._owned("org.gnome.Shell")
                and self._owned("org.freedesktop.IBus")
            )

        wait_until(started, 90, lambda: f"GNOME Shell and its IBus:\n{self.log_path.read_text()[-3000:]}", poll=0.3)
        self.env["WAYLAND_DISPLAY"] = "wayland-0"
        # The shell starts in the overview, where keys go to its search: leave it.
        wait_until(lambda: self.eval("Main.overview.hide(); Main.overview.visible") == "false", 30, "the desktop")
        self._keyboard: subprocess.Popen[str] | None = None

    def _owned(self, name: str, bus: str = "--session") -> bool:
        result = subprocess.run(
            ["gdbus", "call", bus, "--dest", "org.freedesktop.DBus", "--object-path", "/org/freedesktop/DBus",
             "--method", "org.freedesktop.DBus.NameHasOwner", name],
            env=self.env, capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        return "true" in result.stdout

    def eval(self, script: str) -> str:
        """Run JavaScript in the shell (``--unsafe-mode``): its result, as JSON text."""
        result = subprocess.run(
            ["gdbus", "call", "--session", "--dest", "org.gnome.Shell", "--object-path", "/org/gnome/Shell",
             "--method", "org.gnome.Shell.Eval", script],
            env=self.env, capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        out, prefix = result.stdout.strip(), "(true, '"
        return out[len(prefix) : -2] if out.startswith(prefix) and out.endswith("')") else ""

    def keyboard(self) -> None:
        """Give the seat a keyboard (mutter's RemoteDesktop): windows get keyboard focus."""
        self._keyboard = subprocess.Popen(
            [sys.executable, "-c", KEYBOARD], env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._keyboard.stdout is not None
        assert self._keyboard.stdout.readline().strip() == "ready"

    def type(self, text: str) -> None:
        """Type ASCII ``text`` on the virtual keyboard."""
        assert self._keyboard is not None and self._keyboard.stdin is not None and self._keyboard.stdout is not None
        self._keyboard.stdin.write(text + "\n")
        self._keyboard.stdin.flush()
        assert self._keyboard.stdout.readline().strip() == "typed"

    def close(self) -> None:
        import psutil

        # What the shell started (its ibus-daemon, the portals) outlives it unless ended too.
        try:
            spawned = psutil.Process(self.shell.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            spawned = []
        for proc in (self._keyboard, self.shell, self.login1):
            if proc is not None:
                end_process(proc)
        for child in spawned:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        for log in self._logs:
            log.close()
        self.system.close()
