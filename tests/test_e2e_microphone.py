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
        # espeak-ng speech through a virtual microphone: the model may miss one word of a sentence.
        assert len({"quarterly", "report", "friday"} & set(words(lines[0]["text"]))) >= 2, lines[0]
        assert len({"milk", "bread", "eggs"} & set(words(lines[1]["text"]))) >= 2, lines[1]
        memory = json.loads(ctl(env, "memory", "--json").stdout)
        assert memory["dropped_samples"] == 0
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
        bus.close()


def test_first_run_without_a_microphone_says_what_to_do(tmp_path):
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state", {"PULSE_SERVER": f"unix:{tmp_path}/no-audio-server"})
    r = ctl(env, "devices")
    assert r.returncode == 1 and r.stderr.strip().startswith("listenctl: no input device found")
    assert len(r.stderr.strip().splitlines()) == 1
    daemon = DaemonProcess(["--start"], env, tmp_path / "d.log")
    try:
        daemon.wait_ready(env)

        async def error():
            async with BusClient(bus.address) as c:
                deadline = time.monotonic() + 30  # --start runs just after the name is taken
                while await c.prop("State") != "error":
                    assert time.monotonic() < deadline, daemon.log()
                    await asyncio.sleep(0.1)
                return await c.prop("State"), await c.prop("LastError")

        state, message = asyncio.run(error())
        assert state == "error"
        for hint in ("no input device found", "--device", "--source FILE", "[audio] device", "listenctl devices"):
            assert hint in message, (hint, message)
        assert "Error querying device -1" not in daemon.log()
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
        bus.close()


def test_devices_lists_the_microphone_and_a_wrong_name_lists_candidates(tmp_path):
    pulse = PulseServer(tmp_path / "pulse")
    bus = PrivateBus(tmp_path)
    env = daemon_env(bus, tmp_path / "state", {"PULSE_SERVER": pulse.server})
    try:
        r = ctl(env, "devices")
        assert r.returncode == 0, r.stderr
        default = [line for line in r.stdout.splitlines() if line.startswith("*")]
        assert len(default) == 1 and ("pulse" in default[0] or "default" in default[0]), r.stdout
        listed = json.loads(ctl(env, "devices", "--json").stdout)
        assert sum(d["default"] for d in listed) == 1 and all(d["channels"] >= 1 for d in listed)
        daemon = DaemonProcess(["--device", "no-such-microphone", "--start"], env, tmp_path / "d.log")
        try:
            daemon.wait_ready(env)
            deadline = time.monotonic() + 30  # --start runs just after the name is taken
            while not (message := json.loads(ctl(env, "status", "--json").stdout)["LastError"]):
                assert time.monotonic() < deadline, daemon.log()
                time.sleep(0.1)
            assert "'no-such-microphone'" in message and "inputs:" in message, message
            assert listed[0]["name"] in message
            assert daemon.terminate() == 0
        finally:
            daemon.kill()
    finally:
        bus.close()
        pulse.close()
