"""Latency and accuracy on real human speech, per word, the way a user feels it.

Usage::

    python bench/realspeech.py                       # moonshine-voice's recordings, both profiles
    python bench/realspeech.py --audio a.wav b.flac  # any recordings
    python bench/realspeech.py --profile full --set decode.refine_beam_size=2 --label beam2

Each file is replayed in real time through the same ``Engine`` the daemon
runs (``FileSource(realtime=True)`` paces it like a microphone). Every
``Partial`` and ``Refined`` event is stamped when it leaves the engine. The
word end times come from faster-whisper's offline transcription of the same
file with ``word_timestamps`` (base model); for each event, the newest
reference word its text has reached (aligned with difflib on normalised
words) gives the lag: event time minus the moment that word was spoken.
Accuracy without references: WER of the streamed final text against the
offline transcript of the *same* model on the same file (what streaming
loses). Where the read text is public domain (``two_cities``), also WER
against it, for the streamed and the offline transcript alike.

The default recordings are read from the ``moonshine-voice`` wheel (real
human speech: ``two_cities.wav`` 44 s, ``endgame_nagg_nell.wav`` 28 s,
``beckett.wav`` 10 s), downloaded with pip into the cache at bench time, never
committed. Writes ``bench/results/realspeech.json``.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
from common import cache_dir, norm_words, session_bus, wer

SR = 16_000
ASSETS = ("two_cities.wav", "endgame_nagg_nell.wav", "beckett.wav")
MODEL_OF_PROFILE = {"full": "base", "lightweight": "tiny.en"}
# What the speakers read, where it is public domain (Dickens, 1859). The offline
# transcript is no ground truth: offline base drops a whole phrase of this one.
REFERENCES = {
    "two_cities": "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of "
    "Light, it was the season of Darkness, it was the spring of hope, it was the winter of despair, "
    "we had everything before us, we had nothing before us, we were all going direct to Heaven, we "
    "were all going direct the other way - in short, the period was so far like the present period, "
    "that some of its noisiest authorities insisted on its being received, for good or for evil, in "
    "the superlative degree of comparison only.",
}


def real_speech() -> list[Path]:
    """moonshine-voice's recordings, fetched once with pip (its wheel is MIT; the files stay in the cache)."""
    out = cache_dir() / "moonshine-voice"
    wanted = [out / name for name in ASSETS]
    if all(p.exists() for p in wanted):
        return wanted
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "moonshine-voice"], check=True
        )
        wheel = next(Path(tmp).glob("moonshine_voice-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for name in ASSETS:
                (out / name).write_bytes(z.read(f"moonshine_voice/assets/{name}"))
            licence = [n for n in z.namelist() if n.endswith("LICENSE")]
            if licence:
                (out / "LICENSE").write_bytes(z.read(licence[0]))
    return wanted


def to_16k(path: Path, work: Path) -> Path:
    out = work / (path.stem + ".16k.wav")
    # -R: sox dithers with fresh random noise on every run unless told to repeat
    # itself; that alone changed a word or two of the transcripts between runs.
    subprocess.run(["sox", "-R", str(path), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    return out


def offline(path: Path, model_name: str, word_times: bool) -> tuple[str, list[tuple[str, float]]]:
    """Offline transcription in a child process (its models must not count against the engine's RSS)."""
    out = subprocess.run(
        [sys.executable, __file__, "--offline", str(path), model_name, str(int(word_times))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    text, words = json.loads(out.strip().splitlines()[-1])
    return text, [tuple(w) for w in words]


def _offline_here(path: Path, model_name: str, word_times: bool) -> tuple[str, list[tuple[str, float]]]:
    from faster_whisper import WhisperModel

    from listend.models import ModelSpec, load_whisper

    model: WhisperModel = load_whisper(ModelSpec(model_name, "cpu", "int8", 0))
    segments, _ = model.transcribe(str(path), language="en", beam_size=5, word_timestamps=word_times, vad_filter=False)
    text, words = [], []
    for seg in segments:
        text.append(seg.text.strip())
        for w in seg.words or []:
            for token in norm_words(w.word):
                words.append((token, w.end))
    return " ".join(text), words


def reached(hypothesis: list[str], reference: list[str]) -> int:
    """Index (exclusive) of the last reference word the hypothesis has matched."""
    matcher = difflib.SequenceMatcher(a=reference, b=hypothesis, autojunk=False)
    end = 0
    for block in matcher.get_matching_blocks():
        if block.size:
            end = block.a + block.size
    return end


def replay(path: Path, profile: str, overrides: dict) -> dict:
    """Stream ``path`` in real time through an Engine; return the timed events and final text."""
    from listend.config import build_settings
    from listend.engine import Engine
    from listend.events import Partial, Refined
    from listend.sources import FileSource

    engine = Engine(build_settings(profile, overrides), overrides)
    events: list[tuple[float, str, int, str]] = []  # (monotonic, kind, id, text)
    lock = threading.Lock()

    def on_event(event) -> None:
        if isinstance(event, (Partial, Refined)):
            with lock:
                events.append(
                    (time.monotonic(), "partial" if isinstance(event, Partial) else "final", event.id, event.text)
                )

    engine.subscribe(on_event)
    engine.load()
    source = FileSource(str(path), realtime=True)
    try:
        engine.start(source)
        engine.wait_source_done()
        engine.wait_drained(None)
    finally:
        engine.close(None)
    return {"started": source.started_at, "events": events}


def replay_mic(path: Path, profile: str, settings: list[str], work: Path) -> dict:
    """Play ``path`` into a PulseAudio virtual microphone; the daemon listens; events come from D-Bus."""
    import asyncio

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from dbus_next import Message

    from listend.bus import BUS_NAME, INTERFACE, OBJECT_PATH, call_bus_daemon
    from listend.dbusio import MessageBus

    # The tests' virtual microphone: a null sink and module-virtual-source.
    from tests.support.pulse import PulseServer

    root = Path(tempfile.mkdtemp(dir=work))
    pulse = PulseServer(root / "pulse")
    address, bus_pid = session_bus()
    config = root / "config.toml"
    lines = [f'profile = "{profile}"']
    for section, values in parse_set(settings).items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    config.write_text("\n".join(lines) + "\n")
    env = dict(
        os.environ,
        DBUS_SESSION_BUS_ADDRESS=address,
        PULSE_SERVER=pulse.server,
        XDG_STATE_HOME=str(root / "state"),
        HF_HUB_OFFLINE="1",
    )
    listend = Path(sys.executable).parent / "listend"
    daemon = subprocess.Popen(
        [str(listend), "--config", str(config), "--start"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "d.log", "w"),
    )
    events: list[tuple[float, str, int, str]] = []

    async def listen() -> float:
        bus = await MessageBus(bus_address=address).connect()
        bus.add_message_handler(
            lambda m: (
                events.append(
                    (
                        time.monotonic(),
                        "partial" if m.member == "PartialText" else "final",
                        m.body[0],
                        m.body[1] if m.member == "PartialText" else m.body[3],
                    )
                )
                if m.member in ("PartialText", "SegmentRefined")
                else None
            )
        )
        await call_bus_daemon(bus, "AddMatch", "s", [f"type='signal',interface='{INTERFACE}',path='{OBJECT_PATH}'"])
        deadline = time.monotonic() + 120
        while True:  # ready, and the microphone delivers
            reply = await bus.call(
                Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member="GetMemory")
            )
            if reply.message_type.name == "METHOD_RETURN" and reply.body[0]["audio_seconds"].value > 1.0:
                break
            assert time.monotonic() < deadline, (root / "d.log").read_text()
            await asyncio.sleep(0.2)
        started = time.monotonic()
        player = subprocess.Popen(["paplay", "--device=vsink", str(path)], env=pulse.env)
        await asyncio.to_thread(player.wait)
        quiet = time.monotonic()
        while time.monotonic() - max([quiet] + [t for t, *_ in events]) < 8.0:  # until 8 s without events
            await asyncio.sleep(0.2)
        bus.disconnect()
        return started

    try:
        started = asyncio.run(listen())
    finally:
        daemon.terminate()
        daemon.wait(60)
        subprocess.run(["kill", bus_pid])
        pulse.close()
    return {"started": started, "events": events}


def lags(run: dict, reference: list[tuple[str, float]]) -> dict:
    ref_words = [w for w, _ in reference]
    finals: dict[int, str] = {}
    out = {"partial": [], "final": []}
    best = {"partial": 0, "final": 0}
    for t, kind, seg_id, text in run["events"]:
        if kind == "final":
            finals[seg_id] = text
            shown = " ".join(finals[i] for i in sorted(finals))
        else:
            shown = " ".join(finals[i] for i in sorted(finals) if i < seg_id) + " " + text
        k = reached(norm_words(shown), ref_words)
        # Each event is measured by the newest word it brought (not again for words already shown).
        if k > best[kind]:
            best[kind] = k
            spoken = run["started"] + reference[k - 1][1]
            out[kind].append(max(0.0, t - spoken))
        if kind == "final":  # final text also counts as shown for the partial line
            best["partial"] = max(best["partial"], k)
    final_text = " ".join(finals[i] for i in sorted(finals))
    return {"lags": out, "final_text": final_text}


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def parse_set(values: list[str]) -> dict:
    out: dict[str, dict] = {}
    for item in values:
        key, _, raw = item.partition("=")
        section, name = key.split(".")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare word such as tiny.en is a string
        out.setdefault(section, {})[name] = value
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--audio", nargs="+", type=Path, help="recordings (default: moonshine-voice's real speech)")
    p.add_argument("--profile", choices=("full", "lightweight", "both"), default="both")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a setting for this run, e.g. decode.refine_beam_size=2 (repeatable)",
    )
    p.add_argument("--label", default="defaults", help="name of this configuration in the results")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "realspeech.json")
    p.add_argument(
        "--path",
        choices=("file", "mic", "both"),
        default="both",
        help="file: FileSource paced in real time; mic: the daemon on a PulseAudio virtual "
        "microphone, paplay speaking into it, events taken from D-Bus (default both)",
    )
    p.add_argument("--keep-text", action="store_true", help="also store the streamed and offline transcripts")
    p.add_argument("--offline", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.offline:
        path, model, word_times = args.offline
        print(json.dumps(_offline_here(Path(path), model, word_times == "1")))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    files = args.audio or real_speech()
    overrides = parse_set(args.set)
    profiles = ("full", "lightweight") if args.profile == "both" else (args.profile,)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepared = [to_16k(f, work) for f in files]
        references = {f: offline(f, "base", True) for f in prepared}
        paths = ("file", "mic") if args.path == "both" else (args.path,)
        for profile, path_kind in [(p_, k) for p_ in profiles for k in paths]:
            model = MODEL_OF_PROFILE[profile]
            offline_text = {f: (references[f][0] if model == "base" else offline(f, model, False)[0]) for f in prepared}
            partial, final, per_file = [], [], {}
            for f in prepared:
                print(f"bench: {profile} {path_kind} {args.label}: {f.name} ...", file=sys.stderr, flush=True)
                run = replay(f, profile, overrides) if path_kind == "file" else replay_mic(f, profile, args.set, work)
                measured = lags(run, references[f][1])
                partial += measured["lags"]["partial"]
                final += measured["lags"]["final"]
                name = f.name.replace(".16k.wav", "")
                per_file[name] = {
                    "wer_vs_offline_same_model": round(wer(offline_text[f], measured["final_text"]), 4),
                    "final_lags_s": [round(x, 2) for x in measured["lags"]["final"]],
                }
                if name in REFERENCES:
                    per_file[name]["wer_vs_reference"] = round(wer(REFERENCES[name], measured["final_text"]), 4)
                    per_file[name]["offline_wer_vs_reference"] = round(wer(REFERENCES[name], offline_text[f]), 4)
                if args.keep_text:  # off by default: the recordings' texts are not ours to republish
                    per_file[name].update(final_text=measured["final_text"], offline_text=offline_text[f])
            summary = {
                "date": datetime.date.today().isoformat(),
                "profile": profile,
                "path": path_kind,
                "settings": overrides,
                "partial_lag_s": {
                    "p50": pct(partial, 50),
                    "p95": pct(partial, 95),
                    "max": pct(partial, 100),
                    "n": len(partial),
                },
                "final_lag_s": {"p50": pct(final, 50), "p95": pct(final, 95), "max": pct(final, 100), "n": len(final)},
                "wer_vs_offline_same_model": {k: v["wer_vs_offline_same_model"] for k, v in per_file.items()},
                "files": per_file,
                "cpus": os.cpu_count(),
            }
            results[f"{profile}/{path_kind}/{args.label}"] = summary
            print(
                json.dumps(
                    {
                        k: summary[k]
                        for k in ("profile", "path", "partial_lag_s", "final_lag_s", "wer_vs_offline_same_model")
                    }
                ),
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
