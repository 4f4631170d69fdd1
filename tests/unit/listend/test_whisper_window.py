"""The window's arithmetic, the output cap, the loop guard and the session's context, without a model."""

from __future__ import annotations

import numpy as np
import pytest

from listend.units import SAMPLE_RATE
from listend.whisper_window import (
    MAX_WINDOW_S,
    SessionContext,
    WindowedWhisper,
    WindowOptions,
    context_room,
    cut_loop,
    token_cap,
    window_seconds,
)

OPTIONS = WindowOptions(floor_s=10.0, speech_ratio=1.5, margin_s=2.0, context_s=8.0, max_gap_s=30.0)


def seconds(s: float) -> np.ndarray:
    return np.zeros(int(s * SAMPLE_RATE), np.float32)


def test_the_window_follows_the_audio_above_its_floor_and_never_passes_30_s():
    assert window_seconds(2.0, 0.0, OPTIONS) == 10.0
    assert window_seconds(8.0, 0.0, OPTIONS) == pytest.approx(14.0)
    assert window_seconds(3.0, 4.0, OPTIONS) == pytest.approx(12.5)  # context counts as speech
    assert window_seconds(25.0, 0.0, OPTIONS) == MAX_WINDOW_S


def test_context_fills_what_the_floor_leaves_at_most_context_s():
    # Context and utterance together up to context_s, or what the floor leaves if that is more.
    assert context_room(1.0, OPTIONS) == pytest.approx(7.0)
    assert context_room(6.0, OPTIONS) == pytest.approx(2.0)
    assert context_room(8.5, OPTIONS) == 0.0
    assert context_room(2.0, WindowOptions(floor_s=20.0, margin_s=2.0, speech_ratio=1.5, context_s=8.0)) == 8.0


def test_the_cap_grows_with_the_audio():
    assert token_cap(0.0, OPTIONS) == 10
    assert token_cap(2.0, OPTIONS) == 23
    assert token_cap(10.0, OPTIONS) == 75


def test_a_loop_is_cut_to_its_first_unit_and_what_follows_goes_with_it():
    tokens = [1, 2, 3] + [7, 8] * 6 + [9]
    kept, looped = cut_loop(tokens)
    assert looped and kept == [1, 2, 3, 7, 8]
    kept, looped = cut_loop([5] * 20)
    assert looped and kept == [5]


def test_short_repetitions_are_speech_not_a_loop():
    for tokens in ([4, 4, 4], [1, 2, 1, 2], [1, 2, 3, 1, 2, 3, 4], list(range(40))):
        assert cut_loop(tokens) == (tokens, False)


def test_context_is_the_newest_whole_utterances_that_fit_the_room():
    ctx = SessionContext(OPTIONS)
    ctx.add(1, 0, seconds(3.0), "One.")
    ctx.add(2, 4 * SAMPLE_RATE, seconds(2.0), "Two.")
    got = ctx.before(3, 7 * SAMPLE_RATE, 1.0)  # room 7 s: both (5 s)
    assert got.text == "One. Two." and got.seconds == pytest.approx(5.0)
    got = ctx.before(3, 7 * SAMPLE_RATE, 4.0)  # room 4 s: the newest only, never a part of one
    assert got.text == "Two." and got.seconds == pytest.approx(2.0)
    assert ctx.before(3, 7 * SAMPLE_RATE, 8.5).text == ""  # no room


@pytest.mark.parametrize(
    ("utt_id", "start_s", "why"),
    [
        (4, 7.0, "the previous segment was not refined"),
        (3, 40.0, "a long pause"),
        (2, 7.0, "not after it"),
        (3, 0.5, "another session's clock"),
    ],
)
def test_no_context_across_a_gap(utt_id: int, start_s: float, why: str):
    ctx = SessionContext(OPTIONS)
    ctx.add(1, 0, seconds(3.0), "One.")
    ctx.add(2, 4 * SAMPLE_RATE, seconds(2.0), "Two.")
    assert ctx.before(utt_id, int(start_s * SAMPLE_RATE), 1.0).text == "", why


def test_a_new_session_and_an_empty_text_start_the_context_again():
    ctx = SessionContext(OPTIONS)
    ctx.add(1, 0, seconds(2.0), "One.")
    ctx.clear()
    assert ctx.before(2, 3 * SAMPLE_RATE, 1.0).text == ""
    ctx.add(2, 3 * SAMPLE_RATE, seconds(2.0), "Two.")
    ctx.add(3, 6 * SAMPLE_RATE, seconds(1.0), "")  # nothing to force as the prefix
    assert ctx.before(4, 8 * SAMPLE_RATE, 1.0).text == ""


def test_the_context_held_stays_bounded():
    ctx = SessionContext(OPTIONS)
    for i in range(1, 200):
        ctx.add(i, i * 3 * SAMPLE_RATE, seconds(2.0), f"Sentence {i}.")
    held = ctx.before(200, 200 * 3 * SAMPLE_RATE, 0.0)
    assert held.text.startswith("Sentence 19") and held.seconds <= OPTIONS.context_s


def test_an_object_without_a_ctranslate2_whisper_model_is_refused():
    with pytest.raises(TypeError):
        WindowedWhisper(object())
