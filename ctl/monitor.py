"""``listenctl monitor``: watch listend's memory and CPU from outside the process.

Works when the daemon does not answer on the bus (that is when it is most
needed): processes are found with psutil, not over D-Bus.
"""

from __future__ import annotations

import csv
import os
import sys
import time

import psutil

MB = 1024 * 1024


def find_listend_processes() -> list[psutil.Process]:
    """Running listend daemons (not transcribe runs, not this process)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.pid == os.getpid() or not cmd:
            continue
        names = [os.path.basename(c) for c in cmd[:3]]
        is_entry = "listend" in names or any(c in ("listend.cli", "daemon.cli") for c in cmd[:3])
        if is_entry and "transcribe" not in cmd:
            found.append(p)
    return found


def run_monitor(args) -> int:
    if args.interval <= 0 or args.count < 0:
        print("listenctl: --interval must be positive and --count non-negative", file=sys.stderr)
        return 2
    try:
        processes = [psutil.Process(args.pid)] if args.pid else find_listend_processes()
    except psutil.NoSuchProcess:
        print(f"listenctl: no process with pid {args.pid}", file=sys.stderr)
        return 1
    if not processes:
        print("listenctl: no listend process found (give a PID)", file=sys.stderr)
        return 1
    writer = None
    csv_file = open(args.csv, "w", newline="") if args.csv else None
    if csv_file:
        writer = csv.writer(csv_file)
        writer.writerow(["time", "elapsed_s", "pid", "rss_bytes", "cpu_percent"])
    samples: dict[int, list[tuple[float, float]]] = {p.pid: [] for p in processes}
    for p in processes:
        p.cpu_percent(None)  # prime the CPU counter
    started = time.monotonic()
    print(f"{'elapsed':>8} {'pid':>7} {'rss MB':>9} {'cpu %':>6}", flush=True)
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
                samples[p.pid].append((elapsed, rss / MB))
                print(f"{elapsed:8.1f} {p.pid:>7} {rss / MB:9.1f} {cpu:6.1f}", flush=True)
                if writer:
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
        chart = Chart("listend RSS", "seconds", "RSS (MB)", [
            Series(f"pid {pid}", [t for t, _ in s], [m for _, m in s], colors[i % len(colors)])
            for i, (pid, s) in enumerate(samples.items())])
        chart.save(args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0
