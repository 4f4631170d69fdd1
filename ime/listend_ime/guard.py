"""Hand the keyboard back if ``listend-ime`` dies without doing so itself (SIGKILL, the OOM killer, a crash).

IBus does not: when the process behind a runtime-registered engine leaves
its bus, IBus falls back only to another *runtime-registered* engine
(``bus_ibus_impl_check_global_engine`` searches ``register_engine_list``),
never to an engine from ``/usr/share/ibus/component`` such as ``xkb:us::eng``
or a CJK input method, so the user is left with no engine at all.

``listend-ime`` starts this guard in a session of its own; it waits for
``listend-ime``'s process to end (a pidfd: no polling), and then, if IBus
has our engine or none selected, selects the engine ``listend-ime`` wrote
down before it took over -- or, when it was not dictating, the engine that
was active as it left, which IBus itself drops then (see :mod:`previous`). That note exists only while listend's engine
holds the keyboard: a clean exit has already handed the keyboard back and
removed it, and the guard then finds nothing to do (it never selects an
engine remembered from an earlier dictation).
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import subprocess
import sys
import time

from . import ibus
from .engine import ENGINE_NAME
from .previous import forget_active, forget_previous, read_active, read_previous

log = logging.getLogger("listend.ime")


def start(pid: int) -> None:
    """Start the guard of process ``pid`` (listend-ime itself), in a session of its own."""
    try:
        subprocess.Popen(
            [sys.executable, "-m", "listend_ime.guard", str(pid)],
            start_new_session=True,  # a signal to listend-ime's process group does not reach it
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
    except OSError as e:
        log.warning("cannot start the guard that restores the keyboard engine if listend-ime is killed: %s", e)


def wait_for_exit(pid: int) -> None:
    """Return once process ``pid`` has ended."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd (an old kernel): look once a second
        while ibus.pid_running(pid):
            time.sleep(1.0)
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll(60_000):
            pass
    finally:
        os.close(fd)


async def restore(previous: str, settle_s: float = 3.0) -> str:
    """Select ``previous`` if our engine (or none) is selected; what was done, in words.

    IBus drops the global engine a moment after our process leaves its bus
    (see :mod:`previous`): look for ``settle_s`` before deciding nothing is
    to be done.
    """
    from listend.dbusio import MessageBus

    address = ibus.find_address()
    if address is None:
        return "IBus is gone too: nothing to hand back"
    bus = await MessageBus(bus_address=address).connect()
    try:
        deadline = time.monotonic() + settle_s
        while True:
            current = await ibus.global_engine(bus)
            if current in ("", ENGINE_NAME):
                break
            if time.monotonic() > deadline:
                forget_previous()
                return f"{current} is selected: nothing to do"
            await asyncio.sleep(0.25)
        error = await ibus.set_global_engine(bus, previous)
        if error:
            return f"cannot select {previous}: {error}"
        forget_previous()
        return f"keyboard handed back to {previous}"
    finally:
        bus.disconnect()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m listend_ime.guard PID", file=sys.stderr)
        return 2
    wait_for_exit(int(args[0]))
    previous = read_previous() or read_active()  # the engine ours replaced, else the one IBus drops as we go
    if not previous:
        return 0
    try:
        said = asyncio.run(asyncio.wait_for(restore(previous), 20))
    except Exception as e:  # IBus gone or hung: nothing more a guard can do
        said = f"cannot reach IBus: {type(e).__name__}"
    else:
        forget_active()
    print(f"listend-ime guard: {said}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
