"""Desktop notifications for what a user without a visible tray must know, to a real (stub) server on a bus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dbus_next import Message, MessageType

from listend.dbusio import MessageBus
from tests.support.bus import daemon_env
from tests.support.waiting import until


class NotificationServer:
    """``org.freedesktop.Notifications`` on a private bus, recording what it is asked to show."""

    def __init__(self, address: str):
        self.address = address
        self.shown: list[tuple[str, str]] = []

    async def start(self) -> NotificationServer:
        self.bus = await MessageBus(bus_address=self.address).connect()
        self.bus.add_message_handler(self._on)
        await self.bus.request_name("org.freedesktop.Notifications")
        return self

    def _on(self, msg: Message):
        if msg.message_type == MessageType.METHOD_CALL and msg.member == "Notify":
            self.shown.append((msg.body[3], msg.body[4]))
            return Message.new_method_return(msg, "u", [len(self.shown)])
        return False


def notified(start_daemon, bus, env, args, predicate: Callable[[list[tuple[str, str]]], bool]):
    async def scenario():
        server = await NotificationServer(bus.address).start()
        daemon = start_daemon(*args, env=env, ready=False)
        try:
            await until(
                lambda: daemon.proc.poll() is None and predicate(server.shown),
                120,
                lambda: f"a notification: {server.shown}\n{daemon.log()}",
                poll=0.1,
            )
            assert daemon.terminate() == 0
        finally:
            server.bus.disconnect()
        return server.shown

    return asyncio.run(scenario())


def test_no_microphone_is_notified(start_daemon, private_bus, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": f"unix:{tmp_path}/nothing"})
    shown = notified(
        start_daemon,
        private_bus,
        env,
        ["--lightweight", "--start"],
        lambda shown: any("cannot listen" in s for s, _ in shown),
    )
    summary, body = next(n for n in shown if "cannot listen" in n[0])
    assert "no input device found" in body and "--device" in body


def test_memory_limit_degradation_is_notified(start_daemon, private_bus, tmp_path, speech_wav):
    env = daemon_env(private_bus, tmp_path / "state")
    config = tmp_path / "config.toml"
    config.write_text("[memory]\nwarn_mb = 60\ncleanup_mb = 60\nlimit_mb = 60\nsample_interval_s = 0.2\n")
    shown = notified(
        start_daemon,
        private_bus,
        env,
        ["--config", str(config)],
        lambda shown: any("memory limit" in s for s, _ in shown),
    )
    assert any("lightweight" in body for summary, body in shown if "memory limit" in summary)
