"""A private dbus-daemon, listend daemons on it, and a raw client that records their signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbus_next import BusType, Message, MessageType

from listend.bus import BUS_NAME, INTERFACE, OBJECT_PATH
from listend.dbusio import MessageBus

from .processes import BIN
from .waiting import until, wait_until

# The limits of Debian's session.conf (a desktop's session bus), not dbus-daemon's stricter built-in ones.
SESSION_LIMITS = "".join(
    f'<limit name="{name}">{value}</limit>'
    for name, value in (
        ("max_incoming_bytes", 1000000000),
        ("max_outgoing_bytes", 1000000000),
        ("max_message_size", 1000000000),
        ("service_start_timeout", 120000),
        ("max_completed_connections", 100000),
        ("max_connections_per_user", 100000),
        ("max_names_per_connection", 50000),
        ("max_match_rules_per_connection", 50000),
        ("max_replies_per_connection", 50000),
    )
)


class PrivateBus:
    """``dbus-daemon --session --fork`` with its own config (optionally an activation dir)."""

    def __init__(
        self, tmp: Path, services_dir: Path | None = None, kind: str = "session", standard_services: bool = False
    ):
        config = tmp / f"{kind}.conf"
        services = f"<servicedir>{services_dir}</servicedir>" if services_dir else ""
        if standard_services:  # what a desktop session activates (dconf, the portals, AT-SPI)
            services += "<standard_session_servicedirs/>"
        config.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>{kind}</type><listen>unix:dir={tmp}</listen>{services}{SESSION_LIMITS}
<auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/><allow user="*"/></policy></busconfig>""")
        out = subprocess.run(
            ["dbus-daemon", f"--config-file={config}", "--fork", "--print-address=1", "--print-pid=1"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.split()
        self.address, self.pid = out[0], int(out[1])

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except OSError:
            pass


def daemon_env(bus: PrivateBus, state: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a daemon (and its listenctl) on ``bus`` with its own state directory."""
    env = dict(os.environ)
    env.update(
        {
            "DBUS_SESSION_BUS_ADDRESS": bus.address,
            "XDG_STATE_HOME": str(state),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


class DaemonProcess:
    """``listend ARGS`` with its output in a log file (or ``command`` instead of ``listend``)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, command: list[str] | None = None):
        self.env = env
        self.log_path = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen(
            [*(command or [str(BIN / "listend")]), *args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 120) -> DaemonProcess:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"listend exited {self.proc.returncode}:\n{self.log()}")
            return "ready on" in self.log()

        wait_until(ready, timeout, lambda: f"listend to be ready:\n{self.log()}", poll=0.1)
        return self

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def ctl(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "listenctl"), *args], env=env, capture_output=True, text=True, timeout=timeout)


class BusClient:
    """Raw dbus-next client that records every signal from the daemon's object."""

    def __init__(self, address: str):
        self.address = address
        self.signals: list[Message] = []

    async def __aenter__(self) -> BusClient:
        self.bus = await MessageBus(bus_address=self.address, bus_type=BusType.SESSION).connect()
        await self.raw(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            "s",
            [f"type='signal',path='{OBJECT_PATH}'"],
        )
        self.bus.add_message_handler(self._on)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.bus.disconnect()

    def _on(self, msg: Message) -> None:
        if msg.message_type == MessageType.SIGNAL and msg.path == OBJECT_PATH:
            self.signals.append(msg)

    async def raw(
        self, dest: str, path: str, iface: str, member: str, signature: str = "", body: list[Any] | None = None
    ) -> Message:
        return await self.bus.call(
            Message(destination=dest, path=path, interface=iface, member=member, signature=signature, body=body or [])
        )

    async def call(
        self, member: str, signature: str = "", body: list[Any] | None = None, iface: str = INTERFACE
    ) -> Message:
        return await self.raw(BUS_NAME, OBJECT_PATH, iface, member, signature, body)

    async def prop(self, name: str) -> Any:
        reply = await self.call("Get", "ss", [INTERFACE, name], iface="org.freedesktop.DBus.Properties")
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        return reply.body[0].value

    async def memory(self) -> dict[str, Any]:
        return {k: v.value for k, v in (await self.call("GetMemory")).body[0].items()}

    async def wait_audio_flowing(self, timeout: float = 30) -> None:
        """Wait until the daemon has consumed half a second of audio (PulseAudio's first blocks are slow)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (await self.memory())["audio_seconds"] < 0.5:
            assert asyncio.get_running_loop().time() < deadline, "no audio reached the daemon"
            await asyncio.sleep(0.1)

    def named(self, member: str) -> list[Message]:
        return [m for m in self.signals if m.member == member]

    def refined_texts(self) -> list[str]:
        return [m.body[3] for m in self.named("SegmentRefined")]

    def states(self) -> list[str]:
        return [m.body[0] for m in self.named("StateChanged")]

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 120) -> None:
        await until(predicate, timeout, lambda: "signals: " + ", ".join(f"{m.member}{m.body}" for m in self.signals))
