#!/usr/bin/env python3
"""listend benchmarks: latency, throughput, memory soak, accuracy, idle cost, and the old design's baseline.

    python bench/run.py            # the full run (hours of audio; see docs/benchmarks.md)
    python bench/run.py --quick    # about a minute; CI runs it so the tool keeps working

Each scenario runs in its own process (clean RSS) through the same Engine the
daemon runs. Writes ``<out>/results.json`` and ``<out>/rss.png`` (RSS against
audio time, both profiles and the old design, with the watchdog thresholds).
Exits non-zero only on errors, never on a slow figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import wer as common_wer

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SR = 16_000
MB = 1024 * 1024  # MiB: every size here is 2**20 bytes (JSON keys keep their _mb names)
SENTENCES = [
    "Please send the quarterly report to the finance team by Friday.",
    "The weather today is sunny with a light breeze from the west.",
    "Remember to buy milk, bread and eggs on the way home.",
    "Our meeting with the design team starts at three o'clock.",
    "The library will be closed on Monday for the public holiday.",
    "Please call me back when you have finished reading the document.",
    "The train to the airport leaves every twenty minutes.",
    "She planted tomatoes and basil in the garden last spring.",
]
TARGETS = {
    "partial_p50_s": 0.5,
    "partial_p95_s": 1.0,
    "refined_p50_s": 1.5,
    "refined_p95_s": 3.0,
    "peak_rss_mb_lightweight": 300,
    "peak_rss_mb_full": 600,
    "growth_mb_per_hour": 1.0,
    "idle_cpu_percent": 2.0,
    "wer_gap_points": 1.0,
}


# -- audio -----------------------------------------------------------------------


def make_corpus(directory: Path, sentences: list[str]) -> tuple[Path, list[str]]:
    """espeak-ng sentences with pauses, as one 16 kHz WAV, and the reference texts."""
    parts = []
    for i, text in enumerate(sentences):
        raw = directory / f"s{i}.raw.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True)
        out = directory / f"s{i}.wav"
        subprocess.run(
            [
                "sox",
                "-R",
                str(raw),
                "-r",
                "16000",
                "-c",
                "1",
                "-b",
                "16",
                str(out),
                "pad",
                "0.3",
                str(0.8 + (i % 3) * 0.7),
            ],
            check=True,
        )
        parts.append(str(out))
    corpus = directory / "corpus.wav"
    subprocess.run(["sox", *parts, str(corpus)], check=True)
    return corpus, sentences


def load_wav(path: Path) -> np.ndarray:
    import wave

    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768


class LoopSource:
    """Replays one clip (speech + silence) over and over, as fast as the pipeline takes it."""

    can_wait = True

    def __init__(self, audio: np.ndarray, seconds: float):
        self.audio = audio
        self.total = int(seconds * SR)
        self.description = f"loop of {len(audio) / SR:.1f} s clip, {seconds / 3600:.2f} h"
        self.delivered = 0
        self._stop = threading.Event()
        self._done = threading.Event()

    def start(self, ring) -> None:
        threading.Thread(target=self._run, args=(ring,), daemon=True).start()

    def _run(self, ring) -> None:
        pos = 0
        while self.delivered < self.total and not self._stop.is_set():
            n = min(ring.free, len(self.audio) - pos, self.total - self.delivered, SR)
            if n == 0:
                time.sleep(0.002)
                continue
            ring.write(self.audio[pos : pos + n])
            pos = (pos + n) % len(self.audio)
            self.delivered += n
        self._done.set()

    def stop(self) -> None:
        self._stop.set()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    error = None
    overflows = 0
    lost_samples = 0


# -- scenarios (each runs in a child process) ----------------------------------------


def _engine(profile: str):
    from listend.config import build_settings
    from listend.engine import Engine

    engine = Engine(build_settings(profile))
    engine.load()
    return engine


def scenario_latency(profile: str, corpus: Path, repeats: int) -> dict:
    """Real-time pacing: how long after capture partial and refined text appear."""
    from listend.events import Partial, Refined
    from listend.sources import FileSource

    engine = _engine(profile)
    pad = engine.settings.vad.speech_pad_ms / 1000
    partial_lags, refined_lags, finals = [], [], []
    source_box = {}

    def on_event(e):
        now = time.monotonic()
        src = source_box.get("source")
        if src is None:
            return
        if isinstance(e, Partial) and e.text:
            partial_lags.append(now - (src.started_at + e.audio_end))
        elif isinstance(e, Refined):
            refined_lags.append(now - (src.started_at + e.end - pad))
            finals.append(e)

    engine.subscribe(on_event)
    texts = []
    for _ in range(repeats):
        finals.clear()
        source = FileSource(str(corpus), realtime=True)
        source_box["source"] = source
        engine.start(source)
        engine.wait_source_done()
        engine.wait_drained(None)
        texts.append((" ".join(f.text for f in finals), " ".join(f.live_text for f in finals)))
    engine.close()
    return {"partial_lags": partial_lags, "refined_lags": refined_lags, "texts": texts}


def scenario_soak(profile: str, corpus: Path, hours: float, sample_every_s: float) -> dict:
    """As fast as possible over hours of looped audio; RSS against audio time."""
    import psutil

    engine = _engine(profile)
    proc = psutil.Process()
    source = LoopSource(load_wav(corpus), hours * 3600)
    samples = []
    cpu0, t0 = proc.cpu_times(), time.monotonic()
    engine.start(source)
    next_at = 0.0
    while not engine.wait_source_done(0.2):
        audio_s = engine.stats().capture.audio_seconds
        if audio_s >= next_at:
            samples.append((audio_s, proc.memory_info().rss))
            next_at = audio_s + sample_every_s
    engine.wait_drained(None)
    wall = time.monotonic() - t0
    cpu1 = proc.cpu_times()
    stats = engine.stats().flat()
    samples.append((stats["audio_seconds"], proc.memory_info().rss))
    engine.close()
    return {
        "samples": samples,
        "wall_s": wall,
        "audio_s": stats["audio_seconds"],
        "cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "stats": stats,
    }


def scenario_idle(profile: str, seconds: float, directory: Path) -> dict:
    """CPU use while listening (real-time pacing) to silence."""
    import psutil

    from listend.sources import FileSource

    silence = directory / f"silence-{int(seconds)}.wav"
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            str(silence),
            "synth",
            str(seconds),
            "whitenoise",
            "vol",
            "0.0005",
        ],
        check=True,
    )  # a quiet room, not digital zero
    engine = _engine(profile)
    proc = psutil.Process()
    time.sleep(1)
    source = FileSource(str(silence), realtime=True)
    cpu0, t0 = proc.cpu_times(), time.monotonic()
    engine.start(source)
    engine.wait_source_done()
    cpu1, wall = proc.cpu_times(), time.monotonic() - t0
    engine.close()
    return {"cpu_percent": 100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / wall, "wall_s": wall}


def scenario_offline(model: str, corpus: Path) -> dict:
    """faster-whisper's own offline transcription of the whole file, same model."""
    from faster_whisper import WhisperModel

    from listend.models import resolve_model

    m = WhisperModel(resolve_model(model), device="cpu", compute_type="int8")
    segments, _ = m.transcribe(str(corpus), language="en", beam_size=5 if model == "base" else 1)
    return {"text": " ".join(s.text for s in segments)}


def scenario_baseline(corpus: Path, hours: float, sample_every_s: float) -> dict:
    """The design we replace: a growing np.concatenate buffer and an unbounded, undrained queue."""
    import queue

    import psutil

    audio = load_wav(corpus)
    proc = psutil.Process()
    buffer = np.zeros(0, dtype=np.float32)
    chunks: queue.Queue = queue.Queue()  # never bounded
    # One-second blocks: the old code appended per callback block, which makes
    # the concatenation quadratic; coarser blocks give the same memory growth
    # in minutes instead of days.
    block = SR
    total = int(hours * 3600 * SR)
    samples, fed, pos, next_at = [], 0, 0, 0.0
    while fed < total:
        chunk = audio[pos : pos + block]
        if len(chunk) < block:
            pos = 0
            continue
        pos += block
        buffer = np.concatenate([buffer, chunk])  # O(n) copy per chunk, never trimmed
        chunks.put(chunk.copy())  # a copy per chunk, never consumed
        fed += block
        if fed / SR >= next_at:
            samples.append((fed / SR, proc.memory_info().rss))
            next_at += sample_every_s
    return {"samples": samples, "audio_s": fed / SR}


# -- the runner ---------------------------------------------------------------------


def child(args) -> None:
    params = json.loads(args.child)
    corpus = Path(params["corpus"])
    name = params["scenario"]
    if name == "latency":
        out = scenario_latency(params["profile"], corpus, params["repeats"])
    elif name == "soak":
        out = scenario_soak(params["profile"], corpus, params["hours"], params["sample_every_s"])
    elif name == "idle":
        out = scenario_idle(params["profile"], params["seconds"], corpus.parent)
    elif name == "offline":
        out = scenario_offline(params["model"], corpus)
    else:
        out = scenario_baseline(corpus, params["hours"], params["sample_every_s"])
    Path(params["out"]).write_text(json.dumps(out))


class Child:
    """A scenario running in its own process."""

    def __init__(self, params: dict, workdir: Path, reuse: bool = False):
        self.label = f"{params['scenario']} {params.get('profile', params.get('model', ''))}".strip()
        self.out = workdir / f"{self.label.replace(' ', '-')}.json"
        self.started = time.monotonic()
        self.proc = None
        if reuse and self.out.exists():
            print(f"bench: {self.label}: reusing {self.out}", file=sys.stderr, flush=True)
            return
        print(f"bench: {self.label} ...", file=sys.stderr, flush=True)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps({**params, "out": str(self.out)})]
        )

    def result(self) -> dict:
        if self.proc is None:
            return json.loads(self.out.read_text())
        if self.proc.wait() != 0:
            raise RuntimeError(f"bench scenario {self.label} failed with exit code {self.proc.returncode}")
        print(f"bench:   {self.label} done in {time.monotonic() - self.started:.0f} s", file=sys.stderr, flush=True)
        return json.loads(self.out.read_text())


def run_child(params: dict, workdir: Path, reuse: bool = False) -> dict:
    return Child(params, workdir, reuse).result()


def percentile(values, q) -> float | None:
    return float(np.percentile(values, q)) if values else None


def growth_mb_per_hour(samples, warmup_fraction=0.1) -> float | None:
    pts = [(a, r) for a, r in samples if a >= samples[-1][0] * warmup_fraction] if samples else []
    if len(pts) < 3:
        return None
    x = np.array([a / 3600 for a, _ in pts])
    y = np.array([r / MB for _, r in pts])
    return float(np.polyfit(x, y, 1)[0])


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate in percent (the shared measure of bench/common.py)."""
    return 100 * common_wer(reference, hypothesis)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="about a minute: small figures, checks the tool works")
    p.add_argument("--hours", type=float, default=4.0, help="audio hours for the memory soak (full run)")
    p.add_argument("--idle-seconds", type=float, default=600, help="silence listened to for the idle cost")
    p.add_argument("--profiles", default="lightweight,full")
    p.add_argument("--out", default=str(REPO / "bench" / "results"), help="output directory")
    p.add_argument(
        "--reuse",
        metavar="WORKDIR",
        help="take finished scenarios from an earlier run's work directory (rerun only the missing ones)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return 0
    profiles = [x for x in args.profiles.split(",") if x]
    if args.quick:
        args.hours, args.idle_seconds = 0.02, 10
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    reuse = bool(args.reuse)
    work = Path(args.reuse) if reuse else Path(tempfile.mkdtemp(prefix="listend-bench-"))
    sentences = SENTENCES[:3] if args.quick else SENTENCES
    if reuse and (work / "corpus.wav").exists():
        corpus, references = work / "corpus.wav", sentences
    else:
        corpus, references = make_corpus(work, sentences)
    reference = " ".join(references)
    corpus_s = len(load_wav(corpus)) / SR
    sample_every = max(1.0, args.hours * 3600 / 400)
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor(),
        },
        "corpus_seconds": corpus_s,
        "soak_hours": args.hours,
        "targets": TARGETS,
        "profiles": {},
    }
    offline = {
        m: run_child({"scenario": "offline", "model": m, "corpus": str(corpus)}, work, reuse)["text"]
        for m in ("tiny.en", "base")
    }
    for profile in profiles:
        lat = run_child(
            {"scenario": "latency", "profile": profile, "corpus": str(corpus), "repeats": 1 if args.quick else 3},
            work,
            reuse,
        )
        # The idle run is paced in real time and uses little CPU: it runs beside
        # the soak, and measures its own process's CPU time only.
        idle_child = Child(
            {"scenario": "idle", "profile": profile, "corpus": str(corpus), "seconds": args.idle_seconds}, work, reuse
        )
        soak = run_child(
            {
                "scenario": "soak",
                "profile": profile,
                "corpus": str(corpus),
                "hours": args.hours,
                "sample_every_s": sample_every,
            },
            work,
            reuse,
        )
        idle = idle_child.result()
        final_text, live_text = lat["texts"][-1]
        model = "base" if profile == "full" else "tiny.en"
        results["profiles"][profile] = {
            "partial_lag_s": {
                "p50": percentile(lat["partial_lags"], 50),
                "p95": percentile(lat["partial_lags"], 95),
                "max": max(lat["partial_lags"], default=None),
                "n": len(lat["partial_lags"]),
            },
            "refined_lag_s": {
                "p50": percentile(lat["refined_lags"], 50),
                "p95": percentile(lat["refined_lags"], 95),
                "max": max(lat["refined_lags"], default=None),
                "n": len(lat["refined_lags"]),
            },
            "throughput_x_realtime": soak["audio_s"] / soak["wall_s"],
            "soak_audio_hours": soak["audio_s"] / 3600,
            "soak_cpu_seconds_per_audio_second": soak["cpu_s"] / soak["audio_s"],
            "peak_rss_mb": max(r for _, r in soak["samples"]) / MB,
            "growth_mb_per_audio_hour": growth_mb_per_hour(soak["samples"]),
            "idle_cpu_percent": idle["cpu_percent"],
            "wer_final": wer(reference, final_text),
            "wer_live": wer(reference, live_text),
            "wer_offline_same_model": wer(reference, offline[model]),
            "offline_model": model,
            "counters": {
                k: soak["stats"][k]
                for k in (
                    "live_commits",
                    "dropped_samples",
                    "overflows",
                    "partials_skipped",
                    "backpressure_waits",
                    "cleanups",
                    "degradations",
                    "queue_refine_high_water",
                )
            },
            "rss_samples": soak["samples"],
        }
    baseline = run_child(
        {"scenario": "baseline", "corpus": str(corpus), "hours": min(args.hours, 0.5), "sample_every_s": sample_every},
        work,
        reuse,
    )
    results["baseline_old_design"] = {
        "audio_hours": baseline["audio_s"] / 3600,
        "peak_rss_mb": max(r for _, r in baseline["samples"]) / MB,
        "growth_mb_per_audio_hour": growth_mb_per_hour(baseline["samples"]),
        "rss_samples": baseline["samples"],
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, out_dir)
    print_summary(results)
    return 0


def plot(results: dict, out_dir: Path) -> None:
    from listend_ctl.plot import Chart, Series

    colors = {"lightweight": "#2ca02c", "full": "#1f77b4"}
    chart = Chart("RSS against audio time (as fast as possible)", "audio hours", "RSS (MiB)")
    for profile, r in results["profiles"].items():
        s = r["rss_samples"]
        chart.series.append(
            Series(
                f"listend {profile}", [a / 3600 for a, _ in s], [m / MB for _, m in s], colors.get(profile, "#9467bd")
            )
        )
    b = results["baseline_old_design"]["rss_samples"]
    chart.series.append(
        Series(
            "old design (concatenate + unbounded queue)", [a / 3600 for a, _ in b], [m / MB for _, m in b], "#d62728"
        )
    )
    from listend.config import build_settings

    for profile in results["profiles"]:
        m = build_settings(profile).memory
        chart.hlines += [(f"{profile} warn", m.warn_mb, "#ff7f0e"), (f"{profile} limit", m.limit_mb, "#8c564b")]
    chart.save(str(out_dir / "rss.png"))


def print_summary(results: dict) -> None:
    for profile, r in results["profiles"].items():
        print(
            f"{profile}: partial p50/p95 {r['partial_lag_s']['p50']:.2f}/{r['partial_lag_s']['p95']:.2f} s, "
            f"refined p50/p95 {r['refined_lag_s']['p50']:.2f}/{r['refined_lag_s']['p95']:.2f} s, "
            f"{r['throughput_x_realtime']:.1f}x realtime, peak {r['peak_rss_mb']:.0f} MiB, "
            f"growth {_or_nan(r['growth_mb_per_audio_hour']):.2f} MiB/h, "
            f"idle {r['idle_cpu_percent']:.2f} %, WER final {r['wer_final']:.1f} live {r['wer_live']:.1f} "
            f"offline {r['wer_offline_same_model']:.1f}"
        )
    b = results["baseline_old_design"]
    print(
        f"old design: peak {b['peak_rss_mb']:.0f} MiB after {b['audio_hours']:.2f} h, "
        f"growth {b['growth_mb_per_audio_hour'] or float('nan'):.0f} MB/h"
    )


if __name__ == "__main__":
    sys.exit(main())
