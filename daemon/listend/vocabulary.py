"""The user's vocabulary: words and names the refine pass should expect.

Two sources, merged: ``[vocabulary] words`` in the config (the user's file,
never written by listend) and the words added at run time with ``listenctl
vocabulary add`` / ``AddVocabulary``, kept in ``$XDG_STATE_HOME/listend/
vocabulary.json`` (listend's own file, mode 0600). Removing a word removes it
from that file; a word of the config stays until the config is edited (the
error says so). The list in force is the config's words, then the added
ones, without repeats (compared case-insensitively).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from .config import MAX_LIST_ITEMS, MAX_VOCABULARY_WORD_CHARS
from .files import UnsafeFile, read_regular, write_private
from .paths import state_dir

log = logging.getLogger("listend.vocabulary")

MAX_WORDS = MAX_LIST_ITEMS
MAX_WORD_CHARS = MAX_VOCABULARY_WORD_CHARS
_MAX_FILE_BYTES = 1 << 20


def default_vocabulary_file() -> Path:
    return state_dir() / "vocabulary.json"


def check_word(word: str) -> str:
    """``word`` as stored (spaces collapsed); ``ValueError`` with one line when it cannot be a vocabulary word."""
    cleaned = " ".join(word.split())
    if not cleaned:
        raise ValueError("a vocabulary word cannot be empty")
    if len(cleaned) > MAX_WORD_CHARS:
        raise ValueError(f"a vocabulary word is at most {MAX_WORD_CHARS} characters, got {len(cleaned)}")
    if any(not ch.isprintable() for ch in cleaned):
        raise ValueError("a vocabulary word cannot contain control characters")
    return cleaned


class Vocabulary:
    """The vocabulary in force: the config's words plus the added ones (thread-safe)."""

    def __init__(self, configured: Iterable[str] = (), path: Path | None = None):
        self._lock = threading.Lock()  # guards _configured, _added and the file
        self._path = path or default_vocabulary_file()
        self._configured = tuple(configured)
        self._added: list[str] = self._read()

    def _read(self) -> list[str]:
        try:
            data = json.loads(read_regular(self._path, _MAX_FILE_BYTES))
        except FileNotFoundError:
            return []
        except (OSError, UnsafeFile, ValueError, RecursionError) as e:
            log.warning("vocabulary file %s is not usable (%s); starting with the config's words", self._path, e)
            return []
        words = data.get("words") if isinstance(data, dict) else None
        if not isinstance(words, list):
            return []
        kept: list[str] = []
        for word in words[:MAX_WORDS]:
            if not isinstance(word, str):
                continue
            try:
                kept.append(check_word(word))
            except ValueError:
                continue
        return kept

    def _write(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(self._path, json.dumps({"words": self._added}, ensure_ascii=False).encode("utf-8"))

    def configure(self, configured: Iterable[str]) -> None:
        """The config's words in force now (a settings change)."""
        with self._lock:
            self._configured = tuple(configured)

    @property
    def words(self) -> list[str]:
        with self._lock:
            return _merged(self._configured, self._added)

    def add(self, word: str) -> bool:
        """Add ``word``; False if it is already there. ``ValueError`` for a bad word or a full list."""
        word = check_word(word)
        with self._lock:
            if word.casefold() in {w.casefold() for w in _merged(self._configured, self._added)}:
                return False
            if len(_merged(self._configured, self._added)) >= MAX_WORDS:
                raise ValueError(f"the vocabulary is full ({MAX_WORDS} words); remove some first")
            self._added.append(word)
            try:
                self._write()
            except OSError as e:
                self._added.pop()
                raise OSError(f"cannot save the vocabulary to {self._path}: {e.strerror}") from None
            return True

    def remove(self, word: str) -> bool:
        """Remove an added ``word``; False if it is not in the vocabulary. ``ValueError`` for a config word."""
        word = check_word(word)
        with self._lock:
            key = word.casefold()
            kept = [w for w in self._added if w.casefold() != key]
            if len(kept) == len(self._added):
                if key in {w.casefold() for w in self._configured}:
                    raise ValueError(f"{word!r} is in the config's [vocabulary] words: remove it there")
                return False
            before, self._added = self._added, kept
            try:
                self._write()
            except OSError as e:
                self._added = before
                raise OSError(f"cannot save the vocabulary to {self._path}: {e.strerror}") from None
            return True


def _merged(configured: Iterable[str], added: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for word in (*configured, *added):
        key = word.casefold()
        if key not in seen:
            seen.add(key)
            out.append(word)
    return out
