"""Which language an utterance is decoded in: the user's set, detection restricted to it, sticky in a session.

The user names the languages they speak (``[decode] languages = ["en", "de"]``).
One language, or one pinned for now (``listenctl language de``), means no
detection at all. With several, the model's language probabilities are
restricted to the set and renormalised, so a third language can never be
chosen; and the choice is *sticky* within a dictation session, because short
utterances are where detection fails ("short clips -> Russian"). The language
in force changes only on clear evidence:

- at once, when the utterance is at least :attr:`LanguagePolicy.min_seconds`
  long and another language of the set has at least
  :attr:`LanguagePolicy.switch_probability` of the restricted probability;
- or when :attr:`LanguagePolicy.confirm` utterances in a row favour the same
  other language (each with more than half of the probability) -- a run of
  short utterances in the other language still switches.

The first utterance of a session takes the most probable language of the set.
Decoding in the language in force, not the detected one, is what keeps the
text in the user's language: listend never asks a model to translate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("listend.languages")


@dataclass(frozen=True)
class LanguagePolicy:
    """When detection may change the language in force (see the module's doc)."""

    switch_probability: float = 0.65
    min_seconds: float = 1.5
    confirm: int = 2


@dataclass(frozen=True)
class Choice:
    """The language an utterance is decoded in, and why (for the log and ``listenctl language``)."""

    language: str
    switched: bool
    why: str


class LanguageChooser:
    """The language in force for one dictation session; not thread-safe (the refine worker owns it)."""

    def __init__(self, languages: Sequence[str], policy: LanguagePolicy | None = None):
        if not languages:
            raise ValueError("at least one language is needed")
        self.languages: tuple[str, ...] = tuple(dict.fromkeys(languages))
        self.policy = policy or LanguagePolicy()
        self._pinned: str | None = None
        self._current: str | None = None
        self._streak_language: str | None = None
        self._streak = 0

    @property
    def current(self) -> str:
        """The language in force (before the first utterance: the pinned one, else the first of the set)."""
        return self._pinned or self._current or self.languages[0]

    @property
    def pinned(self) -> str | None:
        return self._pinned

    @property
    def needs_detection(self) -> bool:
        """False when the answer is known without audio: one language, or one pinned."""
        return self._pinned is None and len(self.languages) > 1

    def pin(self, language: str | None) -> None:
        """Use ``language`` for every utterance until unpinned (None); it must be in the set."""
        if language is not None and language not in self.languages:
            raise ValueError(f"{language!r} is not one of the languages set ({', '.join(self.languages)})")
        self._pinned = language
        self._streak_language, self._streak = None, 0

    def new_session(self) -> None:
        """A new dictation session: the first utterance decides again (a pin stays)."""
        self._current = None
        self._streak_language, self._streak = None, 0

    def choose(self, probabilities: Mapping[str, float], seconds: float) -> Choice:
        """The language to decode an utterance of ``seconds`` in, given the model's language probabilities."""
        if not self.needs_detection:
            return Choice(self.current, False, "pinned" if self._pinned else "the only language set")
        restricted = {lang: max(0.0, probabilities.get(lang, 0.0)) for lang in self.languages}
        total = sum(restricted.values())
        if total <= 0.0:
            return Choice(self.current, False, "no evidence")
        best = max(self.languages, key=lambda lang: restricted[lang])  # ties: the set's order
        share = restricted[best] / total
        if self._current is None:
            self._current = best
            return Choice(best, False, f"first utterance: {best} {share:.0%}")
        if best == self._current:
            self._streak_language, self._streak = None, 0
            return Choice(best, False, f"{best} {share:.0%}")
        policy = self.policy
        if share >= policy.switch_probability and seconds >= policy.min_seconds:
            return self._switch(best, f"{best} {share:.0%} over {seconds:.1f} s")
        if share > 0.5:
            self._streak = self._streak + 1 if self._streak_language == best else 1
            self._streak_language = best
            if self._streak >= policy.confirm:
                return self._switch(best, f"{best} in {self._streak} utterances in a row")
        else:
            self._streak_language, self._streak = None, 0
        return Choice(self._current, False, f"kept {self._current}: {best} {share:.0%} over {seconds:.1f} s")

    def _switch(self, language: str, why: str) -> Choice:
        self._current = language
        self._streak_language, self._streak = None, 0
        return Choice(language, True, why)


@dataclass(frozen=True)
class LanguageState:
    """What ``listenctl language`` and the ``Language``/``Languages`` D-Bus properties show."""

    language: str  # in force
    languages: tuple[str, ...]  # the user's set
    pinned: str | None  # pinned for now (``listenctl language de``); None: detection may choose
    detections: int  # utterances whose language was detected since the daemon started
    switches: int  # times detection changed the language in force


class SessionLanguages:
    """The language chooser of the running daemon, shared by the decoders and the D-Bus layer.

    The refine pass (or the live pass's finals without a refine model)
    asks :meth:`decide` for each utterance; the user pins or unpins from the
    D-Bus thread; a Start begins a new session. One lock guards the chooser;
    the model's detection runs outside it (``detect`` is called only when the
    chooser needs evidence, so a pinned or single language costs nothing).
    """

    def __init__(
        self,
        languages: Sequence[str],
        policy: LanguagePolicy | None = None,
        changed: Callable[[LanguageState, str], None] | None = None,
    ):
        self._lock = threading.Lock()
        self._chooser = LanguageChooser(languages, policy)
        self._detections = self._switches = 0
        self._changed = changed  # told (outside the lock) when the language in force or the pin changes, and why

    @property
    def current(self) -> str:
        """The language in force (what a live decode uses: it never detects)."""
        with self._lock:
            return self._chooser.current

    def state(self) -> LanguageState:
        with self._lock:
            return self._state()

    def _state(self) -> LanguageState:
        c = self._chooser
        return LanguageState(c.current, c.languages, c.pinned, self._detections, self._switches)

    def _tell(self, before: LanguageState, after: LanguageState, why: str) -> None:
        if self._changed is not None and (before.language, before.pinned) != (after.language, after.pinned):
            self._changed(after, why)

    def decide(self, detect: Callable[[], Mapping[str, float]], seconds: float) -> Choice:
        """The language to decode an utterance of ``seconds`` in; ``detect()`` gives the model's probabilities."""
        with self._lock:
            if not self._chooser.needs_detection:
                return self._chooser.choose({}, seconds)
        probabilities = detect()
        with self._lock:
            before = self._state()
            self._detections += 1
            choice = self._chooser.choose(probabilities, seconds)
            self._switches += choice.switched
            after = self._state()
        if choice.switched:
            log.info("language %s (%s)", choice.language, choice.why)
        self._tell(before, after, choice.why)
        return choice

    @property
    def judges_context(self) -> bool:
        """Pinned in a set of several: what was said may be another language of the set than the one decoded in."""
        with self._lock:
            c = self._chooser
            return c.pinned is not None and len(c.languages) > 1

    def clearly_other(self, probabilities: Mapping[str, float], seconds: float, language: str) -> str | None:
        """The language of the set an utterance decoded in ``language`` was clearly spoken in, if another one.

        Clearly: by the rule that switches at once (at least ``min_seconds``
        long and ``switch_probability`` of the restricted probability). Used
        for the refine pass's context, never to choose a language: English
        said while German is pinned is decoded in German as the user asked,
        but its speech and text would pull the German after it towards
        English (measured: German 26 % WER alone, 63 % after English context).
        """
        with self._lock:
            c = self._chooser
            restricted = {lang: max(0.0, probabilities.get(lang, 0.0)) for lang in c.languages}
            policy = c.policy
        total = sum(restricted.values())
        if total <= 0.0 or seconds < policy.min_seconds:
            return None
        best = max(restricted, key=lambda lang: restricted[lang])
        return best if best != language and restricted[best] / total >= policy.switch_probability else None

    def pin(self, language: str | None) -> None:
        """Pin ``language`` for now (None: detection again). Raises ValueError for one outside the set."""
        with self._lock:
            before = self._state()
            self._chooser.pin(language)
            after = self._state()
        self._tell(before, after, f"pinned {language}" if language else "unpinned")

    def new_session(self) -> None:
        with self._lock:
            before = self._state()
            self._chooser.new_session()
            after = self._state()
        self._tell(before, after, "a new session")

    def reconfigure(self, languages: Sequence[str]) -> None:
        """The settings changed (a profile switch): a new set keeps the pin if it is still in it."""
        with self._lock:
            if tuple(dict.fromkeys(languages)) == self._chooser.languages:
                return
            before = self._state()
            pinned = self._chooser.pinned
            self._chooser = LanguageChooser(languages, self._chooser.policy)
            if pinned in self._chooser.languages:
                self._chooser.pin(pinned)
            after = self._state()
        self._tell(before, after, "the settings changed")
