"""How dictated text joins the text before the cursor: spaces, capitals, quotes -- plain logic.

A careful typist's rules (:mod:`composer` applies them to every commit and
preedit): a space unless the cursor follows whitespace, an opening bracket or
quote, or starts the field; a capital after the end of a sentence or at the
start of the field or of a line; none after a comma or a word (the models
start every segment with one). Texts that go to the clipboard together are
joined by :func:`clipboard_text`.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]['\")\]”’»]*\s*$")
_MID_SENTENCE = re.compile(r"[,;\w]\s*$")  # after a comma or a word: the sentence goes on
_OPENING = ("(", "[", "{", "“", "‘", "«", "/", "-", "\n", "\t", " ")  # no space after these
_STRAIGHT_QUOTES = ('"', "'")  # opening after a space or at the start, else closing


def join(before: str | None, text: str) -> str:
    """``text`` as it should follow ``before`` (the text before the cursor; None when unknown)."""
    text = text.strip()
    if not text:
        return ""
    if before is None:
        return text  # nothing known: as the model wrote it, no space
    line_start = before.rstrip(" \t").endswith("\n")
    sentence_start = not before.strip() or line_start or bool(_SENTENCE_END.search(before))
    if sentence_start and text[0].islower():
        text = text[0].upper() + text[1:]
    elif not sentence_start and _MID_SENTENCE.search(before) and _capitalised_by_the_model(text):
        text = text[0].lower() + text[1:]  # the model starts every segment with a capital, even after a comma
    if before and not before.endswith(_OPENING) and not _opening_quote(before):
        text = " " + text
    return text


# Words whose capital at the start of a segment can only mean "first word": never a name, and not nouns in
# German, where every noun has a capital. Anything else keeps the model's capital (Paris, Anna, Hunger): a
# wrong capital is a smaller harm than a name written small.
_FUNCTION_WORDS = frozenset(
    "a an the and but or nor so yet for because since although though while if then than when where which who "
    "whom whose what that this these those there here it its we you he she they me him her us them my your his "
    "our their is are was were be been am do does did have has had will would can could shall should may might "
    "must not no yes as at by in on of off to from with without into onto over under about after before also "
    "just only even still maybe perhaps please thanks ever never always often another other some any all every "
    "each both one how why now today let".split()
)


def clipboard_text(pieces: list[str]) -> str:
    """Texts that go to the clipboard together: a space between segments, none around line breaks."""
    out = ""
    for piece in pieces:
        piece = piece if not piece.strip() else piece.strip()
        if out and not out.endswith("\n") and not piece.startswith("\n"):
            out += " "
        out += piece
    return out


def _capitalised_by_the_model(text: str) -> bool:
    """``text`` starts with a function word whose capital only says "first word" (see _FUNCTION_WORDS)."""
    word = re.split(r"[\s,.;:!?]", text, maxsplit=1)[0]
    return len(word) > 1 and word[0].isupper() and word[1:] == word[1:].lower() and word.lower() in _FUNCTION_WORDS


def _opening_quote(before: str) -> bool:
    return before.endswith(_STRAIGHT_QUOTES) and (len(before) == 1 or before[-2].isspace() or before[-2] in "([{")
