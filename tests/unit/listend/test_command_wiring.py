"""Voice control wired into the daemon: which segment a command acts on, the commit stage's meaning and
replacements, the history's record and the text as meant, the vocabulary, the config's sections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from listend.commands import Action, CommandSession, CommandTable, as_meant, command_label
from listend.commit import Commit
from listend.config import ConfigError, build_settings, command_table, replacements, validate_overrides
from listend.events import Refined
from listend.history import Segment, TranscriptStore, parse_record, retracted_ids
from listend.replacements import Replacements
from listend.sources import FileSource
from listend.vocabulary import Vocabulary
from tests.support.pipeline import Recorder, utt
from tests.unit.listend import test_engine_logic as engine_logic

TABLE = CommandTable.build(["en"])
make_engine = engine_logic.make_engine  # the fixture: an engine on stand-in decoders
StandInModels, utterances_wav = engine_logic.StandInModels, engine_logic.utterances_wav


def test_scratch_that_walks_back_over_text_segments_and_never_targets_a_command() -> None:
    session = CommandSession()
    assert session.meaning(1, "First sentence.", TABLE) == (None, 0)
    assert session.meaning(2, "Second sentence.", TABLE) == (None, 0)
    assert session.meaning(3, "New line.", TABLE) == (Action.NEW_LINE, 0)
    assert session.meaning(4, "Scratch that.", TABLE) == (Action.SCRATCH_THAT, 2)  # skips the command 3
    assert session.meaning(5, "Delete that!", TABLE) == (Action.SCRATCH_THAT, 1)  # said again: one more
    assert session.meaning(6, "scratch that", TABLE) == (Action.SCRATCH_THAT, 0)  # nothing left
    assert session.meaning(7, "Third.", TABLE) == (None, 0)
    assert session.meaning(8, "Question mark.", TABLE) == (Action.QUESTION_MARK, 7)
    assert session.meaning(9, "Stop listening.", TABLE) == (Action.STOP_LISTENING, 0)
    session.reset()  # a new dictation session: nothing of the earlier one is a target
    assert session.meaning(10, "Scratch that.", TABLE) == (Action.SCRATCH_THAT, 0)
    assert session.meaning(11, "Comma.", TABLE) == (Action.COMMA, 0)


def test_a_mark_after_a_scratch_amends_the_segment_before_the_scratched_one() -> None:
    session = CommandSession()
    session.meaning(1, "Is it ready.", TABLE)
    session.meaning(2, "Wrong words.", TABLE)
    assert session.meaning(3, "scratch that", TABLE) == (Action.SCRATCH_THAT, 2)
    assert session.meaning(4, "question mark", TABLE) == (Action.QUESTION_MARK, 1)


def test_the_text_as_meant_leaves_out_scratched_segments_applies_marks_and_breaks_lines() -> None:
    segments = [
        (1, "Dear Anna,", "", 0),
        (2, "New line.", "new_line", 0),
        (3, "Is the report ready.", "", 0),
        (4, "Question mark.", "question_mark", 3),
        (5, "This is wrong.", "", 0),
        (6, "Scratch that.", "scratch_that", 5),
        (7, "New paragraph.", "new_paragraph", 0),
        (8, "Thanks", "", 0),
        (9, "Stop listening.", "stop_listening", 0),
        (10, "x", "a_future_action", 0),
    ]
    assert as_meant(segments) == "Dear Anna,\nIs the report ready?\n\nThanks"
    assert as_meant([(1, "a new line of products", "", 0)]) == "a new line of products"
    assert command_label("new_line") == "[new line]"


def test_commit_gives_a_whole_utterance_command_its_action_and_target_and_replaces_only_text(
    commit: Commit,
) -> None:
    events = Recorder()
    commit.subscribe(events)
    commit.configure_voice(TABLE, Replacements.build({"my email": "me@example.org", "new line": "NL"}))
    commit.new_session(1)
    for i in range(1, 7):
        commit.register(i)
    assert commit.partial(1, True, "write to my email", 0.5)
    commit.finish(utt(2), "New line.", "refined")  # before 1 is final: its meaning waits for the id order
    commit.finish(utt(1), "Write to my email.", "refined")
    commit.finish(utt(3), "a new line of products", "live")
    commit.finish(utt(4), "Scratch that.", "refined")
    commit.finish(utt(5), "Question mark.", "refined")
    commit.finish(utt(6), "Exclamation point!", "refined")
    assert commit.wait_drained(5)
    partial, *finals = list(events)
    assert partial.text == "write to me@example.org"  # the partial is replaced too
    assert all(isinstance(e, Refined) for e in finals)
    meant = [(e.id, e.text, e.command, e.target, e.amended) for e in finals if isinstance(e, Refined)]
    assert meant == [
        (1, "Write to me@example.org.", "", 0, ""),
        (2, "New line.", "new_line", 0, ""),  # a command's words are not replaced
        (3, "a NL of products", "", 0, ""),  # inside a sentence the words are text
        (4, "Scratch that.", "scratch_that", 3, ""),
        (5, "Question mark.", "question_mark", 1, "Write to me@example.org?"),  # the text as published, amended
        (6, "Exclamation point!", "exclamation_mark", 1, "Write to me@example.org!"),
    ]
    assert commit.stats().commands == 4


def test_commit_starts_a_session_after_the_earlier_session_s_owed_finals(commit: Commit) -> None:
    events = Recorder()
    commit.subscribe(events)
    commit.configure_voice(TABLE, Replacements())
    commit.register(1)  # the earlier session still owes 1
    commit.new_session(2)
    commit.register(2)
    commit.finish(utt(2), "Scratch that.", "refined")
    commit.finish(utt(1), "Old text.", "refined")
    assert commit.wait_drained(5)
    assert [(e.id, e.command, e.target) for e in events if isinstance(e, Refined)] == [
        (1, "", 0),
        (2, "scratch_that", 0),  # never the earlier session's segment
    ]


def test_the_history_keeps_what_a_command_meant(tmp_path: Path) -> None:
    store = TranscriptStore(tmp_path)
    store.append(Segment(1, 1e9, 1e9 + 1, "Oops.", "", "refined"))
    store.append(Segment(2, 1e9 + 2, 1e9 + 3, "Scratch that.", "", "refined", "scratch_that", 1))
    store.append(Segment(3, 1e9 + 4, 1e9 + 5, "Is it?", "", "refined"))
    store.append(Segment(4, 1e9 + 6, 1e9 + 7, "Period.", "", "refined", "period", 3, "Is it."))
    again = TranscriptStore(tmp_path).since(0)
    assert [(s.id, s.command, s.target, s.amended) for s in again] == [
        (1, "", 0, ""),
        (2, "scratch_that", 1, ""),
        (3, "", 0, ""),
        (4, "period", 3, "Is it."),
    ]
    assert retracted_ids(again) == {1}
    assert parse_record('{"id": 3, "start": 1, "end": 2, "text": "x", "target": -1}') is None
    assert parse_record('{"id": 3, "start": 1, "end": 2, "text": "x"}') == Segment(3, 1.0, 2.0, "x")


def test_config_sections_build_the_table_and_the_replacements_and_bad_values_are_one_line() -> None:
    overrides = validate_overrides(
        {
            "commands": {"new_line": ["next line"], "disabled": ["comma"]},
            "replacements": {"my email": "me@example.org"},
            "vocabulary": {"words": ["Anneliese"]},
        }
    )
    settings = build_settings(None, overrides)
    table = command_table(settings)
    assert table.recognise("Next line.") is Action.NEW_LINE and table.recognise("Comma.") is None
    assert replacements(settings).apply("to my email") == "to me@example.org"
    assert settings.vocabulary.words == ("Anneliese",)
    assert command_table(build_settings(None, validate_overrides({"commands": {"enabled": False}}))).phrases == {}
    for bad, says in [
        ({"commands": {"period": ["new line"]}}, "commands: command phrase 'new line' already means new_line"),
        ({"commands": {"disabled": ["fly"]}}, "commands.disabled: 'fly' is not an action"),
        ({"commands": {"new_line": "next line"}}, "commands.new_line: expected a list of strings"),
        ({"replacements": {"x": 1}}, "replacements.'x': expected str"),
        ({"replacements": {" ": "x"}}, "replacement phrase ' ' must be"),
        ({"vocabulary": {"words": [""]}}, "vocabulary.words: a word must be 1-64 characters"),
    ]:
        with pytest.raises(ConfigError) as caught:
            build_settings(None, validate_overrides(bad))
        assert says in str(caught.value) and "\n" not in str(caught.value)


def test_the_vocabulary_merges_the_config_with_added_words_kept_in_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "vocabulary.json"
    vocabulary = Vocabulary(["Anneliese"], path)
    assert vocabulary.add("Kubernetes") and not vocabulary.add("kubernetes") and not vocabulary.add("ANNELIESE")
    assert Vocabulary(["Anneliese"], path).words == ["Anneliese", "Kubernetes"]  # kept across restarts
    with pytest.raises(ValueError, match="in the config"):
        vocabulary.remove("anneliese")
    for bad in ("", "   ", "x" * 65, "a\x00b"):
        with pytest.raises(ValueError):
            vocabulary.add(bad)
    assert vocabulary.remove("KUBERNETES") and not vocabulary.remove("Kubernetes")
    assert Vocabulary([], path).words == []
    path.write_text("{not json")
    assert Vocabulary(["x"], path).words == ["x"]  # a damaged file: the config's words, said in the log


def test_clients_parse_segment_command_and_the_tray_reads_the_session_as_meant() -> None:
    from types import SimpleNamespace

    from listend.client import CommandEvent, MalformedSignal, event_of
    from listend_tray.busworker import TrayState
    from listend_tray.menu import build_menu
    from tests.unit.listend.test_clients import Actions, entries, sig

    assert event_of(sig("SegmentCommand", "tsts", [5, "new_line", 0, "New line."])) == CommandEvent(
        5, "new_line", 0, "New line."
    )
    for body in ([0, "new_line", 0, "x"], [5, "scratch_that", 2**63, "x"]):
        with pytest.raises(MalformedSignal):
            event_of(sig("SegmentCommand", "tsts", body))
    with pytest.raises(MalformedSignal):
        event_of(sig("SegmentCommand", "ts", [5, "new_line"]))

    state = TrayState(running=True, state="listening", phrases=[("new_line", "new line"), ("new_line", "newline")])
    state.add_final(1, "Is it ready.")
    state.add_final(2, "Question mark.", command="question_mark", target=1)
    state.add_final(3, "Oops.")
    state.add_final(4, "Scratch that.", command="scratch_that", target=3)
    state.add_final(5, "New line.", command="new_line")
    state.add_final(6, "Yes")
    assert state.session_text() == "Is it ready?\nYes"
    assert state.last_text() == "Yes" and state.recent_segments()[4] == (5, "[new line]")
    assert state.command_of(5) == "new_line" and state.command_of(6) == "" and state.command_of(4) == ""
    menu = entries(build_menu(state, SimpleNamespace(auto_copy=False), Actions()))  # type: ignore[arg-type]
    assert menu["say"].visible and [e.label for e in menu["say"].children] == ["“new line” → [new line]"]


def test_commands_and_replacements_follow_the_profile_from_the_next_segment(make_engine, tmp_path):
    """[commands] and [replacements] reach the commit stage through the settings route: at a profile switch."""
    overrides = validate_overrides(
        {
            "replacements": {"refine": "accurate"},
            "lightweight": {"replacements": {"final": "quick"}, "commands": {"new_line": ["final 2"]}},
        }
    )
    engine, rec = make_engine(StandInModels(), overrides=overrides)
    engine.start(FileSource(str(utterances_wav(tmp_path / "one.wav", 1))))
    assert engine.wait_source_done(10) and engine.wait_drained(10)
    engine.set_profile("lightweight")
    engine.start(FileSource(str(utterances_wav(tmp_path / "two.wav", 2))))
    assert engine.wait_source_done(10) and engine.wait_drained(10)
    assert [(e.text, e.command) for e in rec.of(Refined)] == [
        ("accurate 1", ""),
        ("quick 1", ""),
        ("final 2", "new_line"),  # a command's words are not replaced
    ]


def test_the_vocabulary_guard_keeps_names_in_speech_and_drops_them_from_noise() -> None:
    """The refine decode with a vocabulary, on a stand-in window: what each decode (with, without) returns."""
    from listend.config import DecodeOptions
    from listend.decoders import PassOptions, WhisperDecoder
    from listend.whisper_window import Attempt

    class Window:
        def __init__(self, with_words: str, without: str, no_speech: float = 0.1):
            self.answers = {True: with_words, False: without}
            self.no_speech = no_speech

        def decode(self, audio, settings, context=None, prompt="", hotwords=""):  # type: ignore[no-untyped-def]
            text = self.answers[bool(hotwords)]
            return Attempt([1], text, -0.3, self.no_speech, 1.2, 0.0, False, False)

    decoder = WhisperDecoder(object(), "stand-in", PassOptions.refine(DecodeOptions(window_floor_s=0)))
    decoder.hotwords = lambda: ["Ngozi", "Okonkwo"]
    audio = np.zeros(16000, dtype=np.float32)
    for with_words, without, kept in [
        ("Ask Okonkwo to call.", "Ask a concuo to call.", True),  # a name in a sentence
        ("Okonkwo.", "A concuo.", True),  # a name said alone
        ("Ngozi,", "Thank you very much.", False),  # noise: the vocabulary alone where plain heard other words
        ("Ngozi,", "", False),  # noise: nothing without the vocabulary
        ("See you.", "See you.", True),  # no vocabulary word: one decode
    ]:
        decoder.windowed = Window(with_words, without)  # type: ignore[assignment]
        assert decoder.decode(audio).text == (with_words if kept else ""), (with_words, without)
    # Text Whisper doubts is speech (no-speech probability 0.55): the vocabulary had talked it into words on
    # noise that it heard nothing in without the vocabulary (bench/commands.py).
    for with_words, without, kept in [
        ("Thank you very much.", "", False),  # noise
        ("Fine.", "Fine.", True),  # a quiet word that is speech without the vocabulary too
    ]:
        decoder.windowed = Window(with_words, without, no_speech=0.55)  # type: ignore[assignment]
        assert decoder.decode(audio).text == (with_words if kept else ""), (with_words, without)
