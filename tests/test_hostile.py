"""Hostile and bad input: a bus fuzzer, odd and huge audio files, config fuzz, and security checks."""

from __future__ import annotations

import asyncio
import random
import re
import resource
import subprocess

import psutil
import pytest
from dbus_next import Message, MessageType, Variant
from dbus_next.aio import MessageBus

from listend.bus import BUS_NAME, INTERFACE, OBJECT_PATH
from listend.config import ConfigError, build_settings, validate_overrides
from tests.support.audio import SENTENCES, concat, silence, speak, words
from tests.support.bus import daemon_env
from tests.support.processes import BIN, PACKAGES, REPO, listend

MEMBERS = [
    "Start",
    "Stop",
    "Toggle",
    "GetTranscript",
    "GetRecent",
    "GetMemory",
    "SetProfile",
    "Nope",
    "Get",
    "GetAll",
    "Set",
    "Introspect",
    "",
    "x" * 255,
]


def _random_args(rng: random.Random):
    kind = rng.choice(["", "s", "t", "u", "tu", "ss", "as", "a{sv}", "i", "b", "d", "ay", "ssv", "tt", "huge"])
    if kind == "":
        return "", []
    if kind == "huge":
        return "s", ["ж" * rng.choice([1, 1000, 300_000])]
    values = {
        "s": lambda: rng.choice(["full", "lightweight", "", "State", INTERFACE, "\u202e", "x" * 5000]),
        "t": lambda: rng.choice([0, 1, 2**63, 2**64 - 1]),
        "u": lambda: rng.choice([0, 1, 10_000, 2**32 - 1]),
        "i": lambda: rng.choice([-1, 0, 2**31 - 1]),
        "b": lambda: rng.choice([True, False]),
        "d": lambda: rng.choice([0.0, -1e308, float("inf")]),
        "as": lambda: ["a"] * rng.choice([0, 10, 50_000]),
        "ay": lambda: bytes(rng.choice([0, 10, 200_000])),
        "a{sv}": lambda: {"k": Variant("s", "v")},
        "v": lambda: Variant("s", "x"),
    }
    tokens = re.findall(r"a\{sv\}|as|ay|[stuibdv]", kind)
    return kind, [values[t]() for t in tokens]


def test_bus_fuzzer_gets_replies_and_the_daemon_survives(start_daemon, private_bus, tmp_path, two_utterances_wav):
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon("--lightweight", "--source", str(two_utterances_wav), env=env)
    process = psutil.Process(daemon.proc.pid)
    rng = random.Random(20261125)

    async def fuzz(n_calls: int):
        conn = await MessageBus(bus_address=private_bus.address).connect()
        errors = replies = 0
        peak = 0
        for i in range(n_calls):
            member = rng.choice(MEMBERS) or "Start"
            iface = rng.choice(
                [
                    INTERFACE,
                    INTERFACE,
                    "org.freedesktop.DBus.Properties",
                    "org.freedesktop.DBus.Introspectable",
                    "io.github.listend.Nope",
                ]
            )
            signature, body = _random_args(rng)
            if member in ("Get", "GetAll", "Set") and rng.random() < 0.5:
                iface = "org.freedesktop.DBus.Properties"
                signature, body = {
                    "Get": ("ss", [INTERFACE, rng.choice(["State", "Nope", "RssBytes"])]),
                    "GetAll": ("s", [rng.choice([INTERFACE, "x"])]),
                    "Set": ("ssv", [INTERFACE, "State", Variant("s", "idle")]),
                }[member]
            try:
                msg = Message(
                    destination=BUS_NAME,
                    path=OBJECT_PATH,
                    interface=iface,
                    member=member,
                    signature=signature,
                    body=body,
                )
            except Exception:
                continue  # the client library itself refuses to build it
            reply = await asyncio.wait_for(conn.call(msg), timeout=30)
            assert reply is not None
            if reply.message_type == MessageType.ERROR:
                errors += 1
                assert "Traceback" not in str(reply.body)
            else:
                replies += 1
            if i % 200 == 0:
                peak = max(peak, process.memory_info().rss)
        conn.disconnect()
        return errors, replies, peak

    errors, replies, peak = asyncio.run(fuzz(2500))
    assert errors > 100 and replies > 100
    assert daemon.proc.poll() is None, daemon.log()
    limit = build_settings("lightweight").memory.limit_mb * 2**20
    assert peak < limit
    assert "Traceback" not in daemon.log()

    # Calls racing the shutdown get a reply or a clean error, never a hang.
    async def during_shutdown():
        conn = await MessageBus(bus_address=private_bus.address).connect()
        daemon.proc.send_signal(15)
        outcomes = set()
        for _ in range(200):
            reply = await asyncio.wait_for(
                conn.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member="GetMemory")),
                timeout=30,
            )
            outcomes.add(reply.message_type)
        conn.disconnect()
        return outcomes

    asyncio.run(during_shutdown())
    assert daemon.proc.wait(60) == 0


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory, audio_dir):
    d = tmp_path_factory.mktemp("odd")
    speech = speak(audio_dir / "odd-speech.wav", SENTENCES[0])
    files = {}
    files["stereo8k"] = d / "stereo8k.wav"
    subprocess.run(["sox", "-R", str(speech), "-r", "8000", "-c", "2", str(files["stereo8k"])], check=True)
    files["48k24"] = d / "48k24.wav"
    subprocess.run(["sox", "-R", str(speech), "-r", "48000", "-b", "24", str(files["48k24"])], check=True)
    files["flac"] = d / "speech.flac"
    subprocess.run(["sox", "-R", str(speech), str(files["flac"])], check=True)
    data = speech.read_bytes()
    files["truncated"] = d / "truncated.wav"
    files["truncated"].write_bytes(data[: len(data) * 2 // 3])  # header promises more than there is
    files["zero"] = d / "zero.wav"
    files["zero"].write_bytes(b"")
    files["garbage"] = d / "garbage.wav"
    files["garbage"].write_bytes(random.Random(1).randbytes(200_000))
    files["header_only"] = d / "header-only.wav"
    files["header_only"].write_bytes(data[:44])
    huge = bytearray(data[:12])  # RIFF....WAVE, then a 50 MB junk chunk before fmt
    huge += b"junk" + (50 * 2**20).to_bytes(4, "little") + bytes(50 * 2**20) + data[12:]
    files["huge_header"] = d / "huge-header.wav"
    files["huge_header"].write_bytes(bytes(huge))
    return files


@pytest.mark.parametrize("name", ["stereo8k", "48k24", "flac", "huge_header"])
def test_transcribe_odd_formats(odd_files, name):
    result = listend("transcribe", "--lightweight", str(odd_files[name]))
    assert result.returncode == 0, result.stderr
    assert {"quarterly", "report"} <= set(words(result.stdout)), result.stdout


def test_transcribe_truncated_file_uses_what_is_there(odd_files):
    result = listend("transcribe", "--lightweight", str(odd_files["truncated"]))
    assert result.returncode == 0, result.stderr
    assert "quarterly" in words(result.stdout)


@pytest.mark.parametrize(
    "name, message",
    [
        ("zero", "not a readable audio file"),
        ("garbage", "not a readable audio file"),
        ("header_only", "contains no audio"),
    ],
)
def test_transcribe_unusable_files_exit_2(odd_files, name, message):
    result = listend("transcribe", str(odd_files[name]))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_multi_hour_file_streams_with_bounded_memory(tmp_path, audio_dir):
    """Three hours of (compressed) audio: stream-decoded, never loaded whole (3 h float32 = 690 MB)."""
    long_silence = tmp_path / "silence.flac"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(long_silence), "trim", "0", "10800"], check=True
    )
    speech = speak(audio_dir / "multi-hour-speech.wav", SENTENCES[1])
    path = concat(tmp_path / "three-hours.flac", long_silence, speech, silence(tmp_path / "tail.wav", 1))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [str(BIN / "listend"), "transcribe", "--lightweight", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert proc.returncode == 0, proc.stderr
    assert "weather" in words(proc.stdout)
    import json

    record = json.loads(proc.stdout.splitlines()[-1])
    assert record["start"] > 10_790  # timestamps are seconds in the file
    if peak_kb > before:
        assert peak_kb * 1024 < 500 * 2**20, f"peak RSS {peak_kb / 1024:.0f} MB"


def test_config_fuzz_never_crashes():
    rng = random.Random(7)
    atoms = [
        0,
        1,
        -1,
        0.5,
        1e308,
        float("nan"),
        "",
        "x",
        "full",
        True,
        False,
        [],
        [1, "a"],
        {},
        {"a": 1},
        2**63,
        "🙂" * 10,
        "\0",
        10**30,
    ]
    sections = ["models", "audio", "vad", "decode", "queues", "memory", "history", "profile", "bogus"]
    keys = [
        "live",
        "refine",
        "device",
        "threshold",
        "neg_threshold",
        "refine",
        "warn_mb",
        "limit_mb",
        "max_utterance_s",
        "ring_seconds",
        "retention_days",
        "directory",
        "partial_interval_s",
        "nope",
    ]
    outcomes = {"ok": 0, "error": 0}
    for _ in range(3000):
        doc = {}
        for _ in range(rng.randint(0, 4)):
            section = rng.choice(sections)
            if section == "profile":
                doc["profile"] = rng.choice(atoms + ["lightweight"])
            elif rng.random() < 0.1:
                doc[section] = rng.choice(atoms)
            elif isinstance(doc.get(section, {}), dict):
                doc.setdefault(section, {})[rng.choice(keys)] = rng.choice(atoms)
        try:
            overrides = validate_overrides(doc)
            build_settings(None, overrides)
            outcomes["ok"] += 1
        except ConfigError as e:
            assert str(e) and "\n" not in str(e)
            outcomes["error"] += 1
    assert outcomes["ok"] > 100 and outcomes["error"] > 1000


def test_daemon_listens_on_no_network_socket(start_daemon, private_bus, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon("--lightweight", env=env)
    connections = psutil.Process(daemon.proc.pid).net_connections(kind="inet")
    assert connections == []
    unix = psutil.Process(daemon.proc.pid).net_connections(kind="unix")
    assert unix  # the session bus
    assert daemon.terminate() == 0


def test_no_shell_anywhere_in_the_code():
    for path in [p for folder in PACKAGES.values() for p in (REPO / folder).rglob("*.py")]:
        text = path.read_text()
        assert "shell=True" not in text, path
        assert "os.system(" not in text and "os.popen(" not in text, path
        for call in re.findall(r"subprocess\.(?:run|Popen)\((.{0,40})", text, re.S):
            # An argument list (a literal, or a list built in a named variable), never a command string.
            assert call.lstrip().startswith(("[", "self.command", "cmd", "command", "argv")), (path, call)
