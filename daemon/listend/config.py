"""Settings for listend: dataclasses, profile presets and TOML loading.

A *profile* is nothing but a set of default values for the same settings
(``full`` and ``lightweight``); there is one engine whatever the profile.
How a user's value combines with a profile:

1. the dataclass default, then
2. the profile's preset (:data:`PROFILE_PRESETS`), then
3. the user's top-level section (``[memory]``): applies to every profile, then
4. the user's per-profile section (``[lightweight.memory]``): that profile only.

Every profile is built and checked when the file is loaded, so a value that
cannot work with one profile (``[memory] warn_mb = 500`` is above the
lightweight preset's cleanup level) is an error at start, naming the file,
the keys and where each value came from -- not a failure hours later when
the memory watchdog or ``listenctl profile`` switches.

Every field carries its valid range in ``metadata`` so that one validator can
produce a clear, one-line error naming the offending key. The sections'
dataclasses are in :mod:`listend.config_sections`; this module re-exports
them and holds the rest: the presets, the layering, the file and its checks.
"""

from __future__ import annotations

import dataclasses
import os
import reprlib
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .commands import PHRASES, Action, CommandTable
from .config_sections import (
    ACTIONS,
    DELIVERY_METHODS,
    LANGUAGES,
    MAX_DEVICE_INDEX,
    MAX_LIST_ITEMS,
    MAX_VOCABULARY_WORD_CHARS,
    AudioOptions,
    CommandOptions,
    DecodeOptions,
    DeliveryOptions,
    HistoryOptions,
    MemoryOptions,
    ModelOptions,
    QueueOptions,
    ReplacementOptions,
    VadOptions,
    VocabularyOptions,
    check_device,
    check_languages,
)
from .files import UnsafeFile, read_regular
from .paths import config_dir
from .replacements import Replacements

# The public names: this module's own, and the sections (listend.config_sections) re-exported, so that
# ``from listend.config import DecodeOptions`` works as it always did.
__all__ = [
    "ACTIONS",
    "AudioOptions",
    "CommandOptions",
    "ConfigError",
    "DELIVERY_METHODS",
    "DecodeOptions",
    "DeliveryOptions",
    "HistoryOptions",
    "LANGUAGES",
    "MAX_CONFIG_BYTES",
    "MAX_DEVICE_INDEX",
    "MAX_LIST_ITEMS",
    "MAX_VOCABULARY_WORD_CHARS",
    "MemoryOptions",
    "ModelOptions",
    "Overrides",
    "PROFILES",
    "PROFILE_PRESETS",
    "QueueOptions",
    "ReplacementOptions",
    "Settings",
    "VadOptions",
    "VocabularyOptions",
    "build_settings",
    "check_device",
    "check_languages",
    "command_table",
    "default_config_path",
    "load_overrides",
    "load_settings",
    "reference",
    "replacements",
    "validate_overrides",
]

PROFILES = ("full", "lightweight")
MAX_CONFIG_BYTES = 1 << 20


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def _short(value: Any) -> str:
    """A value as the user wrote it, short and safe to print (nested or huge values are elided)."""
    return reprlib.repr(value)


@dataclass(frozen=True)
class Settings:
    """Everything listend can be configured with; see ``docs/configuration.md``."""

    profile: str = "full"
    models: ModelOptions = ModelOptions()
    audio: AudioOptions = AudioOptions()
    vad: VadOptions = VadOptions()
    decode: DecodeOptions = DecodeOptions()
    queues: QueueOptions = QueueOptions()
    memory: MemoryOptions = MemoryOptions()
    history: HistoryOptions = HistoryOptions()
    delivery: DeliveryOptions = DeliveryOptions()
    commands: CommandOptions = CommandOptions()
    replacements: ReplacementOptions = ReplacementOptions()
    vocabulary: VocabularyOptions = VocabularyOptions()

    @property
    def sections(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "profile"}


# Profile presets: only what differs from the dataclass defaults ("full").
PROFILE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {},
    "lightweight": {
        "models": {"live": "tiny.en", "refine": ""},
        "queues": {"refine": 2, "live_final": 4},
        "audio": {"ring_seconds": 15.0},
        "memory": {"warn_mb": 400, "cleanup_mb": 450, "limit_mb": 600, "trim_interval_s": 30.0},
    },
}

_SECTION_TYPES = {f.name: f.type for f in dataclasses.fields(Settings)}


def _section_class(name: str) -> type:
    return type(getattr(Settings(), name))


def _check_value(where: str, f: dataclasses.Field[Any], value: Any) -> Any:
    if f.type == "tuple[str, ...]":  # a TOML array of strings
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {_short(value)}")
        if len(value) > MAX_LIST_ITEMS:
            raise ConfigError(f"{where}: at most {MAX_LIST_ITEMS} entries, got {len(value)}")
        if any(len(v) > 4096 or "\0" in v for v in value):
            raise ConfigError(f"{where}: an entry is too long or contains NUL")
        if "check" in f.metadata and (problem := f.metadata["check"](tuple(value))):
            raise ConfigError(f"{where}: {problem}")
        return tuple(value)
    types: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
    expected = f.type if isinstance(f.type, type) else types[str(f.type)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is str and isinstance(value, int) and not isinstance(value, bool) and f.name == "device":
        value = str(value)  # an input device may be given by index
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {type(value).__name__} {_short(value)}")
    meta = f.metadata
    lo, hi = meta.get("min"), meta.get("max")
    if expected in (int, float):
        if value != value:  # NaN
            raise ConfigError(f"{where}: must be a number, got nan")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{where}: {_short(value)} is out of range [{lo}, {hi}]")
    if isinstance(value, str) and len(value) > 4096:
        raise ConfigError(f"{where}: value is too long")
    if "choices" in meta and value not in meta["choices"]:
        choices = [c for c in meta["choices"] if c]
        shown = ", ".join(choices) if len(choices) <= 10 else f"a language code such as {', '.join(choices[:8])}"
        raise ConfigError(
            f"{where}: {str(value)[:60]!r} is not one of {shown}" + (" or ''" if "" in meta["choices"] else "")
        )
    if "check" in meta and (problem := meta["check"](value)):
        raise ConfigError(f"{where}: {problem}")
    return value


def validate_overrides(data: Mapping[str, Any], origin: str = "config") -> dict[str, dict[str, Any]]:
    """Check a parsed TOML document and return it as ``{section: {key: value}}``.

    ``profile`` is returned under the pseudo-section ``""``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: expected a table")
    out: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key == "profile":
            if value not in PROFILES:
                raise ConfigError(f"{origin}: profile: {_short(value)} is not one of {', '.join(PROFILES)}")
            out.setdefault("", {})["profile"] = value
            continue
        if key in PROFILES:  # [lightweight.memory]: that profile only
            if not isinstance(value, Mapping):
                raise ConfigError(f"{origin}: [{key}] must be a table of sections")
            for name, section in value.items():
                out[_profile_key(key, name)] = _validate_section(origin, name, section, prefix=f"{key}.")
            continue
        out[key] = _validate_section(origin, key, value)
    if out:
        out.setdefault("", {})["origin"] = origin
    return out


def _profile_key(profile: str, section: str) -> str:
    return f"{profile}.{section}"


def _validate_section(origin: str, key: str, value: Any, prefix: str = "") -> dict[str, Any]:
    if key not in _SECTION_TYPES or key == "profile":
        raise ConfigError(
            f"{origin}: unknown key {prefix}{key!r} (sections: {', '.join(Settings().sections)}; "
            f"per profile: {', '.join(p + '.SECTION' for p in PROFILES)})"
        )
    if not isinstance(value, Mapping):
        raise ConfigError(f"{origin}: [{prefix}{key}] must be a table")
    if key == "replacements":
        return {"rules": _replacement_rules(f"{origin}: {prefix}{key}", value)}
    fields = {f.name: f for f in dataclasses.fields(_section_class(key))}
    section: dict[str, Any] = {}
    for sub, subvalue in value.items():
        if sub not in fields:
            raise ConfigError(f"{origin}: unknown key {prefix}{key}.{sub} (known: {', '.join(fields)})")
        section[sub] = _check_value(f"{origin}: {prefix}{key}.{sub}", fields[sub], subvalue)
    return section


def _replacement_rules(where: str, table: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    for phrase, text in table.items():
        if not isinstance(text, str):
            raise ConfigError(f"{where}.{_short(phrase)}: expected str, got {type(text).__name__} {_short(text)}")
    rules = tuple(table.items())
    try:
        Replacements.build(dict(rules))
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    return rules


def command_table(settings: Settings) -> CommandTable:
    """The command phrases in force with ``settings`` (none when ``[commands] enabled = false``).

    The built-in phrases of the user's languages (``decode.language_set``:
    every table's when any language may be detected), the user's phrases,
    less the actions turned off. Raises ``ValueError`` when a user's phrase
    cannot work.
    """
    c = settings.commands
    if not c.enabled:
        return CommandTable({})
    languages = settings.decode.language_set
    return CommandTable.build(
        list(PHRASES) if languages == LANGUAGES else languages,
        extra={action: getattr(c, action.value) for action in Action},
        disabled=[Action(a) for a in c.disabled],
    )


def replacements(settings: Settings) -> Replacements:
    """The replacements in force with ``settings`` (checked at load)."""
    return Replacements.build(dict(settings.replacements.rules))


def build_settings(profile: str | None, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Settings:
    """Combine a profile preset with the user's overrides (see the module docstring for the order).

    ``profile=None`` takes the profile from the overrides, else ``full``.
    A combination that cannot work raises :class:`ConfigError` naming each
    value's origin.
    """
    overrides = overrides or {}
    if profile is None:
        profile = overrides.get("", {}).get("profile", "full")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {str(profile)[:60]!r} (use {' or '.join(PROFILES)})")
    preset = PROFILE_PRESETS[profile]
    file = overrides.get("", {}).get("origin", "config")
    sections: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, default in Settings().sections.items():
        layers = (
            (f"the {profile} preset", preset.get(name, {})),
            (f"[{name}] in {file}", overrides.get(name, {})),
            (f"[{profile}.{name}] in {file}", overrides.get(_profile_key(profile, name), {})),
        )
        values: dict[str, Any] = {}
        for where, layer in layers:
            for key, value in layer.items():
                values[key] = value
                origins[f"{name}.{key}"] = where
        sections[name] = dataclasses.replace(default, **values)
    settings = _for_the_languages(Settings(profile=profile, **sections), origins)
    _check_consistency(settings, lambda key: origins.get(key, "the default"))
    try:
        command_table(settings)
    except ValueError as e:
        raise ConfigError(f"{file}: commands: {e}") from None
    return settings


# A preset's English-only model and the multilingual model listend ships that stands in for it when the
# user's languages hold another one (issue 27): the lightweight profile runs one model, and tiny.en cannot
# write German. Whisper base is the smallest multilingual model listend ships (nothing to download).
MULTILINGUAL_FOR = {"tiny.en": "base"}


def speaks_english_only(model: str) -> bool:
    """``model`` writes English only: a Whisper ``.en`` model, Moonshine base-en, a distil-whisper model."""
    name = model.rsplit("/", 1)[-1]
    return name.endswith(".en") or name == "moonshine-base" or name.startswith("distil-")


def _for_the_languages(s: Settings, origins: dict[str, str]) -> Settings:
    """``s`` with a preset's English-only single model made multilingual where the set holds another language.

    Only a preset's choice is changed (the user's own model is theirs), and
    only where it is the one model (no refine pass to write the other
    languages): lightweight's tiny.en becomes Whisper base. A configuration
    that names another language and leaves no model able to write it is an
    error at load, not German decoded as English.
    """
    others = [code for code in s.decode.language_set if code != "en"]
    if not others:
        return s
    m = s.models
    live_origin = origins.get("models.live", "the default")
    if live_origin == f"the {s.profile} preset" and not m.refine and m.live in MULTILINGUAL_FOR:
        multilingual = MULTILINGUAL_FOR[m.live]
        origins["models.live"] = f"the {s.profile} preset ({multilingual} for {others[0]}: {m.live} is English only)"
        s = dataclasses.replace(s, models=dataclasses.replace(m, live=multilingual))
        m = s.models
    named = bool(s.decode.languages or s.decode.language)  # not language = "" (detect among all)
    if named and speaks_english_only(m.live) and (not m.refine or speaks_english_only(m.refine)):
        keys = ("models.live", "models.refine", "decode.languages" if s.decode.languages else "decode.language")
        where = "; ".join(f"{k} = {_get(s, k)!r} from {origins.get(k, 'the default')}" for k in keys)
        raise ConfigError(
            f"profile {s.profile}: no model writes {others[0]}: English-only models ({where}); "
            f"use a multilingual model such as base in [{s.profile}.models]"
        )
    return s


def _check_consistency(s: Settings, origin_of: Callable[[str], str]) -> None:
    def fail(message: str, *keys: str) -> None:
        where = "; ".join(f"{k} = {_get(s, k)!r} from {origin_of(k)}" for k in keys)
        raise ConfigError(
            f"profile {s.profile}: {message} ({where}); "
            f"set values for this profile alone in [{s.profile}.{keys[0].split('.')[0]}]"
        )

    if s.vad.neg_threshold >= s.vad.threshold:
        fail("vad.neg_threshold must be below vad.threshold", "vad.neg_threshold", "vad.threshold")
    m = s.memory
    if not m.warn_mb <= m.cleanup_mb <= m.limit_mb:
        fail("need memory warn_mb <= cleanup_mb <= limit_mb", "memory.warn_mb", "memory.cleanup_mb", "memory.limit_mb")
    if s.audio.ring_seconds < 2 * s.vad.hop_ms / 1000:
        fail("audio.ring_seconds is too small for vad.hop_ms", "audio.ring_seconds", "vad.hop_ms")


def _get(s: Settings, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(s, section), key)


def default_config_path() -> Path:
    return config_dir() / "config.toml"


def load_overrides(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate the user's TOML file.

    With ``path=None`` the default location is used and a missing file means
    "all defaults"; an explicitly named file must exist.
    """
    explicit = path is not None
    p = Path(path) if path is not None else default_config_path()
    try:
        raw = read_regular(p, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{p}: no such config file") from None
        return {}
    except UnsafeFile as e:
        raise ConfigError(f"{p}: {e.strerror}") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {str(e)[:200]}") from None
    except RecursionError:
        raise ConfigError(f"{p}: invalid TOML: nested too deeply") from None
    return validate_overrides(data, origin=str(p))


Overrides = dict[str, dict[str, Any]]


def load_settings(path: str | os.PathLike[str] | None = None, profile: str | None = None) -> tuple[Settings, Overrides]:
    """Load the config file and build settings; returns ``(settings, overrides)``.

    Keep the overrides to rebuild settings for another profile at run time.
    Every profile is checked now, so a later switch cannot fail on the file.
    """
    overrides = load_overrides(path)
    settings = build_settings(profile, overrides)
    for other in PROFILES:
        if other != settings.profile:
            try:
                build_settings(other, overrides)
            except ConfigError as e:
                origin = overrides.get("", {}).get("origin", "config")
                raise ConfigError(f"{origin}: {e}") from None
    return settings, overrides


def reference() -> str:
    """The key tables of ``docs/configuration.md``, written from the dataclasses (a test keeps the doc equal)."""
    lines: list[str] = []
    light = PROFILE_PRESETS["lightweight"]
    for section, options in Settings().sections.items():
        doc = " ".join((type(options).__doc__ or "").split("\n\n")[0].split())
        lines += [
            f"## [{section}]",
            "",
            doc,
            "",
            "| key | type | default | lightweight | range / meaning |",
            "|---|---|---|---|---|",
        ]
        for f in dataclasses.fields(options):
            meta = f.metadata
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            kind = "list of str" if kind == "tuple[str, ...]" else kind
            preset = light.get(section, {}).get(f.name)
            shown = "" if preset is None else ("`''` (none)" if preset == "" else f"`{preset!r}`")
            parts = []
            if "choices" in meta and len(meta["choices"]) <= 8:  # languages: the doc names them
                parts.append(" / ".join(c for c in meta["choices"] if c))
            if meta.get("min") is not None:
                parts.append(f"{_number(meta['min'])} … {_number(meta['max'])}")
            if meta.get("doc"):
                parts.append(meta["doc"])
            lines.append(f"| `{f.name}` | {kind} | `{getattr(options, f.name)!r}` | {shown} | {'; '.join(parts)} |")
        lines.append("")
    return "\n".join(lines)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
