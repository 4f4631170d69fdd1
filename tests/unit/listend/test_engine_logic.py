"""The engine's own logic with stand-in decoders and a stand-in VAD: id order, the stop budget, the model life cycle.

The real models are tested in tests/test_engine.py and tests/test_supervision.py; here only what the engine
decides is under test, so it runs in a second. "Speech" is a loud tone (:func:`loud_is_speech`).
"""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from listend.config import build_settings
from listend.decoders import Decoded
from listend.engine import Engine
from listend.events import ProfileChanged, Refined, Retracted
from listend.models import ModelUnavailable
from listend.profiles import DecoderSet
from listend.sources import FileSource
from listend.unfinished import UnfinishedAudio
from listend.units import SAMPLE_RATE
from tests.support.pipeline import Recorder, loud_is_speech, tone
from tests.support.waiting import wait_until


class StandIn:
    """A decoder answering ``"<name> <n>"`` for its n-th decode; while ``gate`` is clear it waits for it."""

    def __init__(self, name: str, gate: threading.Event | None = None):
        self.model_name = name
        self.gate = gate
        self.calls = 0

    def decode(self, audio: np.ndarray, prompt: str = "", cancelled: object = None) -> Decoded:
        if self.gate is not None:
            self.gate.wait()
        self.calls += 1
        return Decoded(f"{self.model_name} {self.calls}", 1, 0)


class StandInModels:
    """A decoder factory for :class:`Engine`: counts its builds; ``fail_next`` makes the next one raise.

    The refine model and the live model (partials and finals: the fast fallback) may each be held up by a gate.
    """

    def __init__(self, refine_gate: threading.Event | None = None, live_gate: threading.Event | None = None):
        self.live = StandIn("live", live_gate)
        self.final = StandIn("final", live_gate)
        self.refine = StandIn("refine", refine_gate)
        self.builds = 0
        self.fail_next = ""

    @property
    def gates(self) -> list[threading.Event]:
        return [d.gate for d in (self.live, self.final, self.refine) if d.gate is not None]

    def __call__(self, settings, reuse):
        self.builds += 1
        if self.fail_next:
            message, self.fail_next = self.fail_next, ""
            time.sleep(0.5)  # loading takes a while: capture reads the whole file meanwhile
            raise ModelUnavailable(message)
        return DecoderSet(self.live, self.final, self.refine if settings.models.refine else None)


def utterances_wav(path: Path, count: int) -> Path:
    """``count`` utterances of 1 s "speech", each followed by 1.5 s of silence."""
    audio = np.concatenate([np.concatenate([tone(1.0, 0.5), tone(1.5, 0.0)]) for _ in range(count)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((audio * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture
def make_engine(tmp_path):
    engines: list[Engine] = []
    gates: list[threading.Event] = []

    def make(
        models: StandInModels, first_id: int = 1, profile: str = "full", overrides: dict | None = None
    ) -> tuple[Engine, Recorder]:
        engine = Engine(
            build_settings(profile, overrides),
            overrides,
            first_segment_id=first_id,
            unfinished=UnfinishedAudio(tmp_path / "unfinished"),
            decoders=models,
            vad=loud_is_speech,
        )
        gates.extend(models.gates)
        rec = Recorder()
        engine.subscribe(rec)
        engine.load()
        engines.append(engine)
        return engine, rec

    yield make
    for gate in gates:
        gate.set()  # a decode held up by a test ends
    for engine in engines:
        engine.close(2)


def finals(rec: Recorder) -> list[tuple[int, str]]:
    """Every id's final event in publication order: (id, source) for text, (id, kind) for a retraction."""
    return [
        (e.id, e.source) if isinstance(e, Refined) else (e.id, e.kind)
        for e in rec
        if isinstance(e, Refined | Retracted)
    ]


def test_ids_continue_from_the_first_id_and_finals_are_published_in_id_order(make_engine, tmp_path):
    models = StandInModels()
    engine, rec = make_engine(models, first_id=41)
    engine.start(FileSource(str(utterances_wav(tmp_path / "three.wav", 3))))
    assert engine.wait_source_done(10) and engine.wait_drained(10)
    assert finals(rec) == [(41, "refined"), (42, "refined"), (43, "refined")]
    assert [e.text for e in rec.of(Refined)] == ["refine 1", "refine 2", "refine 3"]
    assert engine.next_segment_id == 44 and engine.pending_segments == 0


def test_stop_within_its_budget_gives_what_the_refine_model_cannot_finish_the_fast_model_s_text(make_engine, tmp_path):
    gate = threading.Event()  # the refine model never finishes: a hung decode
    models = StandInModels(refine_gate=gate)
    engine, rec = make_engine(models)
    engine.start(FileSource(str(utterances_wav(tmp_path / "three.wav", 3))))
    assert engine.wait_source_done(10)
    wait_until(lambda: engine.refine_queue_length == 2, 10, "two utterances waiting behind the hung one")
    assert engine.stop(budget=3.0) is False
    assert engine.wait_drained(5)
    # The one being refined and the two waiting behind it: their newest partial, else the fast model's final.
    assert finals(rec) == [(1, "live"), (2, "live"), (3, "live")]
    assert all(e.text.split()[0] in ("live", "final") for e in rec.of(Refined)), rec.of(Refined)
    assert not UnfinishedAudio(tmp_path / "unfinished").files()


def test_stop_within_its_budget_keeps_as_audio_what_no_model_can_finish(make_engine, tmp_path):
    models = StandInModels(refine_gate=threading.Event(), live_gate=threading.Event())  # both hung
    engine, rec = make_engine(models)
    engine.start(FileSource(str(utterances_wav(tmp_path / "three.wav", 3))))
    assert engine.wait_source_done(10)
    started = time.monotonic()
    assert engine.stop(budget=1.5) is False
    assert time.monotonic() - started < 1.5 + 2.0  # its budget (and slack for a loaded machine), not for ever
    assert engine.wait_drained(5)
    assert finals(rec) == [(1, "kept-as-audio"), (2, "kept-as-audio"), (3, "kept-as-audio")]
    assert len(UnfinishedAudio(tmp_path / "unfinished").files()) == 3


def test_stop_without_a_budget_waits_for_every_refined_text(make_engine, tmp_path):
    gate = threading.Event()
    models = StandInModels(refine_gate=gate)
    engine, rec = make_engine(models)
    engine.start(FileSource(str(utterances_wav(tmp_path / "two.wav", 2))))
    assert engine.wait_source_done(10)
    threading.Timer(0.5, gate.set).start()
    assert engine.stop(budget=None) is True
    assert finals(rec) == [(1, "refined"), (2, "refined")]


def test_models_released_when_idle_load_again_at_the_next_start(make_engine, tmp_path):
    models = StandInModels()
    engine, rec = make_engine(models)
    assert engine.release_models() and not engine.stats().models.models_loaded and engine.decoders is None
    assert not engine.release_models()  # not twice
    engine.start(FileSource(str(utterances_wav(tmp_path / "one.wav", 1))))
    assert engine.wait_source_done(10) and engine.wait_drained(10)
    stats = engine.stats().models
    assert stats.models_loaded and (stats.model_releases, stats.model_loads) == (1, 1) and models.builds == 2
    assert finals(rec) == [(1, "refined")]


def test_a_failed_load_again_keeps_what_was_heard_and_the_next_start_loads_again(make_engine, tmp_path):
    """Issue 29, item 7, with stand-ins: the start went to a final error and the words were lost."""
    models = StandInModels()
    engine, rec = make_engine(models)
    wav = utterances_wav(tmp_path / "three.wav", 3)
    assert engine.release_models()
    models.fail_next = "moonshine-base: no space left on device"
    engine.start(FileSource(str(wav)))
    wait_until(lambda: engine.state == "error", 10, lambda: f"an error (state {engine.state})")
    assert (
        engine.last_error == "cannot load the models again: ModelUnavailable: moonshine-base: no space left on device"
    )
    assert engine.wait_drained(5)
    assert finals(rec) == [(1, "kept-as-audio"), (2, "kept-as-audio"), (3, "kept-as-audio")]
    assert len(UnfinishedAudio(tmp_path / "unfinished").files()) == 3
    rec.clear()
    engine.start(FileSource(str(wav)))  # not a dead stage: this start loads again
    assert engine.wait_source_done(10) and engine.wait_drained(10)
    assert finals(rec) == [(4, "refined"), (5, "refined"), (6, "refined")]
    assert engine.state == "idle" and not engine.last_error


def test_a_profile_switch_hands_the_stages_the_new_decoders_and_reuses_nothing_it_does_not_name(make_engine):
    models = StandInModels()
    engine, rec = make_engine(models)
    engine.set_profile("lightweight", "test")
    assert engine.decoders is not None and engine.decoders.refine is None and engine.profile == "lightweight"
    engine.set_profile("lightweight")  # the same profile: nothing to do
    assert models.builds == 2
    engine.release_models()
    engine.set_profile("full")  # released: the switch loads
    assert engine.decoders is not None and engine.decoders.refine is models.refine
    assert engine.stats().models.model_loads == 1
    wait_until(lambda: len(rec.of(ProfileChanged)) == 2, 5, "two profile changes")
    assert [(e.profile, e.reason) for e in rec.of(ProfileChanged)] == [("lightweight", "test"), ("full", "")]


def test_the_ring_follows_the_profile_s_ring_seconds_from_the_next_start(make_engine, tmp_path):
    engine, _ = make_engine(StandInModels())
    assert engine.stats().capture.ring_capacity_samples == 30 * SAMPLE_RATE  # full
    engine.set_profile("lightweight")
    engine.start(FileSource(str(utterances_wav(tmp_path / "one.wav", 1))))
    assert engine.wait_source_done(10) and engine.wait_drained(10)
    assert engine.stats().capture.ring_capacity_samples == 15 * SAMPLE_RATE  # lightweight's preset
