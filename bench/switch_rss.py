"""Idle RSS after profile switches under load, with and without listend's allocator setting.

Usage: python bench/switch_rss.py [--switches N] [--out bench/results/switch_rss.json]

Each run is a fresh process: the full profile transcribes a looped file in
real time while the profile flips lightweight <-> full N times; then the
pipeline drains, memory is released (gc + malloc_trim) and RSS is read.
``LISTEND_MALLOC_DEFAULTS=1`` leaves glibc's dynamic mmap threshold alone
(the behaviour before listend pinned it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SPEECH = "Please send the quarterly report to the finance team by Friday."


def child(switches: int, wav: str) -> int:
    import psutil

    from listend.config import build_settings
    from listend.engine import Engine
    from listend.sources import FileSource

    engine = Engine(build_settings("full"))
    engine.load()
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            engine.start(FileSource(wav, realtime=True))
            engine.wait_source_done()
            engine.stop(None)

    feeder = threading.Thread(target=feed)
    feeder.start()
    time.sleep(3)
    for _ in range(switches):
        engine.set_profile("lightweight")
        time.sleep(1)
        engine.set_profile("full")
        time.sleep(1)
    stop.set()
    feeder.join()
    engine.wait_drained(None)
    time.sleep(1)
    engine.memory.release()
    rss = psutil.Process().memory_info().rss
    engine.close(5)
    return rss


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--switches", type=int, default=20)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "switch_rss.json"))
    p.add_argument("--child", nargs=2, metavar=("SWITCHES", "WAV"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(child(int(args.child[0]), args.child[1]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        raw, wav = Path(tmp) / "raw.wav", Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), SPEECH], check=True)
        subprocess.run(["sox", "-R", *[str(raw)] * 6, "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True)
        results = {}
        for label, env in (("pinned", {}), ("glibc_defaults", {"LISTEND_MALLOC_DEFAULTS": "1"})):
            for n in (0, args.switches):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(n), str(wav)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={**os.environ, **env, "HF_HUB_OFFLINE": "1"},
                )
                rss = int(out.stdout.strip().splitlines()[-1])
                results[f"{label}_{n}_switches_mib"] = round(rss / 2**20, 1)
                print(f"{label:15s} {n:3d} switches: idle RSS {rss / 2**20:.0f} MiB", file=sys.stderr)
    results.update(date=datetime.date.today().isoformat(), switches=args.switches, cpus=os.cpu_count())
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
