"""Word-to-field lag: when each spoken word shows up in a real application, through the input method.

Usage::

    python bench/imelag.py                 # moonshine-voice's recordings, the full profile's defaults
    python bench/imelag.py --profile lightweight

One desktop for the whole run: Xvfb, a real ibus-daemon, a real GTK3 text view (Debian's PyGObject,
``GTK_IM_MODULE=ibus``), the daemon listening to a PulseAudio virtual microphone, ``listend-ime``.
Each recording is played into the microphone. The application reports every preedit change and every
change of its buffer with its own clock; listend's D-Bus signals are stamped by this script on the same
clock. Word end times come from faster-whisper's offline transcription of the file (as in
``realspeech.py``); for every spoken word:

- **visible**: the first moment the field shows it (buffer + preedit), minus when it was spoken;
- **committed**: the first moment the buffer holds it;
- **added by the input method**: the field's moment minus the moment the same word first reached the bus
  (``PartialText``/``SegmentRefined`` for visible, ``SegmentRefined`` for committed).

Writes ``bench/results/imelag.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import norm_words, save_result, session_bus
from realspeech import offline, parse_set, pct, reached, real_speech, to_16k

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.ibus import GtkField, IBusDaemon  # noqa: E402  (the tests' real desktop parts)
from tests.support.pulse import PulseServer  # noqa: E402
from tests.support.x11 import XServer  # noqa: E402

QUIET_S = 6.0  # a recording is done once nothing changed on the bus for this long


def first_reach(timeline: list[tuple[float, str]], reference: list[str]) -> dict[int, float]:
    """For each reference word count k, the first time the shown text had reached k words."""
    out: dict[int, float] = {}
    best = 0
    for t, shown in timeline:
        k = reached(norm_words(shown), reference)
        for i in range(best + 1, k + 1):
            out[i] = t
        best = max(best, k)
    return out


def newest_word_lags(timeline: list[tuple[float, str]], words: list[tuple[str, float]], since: float) -> list[float]:
    """As realspeech.py counts: each change is measured by the newest word it brought, not again for old ones."""
    reference = [w for w, _ in words]
    out, best = [], 0
    for t, shown in timeline:
        k = reached(norm_words(shown), reference)
        if k > best:
            best = k
            out.append(max(0.0, t - since - words[k - 1][1]))
    return out


def bus_timelines(events: list[tuple[float, str, int, str]], since: float) -> tuple[list, list]:
    """(visible, committed) timelines of what listend's signals carried after ``since``."""
    finals: dict[int, str] = {}
    visible, committed = [], []
    for t, kind, seg_id, text in events:
        if t < since:
            continue
        if kind == "final":
            finals[seg_id] = text
            shown = " ".join(finals[i] for i in sorted(finals))
            committed.append((t, shown))
        else:
            shown = " ".join(finals[i] for i in sorted(finals) if i < seg_id) + " " + text
        visible.append((t, shown))
    return visible, committed


def field_timelines(events: list[dict], since: float, until: float) -> tuple[list, list]:
    """(visible, committed) timelines of what the field showed in [since, until], after its text at ``since``."""
    base = ""
    for e in events:
        if e["t"] < since and e["kind"] == "text":
            base = e["text"]
    buffer, preedit = base, ""
    visible, committed = [], []
    for e in events:
        if not since <= e["t"] <= until:
            continue
        if e["kind"] == "text":
            buffer = e["text"]
            committed.append((e["t"], buffer[len(base) :]))
        elif e["kind"] == "preedit":
            preedit = e["text"]
        else:
            continue
        visible.append((e["t"], buffer[len(base) :] + " " + preedit))
    return visible, committed


async def record_bus(address: str, events: list, stop: asyncio.Event) -> None:
    from listend.bus import INTERFACE, OBJECT_PATH, call_bus_daemon
    from listend.dbusio import MessageBus

    bus = await MessageBus(bus_address=address).connect()

    def on(m) -> None:
        if m.member == "PartialText":
            events.append((time.time(), "partial", m.body[0], m.body[1]))
        elif m.member == "SegmentRefined":
            events.append((time.time(), "final", m.body[0], m.body[3]))

    bus.add_message_handler(on)
    await call_bus_daemon(bus, "AddMatch", "s", [f"type='signal',interface='{INTERFACE}',path='{OBJECT_PATH}'"])
    await stop.wait()
    bus.disconnect()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=("full", "lightweight"), default="full")
    p.add_argument("--label", default="defaults")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a setting for this run, e.g. decode.window_floor_s=0 (repeatable)",
    )
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "imelag.json")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = [to_16k(f, work) for f in real_speech()]
        references = {f: offline(f, "base", True)[1] for f in files}
        x = XServer(work / "x", with_tray=False)
        pulse = PulseServer(work / "pulse")
        address, bus_pid = session_bus()
        (work / "cfg" / "listend").mkdir(parents=True)
        lines = []
        for section, values in parse_set(args.set).items():
            lines += [f"[{section}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
        (work / "cfg" / "listend" / "config.toml").write_text("\n".join(lines) + "\n")
        env = dict(
            os.environ,
            DISPLAY=x.display,
            DBUS_SESSION_BUS_ADDRESS=address,
            PULSE_SERVER=pulse.server,
            XDG_CONFIG_HOME=str(work / "cfg"),
            XDG_STATE_HOME=str(work / "state"),
        )
        env.pop("WAYLAND_DISPLAY", None)
        ibus = IBusDaemon(work, env)
        field = GtkField(work, {**env, "GTK_IM_MODULE": "ibus"})
        profile = ["--lightweight"] if args.profile == "lightweight" else []
        daemon = subprocess.Popen(
            [str(bin_dir / "listend"), *profile, "--start"], env=env, stderr=open(work / "d.log", "w")
        )
        ime = subprocess.Popen([str(bin_dir / "listend-ime")], env=env, stderr=open(work / "ime.log", "w"))
        events: list[tuple[float, str, int, str]] = []
        windows: list[tuple[Path, float, float]] = []

        async def run() -> None:
            stop = asyncio.Event()
            recorder = asyncio.create_task(record_bus(address, events, stop))
            deadline = time.monotonic() + 120
            while ibus.engine() != "listend":
                assert time.monotonic() < deadline, (work / "d.log").read_text() + (work / "ime.log").read_text()
                await asyncio.sleep(0.3)
            await asyncio.sleep(2.0)  # the models are loaded and the microphone delivers
            for f in files:
                print(f"imelag: {args.profile}: {f.name} ...", file=sys.stderr, flush=True)
                started = time.time()
                player = subprocess.Popen(["paplay", "--device=vsink", str(f)], env=pulse.env)
                await asyncio.to_thread(player.wait)
                while time.time() - max([started] + [t for t, *_ in events]) < QUIET_S:
                    await asyncio.sleep(0.2)
                windows.append((f, started, time.time()))
            stop.set()
            await recorder

        try:
            asyncio.run(run())
            field_events = field.events()
        finally:
            for proc in (ime, daemon):
                proc.terminate()
                proc.wait(60)
            field.close()
            ibus.close()
            subprocess.run(["kill", bus_pid])
            pulse.close()
            x.close()

    names = ("visible", "committed", "bus_visible", "bus_committed", "added_visible", "added_committed")
    lag: dict[str, list[float]] = {name: [] for name in names}
    for f, since, until in windows:
        words = [w for w, _ in references[f]]
        on_bus = bus_timelines(events, since)
        in_field = field_timelines(field_events, since, until)
        lag["bus_visible"] += newest_word_lags(on_bus[0], references[f], since)
        lag["bus_committed"] += newest_word_lags(on_bus[1], references[f], since)
        lag["visible"] += newest_word_lags(in_field[0], references[f], since)
        lag["committed"] += newest_word_lags(in_field[1], references[f], since)
        for bus_timeline, field_timeline, name in zip(on_bus, in_field, names[4:], strict=True):
            reached_on_bus = first_reach(bus_timeline, words)
            for k, t in first_reach(field_timeline, words).items():
                if k in reached_on_bus:
                    lag[name].append(t - reached_on_bus[k])
    summary = {
        "date": datetime.date.today().isoformat(),
        "profile": args.profile,
        "settings": parse_set(args.set),
        "cpus": os.cpu_count(),
        **{
            f"{name}_s": {"p50": pct(values, 50), "p95": pct(values, 95), "max": pct(values, 100), "n": len(values)}
            for name, values in lag.items()
        },
    }
    save_result(args.out, f"{args.profile}/{args.label}", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
