"""``listenctl monitor``: watch listend's memory and CPU from outside the process.

Without a PID it watches the daemon of this session: the owner of
``io.github.listend`` on the session bus, checked as every client checks it
(this user's process running listend; asked of the bus daemon, which answers
even when listend itself is wedged). Only when there is no session bus at
all does it fall back to scanning this user's processes -- another user's
listend, or another session's, is never picked up silently.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from typing import TYPE_CHECKING

import psutil

from listend.units import MIB

if TYPE_CHECKING:
    from listend.bus import Holder


class NotFound(RuntimeError):
    pass


def session_daemon_pid() -> int | None:
    """The pid of the listend owning its bus name; 0 if the bus has no listend; None if there is no bus.

    The owner is checked as every client checks it (:func:`listend.bus.holder_of`): a process of this user
    running listend. Another process holding the name is refused in one line (:class:`NotFound`), never watched.
    """
    import asyncio

    from listend.bus import BUS_NAME, find_session_bus, holder_of
    from listend.dbusio import MessageBus

    address = find_session_bus()
    if address is None:
        return None

    async def ask() -> Holder | None:
        bus = await asyncio.wait_for(MessageBus(bus_address=address).connect(), 5)
        try:
            return await holder_of(bus, BUS_NAME)
        finally:
            bus.disconnect()

    try:
        holder = asyncio.run(ask())
    except Exception:  # an address nobody answers at: as if there were no bus
        return None
    if holder is None:
        return 0
    if not holder.trusted:
        raise NotFound(f"{holder.refusal()} (give a PID to watch it anyway)")
    return holder.pid


def find_daemons() -> list[psutil.Process]:
    """This session's daemon (see the module docstring)."""
    pid = session_daemon_pid()
    if pid:
        return [psutil.Process(pid)]
    if pid == 0:
        raise NotFound("listend is not on this session's bus (start it, or give a PID)")
    found = find_listend_processes(uid=os.getuid())
    if not found:
        raise NotFound("no session bus and no listend process of this user found (give a PID)")
    return found


def find_listend_processes(uid: int | None = None) -> list[psutil.Process]:
    """Running listend daemons (not transcribe runs, not this process), of ``uid`` if given."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "uids"]):
        cmd = p.info["cmdline"] or []
        if p.pid == os.getpid() or not cmd:
            continue
        if uid is not None and p.info["uids"] and p.info["uids"].real != uid:
            continue
        names = [os.path.basename(c) for c in cmd[:3]]
        is_entry = "listend" in names or any(c in ("listend.cli", "daemon.cli") for c in cmd[:3])
        if is_entry and "transcribe" not in cmd:
            found.append(p)
    return found


def check_outputs(args: argparse.Namespace) -> str | None:
    """Why ``--csv``/``--plot`` cannot be written, checked before any sampling (None if they can)."""
    if args.plot and not args.plot.lower().endswith(".png"):
        return f"--plot {args.plot}: the plot is a PNG; give a file name ending in .png"
    for option, path in (("--csv", args.csv), ("--plot", args.plot)):
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            return f"{option} {path}: is a directory"
        if not os.path.isdir(folder):
            return f"{option} {path}: no such directory {folder}"
        if not os.access(folder, os.W_OK):
            return f"{option} {path}: cannot write in {folder}"
    return None


def run_monitor(args: argparse.Namespace) -> int:
    if args.interval <= 0 or args.count < 0:
        print("listenctl: --interval must be positive and --count non-negative", file=sys.stderr)
        return 2
    problem = check_outputs(args)
    if problem:
        print(f"listenctl: {problem}", file=sys.stderr)
        return 2
    try:
        processes = [psutil.Process(args.pid)] if args.pid else find_daemons()
    except psutil.NoSuchProcess:
        print(f"listenctl: no process with pid {args.pid}", file=sys.stderr)
        return 1
    except NotFound as e:
        print(f"listenctl: {e}", file=sys.stderr)
        return 1
    writer = None
    try:
        csv_file = open(args.csv, "w", newline="") if args.csv else None
    except OSError as e:
        print(f"listenctl: --csv {args.csv}: {e.strerror}", file=sys.stderr)
        return 2
    if csv_file:
        writer = csv.writer(csv_file)
        writer.writerow(["time", "elapsed_s", "pid", "rss_bytes", "cpu_percent"])
    samples: dict[int, list[tuple[float, float]]] = {p.pid: [] for p in processes}
    for p in processes:
        p.cpu_percent(None)  # prime the CPU counter
    started = time.monotonic()
    print(f"{'elapsed':>8} {'pid':>7} {'rss MiB':>9} {'cpu %':>6}", flush=True)
    n = 0
    try:
        while True:
            time.sleep(args.interval)
            n += 1
            elapsed = time.monotonic() - started
            for p in list(processes):
                try:
                    rss, cpu = p.memory_info().rss, p.cpu_percent(None)
                except psutil.NoSuchProcess:
                    print(f"{elapsed:8.1f} {p.pid:>7} exited", flush=True)
                    processes.remove(p)
                    continue
                samples[p.pid].append((elapsed, rss / MIB))
                print(f"{elapsed:8.1f} {p.pid:>7} {rss / MIB:9.1f} {cpu:6.1f}", flush=True)
                if writer and csv_file:
                    writer.writerow([f"{time.time():.3f}", f"{elapsed:.3f}", p.pid, rss, f"{cpu:.1f}"])
                    csv_file.flush()
            if not processes or (args.count and n >= args.count):
                break
    except KeyboardInterrupt:
        pass
    finally:
        if csv_file:
            csv_file.close()
    if args.plot:
        from .plot import Chart, Series

        colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
        chart = Chart(
            "listend RSS",
            "seconds",
            "RSS (MiB)",
            [
                Series(f"pid {pid}", [t for t, _ in s], [m for _, m in s], colors[i % len(colors)])
                for i, (pid, s) in enumerate(samples.items())
            ],
        )
        try:
            chart.save(args.plot)
        except OSError as e:  # the directory went away while sampling
            print(f"listenctl: --plot {args.plot}: {e.strerror}", file=sys.stderr)
            return 1
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0
