"""Desktop notifications for what a user without a visible tray must know, to a real (stub) server on a bus."""

from __future__ import annotations

import time

from busfixtures import DaemonProcess, PrivateBus, daemon_env
from dbus_next import Message, MessageType

from listend.dbusio import MessageBus


class NotificationServer:
    """``org.freedesktop.Notifications`` on a private bus, recording what it is asked to show."""

    def __init__(self, address: str):
        self.address = address
        self.shown: list[tuple[str, str]] = []

    async def start(self):
        self.bus = await MessageBus(bus_address=self.address).connect()
        self.bus.add_message_handler(self._on)
        await self.bus.request_name("org.freedesktop.Notifications")
        return self

    def _on(self, msg: Message):
        if msg.message_type == MessageType.METHOD_CALL and msg.member == "Notify":
            self.shown.append((msg.body[3], msg.body[4]))
            return Message.new_method_return(msg, "u", [len(self.shown)])
        return False


def _run_until(bus, env, args, tmp_path, predicate, config: str = ""):
    import asyncio

    if config:
        (tmp_path / "config.toml").write_text(config)
        args = ["--config", str(tmp_path / "config.toml"), *args]

    async def scenario():
        server = await NotificationServer(bus.address).start()
        daemon = DaemonProcess(args, env, tmp_path / "d.log")
        try:
            deadline = time.monotonic() + 120
            while not predicate(server.shown):
                assert daemon.proc.poll() is None and time.monotonic() < deadline, (server.shown, daemon.log())
                await asyncio.sleep(0.1)
            assert daemon.terminate() == 0
        finally:
            daemon.kill()
            server.bus.disconnect()
        return server.shown

    return asyncio.run(scenario())


def test_no_microphone_is_notified(tmp_path):
    bus = PrivateBus(tmp_path)
    try:
        env = daemon_env(bus, tmp_path / "state", {"PULSE_SERVER": f"unix:{tmp_path}/nothing"})
        shown = _run_until(bus, env, ["--lightweight", "--start"], tmp_path,
                           lambda shown: any("cannot listen" in s for s, _ in shown))
        summary, body = next(n for n in shown if "cannot listen" in n[0])
        assert "no input device found" in body and "--device" in body
    finally:
        bus.close()


def test_memory_limit_degradation_is_notified(tmp_path, speech_wav):
    bus = PrivateBus(tmp_path)
    try:
        env = daemon_env(bus, tmp_path / "state")
        config = "[memory]\nwarn_mb = 60\ncleanup_mb = 60\nlimit_mb = 60\nsample_interval_s = 0.2\n"
        shown = _run_until(bus, env, [], tmp_path, lambda shown: any("memory limit" in s for s, _ in shown),
                           config=config)
        assert any("lightweight" in body for summary, body in shown if "memory limit" in summary)
    finally:
        bus.close()
