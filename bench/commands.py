"""Voice control (issue 26): commands heard through the microphone, false fires, the vocabulary's figures.

Usage::

    python bench/commands.py            # everything, ~15 min on a 2-core machine
    python bench/commands.py --quick    # one voice, four phrases, one recording: a smoke run

One run, every figure side by side (the full profile's defaults: Moonshine live, Whisper base refine):

* **command recognition, microphone**: the daemon on a PulseAudio virtual microphone, events read from D-Bus
  (``SegmentCommand``, ``SegmentRefined``). Every English command phrase in force (``listenctl commands``) is
  said alone by espeak-ng voices at two speeds, each after a short dictated sentence as a user would say it
  (the refine decodes a command after the preceding speech). A phrase counts as right when its utterance
  came with the ``SegmentCommand`` of its action. "stop listening" is said last in each run (it stops the
  daemon, which the bench starts again). Human speech: the real recordings at hand (the ``moonshine-voice``
  wheel's) hold no commands, so this figure is espeak-ng only.
* **false fires, microphone**: the ``moonshine-voice`` wheel's real human speech played into the same
  microphone: ``SegmentCommand`` events (must be 0).
* **commands with a vocabulary, file**: the 140 wpm command runs through the pipeline without and with the
  seven names below as vocabulary (the names sit in the refine's prompt before every command).
* **vocabulary recall, file**: three sentences with seven rare names (as in tests/test_vocabulary_decode.py), in
  two voices, through the pipeline (``FileSource``, as ``listend transcribe``) without and with the vocabulary.
* **silence and noise, file**: 64 s of silence, hum and noise with the seven names as vocabulary: through the
  pipeline (VAD and all) and straight into the refine decoder in 8 s pieces (the VAD bypassed): words produced.
* **50 absent names, file**: the real speech through the pipeline without and with fifty names that do not
  occur in it: WER against offline faster-whisper base.
* **vocabulary on the live pass** (the issue's "measure"): the live decoders alone, on the same audio -- the
  Whisper live pass (tiny.en: the lightweight profile's partials; base with the live options: the
  multilingual live pass) with the vocabulary the way the refine applies it, and Moonshine (which takes no
  prompt) with a fuzzy post-correction (difflib ratio >= 0.7 or 0.8 against the vocabulary, the only way it could
  have one): names recalled in the whole sentences, false vocabulary words in the growing partials (1 s
  steps), and words changed in real speech cut in 5 s pieces with the 7 and the 50 names, and on the noise.

Writes ``bench/results/commands.json`` and ``bench/results/commands.png`` (recognition per phrase).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import norm_words, session_bus, wer
from realspeech import offline, real_speech, to_16k

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.audio import concat, silence, speak, wav_samples  # noqa: E402  (the bench runs from a checkout)

GAP_S = 1.2  # what the segmenter cuts at (bench/shortphrases.py)
QUIET_S = 7.0  # a run is over once the bus has been quiet this long after the playback
# (voice, words a minute): espeak-ng's American and British voices and a female variant, at two speeds.
VOICES = [
    ("en-us", 140),
    ("en-us", 185),
    ("en-gb", 140),
    ("en-gb", 185),
    ("en-gb-x-rp+f3", 140),
    ("en-gb-x-rp+f3", 185),
]
SENTENCES = [
    "I will send it tomorrow.",
    "The train leaves at noon.",
    "Thanks for your help today.",
    "Let us meet after lunch.",
    "The file is on the server.",
    "Call me when you land.",
]
VOCABULARY = ["Okonkwo", "Anneliese", "Kubernetes", "Szczepański", "Ngozi", "Tiramisu Labs", "Xiaoyu"]
NAME_SENTENCES = [
    "Please ask Okonkwo and Ngozi to review the Kubernetes cluster.",
    "Anneliese will meet Xiaoyu at Tiramisu Labs on Tuesday.",
    "The invoice from Szczepański arrived this morning.",
]
NAME_VOICES = ["en-us", "en-gb-x-rp"]
# Fifty names that do not occur in the real speech (tests/test_vocabulary_decode.py's).
ABSENT = (
    "Aurelio Bronwyn Caoimhe Dagny Eskil Fionnuala Grzegorz Hallvard Ingrid Jaroslav Kalinda Leocadia Mireille "
    "Nkechi Oisin Przemysław Quillon Radomir Saoirse Thorvald Ulrike Vesna Wojciech Xanthe Yevgeny Zbigniew "
    "Adaeze Bartholomew Cressida Dymphna Evander Faustyna Gunnhild Henrike Isidora Jovanka Kasimir Ludmila "
    "Mstislav Nanami Ottoline Perpetua Quirinus Rosalind Svetozar Tatsuya Umberto Violetta Wendeline Ximena"
).split()
NOISE = [  # sox synth arguments, 8 s each: tests/test_vocabulary_decode.py's generator
    ["trim", "0", "8"],
    ["synth", "8", "brownnoise", "vol", "0.05"],
    ["synth", "8", "pinknoise", "vol", "0.03"],
    ["synth", "8", "whitenoise", "vol", "0.02"],
    ["synth", "8", "sine", "50", "vol", "0.05"],
    ["synth", "8", "brownnoise", "vol", "0.2"],
    ["synth", "8", "pinknoise", "vol", "0.1"],
    ["trim", "0", "8"],
]
FUZZY_RATIO = 0.8
SR = 16_000


def command_phrases() -> list[tuple[str, str]]:
    """(phrase, action) of every English phrase in force by default, "stop listening" last (it stops the run)."""
    from listend.commands import Action, CommandTable

    table = CommandTable.build(("en",))
    phrases = [(p, a.value) for p, a in table.phrases.items()]
    return sorted(phrases, key=lambda pa: pa[1] == Action.STOP_LISTENING.value)


def sentences_for(phrases: list[tuple[str, str]]) -> list[str]:
    """The dictated sentence said before each phrase."""
    return [SENTENCES[i % len(SENTENCES)] for i in range(len(phrases))]


# -- audio -----------------------------------------------------------------------------------------------------


def command_run(work: Path, voice: str, speed: int, phrases: list[tuple[str, str]]) -> Path:
    """A dictated sentence, a pause, a command phrase, a pause: for every phrase, in one voice."""
    tag = f"{voice.replace('+', '_')}-{speed}"
    gap = silence(work / "gap.wav", GAP_S)
    parts = [silence(work / "lead.wav", 1.0)]
    for i, ((phrase, _), sentence) in enumerate(zip(phrases, sentences_for(phrases), strict=True)):
        parts += [speak(work / f"{tag}-s{i}.wav", sentence, speed, voice), gap]
        parts += [speak(work / f"{tag}-c{i}.wav", phrase, speed, voice), gap]
    return concat(work / f"{tag}.wav", *parts)


def noise_pieces(work: Path) -> list[Path]:
    out = []
    for i, synth in enumerate(NOISE):
        path = work / f"noise-{i}.wav"
        subprocess.run(["sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), *synth], check=True)
        out.append(path)
    return out


# -- the daemon on a microphone ----------------------------------------------------------------------------------


def mic_runs(plays: list[tuple[str, Path]], work: Path) -> dict[str, list[tuple[str, int, str]]]:
    """Each WAV played into a PulseAudio virtual microphone the daemon listens to: (member, id, text) per play.

    One daemon for every play (the full profile's defaults); it is started again before each play (a
    recognised "stop listening" stopped it).
    """
    from dbus_next import Message

    from listend.bus import BUS_NAME, INTERFACE, OBJECT_PATH, call_bus_daemon
    from listend.dbusio import MessageBus
    from tests.support.pulse import PulseServer

    root = Path(tempfile.mkdtemp(dir=work))
    pulse = PulseServer(root / "pulse")
    address, bus_pid = session_bus()
    config = root / "config.toml"
    config.write_text('profile = "full"\n')
    env = dict(
        os.environ,
        DBUS_SESSION_BUS_ADDRESS=address,
        PULSE_SERVER=pulse.server,
        XDG_STATE_HOME=str(root / "state"),
        HF_HUB_OFFLINE="1",
    )
    listend = Path(sys.executable).parent / "listend"
    log = open(root / "daemon.log", "w")
    daemon = subprocess.Popen([str(listend), "--config", str(config)], env=env, stdout=subprocess.DEVNULL, stderr=log)
    events: list[tuple[float, str, int, str]] = []  # (monotonic, member, id, action or text)

    def on_message(m: Any) -> None:
        if m.member == "SegmentCommand":
            events.append((time.monotonic(), "command", m.body[0], m.body[1]))
        elif m.member == "SegmentRefined":
            events.append((time.monotonic(), "refined", m.body[0], m.body[3]))

    async def call(bus: Any, member: str) -> Any:
        return await bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member=member))

    async def listen() -> dict[str, list[tuple[str, int, str]]]:
        bus = await MessageBus(bus_address=address).connect()
        bus.add_message_handler(on_message)
        await call_bus_daemon(bus, "AddMatch", "s", [f"type='signal',interface='{INTERFACE}',path='{OBJECT_PATH}'"])
        out: dict[str, list[tuple[str, int, str]]] = {}
        for label, wav in plays:
            await call(bus, "Stop")  # each play is a dictation session of its own (no context from the last)
            deadline = time.monotonic() + 180
            while True:  # listening, and the microphone delivers
                reply = await call(bus, "Start")
                heard_before = await call(bus, "GetMemory")
                if reply.message_type.name == "METHOD_RETURN" and heard_before.message_type.name == "METHOD_RETURN":
                    before = heard_before.body[0]["audio_seconds"].value
                    await asyncio.sleep(1.0)
                    now = (await call(bus, "GetMemory")).body[0]["audio_seconds"].value
                    if now > before + 0.5:
                        break
                assert time.monotonic() < deadline, (root / "daemon.log").read_text()[-3000:]
                await asyncio.sleep(0.5)
            print(f"bench: microphone {label} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            player = subprocess.Popen(["paplay", "--device=vsink", str(wav)], env=pulse.env)
            await asyncio.to_thread(player.wait)
            quiet = time.monotonic()
            while time.monotonic() - max([quiet] + [t for t, *_ in events]) < QUIET_S:
                await asyncio.sleep(0.2)
            out[label] = [(kind, seg_id, text) for t, kind, seg_id, text in events if t >= started]
            events.clear()
        await call(bus, "Stop")
        bus.disconnect()
        return out

    try:
        return asyncio.run(listen())
    finally:
        daemon.terminate()
        daemon.wait(60)
        subprocess.run(["kill", bus_pid])
        pulse.close()
        log.close()


def heard_segments(events: list[tuple[str, int, str]]) -> list[tuple[str | None, str]]:
    """(action or None, refined text) of every segment, in id order."""
    actions = {seg_id: text for kind, seg_id, text in events if kind == "command"}
    texts = {seg_id: text for kind, seg_id, text in events if kind == "refined"}
    # An utterance decoded to nothing (a breath, a click) is no segment the user sees.
    return [(actions.get(i), texts[i]) for i in sorted(texts) if texts[i].strip() or i in actions]


def score_commands(
    phrases: list[tuple[str, str]], sentences: list[str], segments: list[tuple[str | None, str]]
) -> dict[str, str]:
    """For each phrase, what its utterance was heard as: its action when right, else the text or action heard.

    Said: sentence, phrase, sentence, phrase... The heard segments are aligned to what was said in that order
    (the alignment that maximises the summed text similarity), so a merged or split utterance costs only the
    phrases it touches.
    """
    said = [t for (phrase, _), sentence in zip(phrases, sentences, strict=True) for t in (sentence, phrase)]
    heard = [" ".join(norm_words(text)) for _, text in segments]
    n, m = len(said), len(heard)
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            similar = difflib.SequenceMatcher(a=" ".join(norm_words(said[i - 1])), b=heard[j - 1]).ratio()
            best[i][j] = max(best[i - 1][j], best[i][j - 1], best[i - 1][j - 1] + similar)
    matched: dict[int, int] = {}
    i, j = n, m
    while i and j:
        if best[i][j] == best[i - 1][j]:
            i -= 1
        elif best[i][j] == best[i][j - 1]:
            j -= 1
        else:
            matched[i - 1] = j - 1
            i, j = i - 1, j - 1
    out: dict[str, str] = {}
    for k, (phrase, action) in enumerate(phrases):
        j_ = matched.get(2 * k + 1)
        if j_ is None:  # what was heard between its neighbours' segments, if anything
            lo = max((matched[i] for i in matched if i < 2 * k + 1), default=-1)
            hi = min((matched[i] for i in matched if i > 2 * k + 1), default=m)
            between = [segments[x][1] for x in range(lo + 1, hi)]
            out[phrase] = f"heard as: {' | '.join(between)!r}" if between else "heard as: (nothing of its own)"
        elif segments[j_][0] == action:
            out[phrase] = action
        else:
            meant, text = segments[j_]
            out[phrase] = f"heard as: {text!r}" + (f" [{meant}]" if meant else "")
    return out


# -- the file path and the decoders (children: every engine starts with the same memory) ---------------------------


def in_child(kind: str, *args: Any) -> Any:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, json.dumps(args)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def pipeline(paths: list[str], words: list[str]) -> list[list[str]]:
    """Each file through the full profile's pipeline as fast as it goes (``listend transcribe``): refined texts."""
    from listend.config import build_settings
    from listend.engine import Engine
    from listend.events import Refined
    from listend.sources import FileSource

    def one(path: str) -> list[str]:
        engine = Engine(build_settings("full", {}), {}, hotwords=lambda: words)
        texts: dict[int, str] = {}
        engine.subscribe(lambda e: texts.__setitem__(e.id, e.text) if isinstance(e, Refined) else None)
        engine.load()
        try:
            engine.start(FileSource(path))
            engine.wait_source_done()
            engine.wait_drained(None)
        finally:
            engine.close(None)
        return [texts[i] for i in sorted(texts)]

    return [one(path) for path in paths]


def refine_on_noise(paths: list[str], words: list[str]) -> list[str]:
    """The refine decoder (Whisper base) on each noise piece with ``words`` as vocabulary, the VAD bypassed."""
    from listend.audio import Utterance
    from listend.config import DecodeOptions
    from listend.decoders import PassOptions, WhisperDecoder
    from listend.models import ModelSpec, load_whisper

    refine = WhisperDecoder(
        load_whisper(ModelSpec("base", "cpu", "int8", 0)), "base", PassOptions.refine(DecodeOptions())
    )
    refine.hotwords = lambda: words
    pieces = [wav_samples(Path(p)) for p in paths]
    return [refine.decode_next(Utterance(i + 1, i * 8 * SR, a)).text for i, a in enumerate(pieces)]


def fuzzy_correct(text: str, words: list[str], ratio: float = FUZZY_RATIO) -> str:
    """What a post-correction of Moonshine's text would do: any run of words close to a vocabulary entry
    (difflib ratio >= ``ratio``, case and punctuation ignored) is replaced by the entry."""
    tokens = text.split()
    out: list[str] = []
    i = 0
    while i < len(tokens):
        best: tuple[float, int, str] | None = None
        for word in words:
            n = len(word.split())
            if i + n > len(tokens):
                continue
            said = " ".join(norm_words(" ".join(tokens[i : i + n])))
            score = difflib.SequenceMatcher(a=said, b=word.casefold(), autojunk=False).ratio()
            if score >= ratio and (best is None or score > best[0]):
                best = (score, n, word)
        if best is None:
            out.append(tokens[i])
            i += 1
            continue
        trail = re.sub(r"^.*?([^\w]*)$", r"\1", tokens[i + best[1] - 1])
        out.append(best[2] + trail)
        i += best[1]
    return " ".join(out)


def live_passes(name_paths: list[str], real_paths: list[str], noise_paths: list[str]) -> dict:
    """The live decoders alone with and without the vocabulary: what applying it to partials would do."""
    from listend.config import DecodeOptions
    from listend.decoders import PassOptions, WhisperDecoder, mentions
    from listend.models import ModelSpec, load_whisper
    from listend.moonshine import MoonshineDecoder, load_moonshine

    names = [wav_samples(Path(p)) for p in name_paths]
    sentences = NAME_SENTENCES * (len(names) // len(NAME_SENTENCES))
    real = []
    for p in real_paths:  # 5 s pieces, as a partial would hold a part of a long utterance
        audio = wav_samples(Path(p))
        real += [audio[i : i + 5 * SR] for i in range(0, len(audio) - SR, 5 * SR)]
    noise = [wav_samples(Path(p)) for p in noise_paths]
    out: dict[str, Any] = {}
    whisper = {
        "tiny.en": WhisperDecoder(
            load_whisper(ModelSpec("tiny.en", "cpu", "int8", 0)), "tiny.en", PassOptions.live(DecodeOptions())
        ),
        "base": WhisperDecoder(
            load_whisper(ModelSpec("base", "cpu", "int8", 0)), "base", PassOptions.live(DecodeOptions())
        ),
    }
    moonshine = MoonshineDecoder(load_moonshine(1))

    def decoders(vocabulary: list[str]) -> dict[str, Any]:
        """label -> decode function with ``vocabulary`` applied as that pass would apply it."""
        fns: dict[str, Any] = {}
        for model, decoder in whisper.items():

            def decode(audio: Any, d: Any = decoder) -> str:
                d.hotwords = lambda: vocabulary
                return str(d.decode(audio).text)

            fns[f"whisper {model} (live options, hotwords)"] = decode
        for ratio in (0.7, FUZZY_RATIO):

            def corrected(audio: Any, r: float = ratio) -> str:
                text = moonshine.decode(audio).text
                return fuzzy_correct(text, vocabulary, r) if vocabulary else text

            fns[f"moonshine (fuzzy post-correction, ratio {ratio})"] = corrected
        return fns

    plain_fns, names_fns, absent_fns = decoders([]), decoders(VOCABULARY), decoders(ABSENT)
    for label in plain_fns:
        row: dict[str, Any] = {}
        for tag, fns in (("without", plain_fns), ("with", names_fns)):
            started = time.monotonic()
            whole = [fns[label](a) for a in names]
            seconds = time.monotonic() - started
            found = sum(
                mentions(text, [n]) for text, s in zip(whole, sentences, strict=True) for n in VOCABULARY if n in s
            )
            total = sum(1 for s in sentences for n in VOCABULARY if n in s)
            false = 0
            partials = 0
            for audio, s in zip(names, sentences, strict=True):  # growing partials, 1 s steps
                for end in range(SR, len(audio), SR):
                    partials += 1
                    false += mentions(fns[label](audio[:end]), [n for n in VOCABULARY if n not in s])
            row[tag] = {
                "names_recalled": f"{found}/{total}",
                "partials_with_a_name_not_said": f"{false}/{partials}",
                "decode_s_per_sentence": round(seconds / len(names), 3),
                "texts": whole,
            }
        plain_real = [plain_fns[label](a) for a in real]
        for tag, fns in (("7 names", names_fns), ("50 absent names", absent_fns)):
            changed = [fns[label](a) for a in real]
            row[f"real speech, {tag}"] = {
                "pieces_changed": sum(norm_words(a) != norm_words(b) for a, b in zip(plain_real, changed, strict=True)),
                "pieces": len(real),
                "wer_change_pts": round(100 * wer(" ".join(plain_real), " ".join(changed)), 2),
                "changes": [[a, b] for a, b in zip(plain_real, changed, strict=True) if norm_words(a) != norm_words(b)],
            }
        row["noise_words_with_7_names"] = sum(len(norm_words(names_fns[label](a))) for a in noise)
        row["noise_vocabulary_words_with_7_names"] = sum(mentions(names_fns[label](a), VOCABULARY) for a in noise)
        out[label] = row
    return out


def commands_with_vocabulary(work: Path, phrases: list[tuple[str, str]], voices: list[tuple[str, int]]) -> dict:
    """The command runs through the pipeline (file path) without and with the seven names as vocabulary: the
    names sit in the refine's prompt before every utterance, short commands included."""
    wavs = [command_run(work, v, s, phrases) for v, s in voices]
    out: dict[str, Any] = {}
    for tag, words in (("without", []), ("with 7 names", VOCABULARY)):
        print(f"bench: commands {tag} a vocabulary (file) ...", file=sys.stderr, flush=True)
        texts = in_child("pipeline", [str(w) for w in wavs], words)
        table = command_table()
        rows = {}
        for (voice, speed), segments in zip(voices, texts, strict=True):
            heard = [(a.value if (a := table.recognise(t)) else None, t) for t in segments if t.strip()]
            rows[f"{voice} {speed} wpm"] = score_commands(phrases, sentences_for(phrases), heard)
        right = sum(row[ph] == a for row in rows.values() for ph, a in phrases)
        out[tag] = {"right_total": f"{right}/{len(phrases) * len(rows)}", "heard": rows}
    return out


def command_table() -> Any:
    from listend.commands import CommandTable

    return CommandTable.build(("en",))


def child(kind: str, args: list) -> Any:
    if kind == "pipeline":
        return pipeline(*args)
    if kind == "refine_on_noise":
        return refine_on_noise(*args)
    if kind == "live_passes":
        return live_passes(*args)
    raise SystemExit(f"unknown child {kind}")


# -- the run -------------------------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one voice, four phrases, one recording: a smoke run")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "commands.json")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], json.loads(args.child[1])), ensure_ascii=False))
        return 0
    from listend.decoders import mentions

    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "load_at_start": os.getloadavg(),
        "quick": args.quick,
    }
    phrases = command_phrases()
    voices = VOICES
    recordings = real_speech()
    if args.quick:
        phrases, voices, recordings = phrases[:3] + phrases[-1:], VOICES[:1], recordings[2:]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        real = [to_16k(r, work) for r in recordings]
        gap = silence(work / "real-gap.wav", 1.5)
        real_run = concat(work / "real.wav", silence(work / "real-lead.wav", 1.0), *[x for r in real for x in (r, gap)])

        # 1. The microphone: commands in every voice, then the real dictation.
        plays = [(f"{v} {s} wpm", command_run(work, v, s, phrases)) for v, s in voices]
        heard = mic_runs([*plays, ("real speech", real_run)], work)
        per_voice: dict[str, dict[str, str]] = {}
        for label, _ in plays:
            per_voice[label] = score_commands(phrases, sentences_for(phrases), heard_segments(heard[label]))
        per_phrase = {
            phrase: f"{sum(per_voice[v].get(phrase) == action for v in per_voice)}/{len(per_voice)}"
            for phrase, action in phrases
        }
        right = {v: sum(per_voice[v].get(ph) == a for ph, a in phrases) for v in per_voice}
        results["commands_microphone"] = {
            "phrases": [ph for ph, _ in phrases],
            "voices": [label for label, _ in plays],
            "right_per_phrase": per_phrase,
            "right_per_voice": {v: f"{n}/{len(phrases)}" for v, n in right.items()},
            "right_total": f"{sum(right.values())}/{len(phrases) * len(per_voice)}",
            "heard": per_voice,
            "human_speech": "none: the moonshine-voice wheel's recordings hold no commands",
        }
        real_segments = heard_segments(heard["real speech"])
        results["false_fires_real_speech_microphone"] = {
            "recordings": [r.name for r in recordings],
            "audio_s": round(sum(len(wav_samples(r)) for r in real) / SR, 1),
            "segments": len(real_segments),
            "segment_command_events": sum(1 for kind, *_ in heard["real speech"] if kind == "command"),
        }
        print(json.dumps({k: results[k] for k in ("commands_microphone", "false_fires_real_speech_microphone")}))

        # 2. The file path: commands with a vocabulary in force, vocabulary recall, silence and noise, absent names.
        results["commands_with_vocabulary_file"] = commands_with_vocabulary(work, phrases, voices[::2])

        name_wavs = [
            concat(
                work / f"names-{voice}.wav",
                silence(work / "names-lead.wav", 0.5),
                *[
                    x
                    for i, s in enumerate(NAME_SENTENCES)
                    for x in (speak(work / f"names-{voice}-{i}.wav", s, voice=voice), gap)
                ],
            )
            for voice in NAME_VOICES
        ]
        recall: dict[str, Any] = {}
        total = sum(1 for s in NAME_SENTENCES for n in VOCABULARY if n in s)
        for tag, words in (("without", []), ("with", VOCABULARY)):
            print(f"bench: vocabulary recall {tag} ...", file=sys.stderr, flush=True)
            texts = in_child("pipeline", [str(w) for w in name_wavs], words)
            recall[tag] = {
                voice: {
                    "names_recalled": f"{sum(mentions(' '.join(t), [n]) for n in VOCABULARY)}/{total}",
                    "text": " ".join(t),
                }
                for voice, t in zip(NAME_VOICES, texts, strict=True)
            }
        results["vocabulary_recall_file"] = {"vocabulary": VOCABULARY, "sentences": NAME_SENTENCES, **recall}

        pieces = noise_pieces(work)
        noise = concat(work / "noise.wav", *pieces)
        print("bench: silence and noise ...", file=sys.stderr, flush=True)
        through_pipeline = in_child("pipeline", [str(noise)], VOCABULARY)[0]
        straight = in_child("refine_on_noise", [str(x) for x in pieces], VOCABULARY)
        straight_plain = in_child("refine_on_noise", [str(x) for x in pieces], [])
        results["silence_and_noise"] = {
            "audio_s": len(NOISE) * 8,
            "vocabulary": VOCABULARY,
            "pipeline_words": len(norm_words(" ".join(through_pipeline))),
            "pipeline_text": through_pipeline,
            "refine_decoder_vad_bypassed_words": len(norm_words(" ".join(straight))),
            "refine_decoder_vad_bypassed_vocabulary_words": sum(mentions(t, VOCABULARY) for t in straight),
            "refine_decoder_texts": straight,
            "refine_decoder_without_vocabulary_words": len(norm_words(" ".join(straight_plain))),
            "refine_decoder_without_vocabulary_texts": straight_plain,
        }

        print("bench: fifty absent names ...", file=sys.stderr, flush=True)
        references = [offline(r, "base", False)[0] for r in real]
        plain = in_child("pipeline", [str(r) for r in real], [])
        with_names = in_child("pipeline", [str(r) for r in real], ABSENT)
        joined_ref = " ".join(references)
        wer_plain = 100 * wer(joined_ref, " ".join(" ".join(t) for t in plain))
        wer_names = 100 * wer(joined_ref, " ".join(" ".join(t) for t in with_names))
        results["absent_names_wer_file"] = {
            "names": len(ABSENT),
            "recordings": [r.name for r in recordings],
            "wer_without_pct": round(wer_plain, 2),
            "wer_with_pct": round(wer_names, 2),
            "difference_pts": round(wer_names - wer_plain, 2),
            "absent_names_produced": sum(mentions(" ".join(t), ABSENT) for t in with_names),
            "segments_changed": sum(
                norm_words(a) != norm_words(b)
                for pa, pb in zip(plain, with_names, strict=True)
                for a, b in zip(pa, pb, strict=False)
            ),
        }

        # 3. The live pass: would the vocabulary help partials without false corrections?
        print("bench: the live pass with a vocabulary ...", file=sys.stderr, flush=True)
        name_sentence_wavs = [work / f"names-{v}-{i}.wav" for v in NAME_VOICES for i in range(len(NAME_SENTENCES))]
        results["live_pass_vocabulary"] = in_child(
            "live_passes", [str(w) for w in name_sentence_wavs], [str(r) for r in real], [str(x) for x in pieces]
        )
    results["load_at_end"] = os.getloadavg()
    results["wall_s"] = round(time.monotonic() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in results.items() if k != "live_pass_vocabulary"}, ensure_ascii=False)[:4000])
    return 0


def plot(results: dict, path: Path) -> None:
    """Share of voices that said each phrase and were heard as its command."""
    from listend_ctl.plot import Chart, Series

    per_phrase = results["commands_microphone"]["right_per_phrase"]
    shares = [int(v.split("/")[0]) / int(v.split("/")[1]) for v in per_phrase.values()]
    xs = list(range(1, len(shares) + 1))
    chart = Chart(
        "Commands heard right through the microphone, per phrase (commands.json's order)",
        f"phrase 1-{len(per_phrase)}, in the order of commands.json's 'phrases'",
        "share of voices",
    )
    chart.series.append(Series("espeak-ng voices", xs, shares, "#1f77b4"))
    chart.save(str(path))


if __name__ == "__main__":
    sys.exit(main())
