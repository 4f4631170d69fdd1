"""sd_notify(3) over an AF_UNIX datagram socket, without systemd-python.

A no-op when ``NOTIFY_SOCKET`` is unset. Abstract socket addresses (leading
``@``) are supported. The watchdog is only fed while the engine's segmenter
loop keeps beating: a live event loop over a wedged pipeline must let
systemd restart the service.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("listend.sdnotify")


class Notifier:
    """Sends state to systemd's notification socket.

    Parameters
    ----------
    address : str or None
        The ``NOTIFY_SOCKET`` value; None disables everything.
    watchdog_usec : int
        ``WATCHDOG_USEC``; pings go out at half that interval.
    """

    def __init__(self, address: str | None, watchdog_usec: int = 0):
        self.address = address
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else 0.0
        self._last_ping = 0.0
        self._sock: socket.socket | None = None
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls) -> Notifier:
        usec = 0
        if os.environ.get("WATCHDOG_USEC", "").isdigit():
            pid = os.environ.get("WATCHDOG_PID", "")
            if not pid or pid == str(os.getpid()):
                usec = int(os.environ["WATCHDOG_USEC"])
        return cls(os.environ.get("NOTIFY_SOCKET") or None, usec)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        if self._sock is None or self.address is None:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            self._sock.sendto("\n".join(lines).encode("utf-8"), address)
            return True
        except OSError as e:
            log.debug("sd_notify failed: %s", e)
            return False

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []), f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping: draining the refine queue")

    def watchdog_if_alive(self, heartbeat: float, now: float | None = None) -> bool:
        """Ping the watchdog if the engine beat recently and a ping is due."""
        if not self.watchdog_interval or self._sock is None:
            return False
        now = time.monotonic() if now is None else now
        if now - heartbeat > self.watchdog_interval:
            return False  # the engine loop is stuck: let systemd notice
        if now - self._last_ping < self.watchdog_interval * 0.9:
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")
