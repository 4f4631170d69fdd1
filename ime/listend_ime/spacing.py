"""How dictated text joins the text before the cursor: spaces, capitals, quotes -- plain logic, per language.

A careful typist's rules (:mod:`composer` applies them to every commit and
preedit): a space unless the cursor follows whitespace, an opening bracket or
quote, or starts the field; a capital after the end of a sentence or at the
start of the field or of a line; none after a comma or a word (the models
start every segment with one) -- but only where that capital can mean nothing
but "first word". Which words those are is the language's
(:class:`Typography`): German writes every noun with a capital and its
formal "Sie" too, so only its articles, pronouns and particles are made
small; a language listend has no list for keeps the model's capitals (a
wrong capital is a smaller harm than a name or a noun written small). French
puts a space before ``? ! : ;`` and inside ``« »``; Chinese, Japanese and
Thai put no space between segments. Texts that go to the clipboard together
are joined by :func:`clipboard_text`.

The language of a text is the daemon's ``Language`` property when it was
announced (docs/dbus.md); none known is English, as the daemon's default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"[.!?…](?:[\s\u00a0\u202f]*['\")\]”’»])*\s*$")
_MID_SENTENCE = re.compile(r"[,;\w]\s*$")  # after a comma or a word: the sentence goes on
_OPENING = ("(", "[", "{", "“", "‘", "„", "«", "/", "-", "\n", "\t", " ", "\u00a0", "\u202f")  # no space after these
_STRAIGHT_QUOTES = ('"', "'")  # opening after a space or at the start, else closing
_APOSTROPHES = str.maketrans({"’": "'"})

# French typography: a space before the high marks and inside the guillemets. Whisper writes French this way
# itself, with a plain space ("Vous venez ce soir ?"), and so does a French keyboard (AZERTY has no
# non-breaking space key): a plain space is the least surprising -- dictated text looks like typed text and
# like the model's, and a search for "soir ?" finds both. What is added is added only where the model (or a
# spoken mark) left none, and only before a mark that ends a word ("10:30", "https://", "?q=" stay as they are).
FRENCH_SPACE = " "
_FRENCH_HIGH_MARK = re.compile(r"(?<=[\w\"'’)\]»…])([?!;:])(?=[\s?!»\"'’)\]]|$)")
_FRENCH_OPEN_GUILLEMET = re.compile(r"«(?=[^\s\u00a0\u202f])")
_FRENCH_CLOSE_GUILLEMET = re.compile(r"(?<=[^\s\u00a0\u202f«])»")


@dataclass(frozen=True)
class Typography:
    """One language's rules for joining dictated text to what is before the cursor."""

    # Words whose capital at the start of a segment can only mean "first word": made small mid-sentence.
    function_words: frozenset[str] = frozenset()
    spaced_marks: bool = False  # a space before ? ! : ; and inside « » (French)
    spaced: bool = True  # a space between segments (none in Chinese, Japanese, Thai, ...)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Never a name and never a noun. English: "I" is left out (always a capital), as are words that are also
# names or nouns often enough ("May", "Will" stay).
_ENGLISH = _words(
    "a an the and but or nor so yet for because since although though while if then than when where which who "
    "whom whose what that this these those there here it its we you he she they me him her us them my your his "
    "our their is are was were be been am do does did have has had will would can could shall should may might "
    "must not no yes as at by in on of off to from with without into onto over under about after before also "
    "just only even still maybe perhaps please thanks ever never always often another other some any all every "
    "each both one how why now today let it's that's there's we're we've we'll you're you've you'll they're "
    "they've he's she's let's don't doesn't didn't isn't wasn't can't won't what's here's"
)
# German: every noun has a capital, so do the formal "Sie", "Ihr", "Ihnen" (left out here), and "Morgen"
# (the morning) beside "morgen" (tomorrow) -- left out too.
_GERMAN = _words(
    "der die das den dem des ein eine einen einem einer eines kein keine keinen keinem keiner und oder aber "
    "denn doch sondern weil wenn dass daß ob als wie wo wann was wer wen wem warum ich du er es wir man mich "
    "mir dich dir sich uns euch mein meine meinen meinem meiner dein deine deinen sein seine seinen seinem "
    "seiner unser unsere euer eure ist sind war waren bin bist seid wird werden wurde hat habe haben hatte "
    "kann können konnte muss müssen soll sollen will wollen darf möchte nicht nichts auch noch schon nur dann "
    "da dort hier jetzt heute gestern so sehr mit von zu bei nach aus für auf an in im am um über unter vor "
    "hinter neben zwischen durch gegen ohne bis seit ja nein bitte danke also vielleicht immer nie oft dieser "
    "diese dieses diesen diesem jeder jede jedes alle viele einige etwas wieder zum zur vom beim ins"
)
# French: elided words count by what is before the apostrophe ("C'est" -> "c'").
_FRENCH = _words(
    "le la les un une des de du et ou mais donc car ni que qui quoi dont où je tu il elle on nous vous ils "
    "elles me te se ce cet cette ces mon ton son ma ta sa mes tes ses notre votre nos vos leur leurs est sont "
    "était étaient suis es sommes êtes a ai as avons avez ont avait être avoir ne pas plus très bien aussi "
    "alors puis ensuite dans sur sous avec sans pour par en au aux chez vers entre si quand comme oui non "
    "merci voici voilà ici là maintenant toujours jamais souvent aujourd'hui demain hier "
    "c' j' l' d' qu' n' s' m' t'"
)
_SPANISH = _words(
    "el la los las un una unos unas y o pero porque que qué quien como cuando donde yo tú él ella nosotros "
    "vosotros ellos ellas me te se nos lo le les mi tu su mis tus sus es son era está están estoy soy fue ha "
    "han he hay no sí muy también ya pero con sin para por en de del al sobre entre hasta desde este esta "
    "estos estas ese esa eso hoy mañana ayer aquí allí ahora siempre nunca gracias"
)

ENGLISH = Typography(_ENGLISH)
PLAIN = Typography()  # a language without rules here: spaces, and the model's capitals kept mid-sentence
_UNSPACED = Typography(spaced=False)
TYPOGRAPHY: dict[str, Typography] = {
    "en": ENGLISH,
    "de": Typography(_GERMAN),
    "fr": Typography(_FRENCH, spaced_marks=True),
    "es": Typography(_SPANISH),
    **{code: _UNSPACED for code in ("zh", "yue", "ja", "th", "lo", "my", "km", "bo")},
}


def typography(language: str | None) -> Typography:
    """The rules of ``language`` (a Whisper code; None or '' is English, the daemon's default)."""
    if not language:
        return ENGLISH
    return TYPOGRAPHY.get(language.split("-")[0].split("_")[0].lower(), PLAIN)


def join(before: str | None, text: str, language: str | None = "en") -> str:
    """``text`` (in ``language``) as it should follow ``before`` (the text before the cursor; None when unknown)."""
    rules = typography(language)
    text = text.strip()
    if not text:
        return ""
    if rules.spaced_marks:
        text = french_marks(text)
    if before is None:
        return text  # nothing known: as the model wrote it, no space
    line_start = before.rstrip(" \t").endswith("\n")
    sentence_start = not before.strip() or line_start or bool(_SENTENCE_END.search(before))
    if sentence_start and text[0].islower():
        text = text[0].upper() + text[1:]
    elif not sentence_start and _MID_SENTENCE.search(before) and _capitalised_by_the_model(text, rules):
        text = text[0].lower() + text[1:]  # the model starts every segment with a capital, even after a comma
    if not before or not rules.spaced:
        return text
    if rules.spaced_marks and before.endswith("«"):
        return FRENCH_SPACE + text  # inside the guillemets
    if rules.spaced_marks and text[0] in "?!:;»":
        return text if before.endswith((" ", "\u00a0", "\u202f", "\n", "\t")) else FRENCH_SPACE + text
    if not before.endswith(_OPENING) and not _opening_quote(before):
        text = " " + text
    return text


def french_marks(text: str) -> str:
    """``text`` with French spacing where the model left none: before ? ! ; and a colon, inside « »."""
    text = _FRENCH_HIGH_MARK.sub(FRENCH_SPACE + r"\1", text)
    text = _FRENCH_OPEN_GUILLEMET.sub("«" + FRENCH_SPACE, text)
    return _FRENCH_CLOSE_GUILLEMET.sub(FRENCH_SPACE + "»", text)


def clipboard_text(pieces: list[str]) -> str:
    """Texts that go to the clipboard together: a space between segments, none around line breaks."""
    out = ""
    for piece in pieces:
        piece = piece if not piece.strip() else piece.strip()
        if out and not out.endswith("\n") and not piece.startswith("\n"):
            out += " "
        out += piece
    return out


def _capitalised_by_the_model(text: str, rules: Typography) -> bool:
    """``text`` starts with a function word of its language, whose capital only says "first word"."""
    word = re.split(r"[\s,.;:!?\u00a0\u202f]", text, maxsplit=1)[0].translate(_APOSTROPHES)
    if len(word) < 2 or not word[0].isupper() or word[1:] != word[1:].lower():
        return False
    folded = word.lower()
    elided = folded[: folded.index("'") + 1] if "'" in folded else ""
    return folded in rules.function_words or elided in rules.function_words


def _opening_quote(before: str) -> bool:
    return before.endswith(_STRAIGHT_QUOTES) and (len(before) == 1 or before[-2].isspace() or before[-2] in "([{")
