"""Nothing leaves the machine: a whole dictation life under strace, every process of listend's watched.

The daemon starts with an empty model cache (so the Moonshine converter child runs), listens to real speech
through a PulseAudio virtual microphone, releases its models when idle, loads them again for a second start and
stops; ``listenctl`` drives it and the tray follows it. strace follows every process and child (``-ff``) and
records each socket they create or address and each file they open for writing. A snapshot of /proc would miss
what this is about: onnxruntime's telemetry was a UDP DNS query every 5-9 s, each socket open for a millisecond.

Allowed: AF_UNIX sockets only (the session bus, the audio server, dbus-send). No AF_NETLINK is needed either:
PortAudio reaches PulseAudio through ALSA's pulse plugin over a unix socket, and glibc asks the kernel for
interfaces (netlink) only to resolve a host name, which nothing of listend's does.
Writes: only listend's own XDG directories (the model cache, the history and state, the runtime directory),
the library caches listend configures (none today), and the interpreter's bytecode caches beside its modules.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.bus import daemon_env
from tests.support.processes import BIN, end_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(not shutil.which("strace"), reason="strace (scripts/install-deps --test)")

TRACED = "trace=execve,socket,connect,sendto,sendmsg,bind,open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2"
SOCKET_FAMILY = re.compile(r"^(?:socket\((\w+)|(?:connect|sendto|sendmsg|bind)\(.*?sa_family=(\w+))")
OPEN_FOR_WRITING = re.compile(r'^(?:open|openat)\((?:AT_FDCWD|\d+), "([^"]+)", ([A-Z_|]+)')
MADE = re.compile(r'^(?:mkdir|mkdirat|creat|rename|renameat2?)\((?:AT_FDCWD, |\d+, )?"([^"]+)"')
ALLOWED_FAMILIES = {"AF_UNIX"}


def traced(trace_dir: Path, name: str, argv: list[str]) -> list[str]:
    """``argv`` under strace, following children, one trace file per process (``trace_dir/name.PID``)."""
    return ["strace", "-f", "-ff", "-qq", "--seccomp-bpf", "-e", TRACED, "-o", str(trace_dir / name), *argv]


def calls(trace_dir: Path) -> list[tuple[str, str]]:
    """(trace file, line) of every call recorded, in every process."""
    return [(path.name, line) for path in sorted(trace_dir.iterdir()) for line in path.read_text().splitlines()]


def sockets_not_unix(trace_dir: Path) -> list[str]:
    found = []
    for name, line in calls(trace_dir):
        match = SOCKET_FAMILY.match(line)
        if match and (match.group(1) or match.group(2)) not in ALLOWED_FAMILIES:
            found.append(f"{name}: {line}")
    return found


def written_outside(trace_dir: Path, allowed: list[Path]) -> list[str]:
    """Files opened for writing, or made, outside ``allowed`` (and outside what every process writes)."""
    found = []
    for name, line in calls(trace_dir):
        path = None
        match = OPEN_FOR_WRITING.match(line)
        if match and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND", match.group(2)):
            path = match.group(1)
        elif match := MADE.match(line):
            path = match.group(1)
        if path is None or path.startswith(("/dev/", "/proc/self/", "/proc/thread-self/")):
            continue  # /dev/null, /dev/shm (the audio server's shared memory), a thread's own name
        if path.endswith(".pyc") or "/__pycache__/" in path or path.endswith("/__pycache__"):
            continue  # the interpreter's bytecode caches, beside the modules
        if not any(Path(path).is_relative_to(root) for root in allowed):
            found.append(f"{name}: {line}")
    return found


def test_a_whole_dictation_life_opens_no_network_socket_and_writes_only_its_own_files(
    private_bus, pulse, tmp_path, real_speech
):
    home = tmp_path / "home"
    xdg = {
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_STATE_HOME": home / ".local/state",
        "XDG_CACHE_HOME": home / ".cache",  # empty: the models are joined and converted in this life
        "XDG_RUNTIME_DIR": tmp_path / "run",
    }
    for path in xdg.values():
        path.mkdir(parents=True, mode=0o700)
    (xdg["XDG_CONFIG_HOME"] / "listend").mkdir()
    (xdg["XDG_CONFIG_HOME"] / "listend/config.toml").write_text("[models]\nunload_after_s = 2\n")
    env = daemon_env(private_bus, xdg["XDG_STATE_HOME"], {"PULSE_SERVER": pulse.server, "HOME": str(home)})
    env.update({name: str(path) for name, path in xdg.items()})
    env.pop("ORT_DISABLE_TELEMETRY", None)  # listend sets it itself; the test's own environment must not
    env.pop("HF_HUB_DISABLE_TELEMETRY", None)
    trace_dir = tmp_path / "trace"
    trace_dir.mkdir()
    ctl_runs = iter(range(100))

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        argv = traced(trace_dir, f"listenctl-{next(ctl_runs)}", [str(BIN / "listenctl"), *args])
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    def memory() -> dict[str, Any]:
        r = ctl("memory", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    log = open(tmp_path / "daemon.log", "w")
    daemon = subprocess.Popen(
        traced(trace_dir, "listend", [str(BIN / "listend"), "--start"]), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    # The tray follows the daemon all along (the StatusNotifierItem backend: no display needed, no host yet).
    tray_env = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    tray_log = open(tmp_path / "tray.log", "w")
    tray = subprocess.Popen(
        traced(trace_dir, "listend-tray", [str(BIN / "listend-tray"), "-v"]),
        env=tray_env,
        stdout=tray_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: "ready on" in (tmp_path / "daemon.log").read_text(), 300, "listend to be ready", poll=0.2)
        assert ctl("devices").returncode == 0
        wait_until(lambda: memory()["audio_seconds"] >= 0.5, 60, "audio from the microphone", poll=0.5)
        pulse.speak(real_speech)
        wait_until(lambda: ctl("transcript").stdout.strip(), 180, "the first refined text", poll=0.5)
        assert ctl("stop").returncode == 0
        first_life = len(ctl("transcript").stdout.splitlines())
        wait_until(lambda: memory()["model_releases"] == 1, 120, "the models to be released when idle", poll=0.5)
        heard = memory()["audio_seconds"]
        assert ctl("start").returncode == 0  # loads them again
        wait_until(lambda: memory()["audio_seconds"] >= heard + 0.5, 60, "audio after the reload", poll=0.5)
        pulse.speak(real_speech)
        wait_until(
            lambda: len(ctl("transcript").stdout.splitlines()) > first_life,
            180,
            "refined text after the reload",
            poll=0.5,
        )
        assert ctl("stop").returncode == 0
        assert memory()["model_loads"] == 1
        assert tray.poll() is None, (tmp_path / "tray.log").read_text()  # it followed the whole life
    finally:
        # SIGTERM to listend itself (strace, its parent, would only detach), then strace ends with its exit status.
        for child in psutil.Process(tray.pid).children():
            child.terminate()
        ready = re.search(r"ready on .* \(pid (\d+)\)", (tmp_path / "daemon.log").read_text())
        if ready:
            os.kill(int(ready.group(1)), signal.SIGTERM)
        try:
            daemon.wait(120)
            tray.wait(60)
        finally:
            end_process(daemon)
            end_process(tray)
            log.close()
            tray_log.close()
    assert daemon.returncode == 0, (tmp_path / "daemon.log").read_text()
    assert tray.returncode == 0, (tmp_path / "tray.log").read_text()
    converter = [line for name, line in calls(trace_dir) if line.startswith("execve(") and "moonshine" in line]
    assert converter, "the converter child ran (a fresh cache)"
    assert (xdg["XDG_CACHE_HOME"] / "listend/models/moonshine-base/manifest.json").exists()

    assert sockets_not_unix(trace_dir) == []
    # libpulse (in ALSA's pulse plugin) opens the audio server's cookie read-write, creating it if missing: the
    # user's audio client files, on every desktop, not something listend writes.
    allowed = [path / "listend" for path in xdg.values()] + [home / ".config/pulse"]
    assert written_outside(trace_dir, allowed) == []
    left_in_home = [str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()]
    listend_own = (".config/listend/", ".local/state/listend/", ".cache/listend/", ".config/pulse/cookie")
    assert all(p.startswith(listend_own) for p in left_in_home), left_in_home
    assert not (home / ".cache/Microsoft").exists()
    assert os.listdir(xdg["XDG_RUNTIME_DIR"]) in ([], ["listend"])
