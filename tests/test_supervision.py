"""The supervised engine with real models: failing decodes, dead workers, the stop budget, first start."""

from __future__ import annotations

import threading
import time
from typing import Any

from listend.config import build_settings
from listend.engine import Engine
from listend.events import ErrorReported, Refined, Retracted, StateChanged
from listend.models import ModelSpec, load_whisper
from listend.sources import FileSource
from listend.unfinished import UnfinishedAudio
from tests.support.audio import SENTENCES, concat, heard, silence, speak
from tests.support.pipeline import Recorder
from tests.support.waiting import wait_until

WHISPER_PAIR = {"models": {"live": "tiny.en", "refine": "base"}}


def wrapped_loader(make):
    """Real models, each wrapped by ``make(spec, model)``."""

    def load(spec: ModelSpec) -> Any:
        return make(spec, load_whisper(spec))

    return load


class FailingCalls:
    """The wrapped model raises on every other decode: a flaky pass."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def transcribe(self, audio, **kw):
        self.calls += 1
        if self.calls % 2:
            raise RuntimeError("simulated decoder fault")
        return self.model.transcribe(audio, **kw)


def test_a_failing_partial_decode_is_counted_reported_and_the_pipeline_goes_on(tmp_path, two_utterances_wav):
    """The live model fails every other call; the refine model is untouched.

    Recognition is checked where the accurate model is guaranteed to have
    run (both utterances are refined by it): which degraded path would have
    served a failed utterance depends on timing, not on the code.
    """
    flaky_live = wrapped_loader(lambda s, m: FailingCalls(m) if s.name == "tiny.en" else m)
    engine = Engine(
        build_settings("full", WHISPER_PAIR),
        WHISPER_PAIR,
        model_loader=flaky_live,
        unfinished=UnfinishedAudio(tmp_path / "unfinished"),
    )
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    try:
        engine.start(FileSource(str(two_utterances_wav), realtime=True))
        assert engine.wait_source_done(120)
        assert engine.stop(60)  # returns: nothing hangs on the failed decodes
        stats = engine.stats()
    finally:
        engine.close(10)
    live = next(w for w in stats.workers if w.name == "live")
    assert live.alive and live.failures >= 1 and "simulated decoder fault" in live.last_failure
    assert any("simulated decoder fault" in e.message for e in rec.of(ErrorReported))
    assert engine.state == "idle"
    finals = rec.of(Refined)
    assert [r.source for r in finals] == ["refined", "refined"], finals
    for final, sentence in zip(finals, SENTENCES[:2], strict=True):
        assert heard(sentence, final.text, missing=1), final.text


def test_a_dead_worker_is_an_error_stops_the_heartbeat_and_stop_returns(tmp_path, two_utterances_wav):
    kept = UnfinishedAudio(tmp_path / "unfinished")
    engine = Engine(build_settings("lightweight"), unfinished=kept)
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    try:
        working_step = engine._live.step

        def broken_step():
            if engine.next_segment_id > 1:  # once speech was heard
                raise MemoryError("simulated death of the live loop")
            working_step()

        engine._live.step = broken_step  # the loop itself dies, not one item
        engine.start(FileSource(str(two_utterances_wav), realtime=True))
        wait_until(lambda: engine.state == "error", 10, lambda: f"the error state (now {engine.state})")
        beat = engine.heartbeat
        time.sleep(1.0)
        assert engine.heartbeat == beat  # the watchdog is no longer fed
        assert "live worker died" in engine.last_error
        started = time.monotonic()
        engine.stop(3.0)
        assert time.monotonic() - started < 4.0
    finally:
        engine.close(3)
    states = [e.state for e in rec.of(StateChanged)]
    assert states[-1] == "error"
    # What was heard and could not be decoded is kept, not lost.
    kept_events = [e for e in rec.of(Retracted) if e.kind == "kept-as-audio"]
    assert kept_events and len(kept.files()) == len(kept_events)
    assert not rec.of(Refined)


def test_stop_fits_its_budget_and_keeps_what_it_cannot_decode(tmp_path, audio_dir):
    parts = [speak(audio_dir / f"budget{i}.wav", s) for i, s in enumerate(SENTENCES)]
    gap = silence(audio_dir / "budget-gap.wav", 0.9)
    audio = concat(tmp_path / "budget.wav", *[p for part in parts for p in (part, gap)])

    class Starved:
        """Every decode of either model takes 6 s more: a starved CPU."""

        def __init__(self, model):
            self.model = model

        def transcribe(self, audio, **kw):
            time.sleep(6.0)
            return self.model.transcribe(audio, **kw)

    kept = UnfinishedAudio(tmp_path / "unfinished")
    engine = Engine(
        build_settings("full", WHISPER_PAIR),
        WHISPER_PAIR,
        model_loader=wrapped_loader(lambda s, m: Starved(m)),
        unfinished=kept,
    )
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    try:
        engine.start(FileSource(str(audio), realtime=True))
        assert engine.wait_source_done(120)
        started = time.monotonic()
        engine.stop(4.0)
        took = time.monotonic() - started
        registered = engine.next_segment_id - 1
    finally:
        engine.close(2)
    assert took < 5.0, took
    finals = {e.id for e in rec.of(Refined)}
    kept_ids = {e.id for e in rec.of(Retracted) if e.kind == "kept-as-audio"}
    assert len(kept.files()) == len(kept_ids) >= 1
    assert finals | kept_ids | {e.id for e in rec.of(Retracted)} == set(range(1, registered + 1))

    # The next start decodes the kept audio as new segments, with their original wall times; a file goes
    # only once its text is durable (here: once the store below says so).
    later = Engine(build_settings("lightweight"), first_segment_id=registered + 1, unfinished=kept)
    rec2 = Recorder()
    later.subscribe(rec2)
    stored: list[int] = []
    later.subscribe(lambda e: stored.append(e.id) if isinstance(e, Refined) and e.id % 2 else None)
    later.load()
    try:
        assert later.recover_unfinished() == len(kept_ids)
        assert later.wait_drained(30)  # final is not yet delivered: the publisher hands events on in order
        recovered = rec2.of(Refined)
        assert recovered and all(r.id > registered for r in recovered)
        assert all(abs(r.wall_start - time.time()) < 120 for r in recovered)
        unsettled = len(kept.files())
        assert unsettled == len(kept_ids)  # nothing settled yet: every file is still there
        for seg_id in stored:
            later.settle(seg_id)
        assert len(kept.files()) == unsettled - len(stored)
        for r in recovered:
            later.settle(r.id)
        assert not kept.files()
    finally:
        later.close(10)


def test_first_start_with_a_reopen_factory_does_not_reconnect(two_utterances_wav):
    calls = []

    class SlowToOpen(FileSource):
        def start(self, ring):
            time.sleep(1.5)  # PulseAudio takes this long to deliver a first block
            super().start(ring)

    def reopen():
        calls.append(1)
        return FileSource(str(two_utterances_wav), realtime=True)

    engine = Engine(build_settings("lightweight"))
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    try:
        engine.start(SlowToOpen(str(two_utterances_wav), realtime=True), reopen)
        assert engine.state == "listening"  # published before start() returned
        time.sleep(2.0)
        assert calls == [] and engine.stats().capture.reopens == 0
        engine.stop(30)
    finally:
        engine.close(10)
    assert [e.state for e in rec.of(StateChanged)].count("listening") == 1


def test_each_session_starts_without_the_previous_prompt(audio_dir):
    prompts = []

    class Spy:
        def __init__(self, model):
            self.model = model

        def transcribe(self, audio, **kw):
            prompts.append(kw.get("initial_prompt"))
            return self.model.transcribe(audio, **kw)

    wav = speak(audio_dir / "prompt.wav", SENTENCES[0])
    engine = Engine(
        build_settings("full", WHISPER_PAIR),
        WHISPER_PAIR,
        model_loader=wrapped_loader(lambda s, m: Spy(m) if s.name == "base" else m),
    )
    engine.load()
    try:
        for _ in range(2):
            engine.start(FileSource(str(wav)))
            engine.wait_source_done(60)
            engine.wait_drained(120)
    finally:
        engine.close(10)
    assert prompts == [None, None]


def test_profile_switches_are_serialised_with_decoding(two_utterances_wav):
    """Four switches while speech is decoded: no decode fails, every utterance gets a final, in order.

    Which model served which utterance depends on when the switches fell, so
    recognition is asked only of what either model hears in clear speech.
    """
    engine = Engine(build_settings("full"))
    rec = Recorder()
    engine.subscribe(rec)
    engine.load()
    errors = []
    try:
        engine.start(FileSource(str(two_utterances_wav), realtime=True))

        def switch():
            try:
                for profile in ("lightweight", "full", "lightweight", "full"):
                    engine.set_profile(profile)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        t = threading.Thread(target=switch)
        t.start()
        engine.wait_source_done(120)
        t.join(120)
        engine.stop(60)
    finally:
        engine.close(10)
    assert not errors and engine.profile == "full"
    assert all(w.failures == 0 for w in engine.stats().workers)
    finals = rec.of(Refined)
    assert [f.id for f in finals] == sorted(f.id for f in finals) and len(finals) >= 2, finals
    text = " ".join(f.text for f in finals)
    for sentence in SENTENCES[:2]:
        assert heard(sentence, text, missing=3), text
