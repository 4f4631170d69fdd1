"""The user's languages: word error rate pinned vs a set of two with detection vs the old ``language = ""``.

Usage::

    python bench/languages.py            # de, fr and es, each in a session with English

For each of German, French and Spanish, one dictation session of espeak-ng
speech (voices ``de``, ``fr-fr``, ``es`` and ``en-us``): long sentences
(3-5 s) and short phrases (under 2 s) of the language, with English
sentences and phrases between them, in a fixed order. Each utterance is
decoded as the refine pass decodes it (Whisper base through
:class:`listend.decoders.WhisperDecoder`, the session's preceding speech as
context, the language chosen by :class:`listend.languages.SessionLanguages`),
one after another as in a session, in three configurations:

* ``pinned``: ``languages = [L]`` (no detection; English utterances are
  decoded under L's token too);
* ``set``: ``languages = ["en", L]``: detection restricted to the two, sticky;
* ``any``: ``language = ""``: detection among all of Whisper's languages (what
  ``language = ""`` meant before, now sticky too).

Per configuration: WER of the language's utterances and of the English ones
(words in Unicode, lower case, no punctuation), how many utterances were
decoded in a language outside {en, L} (``set`` cannot: it must be 0), how
many short ones (< 2 s) were decoded in the wrong language of the two, and
what Whisper's unrestricted detection said for the short ones (how often a
third language wins: why restricting matters).

The utterances are cut where they were generated (no VAD): the figures are
the decoder's and the chooser's, not the segmenter's. Writes
``bench/results/languages.json`` and ``bench/results/languages.png``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from listend.audio import Utterance  # noqa: E402  (the bench runs from a checkout)
from listend.config import DecodeOptions  # noqa: E402
from listend.decoders import PassOptions, WhisperDecoder  # noqa: E402
from listend.languages import LanguagePolicy, SessionLanguages  # noqa: E402
from listend.models import ModelSpec, load_whisper  # noqa: E402
from listend.units import SAMPLE_RATE  # noqa: E402
from tests.support.audio import speak, wav_samples  # noqa: E402

VOICES = {"de": "de", "fr": "fr-fr", "es": "es", "en": "en-us"}
LONG = {
    "de": [
        "Guten Morgen, ich möchte einen Termin für nächste Woche vereinbaren.",
        "Das Wetter in Berlin ist heute kalt und regnerisch.",
        "Bitte schicken Sie mir die Rechnung bis Freitag.",
    ],
    "fr": [
        "Bonjour, je voudrais prendre un rendez-vous pour la semaine prochaine.",
        "Il fait froid et il pleut à Paris aujourd'hui.",
        "Envoyez-moi la facture avant vendredi, s'il vous plaît.",
    ],
    "es": [
        "Buenos días, quisiera pedir una cita para la semana que viene.",
        "Hoy hace frío y llueve mucho en Madrid.",
        "Por favor, envíeme la factura antes del viernes.",
    ],
    "en": [
        "Please send the quarterly report to the finance team by Friday.",
        "Remember to buy milk, bread and eggs on the way home.",
    ],
}
SHORT = {
    "de": ["Vielen Dank.", "Bis morgen.", "Ja, gerne.", "Neue Zeile."],
    "fr": ["Merci beaucoup.", "À demain.", "Oui, bien sûr.", "Nouvelle ligne."],
    "es": ["Muchas gracias.", "Hasta mañana.", "Sí, claro.", "Nueva línea."],
    "en": ["Thank you.", "See you tomorrow."],
}
# The session: (language or "en", long or short, index). L stands for the language measured.
ORDER = [
    ("L", "long", 0),
    ("L", "short", 0),
    ("en", "long", 0),
    ("L", "short", 1),
    ("L", "long", 1),
    ("en", "short", 0),
    ("L", "short", 2),
    ("en", "long", 1),
    ("L", "long", 2),
    ("en", "short", 1),
    ("L", "short", 3),
]
# A session in one language only (the set still holds English): what stickiness is for.
ORDER_ALONE = [
    ("L", "long", 0),
    ("L", "short", 0),
    ("L", "short", 1),
    ("L", "long", 1),
    ("L", "short", 2),
    ("L", "long", 2),
    ("L", "short", 3),
]
# Detection restricted to the set but not sticky: each utterance takes the set's most probable language.
EVERY_UTTERANCE = LanguagePolicy(switch_probability=0.0, min_seconds=0.0, confirm=1)
GAP_SAMPLES = int(1.2 * SAMPLE_RATE)  # the session's clock: a pause like the segmenter's between utterances


def words(text: str) -> list[str]:
    return re.findall(r"[\w']+", unicodedata.normalize("NFC", text).lower())


def wer(reference: list[str], hypothesis: list[str]) -> float:
    import jiwer

    ref, hyp = " ".join(w for r in reference for w in words(r)), " ".join(w for h in hypothesis for w in words(h))
    return float(jiwer.wer(ref, hyp))


def session(language: str, audio_dir: Path, order: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """The utterances of ``language``'s session, in order: language, kind, text, audio."""
    out = []
    for who, kind, i in order:
        lang = language if who == "L" else "en"
        text = (LONG if kind == "long" else SHORT)[lang][i]
        wav = speak(audio_dir / f"{lang}-{kind}-{i}.wav", text, voice=VOICES[lang])
        out.append({"language": lang, "kind": kind, "text": text, "audio": wav_samples(wav)})
    return out


def run(
    model: Any,
    utterances: list[dict[str, Any]],
    options: DecodeOptions,
    language: str,
    policy: LanguagePolicy | None = None,
    pin: str | None = None,
    prior: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One session decoded as the refine pass does; ``pin``: pinned for the session (``listenctl language``);
    ``prior``: detection's probabilities weighted by these factors before the chooser sees them (a hint)."""
    decoder = WhisperDecoder(model, "base", PassOptions.refine(options))
    decoder.languages = SessionLanguages(options.language_set, policy)
    if pin:
        decoder.languages.pin(pin)
    if prior:
        detect = decoder._detect
        decoder._detect = lambda audio: weighted(detect(audio), prior)  # type: ignore[method-assign]
    decoder.new_session()
    clock, rows = 0, []
    t0 = time.monotonic()
    for n, u in enumerate(utterances, 1):
        utt = Utterance(n, clock, u["audio"])
        text = decoder.decode_next(utt).text
        decoder.heard(utt, text)
        clock += len(u["audio"]) + GAP_SAMPLES
        rows.append(
            {
                "language": u["language"],
                "seconds": round(len(u["audio"]) / SAMPLE_RATE, 2),
                "decoded_in": decoder.last_language,
                "text": text,
                "reference": u["text"],
            }
        )
    seconds = time.monotonic() - t0
    mine = [r for r in rows if r["language"] == language]
    english = [r for r in rows if r["language"] == "en"]
    short = [r for r in rows if r["seconds"] < 2.0]
    return {
        "wer": round(wer([r["reference"] for r in mine], [r["text"] for r in mine]), 3),
        "wer_en": round(wer([r["reference"] for r in english], [r["text"] for r in english]), 3) if english else None,
        "outside_pair": sum(r["decoded_in"] not in (language, "en") for r in rows),
        "short": len(short),
        "short_wrong_language": sum(r["decoded_in"] != r["language"] for r in short),
        "detections": decoder.languages.state().detections,
        "decode_s": round(seconds, 1),
        "utterances": rows,
    }


def weighted(probabilities: dict[str, float], prior: dict[str, float]) -> dict[str, float]:
    """``probabilities`` times a prior's factors (1 for a language it does not name), renormalised."""
    out = {k: v * prior.get(k, 1.0) for k, v in probabilities.items()}
    total = sum(out.values()) or 1.0
    return {k: v / total for k, v in out.items()}


def layout_hint(picks: list[dict[str, Any]], language: str, factors: tuple[float, ...]) -> dict[str, Any]:
    """Short utterances decoded in the wrong language of the two, per detection alone, with a prior favouring
    the keyboard layout's language by each factor: for a layout of ``language`` and for an English one."""
    out: dict[str, Any] = {}
    for layout in (language, "en"):
        rows = {}
        for factor in factors:
            wrong = 0
            for p in picks:
                pair = weighted(p["pair"], {layout: factor})
                wrong += max(pair, key=lambda k: pair[k]) != p["said"]
            rows[str(factor)] = wrong
        out[f"layout {layout}"] = rows
    return out


def raw_detection(model: Any, utterances: list[dict[str, Any]], language: str) -> dict[str, Any]:
    """What Whisper's unrestricted detection says of the short utterances (argmax over all its languages)."""
    decoder = WhisperDecoder(model, "base", PassOptions.refine(DecodeOptions()))
    assert decoder.windowed is not None and decoder.options.window is not None
    window = decoder.options.window
    picks = []
    for u in utterances:
        if len(u["audio"]) / SAMPLE_RATE < 2.0:
            probs = decoder.windowed.detect_language(u["audio"], window)
            best = max(probs, key=lambda k: probs[k])
            pair = {k: probs.get(k, 0.0) for k in (language, "en")}
            picks.append({"said": u["language"], "argmax": best, "pair": {k: round(v, 3) for k, v in pair.items()}})
    return {
        "short": len(picks),
        "argmax_outside_pair": sum(p["argmax"] not in (language, "en") for p in picks),
        "restricted_wrong": sum(max(p["pair"], key=lambda k: p["pair"][k]) != p["said"] for p in picks),
        "picks": picks,
    }


def plot(results: dict[str, Any], path: Path) -> None:
    """WER of the language's utterances per configuration, sessions with English (x: de, fr, es)."""
    from listend_ctl.plot import Chart, Series

    colours = {"pinned": "#2ca02c", "set": "#1f77b4", "set, not sticky": "#aec7e8", "any": "#d62728"}
    chart = Chart(
        f"WER of the language's utterances, sessions with English ({results['date']}, busy machine)",
        "language (1 = de, 2 = fr, 3 = es)",
        "WER",
    )
    langs = list(results["languages"])
    for config, colour in colours.items():
        if any(config not in results["languages"][lang]["with English"] for lang in langs):
            continue  # not run (--only)
        xs = [i + 1.0 for i in range(len(langs))]
        ys = [results["languages"][lang]["with English"][config]["wer"] for lang in langs]
        chart.series.append(Series(config, xs, ys, colour))
    chart.save(str(path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", default="de,fr,es")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "languages.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--hint-factors",
        type=float,
        nargs="*",
        default=[2.0, 4.0],
        help="weights of the keyboard layout's language measured as a prior (issue 27)",
    )
    parser.add_argument("--only", default="", help="configurations to run, separated by ';' (default: all)")
    args = parser.parse_args()
    model = load_whisper(ModelSpec("base", "cpu", "int8", args.threads))
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "model": "base (int8, CTranslate2 window, context)",
        "cpus": os.cpu_count(),
        "languages": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for language in args.languages.split(","):
            pair = DecodeOptions(languages=("en", language))
            configs: dict[str, dict[str, Any]] = {
                "pinned": {"options": DecodeOptions(languages=(language,))},
                "pinned in the set": {"options": pair, "pin": language},
                "set": {"options": pair},
                "set, not sticky": {"options": pair, "policy": EVERY_UTTERANCE},
                "any": {"options": DecodeOptions(language="")},
            }
            for factor in args.hint_factors:  # the keyboard layout's language as a prior (issue 27: measure first)
                configs[f"set, layout {language} x{factor:g}"] = {"options": pair, "prior": {language: factor}}
                configs[f"set, layout en x{factor:g}"] = {"options": pair, "prior": {"en": factor}}
            configs = {k: v for k, v in configs.items() if not args.only or k in args.only.split(";")}
            entry: dict[str, Any] = {}
            for kind, order in (("with English", ORDER), ("alone", ORDER_ALONE)):
                utterances = session(language, Path(tmp), order)
                runs = {
                    name: run(model, utterances, c["options"], language, c.get("policy"), c.get("pin"), c.get("prior"))
                    for name, c in configs.items()
                }
                runs["raw_detection"] = raw_detection(model, utterances, language)
                runs["raw_detection"]["layout_hint"] = layout_hint(
                    runs["raw_detection"]["picks"], language, (1.0, *args.hint_factors)
                )
                for name in ("set", "set, not sticky"):
                    assert runs.get(name, {}).get("outside_pair", 0) == 0, f"{name}: a third language was chosen"
                entry[kind] = runs
                summary = {
                    k: {m: v[m] for m in ("wer", "wer_en", "outside_pair", "short_wrong_language")}
                    for k, v in runs.items()
                    if k != "raw_detection"
                }
                print(language, kind, json.dumps(summary), flush=True)
                print(language, kind, "layout hint", json.dumps(runs["raw_detection"]["layout_hint"]), flush=True)
            results["languages"][language] = entry
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    plot(results, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
