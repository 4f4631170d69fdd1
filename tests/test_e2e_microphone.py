"""End to end through a real capture device: PulseAudio virtual microphone -> listend -> listenctl."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from busfixtures import BusClient, DaemonProcess, PrivateBus, ctl, daemon_env
from conftest import SENTENCES, speak, words
from pulse import PulseServer


@pytest.fixture
def pulse(tmp_path):
    server = PulseServer(tmp_path / "pulse")
    yield server
    server.close()


def test_speech_into_the_default_microphone_is_transcribed(tmp_path, pulse, audio_dir):
    first = speak(audio_dir / "mic1.wav", SENTENCES[0])
    second = speak(audio_dir / "mic2.wav", SENTENCES[2])
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state", {"PULSE_SERVER": pulse.server})
    daemon = DaemonProcess(["--start"], env, tmp_path / "d.log")  # default device, no --source
    try:
        daemon.wait_ready(env)

        async def scenario():
            async with BusClient(bus.address) as c:
                async def audio_seconds():
                    return (await c.call("GetMemory")).body[0]["audio_seconds"].value

                # PulseAudio's ALSA plugin takes a moment before the first samples flow.
                deadline = time.monotonic() + 30
                while await audio_seconds() < 0.5:
                    assert time.monotonic() < deadline, daemon.log()
                    await asyncio.sleep(0.1)
                assert await c.prop("State") == "listening"
                pulse.speak(first)
                await asyncio.sleep(2.0)  # a pause: two utterances, not one
                pulse.speak(second)
                await c.wait_for(lambda: len(c.named("SegmentRefined")) >= 2, timeout=120)
                return c.signals

        signals = asyncio.run(scenario())
        refined = [m for m in signals if m.member == "SegmentRefined"]
        assert len(refined) == 2, [m.body for m in refined]
        for m in refined:
            partials = [i for i, s in enumerate(signals) if s.member == "PartialText" and s.body[0] == m.body[0]]
            assert partials and max(partials) < signals.index(m)  # live text came first
        r = ctl(env, "transcript", "--json")
        assert r.returncode == 0
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        assert len(lines) == 2
        assert {"quarterly", "report", "friday"} <= set(words(lines[0]["text"]))
        assert {"milk", "bread", "eggs"} <= set(words(lines[1]["text"]))
        memory = json.loads(ctl(env, "memory", "--json").stdout)
        assert memory["dropped_samples"] == 0
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
        bus.close()
