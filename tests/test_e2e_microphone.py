"""End to end through a real capture device: PulseAudio virtual microphone -> listend -> listenctl."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.audio import SENTENCES, speak, words
from tests.support.bus import BusClient, ctl, daemon_env
from tests.support.pulse import AUDIO_SERVERS, audio_server_address, start_audio_server
from tests.support.waiting import until, wait_until


@pytest.mark.parametrize("pulse", AUDIO_SERVERS, indirect=True)
def test_speech_into_the_default_microphone_is_transcribed(start_daemon, private_bus, tmp_path, pulse, audio_dir):
    first = speak(audio_dir / "mic1.wav", SENTENCES[0])
    second = speak(audio_dir / "mic2.wav", SENTENCES[2])
    env = daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": pulse.server})
    daemon = start_daemon("--start", env=env)  # default device, no --source

    async def scenario():
        async with BusClient(private_bus.address) as c:
            await c.wait_audio_flowing()  # PulseAudio's ALSA plugin takes a moment before the first samples flow
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


def test_first_run_without_a_microphone_says_what_to_do(start_daemon, private_bus, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": f"unix:{tmp_path}/no-audio-server"})
    r = ctl(env, "devices")
    assert r.returncode == 1 and r.stderr.strip().startswith("listenctl: no input device found")
    assert len(r.stderr.strip().splitlines()) == 1
    daemon = start_daemon("--start", env=env)

    async def error():
        async with BusClient(private_bus.address) as c:

            async def failed() -> bool:
                return await c.prop("State") == "error"

            # --start runs just after the name is taken.
            await until(failed, 30, "the error state", poll=0.1)
            return await c.prop("State"), await c.prop("LastError")

    state, message = asyncio.run(error())
    assert state == "error"
    for hint in ("no input device found", "--device", "--source FILE", "[audio] device", "listenctl devices"):
        assert hint in message, (hint, message)
    assert "Error querying device -1" not in daemon.log()
    assert daemon.terminate() == 0


@pytest.mark.parametrize("pulse", AUDIO_SERVERS, indirect=True)
def test_devices_lists_the_microphone_and_a_wrong_name_lists_candidates(start_daemon, private_bus, pulse, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": pulse.server})
    r = ctl(env, "devices")
    assert r.returncode == 0, r.stderr
    default = [line for line in r.stdout.splitlines() if line.startswith("*")]
    assert len(default) == 1 and ("pulse" in default[0] or "default" in default[0]), r.stdout
    listed = json.loads(ctl(env, "devices", "--json").stdout)
    assert sum(d["default"] for d in listed) == 1 and all(d["channels"] >= 1 for d in listed)
    daemon = start_daemon("--device", "no-such-microphone", "--start", env=env)
    # --start runs just after the name is taken
    message = wait_until(lambda: json.loads(ctl(env, "status", "--json").stdout)["LastError"], 30, daemon.log)
    assert "'no-such-microphone'" in message and "inputs:" in message, message
    assert listed[0]["name"] in message
    assert daemon.terminate() == 0


def test_a_device_index_no_machine_has_is_a_usage_error(start_daemon, private_bus, tmp_path):
    """Once, 2147483648 passed, the daemon took the bus name and died of an OverflowError (a restart loop)."""
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon("--device", "2147483648", env=env, ready=False)
    assert daemon.proc.wait(60) == 2
    log = daemon.log().strip()
    assert "device index 2147483648 is out of range" in log and "Traceback" not in log
    assert len(log.splitlines()) == 1, log


@pytest.mark.parametrize("kind", AUDIO_SERVERS)
def test_a_daemon_started_before_the_audio_server_finds_the_microphone(
    start_daemon, private_bus, tmp_path, audio_dir, kind
):
    """The login order of a user unit: listend first, the audio server later. PortAudio lists devices once."""
    spoken = speak(audio_dir / "later.wav", SENTENCES[2])
    root = tmp_path / "pulse"
    env = daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": audio_server_address(kind, root)})
    daemon = start_daemon(env=env)
    r = ctl(env, "start")  # no audio server yet: PortAudio in the daemon starts with no device
    assert r.returncode == 1 and "no input device found" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    pulse = start_audio_server(kind, root)  # the audio server comes up
    try:
        r = ctl(env, "start")
        assert r.returncode == 0, r.stderr

        async def scenario():
            async with BusClient(private_bus.address) as c:
                await c.wait_audio_flowing()
                pulse.speak(spoken)
                await c.wait_for(lambda: c.named("SegmentRefined"), timeout=120)
                return c.refined_texts()

        texts = asyncio.run(scenario())
        assert len({"milk", "bread", "eggs"} & set(words(texts[0]))) >= 2, texts
        memory = json.loads(ctl(env, "memory", "--json").stdout)
        assert memory["portaudio_restarts"] >= 1 and memory["dropped_samples"] == 0, memory
        assert daemon.terminate() == 0
    finally:
        pulse.close()


@pytest.mark.parametrize("pulse", AUDIO_SERVERS, indirect=True)
def test_the_audio_server_restarted_mid_dictation_resumes_listening_and_is_counted(
    start_daemon, private_bus, tmp_path, pulse, audio_dir
):
    first = speak(audio_dir / "before-restart.wav", SENTENCES[0])
    second = speak(audio_dir / "after-restart.wav", SENTENCES[2])
    env = daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": pulse.server})
    daemon = start_daemon("--start", env=env)

    async def before():
        async with BusClient(private_bus.address) as c:
            await c.wait_audio_flowing()
            pulse.speak(first)
            await c.wait_for(lambda: c.named("SegmentRefined"), timeout=120)
            return c.refined_texts()

    heard_before = asyncio.run(before())
    pulse.close()  # the audio server goes away mid-dictation (a crash, `systemctl --user restart`) ...
    restarted = start_audio_server(pulse.kind, pulse.root)  # ... and comes back on the same socket
    try:

        def memory() -> dict:
            return json.loads(ctl(env, "memory", "--json").stdout)

        wait_until(lambda: memory()["reopens"] >= 1, 60, "capture to resume on the new server", poll=0.5)
        status = json.loads(ctl(env, "status", "--json").stdout)
        assert status["State"] == "listening" and status["LastError"] == "", status
        heard = memory()["audio_seconds"]
        wait_until(lambda: memory()["audio_seconds"] >= heard + 0.5, 30, "audio from the new server", poll=0.2)

        async def after():
            async with BusClient(private_bus.address) as c:
                restarted.speak(second)
                await c.wait_for(lambda: c.named("SegmentRefined"), timeout=120)
                return c.refined_texts()

        heard_after = asyncio.run(after())
        assert len({"quarterly", "report", "friday"} & set(words(heard_before[0]))) >= 2, heard_before
        assert len({"milk", "bread", "eggs"} & set(words(heard_after[0]))) >= 2, heard_after
        assert memory()["reopens"] >= 1
        assert daemon.terminate() == 0
    finally:
        restarted.close()


@pytest.mark.parametrize("pulse", AUDIO_SERVERS, indirect=True)
def test_listening_follows_the_default_microphone_when_it_changes(
    start_daemon, private_bus, tmp_path, pulse, audio_dir
):
    """A headset plugged in mid-dictation becomes the default source: listend hears it, without a restart."""
    first = speak(audio_dir / "first-mic.wav", SENTENCES[0])
    second = speak(audio_dir / "second-mic.wav", SENTENCES[2])
    env = daemon_env(private_bus, tmp_path / "state", {"PULSE_SERVER": pulse.server})
    daemon = start_daemon("--start", env=env)  # the default device

    async def scenario():
        async with BusClient(private_bus.address) as c:
            await c.wait_audio_flowing()
            pulse.speak(first)
            await c.wait_for(lambda: len(c.named("SegmentRefined")) >= 1, timeout=120)
            pulse.pactl("load-module", "module-null-sink", "sink_name=headset", "rate=16000")
            pulse.add_microphone("headset_mic", "headset")  # the new default source
            assert pulse.pactl("get-default-source").stdout.strip() == "headset_mic"
            await until(lambda: capturing_from(pulse, "headset_mic"), 30, "the capture stream to move to the headset")
            pulse.speak(second, sink="headset")
            await c.wait_for(lambda: len(c.named("SegmentRefined")) >= 2, timeout=120)
            return c.refined_texts()

    texts = asyncio.run(scenario())
    assert len({"quarterly", "report", "friday"} & set(words(texts[0]))) >= 2, texts
    assert len({"milk", "bread", "eggs"} & set(words(texts[1]))) >= 2, texts
    assert json.loads(ctl(env, "status", "--json").stdout)["State"] == "listening"
    assert daemon.terminate() == 0


def capturing_from(pulse, source: str) -> bool:
    """Some capture stream (listend is the only client recording) records from ``source``, as the server says."""
    sources = {line.split()[1]: line.split()[0] for line in pulse.pactl("list", "short", "sources").stdout.splitlines()}
    outputs = [line.split()[1] for line in pulse.pactl("list", "short", "source-outputs").stdout.splitlines()]
    return sources.get(source) in outputs
