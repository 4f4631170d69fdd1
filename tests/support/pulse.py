"""A real audio server with a virtual microphone (no sound card needed): PulseAudio, or PipeWire.

A null sink ``vsink`` plays into nowhere; a virtual source turns its monitor
into the default source ``vmic``. ``paplay --device=vsink`` is then someone
speaking into the microphone, and listend captures through sounddevice ->
PortAudio -> ALSA ``pulse`` plugin, exactly as on a desktop. PipeWire
(:class:`PipeWireServer`: pipewire, WirePlumber and pipewire-pulse, the audio
server of Ubuntu, Fedora and Debian's GNOME) is reached the same way, through
its PulseAudio protocol server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .processes import end_process
from .waiting import wait_until


class PulseServer:
    kind = "pulseaudio"
    #: What turns the null sink's monitor into a microphone (pipewire-pulse has no module-virtual-source).
    microphone_module = "module-virtual-source"

    def __init__(self, root: Path):
        self.root = root
        self.run_dir = root / "run"
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (root / "state").mkdir(exist_ok=True)
        self._log = open(root / "pulse.log", "w")
        self.procs: list[subprocess.Popen[bytes]] = []
        self._players: list[subprocess.Popen[bytes]] = []
        self.server = self._start()
        self.env = dict(os.environ, PULSE_SERVER=self.server, **self._client_env())
        wait_until(
            lambda: self._alive() and self.pactl("info", check=False).returncode == 0,
            20,
            lambda: f"{self.kind} to start:\n{(root / 'pulse.log').read_text()}",
            poll=0.1,
        )
        self.plug()

    @staticmethod
    def address(root: Path) -> str:
        """Where the server started in ``root`` listens."""
        return f"unix:{root}/run/native"

    def _start(self) -> str:
        """Start the server's processes; return its address."""
        env = dict(
            os.environ,
            HOME=str(self.root),
            PULSE_RUNTIME_PATH=str(self.run_dir),
            PULSE_STATE_PATH=str(self.root / "state"),
        )
        self.procs.append(
            self._spawn(
                [
                    "pulseaudio",
                    "-n",
                    "--daemonize=no",
                    "--exit-idle-time=-1",
                    "--disallow-exit",
                    "--use-pid-file=no",
                    "--log-target=stderr",
                    "-L",
                    f"module-native-protocol-unix socket={self.run_dir}/native auth-anonymous=1",
                    "-L",
                    "module-always-sink",
                ],
                env,
            )
        )
        return self.address(self.root)

    def _client_env(self) -> dict[str, str]:
        return {"PULSE_RUNTIME_PATH": str(self.run_dir), "PULSE_STATE_PATH": str(self.root / "state")}

    def _spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def _alive(self) -> bool:
        for proc in self.procs:
            assert proc.poll() is None, f"{proc.args} exited:\n{(self.root / 'pulse.log').read_text()}"
        return True

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=20)

    def add_microphone(self, name: str = "vmic", sink: str = "vsink") -> str:
        """A microphone ``name`` that hears what is played into ``sink``; it becomes the default source."""
        module = self.pactl("load-module", self.microphone_module, f"source_name={name}", f"master={sink}.monitor")
        self._wait_listed("sources", name)
        self.pactl("set-default-source", name)
        return module.stdout.strip()

    def remove_microphone(self) -> None:
        self.pactl("unload-module", self.source_module)

    def unplug(self) -> None:
        """Remove the microphone with nothing to fall back on (as a USB mic on a desktop without others)."""
        # What plays into it ends with it. PulseAudio ends such streams itself; pipewire-pulse 0.3.65 keeps
        # them waiting for a sink, and ignores kill-sink-input.
        for player in self._players:
            if player.poll() is None:
                end_process(player)
        for line in self.pactl("list", "modules", "short").stdout.splitlines():
            fields = line.split()  # pipewire-pulse lists some modules with an empty name
            if len(fields) >= 2 and fields[1] in ("module-null-sink", "module-always-sink", self.microphone_module):
                self.pactl("unload-module", fields[0], check=False)

    def plug(self) -> None:
        """The null sink and the microphone that hears it (again, after :meth:`unplug`)."""
        self.pactl("load-module", "module-null-sink", "sink_name=vsink", "rate=16000")
        self._wait_listed("sinks", "vsink")
        self.pactl("set-default-sink", "vsink")
        self.source_module = self.add_microphone()

    def _wait_listed(self, kind: str, name: str) -> None:
        """Wait until the server lists ``name`` among its ``kind`` ("sinks", "sources"): pipewire-pulse answers
        load-module before the node exists, and a set-default-* that comes first fails with "No such entity"."""

        def listed() -> bool:
            rows = self.pactl("list", "short", kind, check=False).stdout.splitlines()
            return any(len(row.split()) > 1 and row.split()[1] == name for row in rows)

        wait_until(listed, 20, lambda: f"{self.kind} to list {name} among its {kind}", poll=0.05)

    def speak(self, wav: Path, sink: str = "vsink") -> None:
        """Play ``wav`` into the virtual microphone (of ``sink``); returns when it has been played."""
        subprocess.run(["paplay", f"--device={sink}", str(wav)], env=self.env, check=True, timeout=120)

    def speak_async(self, wav: Path) -> subprocess.Popen:
        player = subprocess.Popen(
            ["paplay", "--device=vsink", str(wav)], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._players = [p for p in self._players if p.poll() is None] + [player]
        return player

    def close(self) -> None:
        for proc in [*self._players, *reversed(self.procs)]:
            end_process(proc)
        self._log.close()


class PipeWireServer(PulseServer):
    """pipewire, WirePlumber (its session manager) and pipewire-pulse, with a D-Bus session bus of their own.

    Measured on Debian 12 (PipeWire 0.3.65, WirePlumber 0.4.13): runs headless, as root too; its
    PulseAudio server has no ``module-virtual-source``, ``module-remap-source`` does the same here.
    """

    kind = "pipewire"
    microphone_module = "module-remap-source"

    def _start(self) -> str:
        from .bus import PrivateBus

        (self.root / "bus").mkdir(exist_ok=True)
        self._bus = PrivateBus(self.root / "bus")  # WirePlumber asks the session bus (device reservation)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "PIPEWIRE_"))}
        env.update(HOME=str(self.root), XDG_RUNTIME_DIR=str(self.run_dir), DBUS_SESSION_BUS_ADDRESS=self._bus.address)
        env.update(XDG_CONFIG_HOME=str(self.root / "config"), XDG_STATE_HOME=str(self.root / "state"))
        self.procs.append(self._spawn(["pipewire"], env))
        core = self.run_dir / "pipewire-0"
        wait_until(lambda: self._alive() and core.exists(), 20, lambda: f"pipewire's socket {core}", poll=0.05)
        self.procs.append(self._spawn(["wireplumber"], env))
        self.procs.append(self._spawn(["pipewire-pulse"], env))
        return self.address(self.root)

    @staticmethod
    def address(root: Path) -> str:
        return f"unix:{root}/run/pulse/native"

    def _client_env(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        super().close()
        self._bus.close()


def audio_server_address(kind: str, root: Path) -> str:
    """Where ``start_audio_server(kind, root)`` will listen (to point a client at it before it starts)."""
    return (PipeWireServer if kind == "pipewire" else PulseServer).address(root)


def start_audio_server(kind: str, root: Path) -> PulseServer:
    """``"pulseaudio"`` or ``"pipewire"``, with the virtual microphone as the default source."""
    return PipeWireServer(root) if kind == "pipewire" else PulseServer(root)


def pulse_available() -> bool:
    return all(shutil.which(t) for t in ("pulseaudio", "pactl", "paplay"))


def pipewire_available() -> bool:
    return all(shutil.which(t) for t in ("pipewire", "wireplumber", "pipewire-pulse", "pactl", "paplay"))


#: ``@pytest.mark.parametrize("pulse", AUDIO_SERVERS, indirect=True)``: a microphone test against both servers.
AUDIO_SERVERS = [
    "pulseaudio",
    pytest.param(
        "pipewire",
        marks=pytest.mark.skipif(not pipewire_available(), reason="pipewire (scripts/install-deps --test)"),
    ),
]
