"""Does the short Whisper window lose accuracy outside English? German and French, espeak-ng voices.

Usage: python bench/window_languages.py [--out bench/results/window_languages.json]

Each utterance (two sentences, three commands and a chat line per language) is
decoded alone by Whisper base (multilingual), beam 5, in faster-whisper's 30 s
window (``transcribe``) and through :class:`listend.whisper_window.WindowedWhisper`
with a floor of 10 s and of 15 s; WER against the script, per language.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.audio import speak, wav_samples  # noqa: E402  (the bench runs from a checkout)

SCRIPTS = {
    "de": [
        "Bitte schicken Sie den Bericht bis Freitag an das Finanzteam.",
        "Das Wetter ist heute sonnig und windstill.",
        "neue Zeile",
        "Fragezeichen",
        "Punkt",
        "Hallo Anna, bist du morgen frei?",
    ],
    "fr": [
        "Merci d'envoyer le rapport à l'équipe financière avant vendredi.",
        "Il fait beau aujourd'hui avec un peu de vent.",
        "nouvelle ligne",
        "point d'interrogation",
        "virgule",
        "Salut Paul, tu es libre demain ?",
    ],
}


def words(text: str) -> str:
    """Lower-case words in any script (the bench's English normaliser keeps a-z only)."""
    return " ".join(re.findall(r"\w+", text.lower()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "window_languages.json")
    args = p.parse_args()
    import jiwer

    from listend.models import ModelSpec, load_whisper
    from listend.whisper_window import DecodeSettings, WindowedWhisper, WindowOptions

    model = load_whisper(ModelSpec("base", "cpu", "int8", 0))
    windowed = WindowedWhisper(model)
    results: dict = {"date": datetime.date.today().isoformat(), "cpus": os.cpu_count(), "languages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for lang, lines in SCRIPTS.items():
            rows = []
            for i, text in enumerate(lines):
                audio = wav_samples(speak(Path(tmp) / f"{lang}{i}.wav", text, voice=lang))
                segments, _ = model.transcribe(
                    audio, language=lang, beam_size=5, without_timestamps=True, vad_filter=False
                )
                row = {"said": text, "window_30s": " ".join(s.text.strip() for s in segments)}
                for floor in (10, 15):
                    settings = DecodeSettings(
                        5, lang, (0.0, 0.2, 0.4, 0.6), 0.6, -1.0, 2.4, window=WindowOptions(floor_s=floor)
                    )
                    row[f"floor_{floor}s"] = windowed.decode(audio, settings).text
                rows.append(row)
            script = " ".join(words(r["said"]) for r in rows)
            results["languages"][lang] = {
                "wer": {
                    k: round(float(jiwer.wer(script, " ".join(words(r[k]) for r in rows))), 3)
                    for k in ("window_30s", "floor_10s", "floor_15s")
                },
                "utterances": rows,
            }
            print(lang, json.dumps(results["languages"][lang]["wer"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
