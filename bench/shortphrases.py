"""Short utterances (commands, names, one-line chat) and real speech: the refine window before and after.

Usage::

    python bench/shortphrases.py                      # both profiles, before and after, in the same run
    python bench/shortphrases.py --profile full --no-lag

Every configuration is measured in the same run, one after another, so a busy
machine weighs on all of them alike (compare ratios, not absolute seconds
between days):

* ``before``: ``decode.window_floor_s = 0``, faster-whisper's ``transcribe``
  with its 30 s window, as listend decoded until issue 25;
* ``after``: the defaults (CTranslate2 window of ``max(10 s, 1.6 x speech)``,
  the session's preceding speech as context);
* ``after, no prompt``: the defaults with ``decode.prompt_chars = 0``
  (whether the text prompt is still worth having), file pass only.

Files: espeak-ng sets of short utterances separated by 1.2 s of silence (what
the segmenter cuts into one utterance each): commands between dictated
sentences (en-us), chat lines with names and commands (en-gb-x-rp, a second
voice), and the real human speech of the ``moonshine-voice`` wheel
(``bench/realspeech.py`` fetches it). For each file and configuration:

* ``file``: the pipeline over the file as fast as it goes (what ``listend
  transcribe`` does): WER against offline faster-whisper over the whole file
  (Whisper base, beam 5, faster-whisper's defaults) and, for the espeak-ng
  sets, against the script; commands said alone that came out as exactly
  the phrase;
* ``live``: the same file paced in real time (``FileSource(realtime=True)``):
  partial and refined lag per word as ``bench/realspeech.py`` measures it.

Writes ``bench/results/shortphrases.json`` and ``bench/results/shortphrases.png``
(refined lag, before and after, full profile).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import norm_words, wer
from realspeech import lags, offline, pct, real_speech, replay, to_16k

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.audio import concat, silence, speak  # noqa: E402  (the bench runs from a checkout)

GAP_S = 1.2
# (text, is a command said alone)
COMMANDS_EN_US = [
    ("Please send the quarterly report to the finance team by Friday.", False),
    ("new line", True),
    ("The weather today is sunny with a light breeze from the west.", False),
    ("scratch that", True),
    ("Remember to buy milk, bread and eggs on the way home.", False),
    ("question mark", True),
    ("new paragraph", True),
    ("Our meeting with the design team starts at three o'clock.", False),
    ("period", True),
    ("stop listening", True),
]
CHAT_EN_GB = [
    ("Hi Priya, are you free at noon?", False),
    ("comma", True),
    ("Thanks Oleksandr, see you tomorrow.", False),
    ("delete that", True),
    ("Send the slides to Siobhan.", False),
    ("exclamation mark", True),
    ("Call Mr Nguyen back please.", False),
    ("colon", True),
    ("Sounds good to me.", False),
    ("new line", True),
]
SETS = {"commands_en_us": ("en-us", COMMANDS_EN_US), "chat_en_gb": ("en-gb-x-rp", CHAT_EN_GB)}
CONFIGS = {
    "before": {"decode": {"window_floor_s": 0}},
    "after": {},
    "after_no_prompt": {"decode": {"prompt_chars": 0}},
}
MODEL_OF_PROFILE = {"full": "base", "lightweight": "tiny.en"}


def build_set(name: str, work: Path) -> tuple[Path, str, list[str]]:
    """The set's WAV, its script, and its commands said alone."""
    voice, lines = SETS[name]
    gap = silence(work / "gap.wav", GAP_S)
    parts = [silence(work / "lead.wav", 0.5)]
    for i, (text, _) in enumerate(lines):
        parts += [speak(work / f"{name}-{i}.wav", text, voice=voice), gap]
    path = concat(work / f"{name}.wav", *parts)
    return path, " ".join(t for t, _ in lines), [t for t, alone in lines if alone]


def transcribe(path: Path, profile: str, overrides: dict) -> tuple[list[str], float]:
    """The pipeline over ``path`` as fast as it goes (``listend transcribe``): the refined segments, wall seconds."""
    from listend.config import build_settings
    from listend.engine import Engine
    from listend.events import Refined
    from listend.sources import FileSource

    engine = Engine(build_settings(profile, overrides), overrides)
    texts: dict[int, str] = {}
    engine.subscribe(lambda e: texts.__setitem__(e.id, e.text) if isinstance(e, Refined) else None)
    engine.load()
    started = time.monotonic()
    try:
        engine.start(FileSource(str(path)))
        engine.wait_source_done()
        engine.wait_drained(None)
    finally:
        engine.close(None)
    return [texts[i] for i in sorted(texts)], time.monotonic() - started


def in_child(kind: str, path: Path, profile: str, overrides: dict) -> dict:
    """One pass in a process of its own: every engine starts with the same memory (the watchdog's limits)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), profile, json.dumps(overrides)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def child(kind: str, path: Path, profile: str, overrides: dict) -> dict:
    if kind == "file":
        import resource

        segments, seconds = transcribe(path, profile, overrides)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return {"segments": segments, "seconds": seconds, "peak_rss_mib": round(peak)}
    run = replay(path, profile, overrides)
    return {"started": run["started"], "events": run["events"]}


def commands_right(segments: list[str], commands: list[str]) -> int:
    """Commands said alone that are a segment of their own, exactly (case and punctuation dropped)."""
    said = [" ".join(norm_words(s)) for s in segments]
    return sum(1 for c in set(commands) if said.count(c) >= commands.count(c))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=("full", "lightweight", "both"), default="both")
    p.add_argument("--no-lag", action="store_true", help="skip the real-time passes (accuracy only)")
    p.add_argument("--real", type=int, default=3, help="how many of the real recordings (0-3)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "shortphrases.json")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, path, profile, overrides = args.child
        print(json.dumps(child(kind, Path(path), profile, json.loads(overrides))))
        return 0
    profiles = ("full", "lightweight") if args.profile == "both" else (args.profile,)
    results: dict = {
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "load_at_start": os.getloadavg(),
        "profiles": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files: dict[str, tuple[Path, str | None, list[str]]] = {}
        for name in SETS:
            files[name] = build_set(name, work)
        for rec in real_speech()[: args.real]:
            files[rec.stem] = (to_16k(rec, work), None, [])
        references = {name: offline(f, "base", True) for name, (f, _, _) in files.items()}
        for profile in profiles:
            model = MODEL_OF_PROFILE[profile]
            offline_text = {
                n: (references[n][0] if model == "base" else offline(f, model, False)[0])
                for n, (f, _, _) in files.items()
            }
            out: dict = {"offline": {}, "configs": {}}
            for n, (_, script, _) in files.items():
                out["offline"][n] = {"wer_vs_script": round(wer(script, offline_text[n]), 4) if script else None}
            per_file: dict[str, dict] = {label: {} for label in CONFIGS}
            partial: dict[str, list[float]] = {label: [] for label in CONFIGS}
            final: dict[str, list[float]] = {label: [] for label in CONFIGS}
            # File by file, every configuration in turn: the machine's load weighs on each alike.
            for n, (f, script, commands) in files.items():
                for label, overrides in CONFIGS.items():
                    print(f"bench: {profile} {label} {n} ...", file=sys.stderr, flush=True)
                    done = in_child("file", f, profile, overrides)
                    segments, seconds = done["segments"], done["seconds"]
                    text = " ".join(segments)
                    row = {
                        "wer_vs_offline": round(wer(offline_text[n], text), 4),
                        "wall_s": round(seconds, 2),
                        "peak_rss_mib": done["peak_rss_mib"],  # the whole process: engine, models, VAD
                    }
                    if script:
                        row["wer_vs_script"] = round(wer(script, text), 4)
                        row["commands_right"] = f"{commands_right(segments, commands)}/{len(set(commands))}"
                        row["segments"] = segments
                    if not args.no_lag and label != "after_no_prompt":
                        measured = lags(in_child("live", f, profile, overrides), references[n][1])
                        partial[label] += measured["lags"]["partial"]
                        final[label] += measured["lags"]["final"]
                        row["live_equals_file"] = " ".join(norm_words(measured["final_text"])) == " ".join(
                            norm_words(text)
                        )
                    per_file[label][n] = row
            for label, overrides in CONFIGS.items():
                out["configs"][label] = {
                    "settings": overrides,
                    "files": per_file[label],
                    "partial_lag_s": {
                        "p50": pct(partial[label], 50),
                        "p95": pct(partial[label], 95),
                        "n": len(partial[label]),
                    },
                    "refined_lag_s": {
                        "p50": pct(final[label], 50),
                        "p95": pct(final[label], 95),
                        "n": len(final[label]),
                    },
                    "refined_lags": [round(x, 3) for x in final[label]],
                }
                print(json.dumps({profile: {label: out["configs"][label]["refined_lag_s"]}}), flush=True)
            results["profiles"][profile] = out
    results["load_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    plot(results, args.out.with_suffix(".png"))
    return 0


def plot(results: dict, path: Path) -> None:
    """Refined lag of each event's newest word, sorted (a CDF on its side), before and after, per profile."""
    from listend_ctl.plot import Chart, Series

    colours = {
        "before": "#d62728",
        "after": "#1f77b4",
        "before (lightweight)": "#ff9896",
        "after (lightweight)": "#aec7e8",
    }
    chart = Chart("Refined lag, sorted (same run, busy 2-core machine)", "share of refined events", "lag (s)")
    for profile, out in results["profiles"].items():
        for label in ("before", "after"):
            lag = sorted(out["configs"].get(label, {}).get("refined_lags", []))
            if lag:
                xs = [(i + 1) / len(lag) for i in range(len(lag))]
                dash = "" if profile == "full" else " (lightweight)"
                chart.series.append(Series(f"{label}{dash}", xs, lag, colours[label + dash]))
    if chart.series:
        chart.save(str(path))


if __name__ == "__main__":
    sys.exit(main())
