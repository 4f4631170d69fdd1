"""One way to say "done, or why not" across listend.

Whatever can fail without being an exception -- copying to the clipboard,
typing, keeping audio, shedding a model -- returns an :class:`Outcome`: a
boolean that reads naturally in an ``if``, and one line that says what was
done or why it was not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """``ok`` and one line: what was done (``ok``) or why not."""

    ok: bool
    detail: str = ""

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def done(cls, detail: str = "") -> Outcome:
        return cls(True, detail)

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        return cls(False, reason)
