"""``listenctl``'s entry point, with a fast path for what a key binding runs.

``listenctl toggle`` (and ``start``/``stop``) is what a desktop shortcut
executes, so it should answer within a key press. Importing asyncio and
dbus-next alone takes ~70 ms on a 2-core laptop; these three commands are
sent with ``dbus-send`` (C, part of every D-Bus installation) when it is
there, and anything unusual -- no bus, listend not running, an error reply
-- falls through to the full client, which explains it. Measured in
docs/benchmarks.md.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

_FAST = {"toggle": "Toggle", "start": "Start", "stop": "Stop"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0] in _FAST and shutil.which("dbus-send"):
        code = _via_dbus_send(argv[0])
        if code is not None:
            return code
    from .main import main as full_client

    return full_client(argv)


def _via_dbus_send(command: str) -> int | None:
    from listend.bus import BUS_NAME, INTERFACE, OBJECT_PATH, find_session_bus

    address = find_session_bus()
    if address is None:
        return None
    try:
        # The reply timeout covers D-Bus activation (models load in a few seconds).
        result = subprocess.run(
            [
                "dbus-send",
                f"--bus={address}",
                "--print-reply=literal",
                "--reply-timeout=60000",
                f"--dest={BUS_NAME}",
                OBJECT_PATH,
                f"{INTERFACE}.{_FAST[command]}",
            ],
            capture_output=True,
            text=True,
            timeout=70,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None  # the full client says why, with listenctl's messages and exit codes
    if command == "toggle":
        print("listening" if "true" in result.stdout else "idle", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
