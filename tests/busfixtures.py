"""A private dbus-daemon and listend daemons on it, for the bus tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import BIN
from dbus_next import BusType, Message, MessageType
from listend.dbusio import MessageBus

from listend.bus import BUS_NAME, INTERFACE, OBJECT_PATH


# The limits of Debian's session.conf (a desktop's session bus), not dbus-daemon's stricter built-in ones.
SESSION_LIMITS = "".join(f'<limit name="{name}">{value}</limit>' for name, value in (
    ("max_incoming_bytes", 1000000000), ("max_outgoing_bytes", 1000000000), ("max_message_size", 1000000000),
    ("service_start_timeout", 120000), ("max_completed_connections", 100000),
    ("max_connections_per_user", 100000), ("max_names_per_connection", 50000),
    ("max_match_rules_per_connection", 50000), ("max_replies_per_connection", 50000)))


class PrivateBus:
    """``dbus-daemon --session --fork`` with its own config (optionally an activation dir)."""

    def __init__(self, tmp: Path, services_dir: Path | None = None):
        config = tmp / "session.conf"
        services = f"<servicedir>{services_dir}</servicedir>" if services_dir else ""
        config.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:dir={tmp}</listen>{services}{SESSION_LIMITS}
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/></policy></busconfig>""")
        out = subprocess.run(["dbus-daemon", f"--config-file={config}", "--fork", "--print-address=1",
                              "--print-pid=1"], capture_output=True, text=True, check=True, timeout=10).stdout.split()
        self.address, self.pid = out[0], int(out[1])

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except OSError:
            pass


def daemon_env(bus: PrivateBus, state: Path, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update({"DBUS_SESSION_BUS_ADDRESS": bus.address, "XDG_STATE_HOME": str(state),
                "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


class DaemonProcess:
    def __init__(self, args: list[str], env: dict, log: Path):
        self.log_path = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen([str(BIN / "listend"), *args], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, env: dict, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"listend exited {self.proc.returncode}:\n{self.log()}")
            if "ready on" in self.log():
                return
            time.sleep(0.1)
        raise AssertionError(f"listend not ready:\n{self.log()}")

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


def ctl(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "listenctl"), *args], env=env, capture_output=True, text=True, timeout=timeout)


class BusClient:
    """Raw dbus-next client that records every signal from the daemon."""

    def __init__(self, address: str):
        self.address = address
        self.signals: list[Message] = []

    async def __aenter__(self):
        self.bus = await MessageBus(bus_address=self.address, bus_type=BusType.SESSION).connect()
        for rule in (f"type='signal',path='{OBJECT_PATH}'",):
            await self.raw("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                           "AddMatch", "s", [rule])
        self.bus.add_message_handler(self._on)
        return self

    async def __aexit__(self, *exc):
        self.bus.disconnect()

    def _on(self, msg: Message):
        if msg.message_type == MessageType.SIGNAL and msg.path == OBJECT_PATH:
            self.signals.append(msg)

    async def raw(self, dest, path, iface, member, signature="", body=None) -> Message:
        return await self.bus.call(Message(destination=dest, path=path, interface=iface, member=member,
                                           signature=signature, body=body or []))

    async def call(self, member, signature="", body=None, iface=INTERFACE) -> Message:
        return await self.raw(BUS_NAME, OBJECT_PATH, iface, member, signature, body)

    async def prop(self, name: str):
        reply = await self.call("Get", "ss", [INTERFACE, name], iface="org.freedesktop.DBus.Properties")
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        return reply.body[0].value

    async def wait_audio_flowing(self, timeout: float = 30) -> None:
        """Wait until the daemon has consumed half a second of audio (PulseAudio's first blocks are slow)."""
        deadline = time.monotonic() + timeout
        while (await self.call("GetMemory")).body[0]["audio_seconds"].value < 0.5:
            assert time.monotonic() < deadline, "no audio reached the daemon"
            await asyncio.sleep(0.1)

    def named(self, member: str) -> list[Message]:
        return [m for m in self.signals if m.member == member]

    async def wait_for(self, predicate, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out; signals: " + ", ".join(f"{m.member}{m.body}" for m in self.signals))
            await asyncio.sleep(0.05)
