"""What the benchmarks share: where they cache audio, how they count word errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from listend.paths import cache_dir as listend_cache  # noqa: E402  (the bench runs from a checkout)


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/listend/bench``: downloaded recordings and intermediate files."""
    return listend_cache() / "bench"


def norm_words(text: str) -> list[str]:
    """Lower-case words without punctuation: what word error rates compare."""
    return re.findall(r"[a-z0-9']+", text.lower())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` (a fraction; 0 for an empty reference)."""
    import jiwer

    ref, hyp = " ".join(norm_words(reference)), " ".join(norm_words(hypothesis))
    return float(jiwer.wer(ref, hyp)) if ref else 0.0


def session_bus() -> tuple[str, str]:
    """A private ``dbus-daemon --session`` for one run: (address, pid); end it with ``kill pid``."""
    address, pid = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return address, pid


def save_result(path: Path, key: str, summary: dict[str, Any]) -> None:
    """Store ``summary`` under ``key`` in the JSON results file ``path`` (other keys are kept) and print it."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = summary
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(summary), flush=True)
