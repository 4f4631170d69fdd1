"""A real PulseAudio server with a virtual microphone (no sound card needed).

A null sink ``vsink`` plays into nowhere; ``module-virtual-source`` turns its
monitor into the default source ``vmic``. ``paplay --device=vsink`` is then
someone speaking into the microphone, and listend captures through
sounddevice -> PortAudio -> ALSA ``pulse`` plugin, exactly as on a desktop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .processes import end_process
from .waiting import wait_until


class PulseServer:
    def __init__(self, root: Path):
        self.root = root
        self.run_dir = root / "run"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (root / "state").mkdir(exist_ok=True)
        self.server = f"unix:{self.run_dir}/native"
        self.env = dict(
            os.environ,
            PULSE_SERVER=self.server,
            PULSE_RUNTIME_PATH=str(self.run_dir),
            PULSE_STATE_PATH=str(root / "state"),
        )
        self._log = open(root / "pulse.log", "w")
        self.proc = subprocess.Popen(
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
                "module-null-sink sink_name=vsink rate=16000",
                "-L",
                "module-always-sink",
            ],
            env=dict(self.env, HOME=str(root)),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(
            lambda: self._alive() and self.pactl("info", check=False).returncode == 0,
            20,
            lambda: f"PulseAudio to start:\n{(root / 'pulse.log').read_text()}",
            poll=0.1,
        )
        self.source_module = self.add_microphone()
        self.pactl("set-default-sink", "vsink")

    def _alive(self) -> bool:
        assert self.proc.poll() is None, f"PulseAudio exited:\n{(self.root / 'pulse.log').read_text()}"
        return True

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=20)

    def add_microphone(self) -> str:
        module = self.pactl(
            "load-module", "module-virtual-source", "source_name=vmic", "master=vsink.monitor"
        ).stdout.strip()
        self.pactl("set-default-source", "vmic")
        return module

    def remove_microphone(self) -> None:
        self.pactl("unload-module", self.source_module)

    def unplug(self) -> None:
        """Remove the microphone with nothing to fall back on (as a USB mic on a desktop without others)."""
        for line in self.pactl("list", "modules", "short").stdout.splitlines():
            index, name = line.split()[:2]
            if name in ("module-null-sink", "module-always-sink"):
                self.pactl("unload-module", index, check=False)

    def plug(self) -> None:
        self.pactl("load-module", "module-null-sink", "sink_name=vsink", "rate=16000")
        self.pactl("set-default-sink", "vsink")
        self.source_module = self.add_microphone()

    def speak(self, wav: Path) -> None:
        """Play ``wav`` into the virtual microphone; returns when it has been played."""
        subprocess.run(["paplay", "--device=vsink", str(wav)], env=self.env, check=True, timeout=120)

    def speak_async(self, wav: Path) -> subprocess.Popen:
        return subprocess.Popen(
            ["paplay", "--device=vsink", str(wav)], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def close(self) -> None:
        end_process(self.proc)
        self._log.close()


def pulse_available() -> bool:
    return all(shutil.which(t) for t in ("pulseaudio", "pactl", "paplay"))
