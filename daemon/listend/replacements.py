"""Replacements: a spoken phrase becomes the text the user chose ("my email" -> an address).

Whole words only and case-insensitive, in every script: "my email" replaces
"My email," in "Send it to my email, please" but not "my emails" or
"army email". A phrase of several words matches whatever spaces the model put
between them. All phrases are matched in one pass, the longest first where
two could start at the same place, and a replacement's own text is never
matched again -- so two rules cannot feed each other or loop.

The same :class:`Replacements` applies to refined and live text alike, so a
partial does not show the phrase that its refined text will not have.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_RULES = 500
MAX_PHRASE_CHARS = 100
MAX_TEXT_CHARS = 2000


@dataclass(frozen=True)
class Replacements:
    """The rules in force, compiled once; build with :meth:`build`."""

    rules: Mapping[str, str] = field(default_factory=dict)  # folded phrase -> replacement text
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, rules: Mapping[str, str]) -> Replacements:
        """Compile ``rules`` (spoken phrase -> text). ``ValueError`` names the first rule that cannot work."""
        if len(rules) > MAX_RULES:
            raise ValueError(f"at most {MAX_RULES} replacements, got {len(rules)}")
        folded: dict[str, str] = {}
        for phrase, text in rules.items():
            words = phrase.split()
            if not words or len(phrase) > MAX_PHRASE_CHARS:
                raise ValueError(
                    f"replacement phrase {phrase[:MAX_PHRASE_CHARS]!r} must be 1-{MAX_PHRASE_CHARS} characters"
                )
            if len(text) > MAX_TEXT_CHARS:
                raise ValueError(f"replacement for {phrase!r} is longer than {MAX_TEXT_CHARS} characters")
            if any("\0" in s for s in (phrase, text)):
                raise ValueError(f"replacement {phrase!r} contains NUL")
            key = unicodedata.normalize("NFC", " ".join(words)).lower()
            if key in folded and folded[key] != text:
                raise ValueError(f"replacement phrase {phrase!r} is given twice with different texts")
            folded[key] = text
        if not folded:
            return cls()
        # Longest first: "my work email" wins over "my email" where both could match.
        alternatives = sorted(folded, key=len, reverse=True)
        body = "|".join(r"\s+".join(re.escape(word) for word in phrase.split()) for phrase in alternatives)
        pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)
        return cls(folded, pattern)

    def apply(self, text: str) -> str:
        """``text`` with every whole-word occurrence of a phrase replaced by its text."""
        if self._pattern is None:
            return text
        rules = self.rules

        def replace(match: re.Match[str]) -> str:
            said = match.group(0)
            # The regex's case-insensitive match is a little wider than lower() (the Kelvin sign, dotted capital
            # I): such a match keeps what was said rather than raise in the pipeline.
            return rules.get(" ".join(said.split()).lower(), said)

        # Composed as the phrases are, so "é" matches whichever way the model or the config wrote it.
        return self._pattern.sub(replace, unicodedata.normalize("NFC", text))

    def __bool__(self) -> bool:
        return bool(self.rules)
