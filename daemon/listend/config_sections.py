"""The settings' sections: one frozen dataclass per TOML table, each field's range and meaning in its metadata.

Nothing here reads a file or combines layers (that is :mod:`listend.config`,
which re-exports every name here). A field's ``metadata`` holds what the one
validator needs to name a bad key in a line -- ``min``/``max``, ``choices``,
a ``check`` function returning why a value cannot work (None when it can) --
and the ``doc`` that ``docs/configuration.md``'s tables are written from.
The voice sections (``[commands]``, ``[replacements]``, ``[vocabulary]``)
are here too; what they build (the command table, the replacements) is in
:mod:`listend.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .commands import Action

# Whisper's languages (faster_whisper.tokenizer._LANGUAGE_CODES, listed here so that checking a
# config does not import the model runtime).
LANGUAGES = tuple(
    (
        "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi hr ht "
        "hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl ps "
        "pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh yue"
    ).split()
)
MAX_DEVICE_INDEX = 9999  # PortAudio numbers devices from 0; a machine has a few dozen at most


def _num(lo: float | None = None, hi: float | None = None, doc: str = "") -> dict[str, Any]:
    return {"min": lo, "max": hi, "doc": doc}


def check_device(value: str) -> str | None:
    """Why ``value`` cannot name an input device (None if it can): an index must be a real one."""
    if value.strip().isdigit() and int(value) > MAX_DEVICE_INDEX:
        return f"device index {value[:20]} is out of range [0, {MAX_DEVICE_INDEX}] (`listenctl devices` lists them)"
    if "\0" in value:
        return "a device name cannot contain NUL"
    return None


def check_languages(value: tuple[str, ...]) -> str | None:
    """Why ``value`` cannot be the user's set of languages (None if it can)."""
    for code in value:
        if code not in LANGUAGES:
            return f"{str(code)[:20]!r} is not a Whisper language code (such as {', '.join(LANGUAGES[:8])})"
    if len(set(value)) != len(value):
        return "a language is named twice"
    return None


@dataclass(frozen=True)
class ModelOptions:
    """Which models run the two passes, and when they are released.

    A model is ``moonshine-base`` (Moonshine base-en from the moonshine-cpp
    package, converted once into the cache), ``tiny.en`` or ``base`` (the
    embedded Whisper models), a path to a local CTranslate2 directory, or a
    Hugging Face hub name such as ``small.en``, ``distil-large-v3`` or
    ``large-v3`` (downloaded once while online). ``refine = ""`` disables
    the refine pass. After ``unload_after_s`` without listening the models
    are released; the next start loads them again while capture already runs.
    """

    live: str = field(default="moonshine-base", metadata={"doc": "fast model for partial text"})
    refine: str = field(default="base", metadata={"doc": "accurate model, '' to disable"})
    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda")})
    compute_type: str = field(default="int8", metadata={"doc": "CTranslate2 compute type"})
    cpu_threads: int = field(
        default=0,
        metadata=_num(
            0,
            64,
            "threads per model; 0 = auto: a Whisper refine model gets every core, a Whisper live model "
            "half of them beside a refine model (all without one), Moonshine one",
        ),
    )
    unload_after_s: float = field(
        default=300.0, metadata=_num(0, 86_400, "release the models after this long without listening, 0 = never")
    )


@dataclass(frozen=True)
class AudioOptions:
    """Capture settings. The pipeline always runs at 16 kHz mono float32."""

    device: str = field(default="", metadata={"doc": "input device name or index, '' = default", "check": check_device})
    ring_seconds: float = field(default=30.0, metadata=_num(2, 600, "capture ring buffer"))
    block_ms: int = field(default=32, metadata=_num(8, 500, "capture block length"))


@dataclass(frozen=True)
class VadOptions:
    """Voice-activity segmentation (Silero VAD)."""

    threshold: float = field(default=0.5, metadata=_num(0.05, 0.99))
    neg_threshold: float = field(default=0.35, metadata=_num(0.01, 0.99))
    min_speech_ms: int = field(default=250, metadata=_num(0, 10_000))
    speech_pad_ms: int = field(default=300, metadata=_num(0, 2_000))
    silence_close_ms: int = field(default=700, metadata=_num(100, 10_000))
    max_utterance_s: float = field(default=20.0, metadata=_num(2, 30))
    hop_ms: int = field(default=96, metadata=_num(32, 1_000, "how often VAD runs"))


@dataclass(frozen=True)
class DecodeOptions:
    """How the live and refine passes decode."""

    language: str = field(
        default="en",
        metadata={
            "doc": "the one language when `languages` is empty (older configs); '' = detect among all of "
            "Whisper's languages (sticky in a session)",
            "choices": ("", *LANGUAGES),
        },
    )
    languages: tuple[str, ...] = field(
        default=(),
        metadata={
            "doc": "the languages you dictate in (Whisper codes, such as en and de): detection chooses only "
            "among them, sticky in a session; one = pinned, no detection; [] = `language`",
            "check": check_languages,
        },
    )
    partial_interval_s: float = field(default=0.5, metadata=_num(0.1, 10))
    partial_window_s: float = field(
        default=8.0,
        metadata=_num(
            2,
            30,
            "most audio one partial re-decodes: a longer utterance keeps the text of its head "
            "(cut at its quietest moment) and re-decodes only the rest",
        ),
    )
    live_beam_size: int = field(default=1, metadata=_num(1, 10))
    refine_beam_size: int = field(default=5, metadata=_num(1, 10))
    prompt_chars: int = field(default=80, metadata=_num(0, 1_000, "previous text as prompt"))
    window_floor_s: float = field(
        default=10.0,
        metadata=_num(
            0,
            30,
            "shortest Whisper window: a Whisper decode takes max(this, 1.5 x its audio + 2 s) instead of 30 s; "
            "0 = faster-whisper's 30 s window for every decode",
        ),
    )
    context_s: float = field(
        default=8.0,
        metadata=_num(
            0,
            30,
            "preceding speech of the session a refine decode holds in its window, its refined text forced as "
            "prefix: context and utterance together up to this, or what the floor leaves; 0 = none",
        ),
    )
    no_speech_threshold: float = field(default=0.6, metadata=_num(0, 1))
    logprob_threshold: float = field(default=-1.0, metadata=_num(-20, 0))
    compression_ratio_threshold: float = field(default=2.4, metadata=_num(1, 10))

    @property
    def language_set(self) -> tuple[str, ...]:
        """The languages an utterance may be decoded in: ``languages``, else ``language``, else all of Whisper's."""
        if self.languages:
            return self.languages
        return (self.language,) if self.language else LANGUAGES


@dataclass(frozen=True)
class QueueOptions:
    """Bounds of the queues between stages (in utterances)."""

    refine: int = field(default=8, metadata=_num(1, 256))
    live_final: int = field(default=8, metadata=_num(1, 256))


@dataclass(frozen=True)
class MemoryOptions:
    """Memory watchdog thresholds (MiB of resident memory; the keys say `_mb`, the unit is 2^20 bytes) and cadence."""

    warn_mb: int = field(default=700, metadata=_num(50, 1_000_000))
    cleanup_mb: int = field(default=850, metadata=_num(50, 1_000_000))
    limit_mb: int = field(default=1100, metadata=_num(50, 1_000_000))
    sample_interval_s: float = field(default=2.0, metadata=_num(0.05, 3_600))
    trim_interval_s: float = field(default=120.0, metadata=_num(1, 86_400, "periodic malloc_trim"))


@dataclass(frozen=True)
class HistoryOptions:
    """On-disk transcript history."""

    retention_days: int = field(default=30, metadata=_num(0, 36_500, "0 = keep forever"))
    directory: str = field(default="", metadata={"doc": "'' = $XDG_STATE_HOME/listend/history"})


DELIVERY_METHODS = ("auto", "ime", "type", "clipboard")


@dataclass(frozen=True)
class DeliveryOptions:
    """Where refined text goes in the desktop (the clients deliver it; the daemon only holds the choice).

    ``auto``: through the input method (``listend-ime``) when IBus runs, else
    typed by the tray; ``ime``: the input method only; ``type``: the tray
    types it; ``clipboard``: the tray copies each segment.
    """

    method: str = field(default="auto", metadata={"choices": DELIVERY_METHODS, "doc": "see below"})


ACTIONS = tuple(a.value for a in Action)
MAX_LIST_ITEMS = 500  # a list in the config (phrases, words): more is a mistake, said at load
MAX_VOCABULARY_WORD_CHARS = 64


def _check_actions(value: tuple[str, ...]) -> str | None:
    unknown = [a for a in value if a not in ACTIONS]
    return f"{unknown[0][:40]!r} is not an action ({', '.join(ACTIONS)})" if unknown else None


def _check_words(value: tuple[str, ...]) -> str | None:
    for word in value:
        if not word.strip() or len(word) > MAX_VOCABULARY_WORD_CHARS:
            return f"a word must be 1-{MAX_VOCABULARY_WORD_CHARS} characters, got {word[:MAX_VOCABULARY_WORD_CHARS]!r}"
    return None


def _phrases(action: Action) -> Any:
    return field(default=(), metadata={"doc": f"your phrases for {action.value}, beside the built-in ones"})


@dataclass(frozen=True)
class CommandOptions:
    """Voice commands: an utterance that is exactly a command phrase (or one repeated) acts once instead of being typed.

    The built-in phrases of the decode language (README) plus yours; an
    action listed in ``disabled`` is never recognised.
    """

    enabled: bool = field(default=True, metadata={"doc": "false = every utterance is text"})
    disabled: tuple[str, ...] = field(default=(), metadata={"doc": "actions turned off", "check": _check_actions})
    new_line: tuple[str, ...] = _phrases(Action.NEW_LINE)
    new_paragraph: tuple[str, ...] = _phrases(Action.NEW_PARAGRAPH)
    scratch_that: tuple[str, ...] = _phrases(Action.SCRATCH_THAT)
    stop_listening: tuple[str, ...] = _phrases(Action.STOP_LISTENING)
    period: tuple[str, ...] = _phrases(Action.PERIOD)
    comma: tuple[str, ...] = _phrases(Action.COMMA)
    question_mark: tuple[str, ...] = _phrases(Action.QUESTION_MARK)
    exclamation_mark: tuple[str, ...] = _phrases(Action.EXCLAMATION_MARK)
    colon: tuple[str, ...] = _phrases(Action.COLON)


@dataclass(frozen=True)
class ReplacementOptions:
    """Spoken phrases replaced by your text ("my email" = "me@example.org"): whole words, any case.

    The section is a table of its own: each key is a phrase, each value its text.
    """

    rules: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata={"doc": 'not a key: each `"phrase" = "text"` line of the section is a rule (at most 500)'},
    )


@dataclass(frozen=True)
class VocabularyOptions:
    """Words and names the refine pass should expect; ``listenctl vocabulary add`` adds more (kept apart)."""

    words: tuple[str, ...] = field(
        default=(), metadata={"doc": f"at most {MAX_LIST_ITEMS}, each 1-64 characters", "check": _check_words}
    )
