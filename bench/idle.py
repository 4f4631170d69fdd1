"""What idle costs, and what a Start after the models were released costs.

Usage: python bench/idle.py [--profile full|lightweight] [--out bench/results/idle.json]

The daemon runs on a private bus with a PulseAudio virtual microphone and
``[models] unload_after_s`` short enough to wait for. Measured from outside
(``psutil`` on the daemon's pid, D-Bus signals stamped here):

1. RSS idle with the models loaded, after one dictation (``beckett.wav``, real speech);
2. RSS once the models were released (``GetMemory`` says ``models_loaded`` false);
3. a *cold* Start: ``Start``, then the recording at once; time from the first spoken word to the first
   partial and to the first refined segment, against the same for a warm Start; the words of the two
   transcripts (nothing may be lost while the models load).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import norm_words, save_result, session_bus
from realspeech import real_speech, to_16k

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.pulse import PulseServer  # noqa: E402

UNLOAD_AFTER_S = 8


async def session(address: str, daemon_pid: int, wav: Path, pulse_env: dict[str, str], out: dict) -> None:
    import psutil
    from dbus_next import Message

    from listend.bus import BUS_NAME, INTERFACE, OBJECT_PATH, call_bus_daemon
    from listend.dbusio import MessageBus

    bus = await MessageBus(bus_address=address).connect()
    events: list[tuple[float, str, str]] = []

    def on(m) -> None:
        if m.member == "PartialText":
            events.append((time.monotonic(), "partial", m.body[1]))
        elif m.member == "SegmentRefined":
            events.append((time.monotonic(), "final", m.body[3]))

    bus.add_message_handler(on)
    await call_bus_daemon(bus, "AddMatch", "s", [f"type='signal',interface='{INTERFACE}',path='{OBJECT_PATH}'"])

    async def call(member: str):
        reply = await bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member=member))
        assert reply.message_type.name == "METHOD_RETURN", reply.body
        return reply.body

    async def memory() -> dict:
        return {k: v.value for k, v in (await call("GetMemory"))[0].items()}

    rss = psutil.Process(daemon_pid)

    async def dictate(label: str) -> None:
        events.clear()
        started = time.monotonic()
        await call("Start")
        play = time.monotonic()
        player = subprocess.Popen(["paplay", "--device=vsink", str(wav)], env=pulse_env)
        await asyncio.to_thread(player.wait)
        await asyncio.sleep(1.5)
        await call("Stop")
        first_partial = next((t for t, kind, _ in events if kind == "partial"), None)
        first_final = next((t for t, kind, _ in events if kind == "final"), None)
        out[label] = {
            "start_call_s": round(play - started, 3),
            "first_partial_after_play_s": round(first_partial - play, 3) if first_partial else None,
            "first_refined_after_play_s": round(first_final - play, 3) if first_final else None,
            "words": norm_words(" ".join(text for _, kind, text in events if kind == "final")),
        }

    deadline = time.monotonic() + 120
    while True:  # on the bus, models loaded
        reply = await bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member="GetMemory"))
        if reply.message_type.name == "METHOD_RETURN" and reply.body[0]["state"].value == "idle":
            break
        assert time.monotonic() < deadline, "listend did not come up"
        await asyncio.sleep(0.3)
    await dictate("warm")
    await asyncio.sleep(2)
    out["rss_idle_loaded_mib"] = round(rss.memory_info().rss / 2**20, 1)
    deadline = time.monotonic() + UNLOAD_AFTER_S + 60
    while (await memory())["models_loaded"]:
        assert time.monotonic() < deadline, "the models were not released"
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    out["rss_idle_released_mib"] = round(rss.memory_info().rss / 2**20, 1)
    await dictate("cold")
    mem = await memory()
    out["model_releases"], out["model_loads"] = mem["model_releases"], mem["model_loads"]
    out["peak_rss_mib"] = round(mem["peak_rss_bytes"] / 2**20, 1)  # the daemon's own high-water mark
    out["same_words"] = out["warm"]["words"] == out["cold"]["words"]
    bus.disconnect()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=("full", "lightweight"), default="full")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "idle.json")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wav = to_16k(next(f for f in real_speech() if f.name == "beckett.wav"), work)
        pulse = PulseServer(work / "pulse")
        address, bus_pid = session_bus()
        config = work / "config.toml"
        config.write_text(f'profile = "{args.profile}"\n[models]\nunload_after_s = {UNLOAD_AFTER_S}\n')
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=address, PULSE_SERVER=pulse.server)
        env["XDG_STATE_HOME"] = str(work / "state")
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "listend"), "--config", str(config)],
            env=env,
            stderr=open(work / "d.log", "w"),
        )
        out: dict = {"date": datetime.date.today().isoformat(), "profile": args.profile, "cpus": os.cpu_count()}
        try:
            asyncio.run(session(address, daemon.pid, wav, pulse.env, out))
        finally:
            daemon.terminate()
            daemon.wait(60)
            subprocess.run(["kill", bus_pid])
            pulse.close()
    for run in ("warm", "cold"):
        out[run]["words"] = len(out[run]["words"])
    save_result(args.out, args.profile, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
